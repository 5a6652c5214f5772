"""The last step of the practice can be done (issue 9, item 17), through signed requests to the fake Slack.

The shipped playbook marks "Hold a debrief" and "Record lessons learned" `after_resolve: true`:
their buttons stay from resolve until close, clicking them after resolve works, and the
retrospective counts them as done. Every other item is closed to changes at resolve.
"""

from __future__ import annotations

import pytest

from bot import playbook as playbooks
from tests.test_slack import button, slack_room, texts
from tests.test_slack_statements import said

LATER = ("hold-debrief", "record-lessons")


@pytest.fixture
def room(core):
    with slack_room(core) as the_room:
        yield the_room


def item_buttons(message: dict) -> set[str]:
    """The item keys that have a button in a posted checklist message."""
    out = set()
    for block in message["blocks"]:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            action = element.get("action_id", "")
            if action.startswith("item."):
                out.add(action.split("|")[-1])
    return out


def test_after_resolve_items_stay_clickable_until_close_and_count_in_the_retrospective(room):
    channel, _ = room.start("sev3 defective-product Charger overheats")
    _, learn = room.standing(channel, "checklist:learn")
    assert set(LATER) < item_buttons(learn)

    room.send.command("resolve", user="U1", channel=channel)
    said(room, "resolved CRISIS-1")
    [later] = said(room, "Still to do before `/crisis close`")
    assert later.params["text"] == (":memo: Still to do before `/crisis close`: “Hold a debrief: what went well, "
                                    "what must improve”, “Record lessons learned and update the plan”. Their "
                                    "buttons stay in the checklist until the incident is closed.")
    room.settle()
    _, learn = room.standing(channel, "checklist:learn")
    assert item_buttons(learn) == set(LATER)
    _, assess = room.standing(channel, "checklist:assess")
    assert item_buttons(assess) == set()

    # The debrief is held after resolve; the button works and the message shows who did it.
    reply, name = room.send.click(button(learn, "item.done", "hold-debrief"), "U1", channel)
    assert reply.status == 200
    room.fake.wait_for("chat.update", predicate=lambda c: "Hold a debrief" in str(c.params.get("blocks"))
                       and "U1" in str(c.params.get("blocks")) and "item.done|1|hold-debrief"
                       not in str(c.params.get("blocks")))
    # An item of the live crisis, clicked on a screen that has not refreshed, is refused privately.
    _, name = room.send.click("item.done|1|gather-facts", "U1", channel)
    assert room.private_answers(name)[0] == "CRISIS-1 is resolved; it can no longer be changed."

    room.send.command("close", user="U1", channel=channel)
    said(room, "closed CRISIS-1")
    room.settle()
    _, learn = room.standing(channel, "checklist:learn")
    assert item_buttons(learn) == set()  # closed: the lessons go into the retrospective now
    _, summary = room.standing(channel, "retrospective")
    checklist = next(t for t in texts(summary).split("\n*") if t.startswith("Checklist"))
    assert "• *Learn and improve* (Monitoring): 1 done, 0 skipped, 4 open" in checklist
    assert "Hold a debrief" not in checklist
    assert "☐ Record lessons learned and update the plan (Crisis lead)" in checklist
    _, name = room.send.click("item.done|1|record-lessons", "U1", channel)
    assert room.private_answers(name)[0] == "CRISIS-1 is resolved; it can no longer be changed."
    incident = room.core.incident_in_channel("T1", channel)
    done = [e.data["item"] for e in room.core.timeline(incident) if e.kind == "item.done"]
    assert done == ["hold-debrief"]


def test_the_playbook_marks_only_the_debrief_and_the_lessons_and_checks_the_mark():
    from tests.test_playbook import DEFAULT_TEXT, edit, line_of, only_problem

    default = playbooks.load()
    assert [i.key for _, i in default.items() if i.after_resolve] == list(LATER)
    bad = edit("      - key: record-lessons\n        owner: lead\n        after_resolve: true\n",
               "      - key: record-lessons\n        owner: lead\n        after_resolve: later\n", DEFAULT_TEXT)
    only_problem(bad, line_of(bad, "after_resolve: later"), "after_resolve", "boolean")


@pytest.mark.parametrize("language", ["de"])
def test_the_german_room_says_what_is_left_after_resolve(core, language):
    core.language = language
    opening = core.start_incident("T1", "U1", "Ladegerät überhitzt", severity=3)
    core.opened(opening.incident_id, "C1", opening.channel_name())
    out = core.resolve(opening.incident_id, "U1")
    assert out.notices[1] == (":memo: Noch zu tun vor `/crisis close`: „Nachbesprechung: Was "
                              "lief gut, was muss besser werden?“, „Erkenntnisse festhalten und den Krisenplan "
                              "aktualisieren“. Ihre Schaltflächen bleiben in der Checkliste, bis der Vorfall "
                              "geschlossen ist.")
    done = core.set_item(opening.incident_id, "U1", "record-lessons", "item.done")
    assert [m.key for m in done.updates] == ["header", "checklist:learn"]
