"""Reminders with real time and real processes: Slack end to end with seconds-long deadlines,
a restart that finds reminders due, and two processes against one PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import system_clock
from bot.core import Core
from bot.models import Reminder
from bot.playbook import DeadlineRule, Deadlines, Escalation, SeverityDeadlines
from handlers.slack.app import SlackBot
from handlers.slack.server import web_app
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET, ServedApp
from tests.test_slack import Room, button, slack_room, texts

SECONDS = timedelta(seconds=1)


def quick(playbook, channel: str | None = "crisis-announcements"):
    """sev2: acknowledge within 3 s, reminded 2 s before; missed → the lead and the alert channel."""
    rules = SeverityDeadlines(acknowledge=DeadlineRule(within=3 * SECONDS, remind=[2 * SECONDS]))
    return playbook.model_copy(update={"deadlines": Deadlines(
        remind_before=[SECONDS], escalate=Escalation(roles=["lead"], channel=channel), by_severity={2: rules})})


@pytest.fixture
def live_room(db, playbook):
    with slack_room(Core(db, quick(playbook), clock=system_clock)) as the_room:
        yield the_room


def posted(room: Room, fragment: str, timeout: float = 8.0) -> list:
    return room.fake.wait_for("chat.postMessage", timeout=timeout,
                              predicate=lambda c: fragment in c.params.get("text", ""))


def test_reminder_then_escalation_in_slack(live_room):
    room = live_room
    channel, _ = room.start("sev2 Charger overheats")
    started = time.monotonic()

    reminder = posted(room, "internal acknowledgement is due at")[0]
    assert reminder.params["channel"] == channel and "<@U1>" in reminder.params["text"]
    assert time.monotonic() - started > 0.5  # due 1 s after the start, not at once

    missed = posted(room, "Missed: the internal acknowledgement")[0]
    assert missed.params["channel"] == channel and "<@U1>" in missed.params["text"]
    alert = posted(room, "missed its internal acknowledgement")[0]
    assert alert.params["channel"] == room.announcements and f"<#{channel}>" in alert.params["text"]
    incident = room.core.incident_in_channel("T1", channel)
    assert "deadline.missed" in [e.kind for e in room.core.timeline(incident)]
    room.settle(1.5)
    # Each went out exactly once, and nothing more was due.
    about = [c for c in room.fake.calls_to("chat.postMessage") if "acknowledgement" in c.params.get("text", "")]
    assert len(about) == 3
    assert "Next deadline" not in texts(room.standing(channel, "header")[1])


def test_a_claim_meets_the_deadline_and_nothing_is_sent(live_room):
    room = live_room
    channel, _ = room.start("sev2 Charger overheats")
    room.send.click(button(room.standing(channel, "roster")[1], "role.claim", "social"), "U2", channel)
    posted(room, "<@U2> now holds")
    room.settle(3.5)
    assert not [c for c in room.fake.calls_to("chat.postMessage") if "acknowledgement" in c.params.get("text", "")]


def test_a_deadline_missed_while_the_bot_was_down_is_escalated_at_start_marked_late(db, playbook, clock):
    core = Core(db, quick(playbook, channel=None), clock=clock)
    opening = core.start_incident("T1", "U1", "Charger overheats", severity=2)
    fake = FakeSlack().start()
    channel = fake.add_channel("crisis-1", members=["U1"])
    core.opened(opening.incident_id, channel, "crisis-1")
    clock.advance(hours=2)  # the bot was down for two hours
    served = ServedApp(web_app(SlackBot(core, "xoxb-test", SECRET, base_url=fake.url))).start()
    try:
        calls = fake.wait_for("chat.postMessage",
                              predicate=lambda c: "(late: I was offline)" in c.params.get("text", ""))
        assert "Missed: the internal acknowledgement was due at 02:00 UTC" in calls[0].params["text"]
        time.sleep(0.5)
        # The reminder before it is stale now: the escalation alone says it, nothing is sent twice.
        assert not [c for c in fake.calls_to("chat.postMessage") if "is due at" in c.params.get("text", "")]
    finally:
        served.stop()
        fake.stop()


@pytest.mark.skipif(not os.environ.get("CRISISBOT_TEST_DATABASE_URL"), reason="needs PostgreSQL")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_processes_send_each_reminder_exactly_once(database_url, db, playbook):
    core = Core(db, quick(playbook, channel=None), clock=system_clock)
    fake = FakeSlack().start()
    incidents = 60
    try:
        for n in range(incidents):
            opening = core.start_incident("T1", "U1", f"Incident {n}", severity=2)
            channel = fake.add_channel(f"crisis-{n}", members=["U1"])
            core.opened(opening.incident_id, channel, f"crisis-{n}")
        workers = [subprocess.Popen([sys.executable, "-m", "tests.fakes.reminder_worker", database_url, fake.url, "8"],
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for worker in workers:
            assert worker.wait(60) == 0, worker.stderr.read()
        reminders = [c for c in fake.calls_to("chat.postMessage") if "is due at" in c.params.get("text", "")]
        escalations = [c for c in fake.calls_to("chat.postMessage") if "Missed" in c.params.get("text", "")]
        # Every escalation exactly once; a reminder at most once (one whose deadline had already
        # passed when a worker got to it gives way to the escalation), and as often as the rows say.
        assert len(escalations) == incidents and len({c.params["channel"] for c in escalations}) == incidents
        assert len(reminders) == len({c.params["channel"] for c in reminders})
        with db.transaction() as s:
            sent = s.scalar(select(func.count()).select_from(Reminder).where(
                Reminder.state == "sent", Reminder.kind == "remind"))
            pending = s.scalar(select(func.count()).select_from(Reminder).where(Reminder.state == "pending"))
        assert len(reminders) == sent and pending == 0
    finally:
        fake.stop()
