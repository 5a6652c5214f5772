"""A fake Slack Web API server for end-to-end tests.

It runs a real HTTP server (aiohttp, own thread and event loop) so the bot under
test talks to it through the unmodified slack_sdk / slack_bolt clients:

    fake = FakeSlack().start()
    client = WebClient(base_url=fake.url, token="xoxb-test")
    ...
    fake.wait_for("chat.postMessage")
    fake.stop()

It also speaks Socket Mode: apps.connections.open (app-level `xapp-` token) hands out a
one-time ws:// URL on the same server; a client that connects gets Slack's `hello`, and
the test pushes envelopes and reads the client's acks:

    fake.wait_for_socket_client()
    envelope_id = fake.socket_send("slash_commands", {...the command's fields...})
    ack = fake.wait_for_socket_ack(envelope_id)   # {"envelope_id": ..., "payload": {...}}

Socket traffic is recorded as calls too: "socket.connect", "socket.send", "socket.ack".

File uploads work the way slack_sdk's files_upload_v2 does them: files.getUploadURLExternal
hands out an upload_url on the same server, the client POSTs the raw bytes there (recorded
as "files.upload_bytes"; fail_next works for it too) and files.completeUploadExternal
shares the file. `uploaded_files()` lists what was shared, with the content.

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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSCloseCode, WSMsgType, web

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


# Methods that take an app-level token (xapp-) instead of the bot token.
APP_LEVEL_METHODS = frozenset({"apps.connections.open"})
# Slack wants a Socket Mode ack within 3 seconds; later ones are recorded as "ack_too_late".
SOCKET_ACK_DEADLINE = 3.0


class FakeSlack:
    def __init__(self, bot_user_id: str = "UBOT", team_id: str = "T1"):
        self.bot_user_id, self.team_id = bot_user_id, team_id
        self.channels: dict[str, FakeChannel] = {}
        self.users: set[str] = {bot_user_id}
        self.user_profiles: dict[str, dict] = {}  # uid -> overrides merged into users.info
        self.views: dict[str, dict] = {}  # view id -> view as returned by views.open
        self._calls: list[Call] = []
        self._failures: dict[str, list[str]] = {}
        self._matching_failures: list[list] = []  # [method, error, predicate, times left]
        self._faults = _Faults()  # delays and rate limits a test sets (see delay, rate_limit)
        # One re-entrant lock guards all state; the condition lets wait_for sleep on it.
        self._cond = threading.Condition(threading.RLock())
        self._ids = itertools.count(1)
        self._ts = itertools.count(100, 100)
        self._base: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Socket Mode: unused tickets of issued URLs, open connections (hello sent), total
        # connections made, envelopes pushed (id -> envelope, send time) and acks received.
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_connections = 0
        self._envelopes: dict[str, tuple[dict, float]] = {}
        self._socket_acks: dict[str, dict] = {}
        # File uploads: file id -> {"filename", "length", "data" (None until the bytes are
        # POSTed), "completed"}, and the completed uploads as uploaded_files() returns them.
        self._uploads: dict[str, dict] = {}
        self._shared_files: list[dict] = []
        self._methods: dict[str, Callable[[dict], dict]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.join": self._conversations_join,
            "conversations.list": self._conversations_list,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.info": self._conversations_info,
            "conversations.archive": self._conversations_archive,
            "conversations.history": self._conversations_history,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
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
        # Uploads may be larger than aiohttp's default 1 MiB request body limit.
        app = web.Application(client_max_size=64 * 1024**2)
        # slack_sdk's async client really sends GET for some methods (users.info, conversations.info).
        app.router.add_route("*", "/api/{method}", self._http_api)
        app.router.add_post("/response/{name}", self._http_response_url)
        app.router.add_post("/upload/{file_id}", self._http_upload)
        app.router.add_get("/socket", self._http_socket)
        app.on_shutdown.append(self._close_sockets)
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
            lines = self._call_lines()
        raise AssertionError(
            f"timed out after {timeout}s waiting for {count} call(s) to {method}"
            f"{' matching predicate' if predicate else ''}; got {len(found)}. All calls:\n"
            + ("\n".join(lines) or "  (none)")
        )

    def _call_lines(self) -> list[str]:
        return [
            f"  {i}. {c.method}{f' [{c.url_name}]' if c.url_name else ''} -> "
            f"{'ok' if c.ok else c.error} {json.dumps(c.params, default=str)[:300]}"
            for i, c in enumerate(self._calls, 1)
        ]

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        with self._cond:
            self._failures.setdefault(method, []).extend([error] * times)

    def fail_matching(
        self, method: str, error: str, predicate: Callable[[dict], bool], times: int = 1
    ) -> None:
        """Fail the next `times` calls to `method` whose params match `predicate` (others pass)."""
        with self._cond:
            self._matching_failures.append([method, error, predicate, times])

    def _fail_if_matching(self, method: str, params: dict) -> None:
        for failure in self._matching_failures:
            if failure[0] == method and failure[3] > 0 and failure[2](params):
                failure[3] -= 1
                raise SlackError(failure[1])

    def uploaded_files(self, channel: str | None = None) -> list[dict]:
        """Completed uploads, oldest first, one entry per channel a file was shared to (or
        one with channel None if it was completed without a channel), only `channel`'s if
        given: {"channel", "file_id", "filename", "title", "initial_comment", "thread_ts",
        "data" (the uploaded bytes), "content" (data decoded as UTF-8)}."""
        with self._cond:
            return [
                dict(f) for f in self._shared_files if channel is None or f["channel"] == channel
            ]

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

    # -- Socket Mode, test side ---------------------------------------------

    @property
    def socket_connections(self) -> int:
        """How many Socket Mode connections were accepted since start (reconnects count)."""
        with self._cond:
            return self._socket_connections

    def wait_for_socket_client(self, timeout: float = 10.0, connections: int = 1) -> int:
        """Wait until a Socket Mode client is connected (its hello sent) and at least
        `connections` connections were made in all (2 waits for a reconnect). Returns the
        number of open connections."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._sockets and self._socket_connections >= connections):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for Socket Mode connection "
                        f"#{connections}; {self._socket_connections} made, "
                        f"{len(self._sockets)} open. All calls:\n"
                        + ("\n".join(self._call_lines()) or "  (none)")
                    )
                self._cond.wait(remaining)
            return len(self._sockets)

    def socket_send(
        self,
        type: str,
        payload: dict,
        accepts_response_payload: bool = True,
        **extra: Any,
    ) -> str:
        """Push an envelope (type "slash_commands", "interactive", "events_api", ...) to the
        newest connection, as Slack does; returns its envelope_id. `extra` adds envelope
        fields; events_api envelopes get Slack's retry_attempt=0, retry_reason="" by default."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        envelope.update(extra)
        with self._cond:
            if not self._sockets or self._loop is None:
                raise RuntimeError("no Socket Mode client is connected (see wait_for_socket_client)")
            ws = self._sockets[-1]
            self._envelopes[envelope_id] = (envelope, time.monotonic())
            self._record("socket.send", envelope, {})
        text = json.dumps(envelope)
        asyncio.run_coroutine_threadsafe(ws.send_str(text), self._loop).result(5)
        return envelope_id

    def wait_for_socket_ack(self, envelope_id: str, timeout: float = 10.0) -> dict:
        """The client's ack of an envelope: {"envelope_id": ..., "payload": {...}?}."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if envelope_id not in self._envelopes:
                raise KeyError(f"no envelope {envelope_id!r} was sent")
            while envelope_id not in self._socket_acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for the ack of envelope "
                        f"{envelope_id}. All calls:\n" + ("\n".join(self._call_lines()) or "  (none)")
                    )
                self._cond.wait(remaining)
            return self._socket_acks[envelope_id]

    def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's `disconnect` message to every open connection; the client is expected
        to fetch a new URL with apps.connections.open and reconnect."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}}
        with self._cond:
            sockets = list(self._sockets)
            if self._loop is None:
                raise RuntimeError("FakeSlack.start() has not been called")
            self._record("socket.disconnect", message, {})
        for ws in sockets:
            asyncio.run_coroutine_threadsafe(ws.send_json(message), self._loop).result(5)

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
        method = request.match_info["method"]
        limited = self._rate_limited(method, params)
        if limited is not None:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(limited)})
        before, after, when = self._faults.delays.get(method, (0.0, 0.0, None))
        if when is not None and not when(params):
            before = after = 0.0
        if before:
            await asyncio.sleep(before)
        resp = self._handle(method, params, token=token)
        if after:  # done, but the answer is slow: the caller cannot tell whether it happened
            await asyncio.sleep(after)
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

    async def _http_upload(self, request: web.Request) -> web.Response:
        """An upload_url from files.getUploadURLExternal. Like files.slack.com it takes the
        raw bytes (slack_sdk sends them as the body, without a token) or a multipart form
        with one file, and answers in plain text; recorded as "files.upload_bytes"."""
        file_id = request.match_info["file_id"]
        if request.content_type == "multipart/form-data":
            files = [v for v in (await request.post()).values() if isinstance(v, web.FileField)]
            data = files[0].file.read() if files else b""
        else:
            data = await request.read()
        with self._cond:
            upload = self._uploads.get(file_id)
            if self._failures.get("files.upload_bytes"):
                error = self._failures["files.upload_bytes"].pop(0)
                status = 429 if error == "ratelimited" else 500
            elif upload is None or upload["completed"]:  # completing ends the URL's life
                error, status = "file_not_found", 404
            else:
                upload["data"] = data
                error, status = None, 200
            body = f"OK - {len(data)}" if error is None else error
            self._record(
                "files.upload_bytes",
                {"file_id": file_id, "length": len(data)},
                {"status": status, "body": body},
                error,
            )
        headers = {"Retry-After": "1"} if status == 429 else None
        return web.Response(status=status, text=body, headers=headers)

    def _handle(
        self, method: str, params: dict, token: str | None = None, url_name: str | None = None
    ) -> dict:
        for key in ("blocks", "view", "attachments", "metadata", "files"):
            if isinstance(params.get(key), str):  # form-encoded bodies carry these as JSON text
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass  # left as a string; the method reports it
        with self._cond:
            try:
                # response_url is a capability URL: Slack accepts it without a token.
                if url_name is None:
                    self._check_token(method, token)
                if self._failures.get(method):
                    raise SlackError(self._failures[method].pop(0))
                self._fail_if_matching(method, params)
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
            except Exception as exc:  # a fake bug must show up in calls, not as a bare 500
                resp = {
                    "ok": False,
                    "error": "fake_internal_error",
                    "response_metadata": {"messages": [repr(exc)]},
                }
            self._calls.append(Call(method, params, resp["ok"], resp.get("error"), resp, url_name))
            self._cond.notify_all()
        return resp

    @staticmethod
    def _check_token(method: str, token: str | None) -> None:
        """Bot token (xoxb-) for Web API methods, app-level token (xapp-) for Socket Mode's."""
        if not token:
            raise SlackError("not_authed")
        kind = token.split("-", 1)[0]
        if method in APP_LEVEL_METHODS:
            if kind != "xapp":
                raise SlackError("not_allowed_token_type" if kind in ("xoxb", "xoxp") else "invalid_auth")
        elif kind == "xapp":
            raise SlackError("not_allowed_token_type")
        elif kind != "xoxb":
            raise SlackError("invalid_auth")

    def _record(self, method: str, params: dict, response: dict, error: str | None = None) -> None:
        """Record a call that did not come through _handle (Socket Mode traffic, upload
        bytes). Lock held."""
        self._calls.append(Call(method, params, error is None, error, response))
        self._cond.notify_all()

    # -- Socket Mode, server side -------------------------------------------

    async def _http_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._cond:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)  # a URL from apps.connections.open is good for one connection
            if not valid:
                self._record("socket.connect", dict(request.query), {}, "invalid_ticket")
        if not valid:
            return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse(timeout=1.0)  # answers the client's pings itself (autoping)
        await ws.prepare(request)
        with self._cond:
            hello = {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": {
                    "host": "fake-applink",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": "A1"},
            }
        await ws.send_json(hello)
        with self._cond:
            # Registered only after the hello, so no envelope can overtake it.
            self._sockets.append(ws)
            self._socket_connections += 1
            self._record("socket.connect", dict(request.query), hello)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._socket_message(message.data)
                elif message.type == WSMsgType.BINARY:
                    with self._cond:
                        self._record("socket.ack", {"_binary": len(message.data)}, {}, "invalid_json")
        finally:
            with self._cond:
                if ws in self._sockets:
                    self._sockets.remove(ws)
                self._cond.notify_all()
        return ws

    def _socket_message(self, data: str) -> None:
        """A message from the client: an ack {"envelope_id", "payload"?} of an envelope we sent."""
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        with self._cond:
            if not isinstance(message, dict):
                self._record("socket.ack", {"_raw": data}, {}, "invalid_json")
                return
            envelope_id = message.get("envelope_id")
            sent = self._envelopes.get(envelope_id) if isinstance(envelope_id, str) else None
            if sent is None:
                self._record("socket.ack", message, {}, "unknown_envelope_id")
                return
            if envelope_id in self._socket_acks:
                self._record("socket.ack", message, {}, "already_acknowledged")
                return
            envelope, sent_at = sent
            elapsed = time.monotonic() - sent_at
            self._socket_acks[envelope_id] = message
            response: dict[str, Any] = {"elapsed": round(elapsed, 3), "type": envelope["type"]}
            error = None
            payload = message.get("payload")
            if payload is not None:
                if not envelope["accepts_response_payload"]:
                    response["warning"] = "response_payload_ignored"  # as Slack does
                elif not isinstance(payload, dict):
                    error = "invalid_payload"
                elif "blocks" in payload:
                    try:
                        self._check_blocks(payload["blocks"])
                    except SlackError as exc:
                        error = exc.error
                        response["messages"] = exc.messages
            if error is None and elapsed > SOCKET_ACK_DEADLINE:
                error = "ack_too_late"
            self._record("socket.ack", message, response, error)

    async def _close_sockets(self, _app: web.Application) -> None:
        with self._cond:
            sockets = list(self._sockets)
        for ws in sockets:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

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

    def _apps_connections_open(self, p: dict) -> dict:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        ws_base = "ws" + self._base[len("http") :]
        return {"url": f"{ws_base}/socket?ticket={ticket}&app_id=A1"}

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
        # Only an id will do: Slack answers channel_not_found for "#name" or a bare name.
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

    def _conversations_list(self, p: dict) -> dict:
        """Channels page by page, as Slack pages them: `limit` (default 100, at most 1000) per page
        and an opaque `next_cursor` in response_metadata, empty on the last page."""
        types = [t.strip() for t in str(p.get("types") or "public_channel").split(",") if t.strip()]
        if not types or any(t not in ("public_channel", "private_channel", "mpim", "im") for t in types):
            raise SlackError("invalid_types")
        raw_limit = p.get("limit", 100)
        if isinstance(raw_limit, bool) or not re.fullmatch(r"[0-9]+", str(raw_limit)):
            raise SlackError("invalid_limit")
        limit = int(raw_limit) or 100
        if limit > 1000:
            raise SlackError("invalid_limit")
        cursor = p.get("cursor") or ""
        start = 0
        if cursor:
            match = re.fullmatch(r"dGVhbTpD([0-9]+)", cursor)
            if not match:
                raise SlackError("invalid_cursor")
            start = int(match.group(1))

        def kind(ch: FakeChannel) -> str:
            return "im" if ch.is_im else "private_channel" if ch.is_private else "public_channel"

        found = [
            ch
            for ch in self.channels.values()
            if kind(ch) in types
            and not (_truthy(p.get("exclude_archived")) and ch.is_archived)
            # a private channel is listed only to its members
            and (kind(ch) == "public_channel" or self.bot_user_id in ch.members)
        ]
        page = found[start : start + limit]
        following = start + limit
        next_cursor = f"dGVhbTpD{following}" if following < len(found) else ""
        return {
            "channels": [self._conversation(ch) for ch in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

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
        metadata = self._metadata(p)
        ts = self._new_ts()
        ch.messages[ts] = msg = {
            "text": text,
            "blocks": blocks,
            "user": self.bot_user_id,
            "thread_ts": p.get("thread_ts"),
        }
        if metadata is not None:
            msg["metadata"] = metadata
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

    def _files_get_upload_url_external(self, p: dict) -> dict:
        missing = [k for k in ("filename", "length") if p.get(k) in (None, "")]
        if missing:
            raise SlackError(
                "invalid_arguments", [f"[ERROR] missing required field: {k}" for k in missing]
            )
        filename, length = p["filename"], p["length"]
        if not isinstance(filename, str):
            raise SlackError(
                "invalid_arguments", ["[ERROR] must be a string [json-pointer:/filename]"]
            )
        # A form or query string carries the length as text, a JSON body as a number.
        if isinstance(length, bool) or not re.fullmatch(r"[0-9]+", str(length)) or not int(length):
            raise SlackError(
                "invalid_arguments", ["[ERROR] must be a positive integer [json-pointer:/length]"]
            )
        file_id = self._new_id("F")
        self._uploads[file_id] = {
            "filename": filename,
            "length": int(length),
            "data": None,
            "completed": False,
        }
        return {"upload_url": f"{self._base}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, p: dict) -> dict:
        files = p.get("files")
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in files)
        ):
            raise SlackError(
                "invalid_arguments",
                ["[ERROR] must be a non-empty array of {id, title} [json-pointer:/files]"],
            )
        for f in files:
            upload = self._uploads.get(f["id"])
            if upload is None or upload["completed"]:
                raise SlackError("file_not_found")
            if upload["data"] is None:
                raise SlackError(
                    "file_not_found", [f"[ERROR] no bytes were uploaded for {f['id']}"]
                )
        channels = p.get("channels") or []  # slack_sdk sends a comma-separated string
        channels = channels.split(",") if isinstance(channels, str) else channels
        refs = ([p["channel_id"]] if p.get("channel_id") else []) + [
            c.strip() for c in channels if isinstance(c, str) and c.strip()
        ]
        targets = [self._channel(ref) for ref in dict.fromkeys(refs)]
        thread_ts = p.get("thread_ts") or None
        if thread_ts and len(targets) != 1:
            raise SlackError(
                "invalid_arguments", ["[ERROR] thread_ts needs exactly one channel_id"]
            )
        comment = p.get("initial_comment") or None
        shared = []
        for f in files:
            upload = self._uploads[f["id"]]
            upload["completed"] = True
            title = f.get("title") or upload["filename"]
            for ch in targets or [None]:
                self._shared_files.append(
                    {
                        "channel": ch.id if ch else None,
                        "file_id": f["id"],
                        "filename": upload["filename"],
                        "title": title,
                        "initial_comment": comment,
                        "thread_ts": thread_ts,
                        "data": upload["data"],
                        "content": upload["data"].decode("utf-8", errors="replace"),
                    }
                )
            shared.append(
                {
                    "id": f["id"],
                    "created": 1700000000,
                    "name": upload["filename"],
                    "title": title,
                    "user": self.bot_user_id,
                    "size": len(upload["data"]),
                    "channels": [ch.id for ch in targets],
                }
            )
        return {"files": shared}

    def _response_url_post(self, p: dict) -> dict:
        if not _truthy(p.get("delete_original")):
            self._content(p)
        return {}

    # -- faults a test sets: a user archives, deletes, removes the bot; slow and rate-limited calls --

    def archive_as_user(self, channel_id: str) -> None:
        """A person archives the channel in Slack: it stays, with its members, but takes no posts."""
        with self._cond:
            self.channels[channel_id].is_archived = True

    def unarchive_as_user(self, channel_id: str) -> None:
        with self._cond:
            self.channels[channel_id].is_archived = False

    def convert_to_private(self, channel_id: str) -> None:
        """An admin makes a public channel private: the bot can no longer join it by itself."""
        with self._cond:
            self.channels[channel_id].is_private = True

    def delete_channel(self, channel_id: str) -> None:
        """A workspace admin deletes the channel: every call naming it answers channel_not_found."""
        with self._cond:
            del self.channels[channel_id]

    def remove_from_channel(self, channel_id: str, user: str | None = None) -> None:
        """Someone removes a member (the bot by default) with /remove."""
        with self._cond:
            self.channels[channel_id].members.discard(user or self.bot_user_id)

    def delay(self, method: str, seconds: float, *, answer_only: bool = False,
              when: Callable[[dict], bool] | None = None) -> None:
        """Every call of `method` (whose params `when` accepts, if given) takes `seconds` (0 ends it).
        With answer_only the call takes effect at once and only its answer is late, as when a
        response is lost: a timeout cannot tell."""
        with self._cond:
            if seconds:
                self._faults.delays[method] = (0.0, seconds, when) if answer_only else (seconds, 0.0, when)
            else:
                self._faults.delays.pop(method, None)

    def rate_limit(self, method: str, retry_after: int, times: int = 1,
                   when: Callable[[dict], bool] | None = None) -> None:
        """The next `times` calls of `method` (those whose params `when` accepts, if given: Slack limits
        chat.postMessage per channel) get HTTP 429 with `Retry-After: retry_after` and do nothing."""
        with self._cond:
            self._faults.limits.append([method, when, retry_after, times])

    def _rate_limited(self, method: str, params: dict) -> int | None:
        with self._cond:
            for limit in self._faults.limits:
                name, when, retry_after, left = limit
                if name == method and left > 0 and (when is None or when(params)):
                    limit[3] -= 1
                    self._calls.append(Call(method, dict(params), False, "ratelimited",
                                            {"ok": False, "error": "ratelimited", "retry_after": retry_after}))
                    self._cond.notify_all()
                    return retry_after
        return None

    def _metadata(self, p: dict) -> dict | None:
        """chat.postMessage's `metadata`: {"event_type": "...", "event_payload": {...}}, as Slack checks it."""
        metadata = p.get("metadata")
        if metadata in (None, ""):
            return None
        if not isinstance(metadata, dict):
            raise SlackError("invalid_metadata_format")
        event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
        if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
            raise SlackError("invalid_metadata_schema")
        return {"event_type": event_type, "event_payload": payload}

    def _conversations_history(self, p: dict) -> dict:
        """Newest first, `limit` (default 100, at most 999) a page, `cursor` for the next; a message's
        metadata only with include_all_metadata. The bot must be a member."""
        ch = self._channel(p.get("channel"), active=False)
        try:
            limit = min(max(int(p.get("limit") or 100), 1), 999)
            start = int(p.get("cursor") or 0)
        except ValueError:
            raise SlackError("invalid_cursor" if p.get("cursor") else "invalid_limit") from None
        with_metadata = _truthy(p.get("include_all_metadata"))
        ordered = sorted(ch.messages.items(), key=lambda item: float(item[0]), reverse=True)
        page = ordered[start : start + limit]
        messages = []
        for ts, msg in page:
            out = {"type": "message", "ts": ts, "user": msg["user"], "text": msg["text"]}
            if msg["user"] == self.bot_user_id:
                out["bot_id"] = "B1"
            if msg.get("blocks"):
                out["blocks"] = msg["blocks"]
            if with_metadata and msg.get("metadata"):
                out["metadata"] = msg["metadata"]
            messages.append(out)
        more = start + limit < len(ordered)
        return {"messages": messages, "has_more": more, "pin_count": 0,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


@dataclass
class _Faults:
    delays: dict = field(default_factory=dict)   # method -> (seconds before, after handling, params predicate)
    limits: list = field(default_factory=list)   # [method, params predicate or None, retry_after, calls left]
