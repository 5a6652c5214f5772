"""Socket Mode end to end: the real `crisisbot slack --socket-mode` process, connected to the
fake Slack's Socket Mode endpoint, gets envelopes pushed over the websocket and acks them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack

USERS = ("U1", "U2", "U3")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture
def fake():
    f = FakeSlack().start()
    yield f
    f.stop()


# -- what Slack sends over the socket -------------------------------------------------------


def command_payload(text: str, user: str, channel: str, response_url: str, trigger_id: str) -> dict:
    """A slash command as the payload of a `slash_commands` envelope (the HTTP form's fields)."""
    return {
        "token": "legacy", "team_id": "T1", "team_domain": "brand", "channel_id": channel,
        "channel_name": "general", "user_id": user, "user_name": user.lower(), "command": "/crisis",
        "text": text, "api_app_id": "A1", "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": trigger_id,
    }


def click_payload(action_id: str, user: str, channel: str, ts: str, message: dict, response_url: str) -> dict:
    """A button click on a message as the payload of an `interactive` envelope."""
    return {
        "type": "block_actions", "team": {"id": "T1", "domain": "brand"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T1"},
        "api_app_id": "A1", "token": "legacy", "trigger_id": "trigger.click",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "incident"},
        "message": {"type": "message", "ts": ts, "bot_id": "B1", "text": message["text"],
                    "blocks": message["blocks"]},
        "state": {"values": {}}, "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": "roster",
                     "value": action_id.split("|")[-1], "text": {"type": "plain_text", "text": "Claim"},
                     "action_ts": str(time.time())}],
    }


def button(message: dict, action_prefix: str, value: str) -> str | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            action_id = element.get("action_id", "")
            if action_id.startswith(action_prefix + "|") and action_id.endswith("|" + value):
                return action_id
    return None


def texts(message: dict) -> str:
    out = [message.get("text") or ""]
    for block in message.get("blocks") or []:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
    return "\n".join(out)


# -- the process ----------------------------------------------------------------------------


def crisisbot_env(fake: FakeSlack, database_url: str, **overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES and k != "CRISISBOT_PLAYBOOK"}
    env.update(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="anything", SLACK_APP_TOKEN="xapp-test",
               SLACK_API_BASE_URL=fake.url, DATABASE_URL=database_url, CRISISBOT_LANGUAGE="en",
               PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def crisisbot_slack(env: dict, stderr_path: Path) -> subprocess.Popen:
    # stderr to a file, not a pipe: the INFO log can't fill a pipe nobody reads while the test waits.
    with open(stderr_path, "w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "handlers.cli", "slack", "--socket-mode"],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_crisisbot_slack_socket_mode_starts_a_crisis_and_handles_a_claim(fake, database_url, tmp_path):
    for user in USERS:
        fake.add_user(user)
    general = fake.add_channel("general", members=USERS)
    log = tmp_path / "stderr.log"
    process = crisisbot_slack(crisisbot_env(fake, database_url), log)
    try:
        try:
            fake.wait_for_socket_client(timeout=20)
        except AssertionError:
            raise AssertionError(f"crisisbot did not connect (exit {process.poll()}):\n{log.read_text()}") from None
        opened = fake.calls_to("apps.connections.open")
        assert len(opened) == 1 and opened[0].ok

        # /crisis start: answered in the ack, then the room is made and the private answer sent.
        sent = time.monotonic()
        envelope = fake.socket_send("slash_commands", command_payload(
            "start sev2 Hacked account posts spam", "U1", general, fake.response_url("r1"), "trigger.1"))
        ack = fake.wait_for_socket_ack(envelope, timeout=5)
        assert time.monotonic() - sent < 2, "the ack took longer than Slack allows for comfort"
        assert ack["envelope_id"] == envelope
        assert ack["payload"]["text"] == "Opening the crisis room for “Hacked account posts spam”…"
        assert fake.calls_to("socket.ack")[0].ok

        create = fake.wait_for("conversations.create", timeout=5)[0]
        assert create.ok
        channel = create.response["channel"]["id"]
        answer = fake.wait_for("response_url", predicate=lambda c: c.url_name == "r1", timeout=5)[0]
        assert answer.ok
        assert f"CRISIS-1 is open in <#{channel}>" in answer.params["text"]
        assert "U1" in fake.channels[channel].members

        # The Claim button of the legal role on the roster, clicked by U2.
        messages = dict(fake.channels[channel].messages)
        (ts, roster), = [(ts, m) for ts, m in messages.items() if button(m, "role.claim", "legal")]
        action_id = button(roster, "role.claim", "legal")
        envelope = fake.socket_send("interactive", click_payload(
            action_id, "U2", channel, ts, roster, fake.response_url("click1")), accepts_response_payload=False)
        ack = fake.wait_for_socket_ack(envelope, timeout=5)
        assert ack == {"envelope_id": envelope}  # a button click is acked without a payload

        update = fake.wait_for("chat.update", predicate=lambda c: c.params.get("ts") == ts, timeout=5)[0]
        assert update.ok and update.params["channel"] == channel
        updated = fake.channels[channel].messages[ts]
        assert "<@U2>" in texts(updated)
        assert button(updated, "role.claim", "legal") is None  # the claim button is gone
        fake.wait_for("chat.postMessage", predicate=lambda c: c.params.get("text") == "<@U2> now holds *Legal*.",
                      timeout=5)
        assert [c for c in fake.calls if not c.ok] == []
        assert process.poll() is None
    finally:
        stop(process)
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    assert "ERROR" not in stderr, stderr


def test_socket_mode_without_an_app_token_exits_with_status_2(fake, tmp_path):
    env = crisisbot_env(fake, f"sqlite:///{tmp_path / 'unused.db'}")
    del env["SLACK_APP_TOKEN"]
    result = subprocess.run([sys.executable, "-m", "handlers.cli", "slack", "--socket-mode"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SLACK_APP_TOKEN" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert fake.calls == []  # it gave up before talking to Slack
    assert not (tmp_path / "unused.db").exists()  # ...and before touching the database


# -- the fake's Socket Mode, driven by slack_sdk's own client ---------------------------------


def test_apps_connections_open_wants_an_app_level_token(fake):
    url = WebClient(base_url=fake.url).apps_connections_open(app_token="xapp-1")["url"]
    assert url.startswith(f"ws://127.0.0.1:{fake.url.split(':')[2].split('/')[0]}/socket?")

    def error(token):
        with pytest.raises(SlackApiError) as exc:
            WebClient(base_url=fake.url).apps_connections_open(app_token=token)
        return exc.value.response["error"]

    assert error("xoxb-test") == "not_allowed_token_type"
    assert error("") == "not_authed"
    assert error("bogus") == "invalid_auth"
    # ...and an app-level token is no good for the bot's methods.
    with pytest.raises(SlackApiError) as exc:
        WebClient(base_url=fake.url, token="xapp-1").chat_postMessage(channel="C1", text="hi")
    assert exc.value.response["error"] == "not_allowed_token_type"


def test_the_socket_says_hello_answers_pings_and_takes_one_connection_per_url(fake):
    url = WebClient(base_url=fake.url).apps_connections_open(app_token="xapp-1")["url"]

    async def connect_twice():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, autoping=False) as ws:  # as slack_sdk connects
                hello = await ws.receive_json(timeout=5)
                await ws.ping(b"sdk-ping-pong:1.5")
                pong = await ws.receive(timeout=5)
                with pytest.raises(aiohttp.WSServerHandshakeError) as second:
                    await session.ws_connect(url)
                return hello, pong, second.value.status

    hello, pong, status = asyncio.run(connect_twice())
    assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A1"}
    assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"sdk-ping-pong:1.5")
    assert status == 401
    assert [c.error for c in fake.calls_to("socket.connect")] == [None, "invalid_ticket"]


class SdkClient:
    """slack_sdk's aiohttp SocketModeClient in its own thread; acks every request with `reply`."""

    def __init__(self, fake: FakeSlack, reply=None):
        self.fake, self.reply, self.requests = fake, reply, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self):
        client = SocketModeClient("xapp-1", web_client=AsyncWebClient(base_url=self.fake.url), ping_interval=1)

        async def on_request(c, request):
            self.requests.append(request)
            await c.send_socket_mode_response(SocketModeResponse(request.envelope_id, self.reply))

        client.socket_mode_request_listeners.append(on_request)
        await client.connect()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        await client.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def test_envelopes_acks_and_a_reconnect_after_disconnect(fake):
    with SdkClient(fake, reply={"text": "ok"}) as sdk:
        assert fake.wait_for_socket_client(timeout=5) == 1
        envelope = fake.socket_send("slash_commands", {"command": "/crisis", "text": "help"})
        assert fake.wait_for_socket_ack(envelope, timeout=5) == {"envelope_id": envelope, "payload": {"text": "ok"}}
        request = sdk.requests[0]
        assert (request.type, request.payload["text"], request.accepts_response_payload) == (
            "slash_commands", "help", True)

        fake.socket_disconnect("refresh_requested")
        fake.wait_for_socket_client(timeout=5, connections=2)
        assert len(fake.calls_to("apps.connections.open")) == 2
        envelope = fake.socket_send("events_api", {"type": "event_callback", "event": {"type": "app_mention"}},
                                    accepts_response_payload=False)
        fake.wait_for_socket_ack(envelope, timeout=5)
        assert sdk.requests[-1].retry_attempt == 0
        ack = fake.calls_to("socket.ack")[-1]
        assert ack.ok and ack.response["warning"] == "response_payload_ignored"
    with pytest.raises(KeyError):
        fake.wait_for_socket_ack("no-such-envelope", timeout=0.1)


def test_socket_send_without_a_client_and_a_missing_ack_fail_clearly(fake):
    with pytest.raises(RuntimeError, match="no Socket Mode client"):
        fake.socket_send("slash_commands", {})
    with pytest.raises(AssertionError, match="Socket Mode connection"):
        fake.wait_for_socket_client(timeout=0.1)
