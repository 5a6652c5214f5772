"""Four eyes means two people (issue 9, item 11), through signed requests against the fake Slack.

The shipped playbook's strict policy (free statements) is legal (all), then comms, then the lead.
A lead who assigns themselves legal and comms still approves one step only; a drafter stays an
author after someone else's one-character edit. A policy may opt in to one person approving
several steps (`allow_same_approver: true`); nobody ever approves what they wrote.
"""

from __future__ import annotations

import pytest

from bot import playbook as playbooks
from bot.errors import Refusal
from tests.test_slack import USERS, button, slack_room, texts
from tests.test_slack_statements import said, statement

TEXT = "We know about the leaked customer list and are looking into it."


@pytest.fixture
def room(core):
    with slack_room(core, (*USERS, "U4")) as the_room:
        yield the_room


def lead_holds_everything(room) -> str:
    """A sev1 incident led by U1, who assigns themselves legal and comms; U4 drafts a free statement."""
    channel, _ = room.start("sev1 data-leak Customer list online")
    for role, name in (("legal", "Legal"), ("comms", "PR / communications")):
        room.send.command(f"assign <@U1|u1> {role}", user="U1", channel=channel)
        said(room, f"<@U1> now holds *{name}*")
    room.send.command(f"draft free {TEXT}", user="U4", channel=channel)
    said(room, "drafted statement 1")
    return channel


def approve(room, channel: str, user: str, value: str) -> str:
    """Click Approve on the posted statement; the name of the click's private answers."""
    _, message = statement(room, channel)
    reply, name = room.send.click(button(message, "stmt.approve", value), user, channel)
    assert reply.status == 200
    return name


def refused(room, channel: str, user: str, value: str) -> str:
    """Click Approve and return the one private refusal."""
    [answer] = room.private_answers(approve(room, channel, user, value))
    return answer


def test_a_lead_holding_every_role_approves_one_step_only(room):
    channel = lead_holds_everything(room)
    approve(room, channel, "U1", "1.1")
    said(room, "Step 2 is open; nobody who may approve it holds its roles yet")

    # Comms is U1's role too, but U1 approved step 1: refused privately, nothing recorded.
    assert refused(room, channel, "U1", "1.1") == (
        "You already approved step 1 of statement 1 (version 1); step 2 needs a second person "
        "(four eyes), even if you hold its role too. Someone else must approve it.")
    room.settle()
    _, message = statement(room, channel)
    assert texts(message).count("approved by") <= 1 and texts(message).count("<@U1>") == 1  # step 1's only

    # A second person takes comms and approves step 2; the lead's step 3 is still barred to U1.
    room.send.command("assign <@U3|u3> comms", user="U1", channel=channel)
    said(room, "assigned *PR / communications* to <@U3>")
    approve(room, channel, "U3", "1.1")
    said(room, "Step 3 is open; nobody who may approve it holds its roles yet")
    assert refused(room, channel, "U1", "1.1").startswith("You already approved step 1 of statement 1")

    # The lead hands over; the new lead is a third person and completes the four eyes.
    room.send.command("assign <@UBOSS|boss> lead", user="U1", channel=channel)
    said(room, "assigned *Crisis lead* to <@UBOSS>")
    approve(room, channel, "UBOSS", "1.1")
    said(room, "fully approved")
    incident = room.core.incident_in_channel("T1", channel)
    approvals = [(e.actor_id, e.data["step"]) for e in room.core.timeline(incident) if e.kind == "statement.approved"]
    assert approvals == [("U1", 0), ("U3", 1), ("UBOSS", 2)]


def test_the_drafter_may_not_approve_after_someone_else_edited_one_character(room):
    channel, _ = room.start("sev1 data-leak Customer list online")
    room.send.command("assign <@U4|u4> legal", user="U1", channel=channel)
    said(room, "assigned *Legal* to <@U4>")
    room.send.command("assign <@U2|u2> comms", user="U1", channel=channel)
    said(room, "assigned *PR / communications* to <@U2>")
    room.send.command(f"draft free {TEXT}", user="U4", channel=channel)
    said(room, "drafted statement 1")

    # U2 fixes one character: version 2 is U2's.
    _, message = statement(room, channel)
    room.send.click(button(message, "stmt.edit", "1.1"), "U2", channel)
    edit = room.fake.wait_for("views.open")[-1].response["view"]
    room.send.submit(edit, {"text": TEXT[:-1] + "!"}, user="U2")
    said(room, "version 2 needs every approval")

    assert refused(room, channel, "U4", "1.2") == (
        "You wrote version 1 of statement 1, so you may not approve version 2 either: nobody who "
        "wrote any version of a statement approves it (four eyes). Someone else must approve it.")
    room.settle()
    assert "approved by" not in texts(statement(room, channel)[1])
    incident = room.core.incident_in_channel("T1", channel)
    assert not [e for e in room.core.timeline(incident) if e.kind == "statement.approved"]


def test_the_notice_does_not_ask_the_drafter_or_an_earlier_approver_to_review(room):
    """Please review names only people who may approve the open step."""
    channel, _ = room.start("sev1 data-leak Customer list online")
    room.send.command("assign <@U2|u2> legal", user="U1", channel=channel)
    said(room, "assigned *Legal* to <@U2>")
    room.send.command("assign <@U2|u2> comms", user="U1", channel=channel)
    said(room, "assigned *PR / communications* to <@U2>")
    room.send.command(f"draft free {TEXT}", user="U3", channel=channel)
    [drafted] = said(room, "drafted statement 1")
    assert "Please review: <@U2>" in drafted.params["text"]
    approve(room, channel, "U2", "1.1")
    [opened] = said(room, "Step 2 is open")
    assert "<@U2>" not in opened.params["text"].split("Step 2 is open")[1]


def test_a_policy_that_opts_in_lets_one_person_approve_every_step_but_never_their_own_text(db, clock):
    """`allow_same_approver: true` is the team's explicit choice; the author is still barred."""
    from bot.core import Core

    default = playbooks.load()
    strict = default.approval_policies["strict"].model_copy(update={"allow_same_approver": True})
    playbook = default.model_copy(update={"approval_policies": {**default.approval_policies, "strict": strict}})
    core = Core(db, playbook, language="en", clock=clock)
    opening = core.start_incident("T1", "U1", "Customer list online", severity=1, crisis_type="data-leak")
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    core.assign_role(iid, "U1", "U1", "legal")
    core.assign_role(iid, "U1", "U1", "comms")
    core.draft(iid, "U4", "free", {"text": TEXT})
    for _ in range(3):
        core.decide(iid, "U1", 1, 1, "approve")
    assert core.statement_list(iid).count("approved") >= 1
    assert [e.data["step"] for e in core.timeline(iid) if e.kind == "statement.approved"] == [0, 1, 2]

    core.draft(iid, "U1", "free", {"text": TEXT + " Sorry."})
    with pytest.raises(Refusal) as refused:
        core.decide(iid, "U1", 2, 1, "approve")
    assert refused.value.text == "four_eyes"


# --- the playbook's opt-in is checked -----------------------------------------------------------

def test_the_playbook_checker_takes_the_opt_in_and_refuses_what_it_cannot_mean():
    from tests.test_playbook import DEFAULT_TEXT, edit, line_of, only_problem

    strict = "  strict:                      # the strictest: legal, then comms, then the lead\n"
    opted = edit(strict, strict + "    allow_same_approver: true\n")
    playbook, problems = playbooks.check_text(opted, "team.yaml")
    assert problems == [] and playbook.approval_policies["strict"].allow_same_approver
    assert not playbooks.load().approval_policies["strict"].allow_same_approver  # the default stays strict

    vague = edit(strict, strict + "    allow_same_approver: sometimes\n")
    only_problem(vague, line_of(vague, "allow_same_approver: sometimes"),
                 "approval_policies.strict.allow_same_approver", "boolean")
    internal = "  internal:                    # talking points for the team, not published\n"
    single = edit(internal, internal + "    allow_same_approver: true\n")
    only_problem(single, line_of(single, "    allow_same_approver: true"), "'internal' has a single step",
                 "changes nothing")
    assert "allow_same_approver" in DEFAULT_TEXT  # documented where the policies are
