"""Reminder lateness (due → posted) and idle CPU of the reminder runner, against bare APScheduler.

    python bench/reminder_lateness.py [--incidents 1000] [--reminders 10000] [--due-now 600]
        [--window 60] [--idle 30] [--database-url URL] [--json PATH]

Setup (untimed): open incidents through the real Core, each with a channel in the fake Slack,
on a playbook whose only deadline is a day away; then bulk-insert reminder rows up to
--reminders pending in all, --due-now of them due at random times within the next --window
seconds, the rest hours to days away.

Lateness: the production ReminderRunner (10 s tick) posts through Publisher.deliver_reminder to
the fake Slack; lateness is `sent_at - due_at` of each row (sent_at is stamped after the post
succeeded). In the same loop and run, the baseline is a second AsyncIOScheduler with one bare
`date` job per due time that only records how late it fired: the floor on this machine.

Idle CPU: with nothing due for --idle seconds, this process's CPU time with the runner running,
then with it stopped (the fake Slack runs in both). Exits 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes is not installed

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, insert, select

from bench.shared import bench_database, stats
from bot import playbook as playbooks
from bot.core import Core
from bot.models import Deadline, Reminder
from bot.playbook import DeadlineRule, Deadlines, SeverityDeadlines
from handlers.reminders import ReminderRunner
from handlers.slack.app import make_client
from handlers.slack.publish import Publisher
from tests.fakes.slack_api import FakeSlack

LEAD, TARGET_MS, START_IN, GRACE = "U1", 1000.0, 3.0, 60.0


class WarningCounter(logging.Handler):
    """Counts APScheduler's warnings: a skipped or missed wake-up explains a late reminder."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = re.sub(r'"[^"]*"', "…", record.getMessage())  # the job's own description varies
        self.messages[key] = self.messages.get(key, 0) + 1


def long_playbook():
    """Only a first statement, due in a day: the core's own reminders stay 22 h and 24 h away."""
    default = playbooks.load()
    rules = SeverityDeadlines(first_statement=DeadlineRule(within=timedelta(days=1), remind=[timedelta(hours=2)]))
    return default.model_copy(update={"deadlines": Deadlines(
        by_severity={level: rules for level in default.severity_by_level})})


def open_incidents(core: Core, fake: FakeSlack, count: int) -> list[tuple[int, int]]:
    """(incident id, open deadline id) per incident, made the way a Slack start makes them."""
    for n in range(count):
        opening = core.start_incident("T1", LEAD, f"Bench incident {n}", severity=2)
        core.opened(opening.incident_id, fake.add_channel(f"crisis-{n}", members=[LEAD]), f"crisis-{n}")
    with core.db.transaction() as s:
        return [tuple(r) for r in s.execute(select(Deadline.incident_id, Deadline.id)
                                            .where(Deadline.state == "open").order_by(Deadline.incident_id))]


def add_reminders(core: Core, deadlines, total: int, due_now: int, window: float) -> list[float]:
    """Top up to `total` pending rows, round-robin over the incidents; returns the due-now times."""
    with core.db.transaction() as s:
        existing = s.scalar(select(func.count()).select_from(Reminder).where(Reminder.state == "pending"))
    extra = total - existing
    if extra < due_now:
        raise SystemExit(f"--reminders {total} leaves room for {extra} rows, fewer than --due-now {due_now}")
    rng, now = random.Random(4), datetime.now(UTC)
    far = [now + timedelta(seconds=rng.uniform(2 * 3600, 3 * 86400)) for _ in range(extra - due_now)]

    def row(i: int, due: datetime) -> dict:
        incident_id, deadline_id = deadlines[i % len(deadlines)]
        return {"incident_id": incident_id, "deadline_id": deadline_id, "kind": "remind", "due_at": due}

    with core.db.transaction() as s:
        s.execute(insert(Reminder), [row(due_now + i, due) for i, due in enumerate(far)])
    # The due-now rows last, their times taken just before: the window starts START_IN s from here.
    start = time.time() + START_IN
    dues = sorted(start + rng.uniform(0, window) for _ in range(due_now))
    with core.db.transaction() as s:
        s.execute(insert(Reminder), [row(i, datetime.fromtimestamp(due, UTC)) for i, due in enumerate(dues)])
    if time.time() > start - 1:
        print("warning: inserting took so long that the first reminders are due right away", file=sys.stderr)
    return dues


async def measure(core: Core, runner: ReminderRunner, dues: list[float]) -> tuple[list[float], list[float]]:
    """Run ours and the bare timers side by side until every due-now row is sent (or time runs out)."""
    bare_ms: list[float] = []

    async def record(due: float) -> None:  # a coroutine, so it runs on the loop as ours does
        bare_ms.append((time.time() - due) * 1000)

    bare = AsyncIOScheduler(timezone=UTC)
    for due in dues:
        bare.add_job(record, "date", run_date=datetime.fromtimestamp(due, UTC), args=[due], misfire_grace_time=None)
    bare.start()
    runner.start()
    until = datetime.fromtimestamp(dues[-1], UTC) + timedelta(seconds=1)  # after the last due time
    give_up = dues[-1] + GRACE  # the window's end, plus a minute
    while (await asyncio.to_thread(_count_sent, core, until)) < len(dues) and time.time() < give_up:
        await asyncio.sleep(1)  # a cheap count once a second: negligible next to the runner's work
    bare.shutdown(wait=False)
    with core.db.transaction() as s:
        rows = s.execute(select(Reminder.due_at, Reminder.sent_at).where(
            Reminder.due_at < until, Reminder.state == "sent")).all()
    ours_ms = [(sent_at - due_at).total_seconds() * 1000 for due_at, sent_at in rows]
    return ours_ms, bare_ms


def _count_sent(core: Core, until: datetime) -> int:
    with core.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Reminder).where(
            Reminder.due_at < until, Reminder.state == "sent"))


async def cpu_over(seconds: float) -> float:
    """CPU seconds this process (all threads) used while the loop slept `seconds`."""
    gc.collect()  # not a collection caused by the bench's own lists inside the window
    began = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - began


async def run(core: Core, fake: FakeSlack, dues: list[float], idle: float) -> dict:
    publisher = Publisher(core, make_client("xoxb-test", fake.url))
    runner = ReminderRunner(core, publisher.deliver_reminder)  # the production tick (10 s)
    ours_ms, bare_ms = await measure(core, runner, dues)
    upcoming = await asyncio.to_thread(core.next_due)
    if upcoming is None or upcoming < datetime.now(UTC) + timedelta(seconds=idle):
        raise SystemExit(f"something is due at {upcoming} within the idle measurement")
    running = await cpu_over(idle)
    runner.stop()
    stopped = await cpu_over(idle)
    lateness = {"ours": stats(ours_ms), "bare APScheduler": stats(bare_ms)}
    ratios = {q: round(lateness["ours"][q] / lateness["bare APScheduler"][q], 1)
              if lateness["bare APScheduler"][q] > 0 else None for q in ("p50", "p99")}
    cpu = {name: {"cpu_s": round(used, 4), "cpu_s_per_min": round(used * 60 / idle, 4),
                  "percent_core": round(used / idle * 100, 3)}
           for name, used in (("runner running", running), ("runner stopped", stopped))}
    return {"lateness_ms": lateness, "ratios": ratios, "unsent": len(dues) - len(ours_ms),
            "target_p99_ms": TARGET_MS, "target_met": len(ours_ms) == len(dues) and
            lateness["ours"]["p99"] <= TARGET_MS, "idle_cpu": cpu}


def print_report(report: dict, args, backend: str, setup_s: float, warnings: dict) -> None:
    print(f"\nreminder lateness in ms (sent_at - due_at), {backend}, {os.cpu_count()} CPUs, "
          f"{args.incidents} incidents, {args.reminders} pending, {args.due_now} due in {args.window:g} s "
          f"(setup {setup_s:.0f} s)")
    print(f"{'series':<20}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, s in report["lateness_ms"].items():
        print(f"{name:<20}{s['n']:>6}" + "".join(f"{s[q]:>9.1f}" for q in ("p50", "p90", "p99", "max")))
    r = report["ratios"]
    print(f"\n{'ours / bare':<20}{'p50':>8}{'p99':>8}\n{'':<20}" +
          "".join(f"{r[q]:>7.1f}x" if r[q] is not None else f"{'-':>8}" for q in ("p50", "p99")))
    if report["unsent"]:
        print(f"\n{report['unsent']} due-now reminders were not sent within {GRACE:g} s of the last due time")
    for message, n in warnings.items():
        print(f"APScheduler warning x{n}: {message}")
    verdict = "MET" if report["target_met"] else "NOT met"
    print(f"\ntarget (p99 lateness at most {TARGET_MS:g} ms): {verdict}")
    print(f"\nidle CPU over {args.idle:g} s, nothing due")
    print(f"{'':<20}{'CPU s':>9}{'s/min':>9}{'% core':>9}")
    for name, c in report["idle_cpu"].items():
        print(f"{name:<20}{c['cpu_s']:>9.3f}{c['cpu_s_per_min']:>9.3f}{c['percent_core']:>9.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--reminders", type=int, default=10000, help="pending reminder rows in all")
    parser.add_argument("--due-now", type=int, default=600, help="how many fall due within the window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which they fall due")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of each idle CPU measurement")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not 0 < args.due_now <= args.reminders or args.incidents < 1:
        parser.error("need at least one incident and 0 < --due-now <= --reminders")
    logging.basicConfig(level=logging.WARNING)
    warnings = WarningCounter()
    logging.getLogger("apscheduler").addHandler(warnings)

    with bench_database(args.database_url) as (db, backend):
        fake = FakeSlack().start()
        try:
            fake.add_user(LEAD)
            core = Core(db, long_playbook())
            began = time.monotonic()
            deadlines = open_incidents(core, fake, args.incidents)
            fake.clear_calls()
            gc.collect()
            gc.freeze()  # as `crisisbot slack` does after start-up
            dues = add_reminders(core, deadlines, args.reminders, args.due_now, args.window)
            setup_s = time.monotonic() - began
            report = asyncio.run(run(core, fake, dues, args.idle))
        finally:
            fake.stop()

    print_report(report, args, backend, setup_s, warnings.messages)
    if args.json:
        args.json.write_text(json.dumps({"database": backend, **vars(args) | {"json": str(args.json)},
                                         "apscheduler_warnings": warnings.messages, **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
