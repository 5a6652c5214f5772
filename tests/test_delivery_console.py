"""The console's Repair button and the reconciliation itself (bot.delivery.pending), without Slack."""

from __future__ import annotations

from sqlalchemy import delete

from bot.delivery import pending
from bot.messages import Message, Section
from bot.models import PostedMessage
from handlers.console import WORKSPACE
from tests.test_console import Session, last_number


def test_status_offers_to_repair_a_missing_message_and_repair_shows_it_again(core, db):
    session = Session(core)
    session.run("/crisis start sev2 Charger overheats")
    incident = core.incident_by_ref(WORKSPACE, "CRISIS-1")
    with db.transaction() as s:  # the step's message was lost (a platform refused it, a restore…)
        s.execute(delete(PostedMessage).where(PostedMessage.incident_id == incident,
                                              PostedMessage.key == "checklist:assess"))
    session.run("/crisis status", last_number(r"\[(\d+)\] Repair", "Repair button"), "/crisis status")
    _, first, second = session.text.split("> /crisis status")
    assert "Missing from the channel: the checklist step Identify and assess." in first
    shown, _, repaired = first.partition("] Repair")
    assert shown
    assert "Trying again: 1 thing" in repaired
    assert "── checklist:assess " in repaired and "] Done" in repaired  # the step and its buttons are back
    assert "missing" not in second and "] Repair" not in second


def posted(key: str, message: Message, *, ref: str | None = "1.0", error: str | None = None) -> PostedMessage:
    return PostedMessage(key=key, channel_id="C1", message_ref=ref, fingerprint=message.fingerprint(),
                         last_error=error)


def test_pending_reconciles_every_standing_message():
    header, roster, step = (Message(k, k, (Section(k),)) for k in ("header", "roster", "checklist:assess"))
    changed_roster = Message("roster", "roster", (Section("roster, claimed"),))
    announce = Message("retrospective:announce", "copy", (Section("copy"),), place="announcement")
    rows = {"header": posted("header", header), "roster": posted("roster", roster),
            "checklist:assess": posted("checklist:assess", step, ref=None, error="internal_error")}
    standing = [header, changed_roster, step, announce]

    todo = pending(standing, rows, [header])
    # The header is unchanged; the roster is stale; the step's post failed; the copy was never posted.
    assert [(p.message.key, p.is_new) for p in todo] == [
        ("roster", False), ("checklist:assess", True), ("retrospective:announce", True)]
    assert [p.message.key for p in pending(standing, rows, [header], announcements=False)] == [
        "roster", "checklist:assess"]
    # Only what was asked for, as the console does: still rendered from the newest state.
    assert [p.message for p in pending(standing, rows, [roster], everything=False)] == [changed_roster]
    # A failed edit is tried again even when the message is back to what was last shown.
    rows["header"].last_error = "fatal_error"
    assert next(p.message.key for p in pending(standing, rows, [], everything=True)) == "header"


def test_a_recorded_problem_is_shown_by_status_until_fixed(core, clock):
    """The mechanism other deliveries use (an escalation that could not be posted): record, show, fix."""
    opening = core.start_incident("T1", "U1", "Charger overheats")
    core.opened(opening.incident_id, "C1", "crisis-1")
    incident = opening.incident_id
    for message in core.standing_messages(incident):
        core.record_post(incident, "slack", message.key, "C1", f"ts-{message.key}", message.fingerprint())
    core.record_problem(incident, "slack", "escalation", "is_archived", subject="reminder:7")
    clock.advance(minutes=5)
    core.record_problem(incident, "slack", "escalation", "channel_not_found", subject="reminder:7")  # once

    status = core.status_message(incident, "slack")
    assert status.text.count("An escalation was not delivered") == 1
    assert "An escalation was not delivered: channel_not_found (02:05 UTC)" in status.text
    assert status.buttons() == []  # its own runner retries it; Repair has nothing to do
    assert "escalation" not in core.status(incident, "console")  # another platform's problem

    core.problem_fixed(incident, "slack", "escalation", "reminder:7")
    assert "escalation" not in core.status(incident, "slack")
    assert core.open_problems(incident) == []
