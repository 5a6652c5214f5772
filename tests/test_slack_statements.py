"""Statements in Slack, end to end: draft from a template, approvals in order by the right people,
four eyes, an edit that resets approvals, and publishing."""

from __future__ import annotations

import json

import pytest

from bot.playbook import ApprovalPolicy, ApprovalStep, StatementTemplate, Variable
from tests.test_slack import USERS, Room, button, slack_room, texts

HOLDING = StatementTemplate(
    key="holding", title={"en": "Holding statement", "de": "Erste Stellungnahme"}, purpose="holding",
    audience="public", approval="standard",
    variables=[Variable(name="issue", label={"en": "What happened", "de": "Was passiert ist"}, prefill="title",
                        max_length=120),
               Variable(name="next_update", label={"en": "Next update", "de": "Nächstes Update"}, required=False)],
    text={"en": "We know about {{ issue }} and are looking into it.{% if next_update %} Next update: "
                "{{ next_update }}.{% endif %}",
          "de": "Wir wissen von {{ issue }} und prüfen es.{% if next_update %} Nächstes Update: "
                "{{ next_update }}.{% endif %}"})


@pytest.fixture
def playbook(playbook):
    """Legal (all) then comms (any) at sev1; the same template and policy in every run."""
    policy = ApprovalPolicy(steps=[ApprovalStep(roles=["comms"])],
                            severities={1: [ApprovalStep(roles=["legal"], mode="all"), ApprovalStep(roles=["comms"])]})
    return playbook.model_copy(update={"approval_policies": {"standard": policy, "strict": policy},
                                       "statements": [HOLDING], "free_statement_policy": "strict"})


@pytest.fixture
def room(core):
    with slack_room(core, (*USERS, "U4")) as the_room:
        yield the_room


def said(room: Room, fragment: str, count: int = 1) -> list:
    """Wait until the bot posted a message containing the fragment."""
    return room.fake.wait_for("chat.postMessage", count=count,
                              predicate=lambda c: fragment in c.params.get("text", ""))


def staffed(room: Room) -> str:
    """A sev1 incident led by U1, with U2 as legal and U3 as comms."""
    channel, _ = room.start("sev1 data-leak Customer list online")
    _, roster = room.standing(channel, "roster")
    for role, user in (("legal", "U2"), ("comms", "U3")):
        room.send.click(button(roster, "role.claim", role), user, channel)
        said(room, f"<@{user}> now holds")
    return channel


def submit_draft(room: Room, channel: str, values: dict, user: str = "U4") -> dict:
    """/crisis draft holding → fill the form → preview → post."""
    room.send.command("draft holding", user=user, channel=channel)
    fill = room.fake.wait_for("views.open")[-1].response["view"]
    reply = room.send.submit(fill, {f"var_{k}": v for k, v in values.items()}, user=user)
    return reply.json()


def statement(room: Room, channel: str, number: int = 1) -> tuple[str, dict]:
    return room.standing(channel, f"statement:{number}")


def test_draft_approve_in_order_edit_resets_and_publish(room):
    channel = staffed(room)
    room.send.click(button(room.standing(channel, "roster")[1], "role.claim", "social"), "U4", channel)

    # The form is prefilled from the incident, and the preview shows the exact text.
    room.send.command("draft holding", user="U4", channel=channel)
    fill = room.fake.wait_for("views.open")[-1].response["view"]
    issue = next(b for b in fill["blocks"] if b.get("block_id") == "var_issue")
    assert issue["element"]["initial_value"] == "Customer list online"
    answer = room.send.submit(fill, {"var_issue": "a list of customer e-mails online", "var_next_update": "18:00"},
                              user="U4").json()
    assert answer["response_action"] == "update"
    preview = answer["view"]
    assert "We know about a list of customer e-mails online and are looking into it. Next update: 18:00." in \
        json.dumps(preview["blocks"])
    assert room.send.submit(preview, {}, user="U4").status == 200

    said(room, "drafted statement 1")
    notice = [c for c in room.fake.calls_to("chat.postMessage") if "drafted statement 1" in c.params.get("text", "")]
    assert "Please review: <@U2>" in notice[0].params["text"]  # legal's step opens first
    _, message = statement(room, channel)
    assert "version 1" in texts(message) and "awaiting approval" in texts(message)

    # Comms may not jump the queue; the author may never approve; legal approves step 1.
    _, name = room.send.click(button(message, "stmt.approve", "1.1"), "U3", channel)
    assert "needs approval from Legal" in room.private_answers(name)[0]
    room.send.click(button(message, "stmt.approve", "1.1"), "U2", channel)
    said(room, "Step 2 is open: <@U3>")

    # An edit makes version 2 and resets approvals; buttons of version 1 are refused.
    room.send.click(button(message, "stmt.edit", "1.1"), "U4", channel)
    edit = room.fake.wait_for("views.open", count=2)[-1].response["view"]
    assert "We know about a list" in edit["blocks"][0]["element"]["initial_value"]
    room.send.submit(edit, {"text": "We know that a list of customer e-mails was online. We are sorry."}, user="U4")
    said(room, "version 2 needs every approval")
    # A phone that has not refreshed yet still shows version 1's button.
    _, name = room.send.click("stmt.approve|1|1.1", "U3", channel)
    assert "belongs to version 1" in room.private_answers(name)[0]
    _, message = statement(room, channel)
    assert "version 2" in texts(message) and "approved by" not in texts(message)

    room.send.click(button(message, "stmt.approve", "1.2"), "U2", channel)
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "Step 2 is open" in c.params.get("text", "")
                       and "statement 1" in c.params.get("text", ""), count=2)
    _, again = room.send.click(button(message, "stmt.approve", "1.2"), "U2", channel)  # a double click
    assert "needs approval from PR / communications" in room.private_answers(again)[0]
    room.send.click(button(message, "stmt.approve", "1.2"), "U3", channel)
    said(room, "fully approved")

    _, message = statement(room, channel)
    room.send.click(button(message, "stmt.publish", "1.2"), "U4", channel)
    publish = room.fake.wait_for("views.open", count=3)[-1].response["view"]
    bad = room.send.submit(publish, {"where": "Instagram", "link": "javascript:alert(1)"}, user="U4")
    assert "must start with https://" in bad.json()["errors"]["link"]
    room.send.submit(publish, {"where": "Instagram", "link": "https://instagram.com/p/1"}, user="U4")
    said(room, "published statement 1 on Instagram")
    _, message = statement(room, channel)
    assert "Published by <@U4>" in texts(message)
    assert not [b for b in message["blocks"] if b["type"] == "actions"]

    kinds = [(e.kind, e.data.get("version")) for e in room.core.timeline(room.core.incident_in_channel("T1", channel))
             if e.kind.startswith("statement.")]
    assert kinds == [("statement.drafted", 1), ("statement.approved", 1), ("statement.edited", 2),
                     ("statement.approved", 2), ("statement.approved", 2), ("statement.published", 2)]


def test_self_approval_is_refused(room):
    channel = staffed(room)
    preview = submit_draft(room, channel, {"issue": "a leak"}, user="U2")["view"]  # legal drafts …
    room.send.submit(preview, {}, user="U2")
    said(room, "drafted statement 1")
    _, message = statement(room, channel)
    _, name = room.send.click(button(message, "stmt.approve", "1.1"), "U2", channel)  # … and may not approve
    assert "someone else must approve it (four eyes)" in room.private_answers(name)[0]
    room.settle()
    assert "approved by" not in texts(statement(room, channel)[1])


def test_missing_and_too_long_values_show_in_the_form(room):
    channel = staffed(room)
    errors = submit_draft(room, channel, {"issue": ""})["errors"]
    assert errors == {"var_issue": "“What happened” is required for this template."}
    errors = submit_draft(room, channel, {"issue": "x" * 121})["errors"]
    assert "has 121 characters; this template allows 120" in errors["var_issue"]
    room.settle()
    listing = room.core.statement_list(room.core.incident_in_channel("T1", channel))
    assert listing.endswith("has no statements yet. Draft one with /crisis draft.")


def test_request_changes_and_reject_need_a_reason(room):
    channel = staffed(room)
    room.send.command("draft free We are aware and will update you by 18:00.", user="U4", channel=channel)
    said(room, "drafted statement 1")
    _, message = statement(room, channel)
    room.send.click(button(message, "stmt.changes", "1.1"), "U2", channel)
    form = room.fake.wait_for("views.open")[-1].response["view"]
    errors = room.send.submit(form, {"reason": "  "}, user="U2").json()["errors"]
    assert errors["reason"].startswith("Please give a reason")
    room.send.submit(form, {"reason": "Say sorry first."}, user="U2")
    said(room, "asks <@U4> for changes to statement 1: Say sorry first.")
    room.send.click(button(message, "stmt.reject", "1.1"), "U2", channel)
    form = room.fake.wait_for("views.open", count=2)[-1].response["view"]
    room.send.submit(form, {"reason": "Wrong facts."}, user="U2")
    said(room, "rejected statement 1: Wrong facts.")
    _, name = room.send.click("stmt.approve|1|1.1", "U3", channel)  # from a screen not yet refreshed
    assert "is rejected; it can no longer be changed" in room.private_answers(name)[0]


def test_statements_of_a_resolved_incident_are_closed(room):
    channel = staffed(room)
    room.send.command("draft free Holding text.", user="U4", channel=channel)
    said(room, "drafted statement 1")
    room.send.command("resolve", user="U1", channel=channel)
    said(room, "resolved CRISIS-1")
    _, name = room.send.click("stmt.approve|1|1.1", "U2", channel)  # from a screen not yet refreshed
    assert "CRISIS-1 is resolved" in room.private_answers(name)[0]
    room.settle()
    assert not [b for b in statement(room, channel)[1]["blocks"] if b["type"] == "actions"]


def test_statements_lists_them_privately(room):
    channel = staffed(room)
    room.send.command("draft free First text.", user="U4", channel=channel)
    said(room, "drafted statement 1")
    _, name = room.send.command("statements", user="U3", channel=channel)
    assert "1. Free statement · version 1 · awaiting approval · 0/2 steps approved" in room.private_answers(name)[0]


def test_draft_without_a_template_offers_the_fitting_ones_then_their_form(room):
    channel = staffed(room)
    room.send.command("draft", user="U4", channel=channel)
    pick = room.fake.wait_for("views.open")[-1].response["view"]
    options = [o["value"] for o in pick["blocks"][0]["element"]["options"]]
    assert options == ["holding", "free"]
    reply = room.send.submit(pick, {"template": "holding"}, user="U4")
    assert reply.json()["response_action"] == "update"
    fill = reply.json()["view"]
    assert [b.get("block_id") for b in fill["blocks"]] == [None, "var_issue", "var_next_update"]


def test_an_unknown_template_is_answered_privately(room):
    channel = staffed(room)
    reply, _ = room.send.command("draft nonsense", user="U4", channel=channel)
    assert reply.body == "“nonsense” is not a statement template here. Use one of holding, free."
