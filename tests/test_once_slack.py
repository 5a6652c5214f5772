"""Every request has one effect (issue 9, items 7–10), through the real Bolt app on SQLite and
PostgreSQL: a retried /crisis start opens one channel, an interrupted start is finished or rolled
back, a retried draft, a double-submitted update form and an export clicked on two instances each
happen once, and an Events API retry is answered once."""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from bot.core import Core
from bot.models import Incident, Statement
from handlers.slack.app import SlackBot
from handlers.slack.server import web_app
from tests.fakes.holding_slack import HoldingSlack
from tests.fakes.slack_requests import SECRET, ServedApp, SlackSender
from tests.test_slack import USERS, Room
from tests.test_slack_retro import closed

CHANNEL_NAME = "2026-11-22-crisis-1-charger-overheats"
START = "start sev2 defective-product Charger overheats"


@contextmanager
def served(core: Core, fake: HoldingSlack, recovery_interval: float = 60):
    bot = SlackBot(core, "xoxb-test", SECRET, base_url=fake.url)
    bot.recovery_interval = recovery_interval
    app = ServedApp(web_app(bot)).start()
    try:
        yield app
    finally:
        app.stop()


@contextmanager
def holding_fake(announcements: bool = True):
    """The fake with our users, and the playbook fixture's announcement channel (a Room adds its own)."""
    fake = HoldingSlack().start()
    for user in USERS:
        fake.add_user(user)
    if announcements:
        fake.add_channel("crisis-announcements", members=("UBOSS",))
    try:
        yield fake
    finally:
        fake.stop()


@contextmanager
def holding_room(core: Core, recovery_interval: float = 60):
    with holding_fake(announcements=False) as fake, served(core, fake, recovery_interval) as app:
        yield Room(core, fake, app)


def answers(room: Room, name: str, count: int, timeout: float = 10.0) -> list[str]:
    calls = room.fake.wait_for("response_url", count=count, timeout=timeout, predicate=lambda c: c.url_name == name)
    return [c.params.get("text", "") for c in calls]


def dms(fake: HoldingSlack, user: str, fragment: str, timeout: float = 10.0) -> list[str]:
    calls = fake.wait_for("chat.postMessage", timeout=timeout, predicate=lambda c: (
        c.params.get("channel") == user and fragment in c.params.get("text", "")))
    return [c.params["text"] for c in calls]


def incidents(core: Core) -> int:
    with core.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Incident))


def with_trigger(body: str, trigger: str) -> str:
    return re.sub(r"trigger_id=trigger\.\d+", f"trigger_id={trigger}", body)


# -- 7. a retried /crisis start -----------------------------------------------------------------------

def test_retries_of_a_start_while_its_channel_is_made_open_one_room(core):
    with holding_room(core) as room:
        hold = room.fake.hold("conversations.create")
        body, name = room.send.command_body(START, channel=room.general)
        assert room.send.post(body).status == 200
        assert hold.arrived.wait(5)
        # Seven retries of the same request (same trigger id) arrive while the channel is being made.
        assert {room.send.post(body).status for _ in range(7)} == {200}
        time.sleep(0.5)
        hold.release()

        told = answers(room, name, count=8)
        creates = room.fake.calls_to("conversations.create")
        assert len(creates) == 1
        channel = creates[0].response["channel"]["id"]
        assert all(f"<#{channel}>" in text and "CRISIS-1" in text for text in told), told
        room.settle(0.5)
        assert len(room.messages(channel)) == 7  # header, roster, five checklist steps: once
        assert len(room.messages(room.announcements)) == 1
        assert incidents(core) == 1


def test_a_retry_after_the_room_is_open_only_sends_the_user_there(core):
    with holding_room(core) as room:
        body, name = room.send.command_body(START, channel=room.general)
        room.send.post(body)
        channel = answers(room, name, count=1)[0].split("<#")[1].split(">")[0]
        room.settle()
        posts = len(room.fake.calls_to("chat.postMessage"))
        room.send.post(body)
        told = answers(room, name, count=2)
        assert told[1] == f"CRISIS-1 is open in <#{channel}>. Claim your roles there."
        room.settle()
        assert len(room.fake.calls_to("conversations.create")) == 1
        assert len(room.fake.calls_to("chat.postMessage")) == posts


def test_a_retry_after_its_first_delivery_died_finds_the_channel_by_name(core, clock):
    with holding_room(core) as room:
        # The first delivery made the incident and its channel, then its process died.
        core.start_incident("T1", "U1", "Charger overheats", crisis_type="defective-product", severity=2,
                            request_key="trigger.dead", platform="slack")
        made = room.fake.add_channel(CHANNEL_NAME)
        clock.advance(seconds=31)  # its opening lease ran out
        body, name = room.send.command_body(START, channel=room.general)
        room.send.post(with_trigger(body, "trigger.dead"))

        assert answers(room, name, count=1)[0] == f"CRISIS-1 is open in <#{made}>. Claim your roles there."
        assert room.fake.calls_to("conversations.create") == []
        assert room.fake.calls_to("conversations.list")
        room.settle()
        assert len(room.messages(made)) == 7
        assert core.incident_in_channel("T1", made) is not None


def test_a_request_that_hangs_past_its_lease_leaves_one_room_to_the_one_that_took_over(core, db, playbook, clock):
    with holding_room(core) as room, served(Core(db, playbook, clock=clock), room.fake) as second:
        create = room.fake.hold("conversations.create", after=False, times=1)
        body, name = room.send.command_body(START, channel=room.general)
        room.send.post(body)
        assert create.arrived.wait(5)
        clock.advance(seconds=31)  # the first delivery hangs in Slack beyond its opening lease
        listed = room.fake.hold("conversations.list", times=1)
        SlackSender(second.url, room.fake.response_url).post(body)  # the same request on another instance
        assert listed.arrived.wait(5)  # it took the opening over and looks for a channel: none yet
        create.release()  # now the first one's channel is made …
        room.fake.wait_for("conversations.create")
        time.sleep(0.3)
        listed.release()  # … and the second one, finding none, makes its own

        told = answers(room, name, count=1)
        room.settle(1)
        rooms = [c for c in room.fake.channels.values() if c.name.startswith("2026-11-22-crisis-1")]
        active = [c for c in rooms if not c.is_archived]
        assert len(active) == 1, [(c.name, c.is_archived, len(c.messages)) for c in rooms]
        assert all(f"<#{active[0].id}>" in text for text in told)
        assert len(active[0].messages) == 7
        assert core.incident_in_channel("T1", active[0].id) is not None
        assert len(room.messages(room.announcements)) == 1


# -- 8. an interrupted start -------------------------------------------------------------------------

def test_an_interrupted_start_whose_channel_exists_is_finished_at_start_and_the_reporter_told(core, clock):
    with holding_fake() as fake:
        core.start_incident("T1", "U1", "Charger overheats", severity=2, request_key="trigger.dead",
                            platform="slack")
        made = fake.add_channel(CHANNEL_NAME)
        fake.add_channel("2026-11-22-crisis-1-charger-overheats-2", bot_is_member=False)  # not ours
        clock.advance(minutes=5)
        with served(core, fake):
            told = dms(fake, "U1", "was interrupted")
            assert told == [f"Opening CRISIS-1 “Charger overheats” was interrupted; I finished it: "
                            f"the incident is open in <#{made}>. Claim your roles there."]
            fake.wait_for("conversations.setTopic")
            time.sleep(0.3)
            assert core.incident_in_channel("T1", made) is not None
            assert len(fake.channels[made].messages) == 7
            assert "U1" in fake.channels[made].members
            assert fake.calls_to("conversations.create") == []


def test_an_interrupted_start_without_a_channel_is_rolled_back_and_its_number_given_back(core, clock):
    with holding_fake() as fake:
        core.start_incident("T1", "U1", "Charger overheats", severity=2, request_key="trigger.dead",
                            platform="slack")
        clock.advance(minutes=5)
        with served(core, fake) as app:
            told = dms(fake, "U1", "was interrupted")
            assert told == ["Opening CRISIS-1 “Charger overheats” was interrupted before its channel was made, "
                            "so I removed it and nothing was started. Please start it again with /crisis start."]
            assert incidents(core) == 0
            room = Room(core, fake, app)
            _channel, answer = room.start("sev2 Charger overheats again")
            assert "CRISIS-1 is open" in answer  # the number was given back


def test_a_start_whose_first_posts_outlast_its_lease_is_not_taken_for_interrupted(db, playbook):
    """Slack is slow (every post takes 0.4 s, seven of them): the request keeps its opening while it
    posts, so the sweep neither finishes it a second time nor tells the reporter it was interrupted."""
    from datetime import timedelta

    from bot.clock import system_clock

    core = Core(db, playbook, clock=system_clock)
    core.opening_lease = timedelta(seconds=0.6)
    with holding_room(core, recovery_interval=0.2) as room:
        room.fake.delay("chat.postMessage", 0.4)
        channel, answer = room.start()
        assert answer == f"CRISIS-1 is open in <#{channel}>. Claim your roles there."
        room.fake.delay("chat.postMessage", 0)
        time.sleep(1.0)  # several sweeps
        assert [c for c in room.fake.calls_to("chat.postMessage") if c.params.get("channel") == "U1"] == []
        assert len(room.fake.calls_to("conversations.setTopic")) == 1
        assert len(room.fake.channels[channel].messages) == 7


def test_the_sweep_for_interrupted_starts_runs_on_a_timer(core, clock):
    with holding_fake() as fake, served(core, fake, recovery_interval=0.3):
        time.sleep(0.5)  # the sweep at start found nothing
        core.start_incident("T1", "U1", "Charger overheats", severity=2, request_key="trigger.dead",
                            platform="slack")
        made = fake.add_channel(CHANNEL_NAME)
        clock.advance(minutes=5)
        assert dms(fake, "U1", "I finished it")
        assert core.incident_in_channel("T1", made) is not None


def test_an_opening_held_by_a_live_request_is_left_alone_by_the_sweep(core, clock):
    with holding_fake() as fake, served(core, fake, recovery_interval=0.2):
        core.start_incident("T1", "U1", "Charger overheats", severity=2, request_key="trigger.live",
                            platform="slack")
        time.sleep(1)  # the clock stands still: its lease holds
        assert incidents(core) == 1
        assert not [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == "U1"]


# -- 9. one statement, one update, one file --------------------------------------------------------

def test_a_retried_draft_free_drafts_one_statement(room_with_channel):
    room, channel = room_with_channel
    body, name = room.send.command_body("draft free We are aware and will update by 18:00.", user="U1",
                                        channel=channel)
    room.send.post(body)
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "drafted statement 1" in c.params.get("text", ""))
    room.send.post(body)
    assert answers(room, name, count=1)[-1] == \
        "Statement 1 was already drafted from this request; nothing was repeated."
    room.settle()
    assert statements(room.core) == 1
    drafted = [c for c in room.fake.calls_to("chat.postMessage") if "drafted statement" in c.params.get("text", "")]
    assert len(drafted) == 1


def test_a_draft_free_delivered_twice_at_once_drafts_one_statement(room_with_channel):
    room, channel = room_with_channel
    body, name = room.send.command_body("draft free Holding text.", user="U1", channel=channel)
    threads = [threading.Thread(target=room.send.post, args=(body,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers(room, name, count=1)[0].startswith("Statement 1 was already drafted")
    room.settle()
    assert statements(room.core) == 1


def test_a_double_submitted_status_update_posts_once(room_with_channel):
    room, channel = room_with_channel
    room.send.command("update", user="U1", channel=channel)
    form = room.fake.wait_for("views.open")[-1].response["view"]
    values = {"known": "Batch 42 affected", "doing": "Recall prepared", "next": "45m"}
    room.send.submit(form, values, user="U1")
    room.send.submit(form, values, user="U1")
    told = room.fake.wait_for("chat.postEphemeral", predicate=lambda c: "already posted" in c.params.get("text", ""))
    assert told[0].params["text"] == "This status update of CRISIS-1 was already posted once; nothing was repeated."
    room.settle()
    updates = [c for c in room.fake.calls_to("chat.postMessage") if "Batch 42 affected" in c.params.get("text", "")]
    assert [c.params["channel"] for c in updates] == [channel, room.announcements]
    assert [e.kind for e in room.core.timeline(room.core.incident_in_channel("T1", channel))].count(
        "status.update") == 1


def test_an_export_clicked_on_two_instances_uploads_one_file(core, db, playbook, clock):
    with holding_room(core) as room:
        channel = closed(room)
        other = Core(db, playbook, language="en", clock=clock)  # a second instance: its own process state
        with served(other, room.fake) as second:
            hold = room.fake.hold("files.completeUploadExternal", after=False)
            _, first_name = room.send.command("export", user="U2", channel=channel)
            assert hold.arrived.wait(5)
            again = SlackSender(second.url, room.fake.response_url)
            again._ids = iter(range(1000, 2000))
            _, second_name = again.command("export", user="U3", channel=channel)
            assert answers(room, second_name, count=1) == ["The export is already on its way to this channel."]
            hold.release()
            room.fake.wait_for("files.completeUploadExternal")
            room.settle(0.5)
            assert len(room.fake.uploaded_files(channel)) == 1
            assert not [c for c in room.fake.calls_to("response_url") if c.url_name == first_name]
            # The guard is lifted when the upload ends: a later export works again.
            again.command("export", user="U3", channel=channel)
            room.fake.wait_for("files.completeUploadExternal", count=2)
            room.settle(0.5)


# -- 10. Events API retries ------------------------------------------------------------------------

def test_an_events_api_retry_is_answered_once(room_with_channel):
    room, channel = room_with_channel
    event = {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
             "event_id": "Ev0001", "event_time": int(time.time()),
             "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
             "event": {"type": "app_mention", "user": "U2", "text": "<@UBOT> help", "ts": "1.000001",
                       "channel": channel, "event_ts": "1.000001"}}
    body = json.dumps(event)
    assert room.send.post(body, content_type="application/json").status == 200
    room.fake.wait_for("chat.postEphemeral")
    for retry in (1, 2):
        reply = room.send.post(body, content_type="application/json",
                               headers={"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        assert reply.status == 200
    room.settle(0.5)
    assert len(room.fake.calls_to("chat.postEphemeral")) == 1
    # Another event (another id) is answered as usual.
    room.send.post(json.dumps({**event, "event_id": "Ev0002"}), content_type="application/json")
    room.fake.wait_for("chat.postEphemeral", count=2)


# -- fixtures ---------------------------------------------------------------------------------------

def statements(core: Core) -> int:
    with core.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Statement))


def _open(room: Room) -> str:
    channel, _ = room.start()
    room.settle()
    return channel



@pytest.fixture
def room_with_channel(core):
    with holding_room(core) as room:
        yield room, _open(room)



def test_an_incident_orphaned_before_the_upgrade_is_swept_too(db, core, clock):
    """Starts interrupted by the code before migration 0007 have no opening lease; the upgrade gives
    them one that has run out, so the sweep rolls them back like any other."""
    from alembic import command
    from sqlalchemy import text

    from bot.db import alembic_config

    command.downgrade(alembic_config(db.engine), "0004")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO incidents (workspace_id, number, title, crisis_type, severity, phase, description,"
            " reporter_id, language, created_at) VALUES ('T1', 1, 'Charger overheats', 'defective-product', 2,"
            " 'detected', '', 'U1', 'en', :at)"), {"at": clock().replace(tzinfo=None)})
        connection.execute(text("INSERT INTO workspace_counters (workspace_id, last_number) VALUES ('T1', 1)"))
    command.upgrade(alembic_config(db.engine), "head")
    clock.advance(seconds=1)
    with holding_fake() as fake, served(core, fake):
        assert dms(fake, "U1", "was interrupted before its channel was made")
        assert incidents(core) == 0
