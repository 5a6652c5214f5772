"""Our Slack app served on loopback, and signed requests to it as Slack would send them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from itertools import count

from aiohttp import web

SECRET = "test-signing-secret"


@dataclass
class Reply:
    status: int
    body: str

    def json(self) -> dict:
        return json.loads(self.body) if self.body.startswith("{") else {}


class ServedApp:
    """Runs an aiohttp application in its own thread and event loop on 127.0.0.1, any free port."""

    def __init__(self, app: web.Application):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ServedApp:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class SlackSender:
    """Builds and signs slash commands, button clicks and modal submissions."""

    def __init__(self, base_url: str, response_url, team: str = "T1", secret: str = SECRET):
        self.events_url = base_url + "/slack/events"
        self.response_url = response_url  # function name -> URL on the fake Slack
        self.team = team
        self.secret = secret
        self._ids = count(1)

    def sign(self, body: str, timestamp: int | None = None, secret: str | None = None) -> dict:
        timestamp = int(time.time()) if timestamp is None else timestamp
        base = f"v0:{timestamp}:{body}".encode()
        digest = hmac.new((secret or self.secret).encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}

    def post(self, body: str, headers: dict | None = None, content_type="application/x-www-form-urlencoded",
             signed: bool = True) -> Reply:
        all_headers = {"Content-Type": content_type, **(self.sign(body) if signed else {}), **(headers or {})}
        request = urllib.request.Request(self.events_url, data=body.encode(), headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Reply(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read().decode())

    def command_body(self, text: str, user: str = "U1", channel: str = "CGENERAL") -> tuple[str, str]:
        n = next(self._ids)
        name = f"cmd{n}"
        body = urllib.parse.urlencode({
            "token": "legacy", "team_id": self.team, "team_domain": "brand", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": user.lower(), "command": "/crisis",
            "text": text, "api_app_id": "A1", "response_url": self.response_url(name),
            "trigger_id": f"trigger.{n}",
        })
        return body, name

    def command(self, text: str, user: str = "U1", channel: str = "CGENERAL") -> tuple[Reply, str]:
        """Returns the immediate reply (the ack) and the name of this command's response_url."""
        body, name = self.command_body(text, user, channel)
        return self.post(body), name

    def interaction_body(self, payload: dict) -> str:
        return urllib.parse.urlencode({"payload": json.dumps(payload)})

    def click_payload(self, action_id: str, user: str, channel: str, message_ts: str = "1.0",
                      selected_user: str | None = None) -> tuple[dict, str]:
        name = f"click{next(self._ids)}"
        action = {"action_id": action_id, "block_id": "b", "action_ts": str(time.time())}
        if selected_user is not None:
            action.update(type="users_select", selected_user=selected_user)
        else:
            action.update(type="button", value=action_id.split("|")[-1], text={"type": "plain_text", "text": "x"})
        payload = {
            "type": "block_actions", "team": {"id": self.team, "domain": "brand"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team}, "api_app_id": "A1",
            "token": "legacy", "trigger_id": f"trigger.{next(self._ids)}", "channel": {"id": channel, "name": "x"},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "message": {"ts": message_ts, "text": "", "blocks": []},
            "response_url": self.response_url(name), "actions": [action],
        }
        return payload, name

    def click(self, action_id: str, user: str, channel: str, **kwargs) -> tuple[Reply, str]:
        payload, name = self.click_payload(action_id, user, channel, **kwargs)
        return self.post(self.interaction_body(payload)), name

    def submit(self, view: dict, values: dict, user: str = "U1") -> Reply:
        """Submits a modal the way Slack does: state.values by block id, then action id."""
        state = {}
        for block_id, value in values.items():
            if block_id in ("type", "severity", "template"):  # the static selects of our forms
                state[block_id] = {block_id: {"type": "static_select",
                                             "selected_option": None if value is None else {"value": value}}}
            else:
                state[block_id] = {block_id: {"type": "plain_text_input", "value": value}}
        submitted = {**view, "id": view.get("id", "V1"), "team_id": self.team, "state": {"values": state},
                     "hash": "h", "app_id": "A1", "bot_id": "B1"}
        payload = {"type": "view_submission", "team": {"id": self.team, "domain": "brand"},
                   "user": {"id": user, "username": user.lower(), "team_id": self.team}, "api_app_id": "A1",
                   "token": "legacy", "trigger_id": f"trigger.{next(self._ids)}", "view": submitted,
                   "response_urls": []}
        return self.post(self.interaction_body(payload))
