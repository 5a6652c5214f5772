"""Reminder delivery in Slack, with real time: one channel that cannot be reached, or is rate-limited,
holds up no other incident's reminders and escalations (issue 9, item 1).

Incidents are started by signed /crisis requests through the Bolt app; the fake Slack archives,
deletes or converts a channel as a person would, removes the bot, and answers 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.clock import system_clock
from bot.core import Core, Outcome
from bot.models import Reminder
from handlers.reminders import RetryLater, Undeliverable
from handlers.slack.app import make_client
from handlers.slack.publish import Publisher
from tests.fakes.slack_api import FakeSlack
from tests.test_reminders_live import quick
from tests.test_slack import Room, slack_room

REMINDER = "internal acknowledgement is due at"
MISSED = "Missed: the internal acknowledgement"
ALERT = "missed its internal acknowledgement"
INSTEAD = "and I could not say so in"
SECONDS = timedelta(seconds=1)


@pytest.fixture
def live_room(db, playbook):
    """sev2: reminded 1 s after the start, escalated after 3 s, to the lead and #crisis-announcements."""
    with slack_room(Core(db, quick(playbook), clock=system_clock)) as the_room:
        yield the_room


def in_channel(room: Room, channel: str, fragment: str) -> list[str]:
    """What the channel shows now that contains `fragment`."""
    return [m["text"] for m in list(room.messages(channel).values()) if fragment in m["text"]]


def wait_until(check, timeout: float = 12.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def rows(room: Room, channel: str) -> list[tuple[str, str, str | None]]:
    incident = room.core.incident_in_channel("T1", channel)
    with room.core.db.transaction() as s:
        return [(r.kind, r.state, r.last_error) for r in s.scalars(
            select(Reminder).where(Reminder.incident_id == incident).order_by(Reminder.due_at))]


@pytest.mark.parametrize("lose, reason", [("archive_as_user", "is_archived"), ("delete_channel", "channel_not_found")])
def test_a_channel_that_is_gone_holds_up_no_other_incident(live_room, lose, reason):
    room = live_room
    lost, _ = room.start("sev2 Charger overheats")
    getattr(room.fake, lose)(lost)  # its reminders are the oldest due: tried first, every time
    others = [room.start(f"sev2 Incident {n}")[0] for n in range(4)]

    # Every other incident gets its reminder and its escalation, once, in its own channel.
    wait_until(lambda: all(in_channel(room, c, MISSED) for c in others))
    # The lost incident's escalation goes to the alert channel instead, saying why.
    [instead] = room.fake.wait_for("chat.postMessage", predicate=lambda c: INSTEAD in c.params.get("text", ""))
    assert instead.params["channel"] == room.announcements  # the alert channel, by its id
    assert f"<#{lost}> ({reason})" in instead.params["text"]
    assert "*CRISIS-1: Charger overheats*" in instead.params["text"]
    room.settle(1.0)
    for channel in others:
        assert len(in_channel(room, channel, REMINDER)) == 1 and len(in_channel(room, channel, MISSED)) == 1
    alerts = [c for c in room.fake.calls_to("chat.postMessage")
              if ALERT in c.params.get("text", "") and INSTEAD not in c.params["text"]]
    assert sorted(c.params["text"].split("*")[1] for c in alerts) == [
        f"CRISIS-{n}: Incident {n - 2}" for n in range(2, 6)]
    # Each of the lost incident's rows was tried once and failed with its reason; none is retried.
    tried = [c for c in room.fake.calls_to("chat.postMessage") if c.params.get("channel") == lost]
    assert [c.error for c in tried if REMINDER in c.params["text"] or MISSED in c.params["text"]] == [reason, reason]
    assert [(kind, state, error) for kind, state, error in rows(room, others[0]) + rows(room, lost)
            if kind != "archive"] == [("remind", "sent", None), ("escalate", "sent", None),
                                      ("remind", "failed", reason), ("escalate", "failed", reason)]


def test_without_an_alert_channel_the_lead_hears_privately_of_an_escalation_nobody_could_see(db, playbook):
    with slack_room(Core(db, quick(playbook, channel=None), clock=system_clock)) as room:
        lost, _ = room.start("sev2 Charger overheats")
        room.fake.archive_as_user(lost)
        [told] = room.fake.wait_for("chat.postMessage", predicate=lambda c: (
            c.params.get("channel") == "U1" and INSTEAD in c.params.get("text", "")))
        assert f"<#{lost}> (is_archived)" in told.params["text"]
        assert "*CRISIS-1: Charger overheats*" in told.params["text"]
        room.settle(0.5)
        assert [c.params["channel"] for c in room.fake.calls_to("chat.postMessage")
                if INSTEAD in c.params.get("text", "")] == ["U1"]


def test_status_shows_the_reminders_that_could_not_be_posted(live_room):
    room = live_room
    channel, _ = room.start("sev2 Charger overheats")
    room.fake.archive_as_user(channel)
    wait_until(lambda: room.fake.calls_to("chat.postMessage") and any(
        INSTEAD in c.params.get("text", "") for c in room.fake.calls_to("chat.postMessage")))
    room.fake.unarchive_as_user(channel)  # archived by mistake, and brought back
    _, name = room.send.command("status", channel=channel)
    answer = room.private_answers(name)[0]
    assert ":warning: The reminder of the internal acknowledgement (due " in answer
    assert ":warning: The escalation of the missed internal acknowledgement (due " in answer
    assert answer.count("could not be posted: is_archived") == 2

    # The channel is back: Repair sends the escalation there (the reminder is past; its escalation says it).
    from tests.test_delivery_slack import repair, status

    _, repair_button = status(room, channel)
    assert repair_button is not None
    assert "Trying again" in repair(room, channel, repair_button)
    wait_until(lambda: in_channel(room, channel, MISSED))
    room.settle(0.5)
    assert len(in_channel(room, channel, MISSED)) == 1 and in_channel(room, channel, REMINDER) == []
    assert "could not be posted" not in status(room, channel)[0]


def test_a_bot_removed_from_a_public_channel_joins_again_and_posts(live_room):
    room = live_room
    channel, _ = room.start("sev2 Charger overheats")
    room.fake.remove_from_channel(channel)
    wait_until(lambda: in_channel(room, channel, MISSED))
    assert len(in_channel(room, channel, REMINDER)) == 1
    assert room.fake.calls_to("conversations.join")[0].params["channel"] == channel


def test_a_bot_removed_from_a_private_channel_fails_that_row_only(live_room):
    room = live_room
    private, _ = room.start("sev2 Charger overheats")
    room.fake.convert_to_private(private)
    room.fake.remove_from_channel(private)
    other, _ = room.start("sev2 Second incident")
    wait_until(lambda: in_channel(room, other, MISSED))
    [instead] = room.fake.wait_for("chat.postMessage", predicate=lambda c: INSTEAD in c.params.get("text", ""))
    assert f"<#{private}> (not_in_channel)" in instead.params["text"]
    assert [state for kind, state, _ in rows(room, private) if kind != "archive"] == ["failed", "failed"]


def test_a_rate_limited_channel_waits_its_retry_after_alone(db, playbook):
    slower = quick(playbook)  # acknowledge within 10 s, reminded after 2 s: time to retry before it
    rule = slower.deadlines.by_severity[2].acknowledge.model_copy(update={"within": 10 * SECONDS,
                                                                           "remind": [8 * SECONDS]})
    slower.deadlines.by_severity[2] = slower.deadlines.by_severity[2].model_copy(update={"acknowledge": rule})
    with slack_room(Core(db, slower, clock=system_clock)) as room:
        limited, _ = room.start("sev2 Charger overheats")
        room.fake.rate_limit("chat.postMessage", retry_after=3, when=lambda p: p.get("channel") == limited
                             and REMINDER in p.get("text", ""))
        others = [room.start(f"sev2 Incident {n}")[0] for n in range(3)]
        wait_until(lambda: in_channel(room, limited, REMINDER))
        room.settle(0.5)
        posts = room.fake.calls_to("chat.postMessage")
        [refused] = [i for i, c in enumerate(posts) if c.error == "ratelimited"]
        [delivered] = [i for i, c in enumerate(posts)
                       if c.ok and c.params["channel"] == limited and REMINDER in c.params["text"]]
        # While that row waited out its Retry-After, the other incidents' reminders went out.
        others_sent = [i for i, c in enumerate(posts)
                       if c.ok and c.params["channel"] in others and REMINDER in c.params["text"]]
        assert len(others_sent) == 3 and all(refused < i < delivered for i in others_sent)
        assert len(in_channel(room, limited, REMINDER)) == 1


def test_a_slow_channel_holds_up_only_its_own_incident(live_room):
    room = live_room
    slow, _ = room.start("sev2 Charger overheats")
    room.fake.delay("chat.postMessage", 5, when=lambda p: p.get("channel") == slow and REMINDER in p.get("text", ""))
    others = [room.start(f"sev2 Incident {n}")[0] for n in range(3)]
    wait_until(lambda: in_channel(room, slow, REMINDER))
    posts = [c for c in room.fake.calls_to("chat.postMessage") if c.ok and REMINDER in c.params["text"]]
    # Recorded when answered: the other incidents' reminders went out while that channel was slow.
    assert [c.params["channel"] for c in posts][-1] == slow
    assert sorted(c.params["channel"] for c in posts[:-1]) == sorted(others)


@pytest.mark.parametrize("error", ["account_inactive", "invalid_auth", "missing_scope", "is_archived",
                                   "channel_not_found"])
def test_what_slack_refuses_for_good_fails_the_row(error):
    with FakeSlack() as fake:
        channel = fake.add_channel("crisis-1")
        fake.fail_next("chat.postMessage", error)
        with pytest.raises(Undeliverable) as failed:
            deliver(fake, channel)
        assert failed.value.reason == error


@pytest.mark.parametrize("fault, after", [("ratelimited", 7), ("internal_error", None), ("service_unavailable", None)])
def test_what_may_pass_backs_off_the_row_honouring_retry_after(fault, after):
    with FakeSlack() as fake:
        channel = fake.add_channel("crisis-1")
        if after:
            fake.rate_limit("chat.postMessage", retry_after=after)
        else:
            fake.fail_next("chat.postMessage", fault)
        with pytest.raises(RetryLater) as later:
            deliver(fake, channel)
        assert later.value.reason == fault
        assert later.value.after == (timedelta(seconds=after) if after else None)
        # No retry inside the call: the runner decides, per row, from the database.
        assert len(fake.calls_to("chat.postMessage")) == 1


def deliver(fake: FakeSlack, channel: str) -> None:
    publisher = Publisher(None, make_client("xoxb-test", fake.url))
    outcome = Outcome(1, "CRISIS-1", channel, notices=["The internal acknowledgement is due"])
    asyncio.run(publisher.deliver_reminder(outcome, [], reminder_id=1))


def test_a_redelivered_escalation_posts_its_alert_channel_copy_once():
    """A process died after posting the escalation and its copy in the alert channel, before recording
    them: the next claim finds both by their metadata and posts neither again."""
    from bot.clocks import Alert

    with FakeSlack() as fake:
        channel, alerts_channel = fake.add_channel("crisis-1"), fake.add_channel("crisis-leadership")
        publisher = Publisher(None, make_client("xoxb-test", fake.url))
        outcome = Outcome(1, "CRISIS-1", channel, notices=["Missed: the internal acknowledgement"])
        alert = [Alert("crisis-leadership", "CRISIS-1 missed its internal acknowledgement")]
        asyncio.run(publisher.deliver_reminder(outcome, alert, reminder_id=7))
        asyncio.run(publisher.deliver_reminder(outcome, alert, reminder_id=7, retry=True))
        assert [m["text"] for m in fake.channels[channel].messages.values()] == [
            "Missed: the internal acknowledgement"]
        assert [m["text"] for m in fake.channels[alerts_channel].messages.values()] == [
            "CRISIS-1 missed its internal acknowledgement"]
