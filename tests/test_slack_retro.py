"""Closing in Slack, end to end: /crisis close posts the retrospective, lessons learned are added
with its buttons and a modal, the record is exported as a Markdown file, and the channel archived."""

from __future__ import annotations

import asyncio
import logging

import pytest

from handlers.slack.app import SlackBot
from tests.fakes.slack_requests import SECRET
from tests.test_slack import Room, button, slack_room, texts

SUMMARY, COPY = "retrospective", "retrospective:announce"
SECTIONS = ("*Measured*", "*Key moments*", "*Deadlines*", "*Checklist*", "*Roles*", "*Lessons learned*")
POSTING = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "response_url")


@pytest.fixture
def room(core):
    with slack_room(core) as the_room:
        yield the_room


def said(room: Room, fragment: str, channel: str | None = None, count: int = 1) -> list:
    """Wait until the bot posted a message containing the fragment (in the channel, if given)."""
    return room.fake.wait_for("chat.postMessage", count=count, timeout=5, predicate=lambda c: (
        fragment in c.params.get("text", "") and (channel is None or c.params["channel"] == channel)))


def incident(room: Room, channel: str) -> int:
    return room.core.incident_in_channel("T1", channel)


def resolved(room: Room) -> str:
    """CRISIS-1 (sev2, announced), led by its reporter U1; U2 claims legal after 12 minutes (which
    acknowledges it) and U1 resolves it 40 minutes in."""
    channel, _ = room.start()
    _, roster = room.standing(channel, "roster")
    room.core.clock.advance(minutes=12)
    room.send.click(button(roster, "role.claim", "legal"), "U2", channel)
    said(room, "<@U2> now holds", channel)
    room.core.clock.advance(minutes=28)
    room.send.command("resolve", user="U1", channel=channel)
    said(room, "was resolved by <@U1>", room.announcements)  # the last thing resolving posts
    return channel


def closed(room: Room) -> str:
    """Resolved, then closed by the lead a day later."""
    channel = resolved(room)
    room.core.clock.advance(days=1)
    room.send.command("close", user="U1", channel=channel)
    # Closing sets the topic last, after the summary, its copy and the notice.
    room.fake.wait_for("conversations.setTopic", predicate=lambda c: "Closed" in c.params["topic"])
    return channel


def summary(room: Room, channel: str) -> tuple[str, dict]:
    return room.standing(channel, SUMMARY)


def copy(room: Room, channel: str) -> tuple[str, dict]:
    row = room.core.posted(incident(room, channel), "slack")[COPY]
    return row.message_ref, room.messages(row.channel_id)[row.message_ref]


def actions(message: dict) -> list[str]:
    return [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def answered(room: Room, name: str) -> list[str]:
    """Private answers given so far to one command or click (without waiting for one)."""
    return [c.params.get("text", "") for c in room.fake.calls_to("response_url") if c.url_name == name]


def refused_calls(room: Room) -> list:
    """Calls Slack refused: the fake rejects invalid Block Kit, unknown channels, archived channels …"""
    return [(c.method, c.error, c.response.get("response_metadata")) for c in room.fake.calls
            if c.method in POSTING and not c.ok]


def submit_lesson(room: Room, view: dict, text: str | None, owner: str | None = None, user: str = "U2"):
    """Submits the lesson modal as Slack does: the text input and, for action items, the user picker."""
    values = {"text": {"text": {"type": "plain_text_input", "value": text}}}
    if any(b.get("block_id") == "owner" for b in view["blocks"]):
        values["owner"] = {"owner": {"type": "users_select", "selected_user": owner}}
    payload = {"type": "view_submission", "team": {"id": "T1", "domain": "brand"},
               "user": {"id": user, "username": user.lower(), "team_id": "T1"}, "api_app_id": "A1",
               "token": "legacy", "trigger_id": f"trigger.lesson.{user}",
               "view": {**view, "team_id": "T1", "state": {"values": values}, "hash": "h"},
               "response_urls": []}
    return room.send.post(room.send.interaction_body(payload))


def open_lesson(room: Room, channel: str, kind: str, user: str = "U2") -> dict:
    opened = len(room.fake.calls_to("views.open"))
    room.send.click(button(summary(room, channel)[1], f"lesson.{kind}", kind), user, channel)
    call = room.fake.wait_for("views.open", count=opened + 1)[-1]
    assert call.ok, call.response
    return call.response["view"]


# -- closing ----------------------------------------------------------------------------------


def test_close_posts_the_retrospective_here_and_in_announcements(room):
    channel = resolved(room)
    before = len(room.fake.calls_to("chat.postMessage")), len(room.fake.calls_to("chat.update"))

    _, name = room.send.command("close", user="U2", channel=channel)
    assert room.private_answers(name) == ["Only the lead (<@U1>) can close the incident."]
    room.settle()
    assert (len(room.fake.calls_to("chat.postMessage")), len(room.fake.calls_to("chat.update"))) == before
    assert SUMMARY not in room.core.posted(incident(room, channel), "slack")

    room.core.clock.advance(days=1)
    reply, name = room.send.command("close", user="U1", channel=channel)
    assert reply.status == 200 and reply.body == ""
    said(room, "<@U1> closed CRISIS-1", channel)
    room.fake.wait_for("conversations.setTopic", predicate=lambda c: "Closed" in c.params["topic"])

    _, message = summary(room, channel)
    shown = texts(message)
    assert message["text"] == ":memo: Retrospective of CRISIS-1: Charger overheats"
    for section in SECTIONS:
        assert section in shown, section
    assert "closed 2026-11-23 02:40 UTC by <@U1>" in shown
    assert "Time to acknowledge: *12 min*" in shown and "Time to resolve: *40 min*" in shown
    assert "• post-crisis review, due 2026-11-27 02:40 UTC: met, 4 d 0 h early" in shown  # 5 d after resolve
    assert "Acknowledged: <@U2> took the role Legal" in shown and "Closed by <@U1>" in shown
    assert "• Legal: <@U2> 02:12 UTC–end" in shown
    assert "_None yet: add what went well" in shown
    assert actions(message) == ["lesson.well|1|well", "lesson.improve|1|improve", "lesson.action|1|action",
                                "retro.export|1|md", "retro.archive|1|now"]

    copy_ts, announced = copy(room, channel)
    assert copy_ts in room.messages(room.announcements)
    for section in SECTIONS:
        assert section in texts(announced), section
    assert f"Add lessons learned in <#{channel}>" in texts(announced)
    assert actions(announced) == []  # the buttons work in the incident channel only

    review = {d.kind: d for d in room.core.retrospective(incident(room, channel)).deadlines}["review"]
    assert review.state == "met" and review.closed_at == room.core.clock()
    assert answered(room, name) == []  # closing needs no private answer
    assert refused_calls(room) == []  # every block passed the fake's Block Kit checks


def test_the_closed_notice_follows_the_summary_and_does_not_point_elsewhere(room):
    channel = closed(room)
    summary_ts, _ = summary(room, channel)
    notice_ts = next(ts for ts, m in room.messages(channel).items() if "closed CRISIS-1" in m["text"])
    notice = room.messages(channel)[notice_ts]["text"]
    # The console prints notices first and Slack posts them last: the text must be true in both.
    assert float(summary_ts) < float(notice_ts)
    assert "Here is the retrospective" in notice and "below" not in notice and "above" not in notice


def test_closing_twice_answers_privately_and_posts_nothing(room):
    channel = closed(room)
    calls = len(room.fake.calls_to("chat.postMessage")), len(room.fake.calls_to("chat.update"))

    _, name = room.send.command("close", user="U1", channel=channel)
    answer = room.private_answers(name)[0]
    assert "CRISIS-1 was already closed by <@U1>" in answer and "nothing changed" in answer
    room.settle()
    assert (len(room.fake.calls_to("chat.postMessage")), len(room.fake.calls_to("chat.update"))) == calls
    assert [e.kind for e in room.core.timeline(incident(room, channel))].count("incident.closed") == 1


def test_close_before_resolve_is_refused(room):
    channel, _ = room.start()
    _, name = room.send.command("close", user="U1", channel=channel)
    assert "is not resolved yet" in room.private_answers(name)[0]
    room.settle(0.2)
    assert SUMMARY not in room.core.posted(incident(room, channel), "slack")


# -- lessons learned ----------------------------------------------------------------------------


def test_a_lesson_updates_the_summary_and_its_copy_in_place(room):
    channel = closed(room)
    ts, _ = summary(room, channel)
    copy_ts, _ = copy(room, channel)
    posts = len(room.fake.calls_to("chat.postMessage"))

    view = open_lesson(room, channel, "well")
    assert view["callback_id"] == "crisis.lesson"
    assert [b["block_id"] for b in view["blocks"]] == ["text"]
    assert view["title"]["text"] == "What went well"

    reply = submit_lesson(room, view, "The holding statement\nwent out   fast.")
    assert reply.status == 200 and reply.body == ""
    updates = room.fake.wait_for("chat.update", count=2, predicate=lambda c: c.params["ts"] in (ts, copy_ts))
    assert {u.params["ts"] for u in updates} == {ts, copy_ts}
    thanks = room.fake.wait_for("chat.postEphemeral")[0]
    assert thanks.params["user"] == "U2" and thanks.params["text"] == "Thanks: added to what went well."
    assert thanks.params["channel"] == channel

    assert summary(room, channel)[0] == ts and copy(room, channel)[0] == copy_ts  # edited, not reposted
    lesson = "What went well:\n• The holding statement went out fast. (<@U2>)"
    assert lesson in texts(room.messages(channel)[ts])
    # The announcement channel is broad: its copy names people (users.info), it does not ping them.
    assert lesson.replace("<@U2>", "@u2") in texts(room.messages(room.announcements)[copy_ts])
    assert "<@" not in texts(room.messages(room.announcements)[copy_ts])
    assert "_None yet" not in texts(room.messages(channel)[ts])

    # What someone writes cannot ping the channel (here and in the announcement channel).
    view = open_lesson(room, channel, "improve", user="UBOSS")
    submit_lesson(room, view, "<!channel> heard of it from @here, not from us", user="UBOSS")
    room.fake.wait_for("chat.update", count=4, predicate=lambda c: c.params["ts"] in (ts, copy_ts))
    improve = "What to improve:\n• &lt;!channel&gt; heard of it from @\u2060here, not from us (<@UBOSS>)"
    here = texts(room.messages(channel)[ts])
    assert improve in here and lesson in here  # the first lesson stays
    broad = texts(room.messages(room.announcements)[copy_ts])
    assert improve.replace("<@UBOSS>", "@uboss") in broad and lesson.replace("<@U2>", "@u2") in broad
    room.settle(0.2)
    assert len(room.fake.calls_to("chat.postMessage")) == posts  # nothing new, only the edits
    assert [(x.kind, x.author) for x in room.core.retrospective(incident(room, channel)).lessons] == [
        ("well", "U2"), ("improve", "UBOSS")]
    assert refused_calls(room) == []


def test_an_action_item_names_its_owner(room):
    channel = closed(room)
    ts, _ = summary(room, channel)

    view = open_lesson(room, channel, "action")
    assert [b["block_id"] for b in view["blocks"]] == ["text", "owner"]
    assert view["blocks"][1]["element"]["type"] == "users_select"
    submit_lesson(room, view, "Pre-approve a recall template", owner="U3")

    notice = said(room, "New action item", channel)[0]
    assert notice.params["text"] == ":memo: New action item for <@U3> from <@U2>: Pre-approve a recall template"
    room.fake.wait_for("chat.update", predicate=lambda c: c.params["ts"] == ts)  # edited before the notice
    thanks = room.fake.wait_for("chat.postEphemeral")[0]
    assert thanks.params["text"] == "Thanks: added to the action items."
    assert "Action items:\n• Pre-approve a recall template: *<@U3>*" in texts(room.messages(channel)[ts])
    lessons = room.core.retrospective(incident(room, channel)).lessons
    assert [(x.kind, x.owner, x.author) for x in lessons] == [("action", "U3", "U2")]


@pytest.mark.parametrize("kind, text, owner, field, error", [
    ("action", "Pre-approve a recall template", None, "owner", "An action item needs an owner"),
    ("well", "   \n ", None, "text", "Write the lesson first"),
    ("improve", "x" * 501, None, "text", "That lesson has 501 characters; keep it to 500"),
])
def test_an_incomplete_lesson_keeps_the_form_open_and_changes_nothing(room, kind, text, owner, field, error):
    channel = closed(room)
    ts, before = summary(room, channel)
    room.fake.clear_calls()

    view = open_lesson(room, channel, kind)
    reply = submit_lesson(room, view, text, owner=owner)
    answer = reply.json()
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [field] and answer["errors"][field].startswith(error)
    room.settle()
    assert room.fake.calls_to("chat.update") == [] and room.fake.calls_to("chat.postMessage") == []
    assert room.fake.calls_to("chat.postEphemeral") == []
    assert room.messages(channel)[ts] == before
    assert room.core.retrospective(incident(room, channel)).lessons == ()


# -- export -------------------------------------------------------------------------------------


def test_export_uploads_the_markdown_file_to_the_channel(room):
    # A user without a display name is shown by their real name, as Slack does.
    room.fake.add_user("U2", real_name="Dana Scully", profile={"display_name": "", "real_name": "Dana Scully"})
    channel = closed(room)

    reply, name = room.send.command("export", user="U2", channel=channel)
    assert reply.status == 200
    room.fake.wait_for("files.completeUploadExternal")
    files = room.fake.uploaded_files(channel)
    assert len(files) == 1 and room.fake.uploaded_files() == files
    upload = files[0]
    assert upload["filename"] == "crisis-1-retrospective.md"
    assert upload["title"] == "Retrospective of CRISIS-1: Charger overheats"
    assert upload["initial_comment"].startswith(":page_facing_up: The retrospective of CRISIS-1")
    content = upload["content"]
    assert content.startswith("# Retrospective of CRISIS-1: Charger overheats\n")
    for heading in ("## Measured", "## Deadlines", "## Checklist", "## Lessons learned"):
        assert f"\n{heading}\n" in content, heading
    assert "\n## Timeline (" in content and "closed the incident" in content.split("## Timeline")[1]
    assert "@u1 (U1)" in content  # users.info of the fake: display_name = name = the id in lower case
    assert "@Dana Scully (U2)" in content
    room.settle(0.2)
    assert answered(room, name) == []

    # The Export button gives the same file.
    room.send.click(button(summary(room, channel)[1], "retro.export", "md"), "U3", channel)
    room.fake.wait_for("files.completeUploadExternal", count=2)
    files = room.fake.uploaded_files(channel)
    assert len(files) == 2
    assert files[1]["filename"] == upload["filename"] and files[1]["content"] == content
    assert refused_calls(room) == []


@pytest.mark.parametrize("method", ["files.completeUploadExternal", "files.getUploadURLExternal"])
def test_a_failed_upload_is_explained_privately(room, caplog, method):
    channel = closed(room)
    room.fake.fail_next(method, "not_in_channel")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _, name = room.send.command("export", user="U2", channel=channel)
        answer = room.private_answers(name)[0]
    assert answer == ("I could not upload the export (not_in_channel). "
                      "`crisisbot export` writes the same file on the server.")
    assert room.fake.uploaded_files() == []
    assert "export upload failed: not_in_channel" in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

    # Nothing is stuck: the next export works.
    room.send.command("export", user="U2", channel=channel)
    room.fake.wait_for("files.completeUploadExternal", predicate=lambda c: c.ok)
    assert [f["filename"] for f in room.fake.uploaded_files(channel)] == ["crisis-1-retrospective.md"]


# -- archive ------------------------------------------------------------------------------------


def test_only_the_lead_archives_and_the_summary_loses_its_buttons(room):
    channel = closed(room)
    ts, message = summary(room, channel)
    archive = button(message, "retro.archive", "now")

    _, name = room.send.click(archive, "U2", channel)
    assert room.private_answers(name) == ["Only the lead (<@U1>) can archive the channel."]
    room.settle()
    assert room.fake.calls_to("conversations.archive") == []
    assert not room.fake.channels[channel].is_archived
    assert room.core.retrospective(incident(room, channel)).archived_at is None

    room.fake.clear_calls()
    _, name = room.send.click(archive, "U1", channel)
    room.fake.wait_for("conversations.archive")
    assert room.fake.channels[channel].is_archived
    assert answered(room, name) == []  # the notice in the channel says it all
    calls = room.fake.calls
    notice = next(i for i, c in enumerate(calls) if c.method == "chat.postMessage"
                  and "<@U1> archives this channel now" in c.params.get("text", ""))
    edit = next(i for i, c in enumerate(calls) if c.method == "chat.update" and c.params["ts"] == ts)
    archived = next(i for i, c in enumerate(calls) if c.method == "conversations.archive")
    assert max(notice, edit) < archived  # an archived channel takes no posts
    assert calls[archived].ok and calls[archived].params["channel"] == channel

    after = room.messages(channel)[ts]
    assert actions(after) == []
    assert "The channel is archived." in texts(after)
    assert room.core.retrospective(incident(room, channel)).archived_at is not None
    assert refused_calls(room) == []

    # A second press (from a screen not yet refreshed) is answered privately.
    _, name = room.send.click(archive, "U1", channel)
    assert room.private_answers(name) == ["The channel of CRISIS-1 is already archived."]


def test_a_refused_archive_is_reported_in_the_channel_and_the_buttons_return(room):
    channel = closed(room)
    ts, message = summary(room, channel)
    room.fake.fail_next("conversations.archive", "restricted_action")
    room.fake.clear_calls()

    room.send.command("archive", user="U1", channel=channel)
    said(room, "I could not archive this channel (restricted_action)", channel)
    # The summary lost its buttons before the attempt and got them back after it.
    edits = room.fake.wait_for("chat.update", count=2, predicate=lambda c: c.params["ts"] == ts)
    assert [actions({"blocks": e.params["blocks"]}) for e in edits] == [[], actions(message)]

    assert not room.fake.channels[channel].is_archived
    assert [c.error for c in room.fake.calls_to("conversations.archive")] == ["restricted_action"]
    assert actions(room.messages(channel)[ts]) == actions(message)  # the buttons are back
    assert "The channel is archived." not in texts(room.messages(channel)[ts])
    retro = room.core.retrospective(incident(room, channel))
    assert retro.archived_at is None
    kinds = [e.kind for e in room.core.timeline(incident(room, channel))]
    assert kinds[-2:] == ["channel.archived", "channel.archive_failed"]

    # The lead can try again, and this time Slack archives it.
    room.send.click(button(room.messages(channel)[ts], "retro.archive", "now"), "U1", channel)
    room.fake.wait_for("conversations.archive", count=2)
    room.settle(0.2)
    assert room.fake.channels[channel].is_archived
    assert room.core.retrospective(incident(room, channel)).archived_at is not None


def test_a_lesson_form_left_open_over_the_archive_is_refused_in_a_dm(room):
    channel = closed(room)
    view = open_lesson(room, channel, "well")
    room.send.command("archive", user="U1", channel=channel)
    room.fake.wait_for("conversations.archive")

    reply = submit_lesson(room, view, "The holding statement went out fast")
    assert reply.status == 200 and reply.body == ""
    # The archived channel takes no private answer either, so it comes as a direct message.
    dm = room.fake.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "U2")[0]
    assert dm.params["text"] == "The channel of CRISIS-1 is archived; lessons can no longer be added."
    assert room.core.retrospective(incident(room, channel)).lessons == ()


def test_a_double_clicked_export_uploads_one_file(room):
    channel = closed(room)
    bot = SlackBot(room.core, "xoxb-test", SECRET, base_url=room.fake.url)
    told: list[str] = []

    async def respond(text: str, **_ignored) -> None:
        told.append(text)

    async def two_clicks() -> None:
        # The second export starts while the first is still uploading.
        await asyncio.gather(*(bot.export(incident(room, channel), channel, respond) for _ in range(2)))

    asyncio.run(two_clicks())
    assert len(room.fake.uploaded_files(channel)) == 1
    assert told == ["The export is already on its way to this channel."]
