"""Every request has one effect with real processes: two bot processes against one PostgreSQL
receive the same request (issue 9, items 7 and 9), and a bot killed with SIGKILL in the middle
of a start leaves nothing half-made once the next one starts (item 8, on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from bot.models import Incident, Statement
from tests.fakes.holding_slack import HoldingSlack
from tests.fakes.slack_requests import SlackSender
from tests.test_slack import USERS

START = "start sev2 defective-product Charger overheats"


class Bot:
    """One `python -m tests.fakes.slack_bot` process and a sender of signed requests to it."""

    def __init__(self, database_url: str, fake: HoldingSlack, lease: float, first_id: int):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.slack_bot", database_url, fake.url, str(lease)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        port = self.process.stdout.readline().strip()
        assert port.isdigit(), self.process.stderr.read()
        self.send = SlackSender(f"http://127.0.0.1:{port}", fake.response_url)
        self.send._ids = iter(range(first_id, first_id + 1000))  # response_url names differ between bots

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def announcements(fake) -> str:
    """The announcement channel's id: the bot posts there by id, as Slack needs for joining."""
    return next(c.id for c in fake.channels.values() if c.name == "crisis-announcements")


@contextmanager
def world():
    fake = HoldingSlack().start()
    for user in USERS:
        fake.add_user(user)
    general = fake.add_channel("general", members=USERS)
    fake.add_channel("crisis-announcements", members=("UBOSS",))
    bots: list[Bot] = []

    def start_bot(database_url: str, lease: float = 30.0) -> Bot:
        bots.append(Bot(database_url, fake, lease, first_id=1000 * (len(bots) + 1)))
        return bots[-1]

    try:
        yield fake, general, start_bot
    finally:
        for bot in bots:
            bot.stop()
        fake.stop()


def answers(fake: HoldingSlack, name: str, count: int = 1, timeout: float = 15.0) -> list[str]:
    calls = fake.wait_for("response_url", count=count, timeout=timeout, predicate=lambda c: c.url_name == name)
    return [c.params.get("text", "") for c in calls]


def count(db, model) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(model))


def started(fake: HoldingSlack, bot: Bot, general: str) -> str:
    _, name = bot.send.command(START, channel=general)
    channel = answers(fake, name)[0].split("<#")[1].split(">")[0]
    fake.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == announcements(fake))
    return channel


# -- 7. the same start on two instances ------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif(not os.environ.get("CRISISBOT_TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_a_start_delivered_to_two_processes_opens_one_room(database_url, db):
    with world() as (fake, general, start_bot):
        one, two = start_bot(database_url), start_bot(database_url)
        hold = fake.hold("conversations.create")
        body, name = one.send.command_body(START, channel=general)
        assert one.send.post(body).status == 200
        assert hold.arrived.wait(15)
        assert two.send.post(body).status == 200  # the same request (same trigger id) on the other instance
        time.sleep(1)
        hold.release()

        told = answers(fake, name, count=2)
        creates = fake.calls_to("conversations.create")
        assert len(creates) == 1
        channel = creates[0].response["channel"]["id"]
        assert all(f"<#{channel}>" in text for text in told), told
        time.sleep(1)
        assert len(fake.channels[channel].messages) == 7
        announced = [c for c in fake.calls_to("chat.postMessage") if c.params["channel"] == announcements(fake)]
        assert len(announced) == 1
        assert count(db, Incident) == 1


# -- 9. the same draft, form and export on two instances ------------------------------------------

@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif(not os.environ.get("CRISISBOT_TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_a_draft_and_an_update_form_delivered_to_two_processes_happen_once(database_url, db):
    with world() as (fake, general, start_bot):
        one, two = start_bot(database_url), start_bot(database_url)
        channel = started(fake, one, general)

        body, _ = one.send.command_body("draft free We are aware.", channel=channel)
        both([lambda: one.send.post(body), lambda: two.send.post(body)])
        fake.wait_for("chat.postMessage", predicate=lambda c: "drafted statement 1" in c.params.get("text", ""))

        one.send.command("update", channel=channel)
        form = fake.wait_for("views.open")[-1].response["view"]
        values = {"known": "Batch 42 affected", "doing": "Recall prepared", "next": ""}
        both([lambda: one.send.submit(form, values), lambda: two.send.submit(form, values)])
        fake.wait_for("chat.postEphemeral", predicate=lambda c: "already posted" in c.params.get("text", ""))
        time.sleep(1)

        assert count(db, Statement) == 1
        drafted = [c for c in fake.calls_to("chat.postMessage") if "drafted statement" in c.params.get("text", "")]
        assert len(drafted) == 1
        updates = [c for c in fake.calls_to("chat.postMessage") if "Batch 42 affected" in c.params.get("text", "")]
        assert sorted(c.params["channel"] for c in updates) == sorted([channel, announcements(fake)])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.skipif(not os.environ.get("CRISISBOT_TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_an_export_clicked_on_two_processes_uploads_one_file(database_url, db):
    with world() as (fake, general, start_bot):
        one, two = start_bot(database_url), start_bot(database_url)
        channel = started(fake, one, general)
        one.send.command("resolve", channel=channel)
        fake.wait_for("conversations.setTopic", predicate=lambda c: "Resolved" in c.params["topic"])
        one.send.command("close", channel=channel)
        fake.wait_for("conversations.setTopic", predicate=lambda c: "Closed" in c.params["topic"])

        hold = fake.hold("files.completeUploadExternal", after=False)
        one.send.command("export", user="U2", channel=channel)
        assert hold.arrived.wait(15)
        _, name = two.send.command("export", user="U3", channel=channel)
        assert answers(fake, name) == ["The export is already on its way to this channel."]
        hold.release()
        fake.wait_for("files.completeUploadExternal")
        time.sleep(1)
        assert len(fake.uploaded_files(channel)) == 1


def both(actions) -> None:
    threads = [threading.Thread(target=action) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)


# -- 8. kill -9 during a start ---------------------------------------------------------------------

def test_a_start_killed_after_its_channel_was_made_is_finished_by_the_next_process(database_url, db):
    with world() as (fake, general, start_bot):
        first = start_bot(database_url, lease=1)
        hold = fake.hold("conversations.create")  # made in Slack; the answer never reaches the bot
        first.send.command(START, channel=general)
        assert hold.arrived.wait(15)
        first.kill()
        hold.release()
        assert count(db, Incident) == 1
        made = fake.calls_to("conversations.create")[0].response["channel"]["id"]
        assert fake.channels[made].messages == {}
        time.sleep(1.2)  # its opening lease runs out

        start_bot(database_url, lease=1)  # its sweep at start finds the channel by its name
        dm = fake.wait_for("chat.postMessage", timeout=20, predicate=lambda c: c.params["channel"] == "U1")[0]
        assert dm.params["text"] == (f"Opening CRISIS-1 “Charger overheats” was interrupted; I finished it: "
                                     f"the incident is open in <#{made}>. Claim your roles there.")
        time.sleep(1)
        assert len(fake.calls_to("conversations.create")) == 1
        assert len(fake.channels[made].messages) == 7
        with db.transaction() as s:
            incident = s.scalar(select(Incident))
            assert (incident.channel_id, incident.opening_until) == (made, None)


def test_a_start_killed_before_its_channel_was_made_is_rolled_back_by_the_next_process(database_url, db):
    with world() as (fake, general, start_bot):
        first = start_bot(database_url, lease=1)
        hold = fake.hold("conversations.create", after=False)  # killed before Slack made anything
        first.send.command(START, channel=general)
        assert hold.arrived.wait(15)
        first.kill()
        hold.abandon()
        fake.unhold("conversations.create")
        assert count(db, Incident) == 1
        time.sleep(1.2)  # its opening lease runs out

        second = start_bot(database_url, lease=1)
        dm = fake.wait_for("chat.postMessage", timeout=20, predicate=lambda c: c.params["channel"] == "U1")[0]
        assert "was interrupted before its channel was made, so I removed it" in dm.params["text"]
        assert count(db, Incident) == 0
        assert fake.calls_to("conversations.create") == []
        assert "CRISIS-1 is open" in answers(fake, second.send.command(START, channel=general)[1])[0]
