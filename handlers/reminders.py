"""Waking up for due reminders: APScheduler only wakes the process, the rows say what is due.

One job wakes at the next due time (planned again after every change) and a slow tick
catches reminders that another process created. Each due row is claimed, posted, then
marked sent, on its own: a row that cannot be posted never holds up another.

- While a row is being posted its lease is extended (a heartbeat), so no other process
  takes it over; a worker that lost its lease stops, and the core refuses its `fire` and
  `mark_sent`.
- A permanent failure (`Undeliverable`: the channel is archived, deleted, the bot was
  removed, the token or a scope is gone) marks that row failed with its reason; a failed
  escalation goes to the alert channel instead.
- A transient failure (`RetryLater`: a rate limit with its Retry-After, Slack down, a
  timeout) backs off that row alone, in the database.
- A second attempt at a row tells the deliverer so (`retry=True`): it first looks for what
  an earlier attempt (a process killed between posting and recording) already posted.
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
from bot.core import Core

log = logging.getLogger(__name__)
Deliver = Callable[..., Awaitable[None]]  # (outcome, alerts, *, reminder_id, retry) -> None
TICK_SECONDS = 60  # only for rows another process made; this process wakes exactly for its own
PARALLEL = 8  # incidents delivered at once: a slow channel holds up only its own incident's rows
BACKOFF = timedelta(seconds=5)  # the first back-off of a row after a transient failure; doubled each time
MAX_BACKOFF = timedelta(minutes=5)


class Undeliverable(Exception):
    """This row can never be posted where it belongs; `reason` is what people are shown."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RetryLater(Exception):
    """This row could not be posted now; try it again after `after` (None: the runner's back-off)."""

    def __init__(self, reason: str, after: timedelta | None = None):
        super().__init__(reason)
        self.reason, self.after = reason, after


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def backoff(attempt: int) -> timedelta:
    return min(BACKOFF * 2 ** max(attempt - 1, 0), MAX_BACKOFF)


class ReminderRunner:
    def __init__(self, core: Core, deliver: Deliver, worker: str | None = None, tick: float = TICK_SECONDS,
                 alert: Callable[[list[Alert]], Awaitable[None]] | None = None):
        self.core = core
        self.deliver = deliver
        self.alert = alert  # posts what a failed row tells the alert channel instead
        self.worker = worker or worker_name()
        self.tick = tick
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._lock = asyncio.Lock()
        self._gate = asyncio.Semaphore(PARALLEL)
        self._incident_locks: dict[int, asyncio.Lock] = {}
        self._deliveries: set[asyncio.Task] = set()
        self._not_before = datetime.min.replace(tzinfo=UTC)  # rows held by another's lease: look again soon

    def start(self) -> None:
        """Inside the running event loop. Reminders that fell due while the bot was down go out now."""
        self.scheduler.add_job(self.run_due, "interval", seconds=self.tick, id="tick", coalesce=True,
                               max_instances=1, misfire_grace_time=None)
        self.scheduler.start()
        self.poke()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for delivery in list(self._deliveries):  # their rows' leases run out; another claim finishes them
            delivery.cancel()

    async def drain(self) -> None:
        """After stop(): let the cancelled deliveries end before the event loop does."""
        await asyncio.gather(*list(self._deliveries), return_exceptions=True)

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
        """Claim and fire everything due now, in due order, and hand each row to its delivery; returns
        how many were handed out. Deliveries run on their own (at most PARALLEL at once, each incident's
        rows one after the other), so a slow post holds up neither the next wake-up nor another incident."""
        started = claimed = 0
        async with self._lock:
            while ids := await asyncio.to_thread(self.core.claim_due, self.worker):
                claimed += len(ids)
                for reminder_id in ids:
                    fired = await asyncio.to_thread(self.core.fire, reminder_id, self.worker)
                    if fired is not None:
                        task = asyncio.get_running_loop().create_task(self._in_turn(reminder_id, fired))
                        self._deliveries.add(task)
                        task.add_done_callback(self._deliveries.discard)
                        started += 1
        if not claimed:
            due = await asyncio.to_thread(self.core.next_due)
            if due is not None and due <= self.core.clock():
                # Due but held by another process's lease: never spin, look again shortly.
                self._not_before = datetime.now(UTC) + timedelta(seconds=1)
        await self._plan()
        return started

    async def _in_turn(self, reminder_id: int, fired: tuple) -> int:
        # Locks are fair: rows of one incident go out in the order they were fired.
        async with self._incident_locks.setdefault(fired[0].incident_id, asyncio.Lock()), self._gate:
            sent = await self.deliver_one(reminder_id, fired)
        if not sent:
            await self._plan()  # the row's own next attempt (claiming planned everything else)
        return sent

    async def deliver_one(self, reminder_id: int, fired: tuple) -> int:
        """Post and record one fired row; 1 if it went out. Never raises for a failed post."""
        outcome, alerts = fired
        if not await asyncio.to_thread(self.core.extend_lease, reminder_id, self.worker):
            return 0  # it waited behind a slow one of its incident and another process has it now
        attempt = await asyncio.to_thread(self.core.delivery_attempt, reminder_id)
        delivery = asyncio.ensure_future(self.deliver(outcome, alerts, reminder_id=reminder_id, retry=attempt > 1))
        try:
            held = await self._heartbeat(reminder_id, delivery)
            if not held:
                log.warning("reminder %s: lost its lease while posting; left to the worker that has it", reminder_id)
                return 0
            await delivery
        except asyncio.CancelledError:  # the process stops: the post with it; the lease runs out
            delivery.cancel()
            raise
        except Undeliverable as exc:
            log.error("reminder %s of %s cannot be posted: %s", reminder_id, outcome.ref, exc.reason)
            instead = await asyncio.to_thread(self.core.reminder_failed, reminder_id, self.worker, exc.reason)
            await self._alert(instead)
            return 0
        except Exception as exc:  # RetryLater, or anything unexpected: this row alone tries again later
            reason = exc.reason if isinstance(exc, RetryLater) else (str(exc) or type(exc).__name__)
            after = exc.after if isinstance(exc, RetryLater) and exc.after else backoff(attempt)
            log.warning("reminder %s of %s could not be posted (%s); trying it again in %ss", reminder_id,
                        outcome.ref, reason, int(after.total_seconds()))
            gave_up = await asyncio.to_thread(self.core.retry_later, reminder_id, self.worker, after, reason)
            await self._alert(gave_up)
            return 0
        if not await asyncio.to_thread(self.core.mark_sent, reminder_id, self.worker):
            log.warning("reminder %s: posted, but its lease had run out; the next claim finds the post", reminder_id)
            return 0
        return 1

    async def _heartbeat(self, reminder_id: int, delivery: asyncio.Future) -> bool:
        """Extend the lease until the delivery ends; cancel it (False) if the lease was lost."""
        every = max(self.core.lease.total_seconds() / 3, 0.05)
        while True:
            done, _ = await asyncio.wait({delivery}, timeout=every)
            if done:
                return True
            if not await asyncio.to_thread(self.core.extend_lease, reminder_id, self.worker):
                delivery.cancel()
                try:
                    await delivery
                except BaseException:  # cancelled, or it failed meanwhile: the other worker has the row
                    pass
                return False

    async def _alert(self, alerts: list[Alert]) -> None:
        if alerts and self.alert is not None:
            try:
                await self.alert(alerts)
            except Exception as exc:
                log.error("could not post to the alert channel: %s", exc)
