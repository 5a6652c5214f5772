"""A fake Slack that can hold its answer to one Web API method, to overlap two requests or to
kill a bot in the middle of a call:

    fake = HoldingSlack().start()
    hold = fake.hold("conversations.create")          # answered only once released
    ...; hold.arrived.wait(5)                          # the bot is inside the call now
    hold.release()

With `after=True` (the default) the call takes effect first and only its answer waits, as when a
network or a process dies after Slack did the work; with `after=False` nothing happens until released,
and `hold.abandon()` lets the held call end without any effect (its caller was killed meanwhile).
"""

from __future__ import annotations

import asyncio
import threading
import time

from aiohttp import web

from .slack_api import FakeSlack


class Hold:
    def __init__(self, after: bool, timeout: float, times: int | None):
        self.after, self.timeout, self.times = after, timeout, times
        self.arrived, self.released = threading.Event(), threading.Event()
        self.count = 0
        self.abandoned = False

    def release(self) -> None:
        self.released.set()

    def abandon(self) -> None:
        self.abandoned = True
        self.released.set()

    def applies(self) -> bool:
        return self.times is None or self.count < self.times

    async def wait(self) -> None:
        self.count += 1
        self.arrived.set()
        deadline = time.monotonic() + self.timeout
        while not self.released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


class HoldingSlack(FakeSlack):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._holds: dict[str, Hold] = {}

    def hold(self, method: str, *, after: bool = True, timeout: float = 30.0, times: int | None = None) -> Hold:
        """Hold the calls to `method` (only the first `times` of them, if given) until released."""
        self._holds[method] = Hold(after, timeout, times)
        return self._holds[method]

    def unhold(self, method: str) -> None:
        self._holds.pop(method, None)

    async def _http_api(self, request: web.Request) -> web.Response:
        hold = self._holds.get(request.match_info["method"])
        if hold is not None and not hold.applies():
            hold = None
        if hold is not None and not hold.after:
            await hold.wait()
            if hold.abandoned:
                return web.json_response({"ok": False, "error": "fake_request_abandoned"}, status=500)
        response = await super()._http_api(request)
        if hold is not None and hold.after:
            await hold.wait()
        return response
