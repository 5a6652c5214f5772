"""Slack end to end: signed requests through the real Bolt app, answered by the fake Web API."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest

from handlers.slack.app import SlackBot
from handlers.slack.server import web_app
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET, ServedApp, SlackSender

USERS = ("U1", "U2", "U3", "UBOSS")


class Room:
    """One Slack workspace with our bot in it: the fake Slack, the served app, a request sender."""

    def __init__(self, core, fake: FakeSlack, served: ServedApp):
        self.core, self.fake, self.served = core, fake, served
        self.send = SlackSender(served.url, fake.response_url)
        self.general = fake.add_channel("general", members=USERS)
        self.announcements = fake.add_channel("crisis-announcements", members=("UBOSS",))

    def private_answers(self, name: str, timeout: float = 5.0) -> list[str]:
        calls = self.fake.wait_for("response_url", predicate=lambda c: c.url_name == name, timeout=timeout)
        return [c.params.get("text", "") for c in calls]

    def start(self, text: str = "sev2 defective-product Charger overheats", user: str = "U1"):
        reply, name = self.send.command(f"start {text}", user=user, channel=self.general)
        assert reply.status == 200
        answer = self.private_answers(name)[0]
        created = self.fake.calls_to("conversations.create")[-1]
        return created.response["channel"]["id"], answer

    def messages(self, channel: str) -> dict:
        return self.fake.channels[channel].messages

    def standing(self, channel: str, key: str) -> tuple[str, dict]:
        """The posted message of a standing key (header, roster, checklist:STEP): its ts and content."""
        posted = self.core.posted(self.core.incident_in_channel("T1", channel), "slack")
        ts = posted[key].message_ref
        return ts, self.messages(channel)[ts]

    def settle(self, seconds: float = 0.3) -> None:
        # Work runs after the ack; give it a moment before asserting that nothing else happened.
        time.sleep(seconds)


@contextmanager
def slack_room(core, users=USERS):
    """A fake Slack with these users, and our app served against it."""
    fake = FakeSlack().start()
    for user in users:
        fake.add_user(user)
    served = ServedApp(web_app(SlackBot(core, "xoxb-test", SECRET, base_url=fake.url))).start()
    try:
        yield Room(core, fake, served)
    finally:
        served.stop()
        fake.stop()


@pytest.fixture
def room(core):
    with slack_room(core) as the_room:
        yield the_room


def button(message: dict, action_prefix: str, value: str) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            action_id = element.get("action_id", "")
            if action_id.startswith(action_prefix + "|") and action_id.endswith("|" + value):
                return action_id
    raise AssertionError(f"no {action_prefix} button for {value}")


def texts(message: dict) -> str:
    out = []
    for block in message["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                out.append(element["text"])
    return "\n".join(out)


def test_start_opens_a_room_with_roster_checklist_topic_and_announcement(room):
    reply, name = room.send.command("start sev2 defective-product Ladegeräte überhitzen 🔥", channel=room.general)
    assert reply.status == 200
    assert "Opening the crisis room" in reply.body

    answer = room.private_answers(name)[0]
    create = room.fake.calls_to("conversations.create")[0]
    channel = create.response["channel"]["id"]
    assert create.params["name"] == "2026-11-22-crisis-1-ladegeraete-ueberhitzen"
    assert f"<#{channel}>" in answer and "CRISIS-1" in answer

    members = room.fake.channels[channel].members
    assert {"U1", "UBOSS"} <= members  # the reporter and the playbook's standing member
    assert room.fake.channels[channel].topic.startswith("CRISIS-1 · SEV2 · High")

    posted = room.messages(channel)
    assert len(posted) == 7  # header, roster, five checklist steps
    header = texts(room.standing(channel, "header")[1])
    assert "CRISIS-1: Ladegeräte überhitzen 🔥" in header and "<@U1>" in header and "SEV2" in header
    roster = room.standing(channel, "roster")[1]
    assert button(roster, "role.claim", "legal")
    assert any(e.get("type") == "users_select" for b in roster["blocks"] for e in b.get("elements", []))
    assess = room.standing(channel, "checklist:assess")[1]
    assert button(assess, "item.done", "gather-facts") and button(assess, "item.skip", "gather-facts")

    announcement = room.messages(room.announcements)
    assert len(announcement) == 1
    assert f"<#{channel}>" in next(iter(announcement.values()))["text"]


def test_claim_updates_the_roster_in_place(room):
    channel, _ = room.start()  # sev2: acknowledge within 30 min, updates every hour
    ts, roster = room.standing(channel, "roster")
    header_ts, header = room.standing(channel, "header")
    assert "Next deadline: internal acknowledgement at 2026-11-22 02:30 UTC" in texts(header)
    posts_before = len(room.fake.calls_to("chat.postMessage"))

    reply, _ = room.send.click(button(roster, "role.claim", "legal"), "U2", channel)
    assert reply.status == 200
    # The first claim by someone besides the reporter also acknowledges: header and roster are edited.
    updates = room.fake.wait_for("chat.update", count=2)
    assert {u.params["ts"] for u in updates} == {ts, header_ts}
    assert "<@U2>" in texts(room.messages(channel)[ts])
    assert "Next deadline: next status update at 2026-11-22 03:00 UTC" in texts(room.messages(channel)[header_ts])
    room.fake.wait_for("chat.postMessage", count=posts_before + 1)
    new_posts = room.fake.calls_to("chat.postMessage")[posts_before:]
    assert [c.params["text"] for c in new_posts] == ["<@U2> now holds *Legal*."]
    with pytest.raises(AssertionError):
        button(room.messages(channel)[ts], "role.claim", "legal")  # the claim button is gone


def test_claim_of_a_held_role_is_refused_privately(room):
    channel, _ = room.start()
    _, roster = room.standing(channel, "roster")
    action = button(roster, "role.claim", "legal")
    room.send.click(action, "U2", channel)
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "now holds" in c.params.get("text", ""))
    room.fake.clear_calls()

    _, name = room.send.click(action, "U3", channel)
    answer = room.private_answers(name)[0]
    assert "held by <@U2>" in answer
    room.settle()
    assert room.fake.calls_to("chat.update") == [] and room.fake.calls_to("chat.postMessage") == []


def test_assign_with_the_user_picker_hands_a_role_over(room):
    channel, _ = room.start()
    _, roster = room.standing(channel, "roster")
    picker = next(e["action_id"] for b in roster["blocks"] for e in b.get("elements", [])
                  if e.get("type") == "users_select" and e["action_id"].endswith("|comms"))
    room.send.click(picker, "U1", channel, selected_user="U3")
    notice = room.fake.wait_for("chat.postMessage", predicate=lambda c: "assigned" in c.params.get("text", ""))
    assert notice[0].params["text"] == "<@U1> assigned *PR / communications* to <@U3>."
    assert "U3" in room.fake.channels[channel].members


def test_checklist_done_by_owner_updates_in_place_and_refuses_others(room):
    channel, _ = room.start()
    ts, assess = room.standing(channel, "checklist:assess")
    done = button(assess, "item.done", "secure-evidence")  # owned by the social-media manager

    room.send.click(button(room.standing(channel, "roster")[1], "role.claim", "social"), "U2", channel)
    room.fake.wait_for("chat.update")
    _, name = room.send.click(done, "U3", channel)  # U3 holds no role
    assert "belongs to *Social-media manager*" in room.private_answers(name)[0]

    room.fake.clear_calls()
    room.send.click(done, "U2", channel)
    room.fake.wait_for("chat.update", predicate=lambda c: c.params["ts"] == ts)
    line = texts(room.messages(channel)[ts])
    assert ":white_check_mark: ~Find the original post" in line and "done by <@U2>" in line


def test_a_repeated_click_counts_once(room):
    channel, _ = room.start()
    _, assess = room.standing(channel, "checklist:assess")
    done = button(assess, "item.done", "gather-facts")
    _, first = room.send.click(done, "U1", channel)
    _, second = room.send.click(done, "U1", channel)
    # Both are worked on at once after their acks; whichever comes second is told it is already done.
    answered = room.fake.wait_for("response_url", predicate=lambda c: c.url_name in (first, second))
    assert len(answered) == 1 and "already done" in answered[0].params["text"]
    incident = room.core.incident_in_channel("T1", channel)
    assert [e.kind for e in room.core.timeline(incident)].count("item.done") == 1


def test_severity_only_by_the_lead_and_header_updates(room):
    channel, _ = room.start()
    _, name = room.send.command("severity sev1", user="U2", channel=channel)
    assert "Only the lead (<@U1>) can change the severity" in room.private_answers(name)[0]

    ts, _ = room.standing(channel, "header")
    room.send.command("severity sev1", user="U1", channel=channel)
    room.fake.wait_for("chat.update", predicate=lambda c: c.params["ts"] == ts)
    assert "SEV1 · Critical" in texts(room.messages(channel)[ts])
    room.fake.wait_for("conversations.setTopic", count=2)
    assert room.fake.channels[channel].topic.startswith("CRISIS-1 · SEV1")
    raised = room.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == room.announcements
                                and "raised" in c.params.get("text", ""))
    assert raised


def test_commands_outside_an_incident_channel_explain_privately(room):
    _, name = room.send.command("status", user="U1", channel=room.general)
    assert "works inside an incident channel" in room.private_answers(name)[0]


@pytest.mark.parametrize("text, expected", [
    ("start", None),  # opens the modal; checked separately
    ("start sev9 Title", "“sev9” is not a severity here"),
    ("start sev2", "A crisis needs a title"),
    ("start " + "x" * 500, "The title has 500 characters; keep it to 150"),
    ("frobnicate", "I don't know “/crisis frobnicate”"),
    ("assign U2", "Usage: /crisis assign"),
])
def test_bad_commands_answer_in_the_ack_and_change_nothing(room, text, expected):
    if expected is None:
        return
    reply, _ = room.send.command(text, channel=room.general)
    assert reply.status == 200
    assert expected in reply.json().get("text", reply.body)
    room.settle(0.2)
    assert room.fake.calls_to("conversations.create") == []
    assert room.core.incident_by_ref("T1", "CRISIS-1") is None


def test_status_resolve_and_buttons_gone_afterwards(room):
    channel, _ = room.start()
    _, name = room.send.command("status", user="U2", channel=channel)
    assert "CRISIS-1: Charger overheats" in room.private_answers(name)[0]

    room.send.command("resolve", user="U1", channel=channel)
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "resolved" in c.params.get("text", "")
                       and c.params["channel"] == channel)
    room.fake.wait_for("chat.update", count=7)
    for message in room.messages(channel).values():
        for block in message["blocks"] or []:
            # Only the after-resolve items (the debrief, the lessons) keep their buttons until close.
            ids = [e["action_id"] for e in block.get("elements", []) if "action_id" in e]
            if ids and all(i.endswith(("|hold-debrief", "|record-lessons")) for i in ids):
                continue
            assert block["type"] != "actions" and "accessory" not in block
    _, name = room.send.click("item.done|1|gather-facts", "U1", channel)
    assert "CRISIS-1 is resolved" in room.private_answers(name)[0]


def test_channel_name_taken_gets_a_suffix(room):
    room.fake.add_channel("2026-11-22-crisis-1-charger-overheats")
    channel, _ = room.start()
    assert room.fake.channels[channel].name == "2026-11-22-crisis-1-charger-overheats-2"


def test_failed_channel_creation_leaves_no_incident(room):
    room.fake.fail_next("conversations.create", "restricted_action")
    reply, name = room.send.command("start sev2 Charger overheats", channel=room.general)
    assert reply.status == 200
    assert "could not create the incident channel (restricted_action)" in room.private_answers(name)[0]
    assert room.core.incident_by_ref("T1", "CRISIS-1") is None
    channel, _ = room.start()  # the number was given back
    assert room.fake.channels[channel].name.startswith("2026-11-22-crisis-1-")


def test_the_start_modal_opens_validates_and_starts(room):
    reply, name = room.send.command("start", channel=room.general)
    assert reply.status == 200
    view = room.fake.wait_for("views.open")[0].response["view"]
    assert view["callback_id"] == "crisis.start"

    bad = room.send.submit(view, {"title": "   ", "type": "data-leak", "severity": "1", "description": None})
    assert bad.status == 200
    assert "title" in bad.json()["errors"]
    assert room.fake.calls_to("conversations.create") == []

    good = room.send.submit(view, {"title": "Kundendaten öffentlich", "type": "data-leak", "severity": "1",
                                   "description": "A CSV with <!channel> in it"})
    assert good.status == 200 and good.body == ""
    answer = room.private_answers(name)[0]
    assert "CRISIS-1 is open" in answer
    channel = room.fake.calls_to("conversations.create")[0].response["channel"]["id"]
    header = texts(room.standing(channel, "header")[1])
    assert "SEV1 · Critical" in header and "Data leak" in header
    assert "&lt;!channel&gt;" in header and "<!channel>" not in header


def test_a_forged_modal_value_is_refused(room):
    room.send.command("start", channel=room.general)
    view = room.fake.wait_for("views.open")[0].response["view"]
    reply = room.send.submit(view, {"title": "X", "type": "no-such-type", "severity": "7", "description": None})
    errors = reply.json()["errors"]
    assert "not a crisis type" in errors["type"] and "not a severity" in errors["severity"]


@pytest.mark.parametrize("headers", [
    {"X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": str(int(time.time()) - 600)},
    {"X-Slack-Signature": ""},
])
def test_unsigned_wrong_or_stale_requests_get_401_and_change_nothing(room, headers):
    body, _ = room.send.command_body("start sev1 Forged", channel=room.general)
    signed = room.send.sign(body)
    if "X-Slack-Request-Timestamp" in headers:
        # A correct signature over an old timestamp: a replayed request.
        signed = room.send.sign(body, timestamp=int(headers["X-Slack-Request-Timestamp"]))
    else:
        signed.update(headers)
    reply = room.send.post(body, headers=signed, signed=False)
    assert reply.status == 401
    room.settle(0.2)
    assert room.fake.calls_to("conversations.create") == []
    assert room.core.incident_by_ref("T1", "CRISIS-1") is None


@pytest.mark.parametrize("body", [
    "payload=%7Bnot+json",
    "payload=" + json.dumps({"type": "block_actions", "actions": [{"action_id": "item.done|x|y"}]}),
    "payload=" + json.dumps({"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"},
                             "actions": [{"action_id": "item.done|999|gather-facts"}],
                             "response_url": "http://127.0.0.1:9/nowhere"}),
])
def test_malformed_payloads_never_give_500(room, body):
    reply = room.send.post(body)
    assert reply.status < 500
    room.settle(0.2)
    assert room.fake.calls_to("chat.postMessage") == []


def test_healthz(room):
    import urllib.request
    with urllib.request.urlopen(room.served.url + "/healthz", timeout=5) as response:
        assert response.status == 200 and json.loads(response.read()) == {"ok": True}


def test_the_crisisbot_slack_command_serves_signed_requests(tmp_path, database_url):
    """The deployed entry point: `crisisbot slack --port N` with the environment the README names."""
    import os
    import socket
    import subprocess
    import sys

    fake = FakeSlack().start()
    fake.add_user("U1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_BASE_URL": fake.url, "DATABASE_URL": database_url, "CRISISBOT_LANGUAGE": "de"}
    process = subprocess.Popen([sys.executable, "-m", "handlers.cli", "slack", "--port", str(port),
                                "--host", "127.0.0.1"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        import urllib.request
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "crisisbot slack did not come up"
                time.sleep(0.1)
        send = SlackSender(f"http://127.0.0.1:{port}", fake.response_url)
        reply, name = send.command("start sev1 Gehackter Account")
        assert reply.status == 200 and "Der Krisenraum für „Gehackter Account“ wird eröffnet" in reply.body
        answer = fake.wait_for("response_url", predicate=lambda c: c.url_name == name, timeout=10)
        assert "CRISIS-1 ist in <#" in answer[0].params["text"]
        unsigned = send.post(send.command_body("start sev1 Forged")[0], signed=False)
        assert unsigned.status == 401
    finally:
        process.terminate()
        process.wait(10)
        fake.stop()
    assert "Traceback" not in process.stderr.read()


def test_a_failed_update_keeps_the_change_and_is_shown_by_status(room):
    channel, _ = room.start()
    ts, roster = room.standing(channel, "roster")
    # Someone acknowledges first (that claim edits the header too), so the claim below edits the roster only.
    room.send.click(button(roster, "role.claim", "social"), "UBOSS", channel)
    room.fake.wait_for("chat.update", count=2)
    room.settle()
    room.fake.clear_calls()
    room.fake.fail_next("chat.update", "fatal_error")
    room.send.click(button(roster, "role.claim", "legal"), "U2", channel)
    assert room.fake.wait_for("chat.update")[0].params["ts"] == ts
    room.settle()
    assert "<@U2>" not in texts(room.messages(channel)[ts])  # Slack refused the edit …
    incident = room.core.incident_in_channel("T1", channel)
    assert [e.kind for e in room.core.timeline(incident)][-1] == "role.assigned"  # … the claim stands

    _, name = room.send.command("status", user="U2", channel=channel)
    assert "Could not be updated: the role roster (fatal_error)" in room.private_answers(name)[0]

    # The next change brings the message up to date, and the warning goes away.
    room.send.click(button(roster, "role.claim", "comms"), "U3", channel)
    room.fake.wait_for("chat.update", count=2)
    room.settle()
    assert "<@U2>" in texts(room.messages(channel)[ts]) and "<@U3>" in texts(room.messages(channel)[ts])
    _, name = room.send.command("status", user="U2", channel=channel)
    assert "could not be updated" not in room.private_answers(name)[0]


def test_a_status_update_posts_here_and_in_announcements_and_sets_the_next(room):
    channel, _ = room.start("sev1 Charger overheats")
    room.send.command("update", user="U1", channel=channel)
    form = room.fake.wait_for("views.open")[-1].response["view"]
    bad = room.send.submit(form, {"known": "Batch 42 affected", "doing": "", "next": "soonish"}, user="U1")
    assert "not a time for the next update" in bad.json()["errors"]["next"]
    empty = room.send.submit(form, {"known": " ", "doing": "", "next": ""}, user="U1")
    assert "needs what we know or what we are doing" in empty.json()["errors"]["known"]

    room.send.submit(form, {"known": "Batch 42 affected", "doing": "Recall prepared", "next": "45m"}, user="U1")
    update = room.fake.wait_for("chat.postMessage", predicate=lambda c: "Status update on CRISIS-1" in
                                c.params.get("text", ""))[0]
    assert update.params["channel"] == channel
    assert "*What we know:* Batch 42 affected" in update.params["text"] and "*Next update:* 02:45 UTC" in \
        update.params["text"]
    announced = room.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] ==
                                   room.announcements and "update by <@U1>" in c.params.get("text", ""))
    assert "Batch 42 affected" in announced[0].params["text"]
    room.settle()
    assert "2026-11-22 02:15 UTC" in texts(room.standing(channel, "header")[1])  # acknowledgement still next
