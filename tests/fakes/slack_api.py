"""A fake Slack Web API server for end-to-end tests.

It runs a real HTTP server (aiohttp, own thread and event loop) so the bot under
test talks to it through the unmodified slack_sdk / slack_bolt clients:

    fake = FakeSlack().start()
    client = WebClient(base_url=fake.url, token="xoxb-test")
    ...
    fake.wait_for("chat.postMessage")
    fake.stop()

State changes and call recording happen under one lock, so tests can read
`calls`, `channels` and `views` from the test thread while the bot runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from .block_kit import validate_blocks, validate_view

__all__ = ["Call", "FakeChannel", "FakeSlack", "SlackError", "validate_blocks", "validate_view"]


@dataclass
class Call:
    method: str
    params: dict
    ok: bool
    error: str | None
    response: dict
    url_name: str | None = None  # for method "response_url": the name given to response_url()


@dataclass
class FakeChannel:
    id: str
    name: str
    members: set = field(default_factory=set)
    topic: str = ""
    is_archived: bool = False
    is_private: bool = False
    is_im: bool = False
    messages: dict = field(default_factory=dict)  # ts -> {"text", "blocks", "user", "thread_ts"}


class SlackError(Exception):
    def __init__(self, error: str, messages: list[str] | None = None):
        super().__init__(error)
        self.error, self.messages = error, messages


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


class FakeSlack:
    def __init__(self, bot_user_id: str = "UBOT", team_id: str = "T1"):
        self.bot_user_id, self.team_id = bot_user_id, team_id
        self.channels: dict[str, FakeChannel] = {}
        self.users: set[str] = {bot_user_id}
        self.user_profiles: dict[str, dict] = {}  # uid -> overrides merged into users.info
        self.views: dict[str, dict] = {}  # view id -> view as returned by views.open
        self._calls: list[Call] = []
        self._failures: dict[str, list[str]] = {}
        # One re-entrant lock guards all state; the condition lets wait_for sleep on it.
        self._cond = threading.Condition(threading.RLock())
        self._ids = itertools.count(1)
        self._ts = itertools.count(100, 100)
        self._base: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._methods: dict[str, Callable[[dict], dict]] = {
            "auth.test": self._auth_test,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.join": self._conversations_join,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.info": self._conversations_info,
            "conversations.archive": self._conversations_archive,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "users.info": self._users_info,
        }

    # -- lifecycle --------------------------------------------------------

    def start(self) -> FakeSlack:
        ready, failure = threading.Event(), []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            except OSError as exc:  # surface bind errors in the caller's thread
                failure.append(exc)
                return
            finally:
                ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="FakeSlack", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or self._base is None:
            self._loop = None
            raise RuntimeError(f"FakeSlack failed to start: {failure}")
        return self

    async def _serve(self) -> None:
        app = web.Application()
        # slack_sdk's async client really sends GET for some methods (users.info, conversations.info).
        app.router.add_route("*", "/api/{method}", self._http_api)
        app.router.add_post("/response/{name}", self._http_response_url)
        # Short shutdown timeout: bolt's aiohttp session may hold idle keep-alive connections.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._base is None:
            raise RuntimeError("FakeSlack.start() has not been called")
        return f"{self._base}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url[: -len('api/')]}response/{name}"

    # -- test-side helpers ------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot copy, so iterating it can't race with the server thread."""
        with self._cond:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._cond:
            self._calls.clear()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    c
                    for c in self._calls
                    if c.method == method and (predicate is None or predicate(c))
                ]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    break
                self._cond.wait(remaining)
            if len(found) >= count:
                return found
            lines = [
                f"  {i}. {c.method}{f' [{c.url_name}]' if c.url_name else ''} -> "
                f"{'ok' if c.ok else c.error} {json.dumps(c.params, default=str)[:300]}"
                for i, c in enumerate(self._calls, 1)
            ]
        raise AssertionError(
            f"timed out after {timeout}s waiting for {count} call(s) to {method}"
            f"{' matching predicate' if predicate else ''}; got {len(found)}. All calls:\n"
            + ("\n".join(lines) or "  (none)")
        )

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        with self._cond:
            self._failures.setdefault(method, []).extend([error] * times)

    def add_user(self, uid: str, **profile: Any) -> str:
        """Register a user; `profile` overrides users.info fields (real_name, tz, tz_offset, ...)."""
        with self._cond:
            self.users.add(uid)
            self.user_profiles.setdefault(uid, {}).update(profile)
        return uid

    def add_channel(
        self, name: str, members=(), *, is_private: bool = False, bot_is_member: bool = True
    ) -> str:
        with self._cond:
            self.users.update(members)
            members = set(members) | ({self.bot_user_id} if bot_is_member else set())
            return self._new_channel(name, members, is_private=is_private).id

    # -- HTTP plumbing ----------------------------------------------------

    async def _http_api(self, request: web.Request) -> web.Response:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:  # form-urlencoded or multipart; file uploads are ignored
                params.update(
                    {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                )
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else params.get("token")
        params.pop("token", None)
        resp = self._handle(request.match_info["method"], params, token=token)
        # Real Slack signals rate limiting with HTTP 429; slack_sdk's retry handlers key on it.
        if resp.get("error") == "ratelimited":
            return web.json_response(resp, status=429, headers={"Retry-After": "1"})
        return web.json_response(resp)

    async def _http_response_url(self, request: web.Request) -> web.Response:
        try:
            params = await request.json()
        except ValueError:
            params = {"_raw": await request.text()}
        resp = self._handle("response_url", params, url_name=request.match_info["name"])
        return web.json_response(resp, status=200 if resp["ok"] else 400)

    def _handle(
        self, method: str, params: dict, token: str | None = None, url_name: str | None = None
    ) -> dict:
        for key in ("blocks", "view", "attachments", "metadata"):
            if isinstance(params.get(key), str):  # form-encoded bodies carry these as JSON text
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass  # left as a string; the method reports it
        with self._cond:
            try:
                # response_url is a capability URL: Slack accepts it without a token.
                if url_name is None and not token:
                    raise SlackError("not_authed")
                if url_name is None and not token.startswith("xoxb-"):
                    raise SlackError("invalid_auth")
                if self._failures.get(method):
                    raise SlackError(self._failures[method].pop(0))
                handler = (
                    self._response_url_post if url_name is not None else self._methods.get(method)
                )
                if handler is None:
                    raise SlackError("unknown_method")
                resp = {"ok": True, **handler(params)}
            except SlackError as exc:
                resp = {"ok": False, "error": exc.error}
                if exc.messages:
                    resp["response_metadata"] = {"messages": exc.messages}
            except Exception as exc:  # noqa: BLE001 - a fake bug must show up in calls, not as a bare 500
                resp = {
                    "ok": False,
                    "error": "fake_internal_error",
                    "response_metadata": {"messages": [repr(exc)]},
                }
            self._calls.append(Call(method, params, resp["ok"], resp.get("error"), resp, url_name))
            self._cond.notify_all()
        return resp

    # -- state helpers (called with the lock held) --------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _new_ts(self) -> str:
        n = next(self._ts)
        return f"{1700000000 + n // 1_000_000}.{n % 1_000_000:06d}"

    def _new_channel(
        self, name: str, members: set, *, is_private=False, is_im=False
    ) -> FakeChannel:
        ch = FakeChannel(
            self._new_id("D" if is_im else "C"),
            name,
            set(members),
            is_private=is_private,
            is_im=is_im,
        )
        self.channels[ch.id] = ch
        return ch

    def _channel(self, ref: Any, *, member=True, active=True, chat=False) -> FakeChannel:
        ref = ref if isinstance(ref, str) else ""
        ch = self.channels.get(ref)
        if ch is None and chat:  # chat.* also accept "#name" and a user id (the bot's DM with them)
            if ref.startswith("#"):
                ch = next(
                    (c for c in self.channels.values() if c.name == ref[1:] and not c.is_im), None
                )
            elif ref in self.users and ref != self.bot_user_id:
                ch = next(
                    (c for c in self.channels.values() if c.is_im and c.name == ref), None
                ) or self._new_channel(ref, {self.bot_user_id, ref}, is_im=True)
        if ch is None:
            raise SlackError("channel_not_found")
        if active and ch.is_archived:
            raise SlackError("is_archived")
        if member and self.bot_user_id not in ch.members:
            raise SlackError("not_in_channel")
        return ch

    def _conversation(self, ch: FakeChannel) -> dict:
        return {
            "id": ch.id,
            "name": ch.name,
            "is_channel": not ch.is_im,
            "is_im": ch.is_im,
            "is_private": ch.is_private,
            "is_archived": ch.is_archived,
            "is_member": self.bot_user_id in ch.members,
            "num_members": len(ch.members),
            "created": 1700000000,
            "creator": self.bot_user_id,
            "topic": {"value": ch.topic, "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def _check_blocks(self, blocks: Any, surface: str = "message") -> None:
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        if errors := validate_blocks(blocks, surface):
            raise SlackError("invalid_blocks", errors)

    def _content(self, p: dict) -> tuple[str, list]:
        """Validated (text, blocks) of a message-like payload."""
        if "blocks" in p:
            self._check_blocks(p["blocks"])
        text = p.get("text") or ""
        if not text and not p.get("blocks"):
            raise SlackError("no_text")
        if len(text) > 40000:
            raise SlackError("msg_too_long")
        return text, p.get("blocks") or []

    # -- Web API methods ----------------------------------------------------

    def _auth_test(self, p: dict) -> dict:
        return {
            "url": "https://fake-team.slack.com/",
            "team": "Fake Team",
            "user": "crisisbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "B1",
            "is_enterprise_install": False,
        }

    def _conversations_create(self, p: dict) -> dict:
        name = p.get("name") or ""
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not re.fullmatch(r"[a-z0-9_-]+", name):
            raise SlackError("invalid_name_specials")
        # Archived channels keep their name, as in Slack.
        if any(c.name == name and not c.is_im for c in self.channels.values()):
            raise SlackError("name_taken")
        ch = self._new_channel(name, {self.bot_user_id}, is_private=_truthy(p.get("is_private")))
        return {"channel": self._conversation(ch)}

    def _conversations_invite(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"))
        users = p.get("users") or ""
        ids = (
            users if isinstance(users, list) else [u.strip() for u in users.split(",") if u.strip()]
        )
        if not ids:
            raise SlackError("no_user")
        for uid in ids:
            if uid == self.bot_user_id:
                raise SlackError("cant_invite_self")
            if uid not in self.users:
                raise SlackError("user_not_found")
        if all(uid in ch.members for uid in ids):
            raise SlackError("already_in_channel")
        ch.members.update(ids)
        return {"channel": self._conversation(ch)}

    def _conversations_join(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"), member=False)
        if ch.is_private or ch.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        resp = {}
        if self.bot_user_id in ch.members:  # Slack succeeds but warns
            resp = {
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        ch.members.add(self.bot_user_id)
        return {"channel": self._conversation(ch), **resp}

    def _conversations_set_topic(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"))
        topic = p.get("topic") or ""
        if len(topic) > 250:
            raise SlackError("too_long")
        ch.topic = topic
        return {"channel": self._conversation(ch)}

    def _conversations_info(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"), member=False, active=False)
        return {"channel": self._conversation(ch)}

    def _conversations_archive(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"), active=False)
        if ch.is_archived:
            raise SlackError("already_archived")
        ch.is_archived = True
        return {}

    def _chat_post_message(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"), chat=True)
        text, blocks = self._content(p)
        ts = self._new_ts()
        ch.messages[ts] = msg = {
            "text": text,
            "blocks": blocks,
            "user": self.bot_user_id,
            "thread_ts": p.get("thread_ts"),
        }
        return {
            "channel": ch.id,
            "ts": ts,
            "message": {"type": "message", "ts": ts, "bot_id": "B1", **msg},
        }

    def _chat_update(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"), member=False)
        msg = ch.messages.get(p.get("ts") or "")
        if msg is None:
            raise SlackError("message_not_found")
        if msg["user"] != self.bot_user_id:
            raise SlackError("cant_update_message")
        # Like Slack, fields left out of the update keep their old value.
        text, blocks = self._content({"text": msg["text"], "blocks": msg["blocks"], **p})
        msg.update(text=text, blocks=blocks)
        return {
            "channel": ch.id,
            "ts": p["ts"],
            "text": text,
            "message": {"type": "message", "ts": p["ts"], "bot_id": "B1", **msg},
        }

    def _chat_post_ephemeral(self, p: dict) -> dict:
        ch = self._channel(p.get("channel"), chat=True)
        if p.get("user") not in ch.members:
            raise SlackError("user_not_in_channel")
        self._content(p)
        return {"message_ts": self._new_ts()}

    def _views_open(self, p: dict) -> dict:
        if not p.get("trigger_id"):
            raise SlackError("invalid_arguments", ["[ERROR] missing required field: trigger_id"])
        if errors := validate_view(p.get("view")):
            raise SlackError("invalid_arguments", errors)
        vid = self._new_id("V")
        self.views[vid] = view = {
            "id": vid,
            "team_id": self.team_id,
            "app_id": "A1",
            "bot_id": "B1",
            "state": {"values": {}},
            "hash": f"{vid}.hash",
            "root_view_id": vid,
            "previous_view_id": None,
            **p["view"],
        }
        return {"view": view}

    def _users_info(self, p: dict) -> dict:
        uid = p.get("user")
        if uid not in self.users:
            raise SlackError("user_not_found")
        user = {
            "id": uid,
            "team_id": self.team_id,
            "name": uid.lower(),
            "real_name": f"User {uid}",
            "tz": "UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "is_bot": uid == self.bot_user_id,
            "deleted": False,
            **self.user_profiles.get(uid, {}),
        }
        user.setdefault("profile", {"real_name": user["real_name"], "display_name": user["name"]})
        return {"user": user}

    def _response_url_post(self, p: dict) -> dict:
        if not _truthy(p.get("delete_original")):
            self._content(p)
        return {}
