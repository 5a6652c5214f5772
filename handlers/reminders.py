"""Waking up for due reminders: APScheduler only wakes the process, the rows say what is due.

One job wakes at the next due time (planned again after every change) and a slow tick
catches reminders that another process created. Each due row is claimed, posted, then
marked sent; a failed post releases the row for the next wake-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clocks import Alert
from bot.core import Core, Outcome

log = logging.getLogger(__name__)
Deliver = Callable[[Outcome, list[Alert]], Awaitable[None]]
TICK_SECONDS = 60  # only for rows another process made; this process wakes exactly for its own
RETRY = timedelta(seconds=30)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ReminderRunner:
    def __init__(self, core: Core, deliver: Deliver, worker: str | None = None, tick: float = TICK_SECONDS):
        self.core = core
        self.deliver = deliver
        self.worker = worker or worker_name()
        self.tick = tick
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._lock = asyncio.Lock()
        self._not_before = datetime.min.replace(tzinfo=UTC)  # after a failed post: back off

    def start(self) -> None:
        """Inside the running event loop. Reminders that fell due while the bot was down go out now."""
        self.scheduler.add_job(self.run_due, "interval", seconds=self.tick, id="tick", coalesce=True,
                               max_instances=1, misfire_grace_time=None)
        self.scheduler.start()
        self.poke()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def poke(self) -> None:
        """Something changed: plan the wake-up for the (possibly new) next due reminder."""
        asyncio.get_running_loop().create_task(self._plan())

    async def _plan(self) -> None:
        due = await asyncio.to_thread(self.core.next_due)
        if due is None:
            return
        # Measured on the core's clock (tests drive it), slept on the wall clock.
        delay = max(due - self.core.clock(), timedelta(0))
        when = max(datetime.now(UTC) + delay, self._not_before)
        # More than one instance: a wake planned while this run finishes must not be skipped
        # (the lock runs them one after the other).
        self.scheduler.add_job(self.run_due, "date", run_date=when, id="wake", replace_existing=True,
                               misfire_grace_time=None, max_instances=3)

    async def run_due(self) -> int:
        """Send everything due now; returns how many went out."""
        sent = claimed = 0
        async with self._lock:
            while ids := await asyncio.to_thread(self.core.claim_due, self.worker):
                claimed += len(ids)
                for reminder_id in ids:
                    fired = await asyncio.to_thread(self.core.fire, reminder_id, self.worker)
                    if fired is None:
                        continue
                    outcome, alerts = fired
                    try:
                        await self.deliver(outcome, alerts)
                    except Exception as exc:  # the row goes back to pending; a later wake-up retries
                        log.error("reminder %s could not be posted (%s); retrying in %ss", reminder_id, exc,
                                  RETRY.seconds)
                        await asyncio.to_thread(self.core.release, reminder_id)
                        self._not_before = datetime.now(UTC) + RETRY
                        await self._plan()
                        return sent
                    await asyncio.to_thread(self.core.mark_sent, reminder_id)
                    sent += 1
        if not claimed:
            due = await asyncio.to_thread(self.core.next_due)
            if due is not None and due <= self.core.clock():
                # Due but held by another process's lease: never spin, look again shortly.
                self._not_before = datetime.now(UTC) + timedelta(seconds=1)
        await self._plan()
        return sent
