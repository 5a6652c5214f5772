"""Two bot processes against one PostgreSQL, and kill -9 during delivery: a reminder whose post
outlasts the lease, or whose process dies between posting and recording, goes out once (issue 9,
item 2). The workers are tests/fakes/reminder_worker.py with a short lease; the fake Slack is
slow, rate-limits with Retry-After, or answers late a post it already made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.clock import system_clock
from bot.core import Core
from bot.models import Reminder
from bot.playbook import DeadlineRule, Deadlines, Escalation, SeverityDeadlines
from tests.fakes.slack_api import FakeSlack

pytestmark = [pytest.mark.skipif(not os.environ.get("CRISISBOT_TEST_DATABASE_URL"), reason="needs PostgreSQL"),
              pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]
SECONDS = timedelta(seconds=1)
REMINDER, MISSED = "is due at", "Missed:"


def clocks(playbook, within: float, remind: list[float]):
    rules = SeverityDeadlines(acknowledge=DeadlineRule(within=within * SECONDS, remind=[r * SECONDS for r in remind]))
    return playbook.model_copy(update={"deadlines": Deadlines(
        remind_before=[], escalate=Escalation(roles=["lead"], channel=None), by_severity={2: rules})})


def incidents(core: Core, fake: FakeSlack, count: int) -> list[str]:
    channels = []
    for n in range(count):
        opening = core.start_incident("T1", "U1", f"Incident {n}", severity=2)
        channels.append(fake.add_channel(f"crisis-{n}", members=["U1"]))
        core.opened(opening.incident_id, channels[-1], f"crisis-{n}")
    return channels


def worker(database_url: str, fake: FakeSlack, seconds: float, lease: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.fakes.reminder_worker", database_url, fake.url,
                             str(seconds), str(lease)], stderr=subprocess.PIPE, text=True)


def finish(*workers: subprocess.Popen) -> None:
    for process in workers:
        assert process.wait(90) == 0, process.stderr.read()


def shown(fake: FakeSlack, channel: str, fragment: str) -> int:
    """How often the channel shows a message with this fragment."""
    return sum(fragment in m["text"] for m in fake.channels[channel].messages.values())


def states(db) -> list[tuple[str, str]]:
    with db.transaction() as s:
        return sorted((r.kind, r.state) for r in s.scalars(select(Reminder)))


@pytest.fixture
def fake():
    slack = FakeSlack().start()
    yield slack
    slack.stop()


def test_a_post_slower_than_the_lease_is_not_sent_by_the_second_process(database_url, db, playbook, fake):
    core = Core(db, clocks(playbook, within=3, remind=[2]), clock=system_clock)
    channels = incidents(core, fake, 2)
    fake.delay("chat.postMessage", 2.5)  # each post takes 2.5 s; the lease is 1 s, extended while posting
    finish(*[worker(database_url, fake, 14, lease=1) for _ in range(2)])
    for channel in channels:
        assert shown(fake, channel, MISSED) == 1 and shown(fake, channel, REMINDER) <= 1
    assert ("escalate", "sent") in states(db) and ("remind", "pending") not in states(db)


def test_a_rate_limited_post_is_not_sent_by_the_second_process(database_url, db, playbook, fake):
    core = Core(db, clocks(playbook, within=12, remind=[11]), clock=system_clock)
    channels = incidents(core, fake, 2)
    for channel in channels:  # Retry-After 2 s, twice: longer than the 1 s lease
        fake.rate_limit("chat.postMessage", retry_after=2, times=2,
                        when=lambda p, c=channel: p.get("channel") == c and REMINDER in p.get("text", ""))
    finish(*[worker(database_url, fake, 18, lease=1) for _ in range(2)])
    for channel in channels:
        assert shown(fake, channel, REMINDER) == 1 and shown(fake, channel, MISSED) == 1
    assert states(db) == [("escalate", "sent")] * 2 + [("remind", "sent")] * 2


def test_a_process_killed_between_posting_and_recording_does_not_double_the_escalation(database_url, db, playbook,
                                                                                        fake):
    core = Core(db, clocks(playbook, within=1, remind=[]), clock=system_clock)
    [channel] = incidents(core, fake, 1)
    fake.delay("chat.postMessage", 30, answer_only=True)  # the escalation lands; its answer never comes back
    first = worker(database_url, fake, 60, lease=1)
    try:
        fake.wait_for("chat.postMessage", timeout=30, predicate=lambda c: MISSED in c.params.get("text", ""))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert shown(fake, channel, MISSED) == 1 and states(db) == [("escalate", "pending")]
    fake.delay("chat.postMessage", 0)
    finish(worker(database_url, fake, 6, lease=1))
    # The second process found the escalation in the channel's history (its metadata names the row).
    assert shown(fake, channel, MISSED) == 1
    assert states(db) == [("escalate", "sent")]
    [history] = fake.calls_to("conversations.history")
    assert history.params["channel"] == channel and history.ok
