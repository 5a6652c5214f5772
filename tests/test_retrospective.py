"""Closing an incident with a retrospective (issue 5), with the controlled clock, on SQLite and PostgreSQL.

One scripted incident runs from start to lessons learned at known minutes; every figure of its
retrospective is checked against a value worked out by hand and written here as a literal time,
not recomputed with the code under test. The chat summary is checked as a person reads it, the
Markdown export against golden files, and a very large incident against Slack's message limits.

Golden files: tests/golden/retrospective_{en,de}.md hold the exact Markdown export of the scripted
incident (people named through NAMES below). After a deliberate change to the export, regenerate
them with

    CRISISBOT_UPDATE_GOLDEN=1 python -m pytest -q tests/test_retrospective.py -k golden

then read `git diff tests/golden` line by line before committing it: the files are the reviewed
truth, not whatever the code prints today.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot import export
from bot.core import Core, Outcome
from bot.errors import Refusal
from bot.messages import Actions, Context, Message, Section
from bot.models import (
    Deadline,
    Incident,
    Lesson,
    Reminder,
    Statement,
    StatementDecision,
    StatementVersion,
    TimelineEvent,
)
from bot.playbook import Closing
from bot.retrospective import (
    Approval,
    ApprovalStepResult,
    DeadlineResult,
    LessonResult,
    Objection,
    Participant,
    RoleSpan,
    SeverityChange,
    StatementResult,
    VersionResult,
)
from tests.conftest import START

WS = "T1"
BOT = "crisisbot"
GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("CRISISBOT_UPDATE_GOLDEN") == "1"

# The team of the scripted incident, and the names the export shows for them.
LEA, COM, LEG, SOC, LEA2 = "U01LEAD", "U02COMMS", "U03LEGAL", "U04SOCIAL", "U05LEAD"
NAMES = {LEA: "lea.lead", COM: "cem.comms", LEG: "lia.legal", SOC: "sam.social", LEA2: "nora.night"}
TITLE = "Charger *overheats* _again_ <b>hot</b> | #X200"
STATEMENT_V1 = "We know about reports that our *X200* charger over_heats.\n<Details> follow | #recall"
STATEMENT_V2 = ("We know about reports that our *X200* charger over_heats.\n\n"
                "<Details> follow | #recall: stop using it_now & contact us.")
SNOOZE_REASON = "Legal checks the recall wording"
CHANGES_REASON = "Do not say defect before the lab report"
LINK = "https://x.example/brand/status/1"


def T(hh_mm: str, day: int = 22) -> datetime:
    """A clock time on the incident's day (2026-11-22, UTC), as the team reads it: T("02:42")."""
    hour, minute = (int(x) for x in hh_mm.split(":"))
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# --- the scheduler and other helpers ------------------------------------------------------------


def run_until(core: Core, clock, until: datetime, worker: str = "w1") -> list[tuple[datetime, str]]:
    """Be the scheduler until `until`: wake when something is due, claim, fire, mark sent."""
    posted = []
    for _ in range(200):
        due = core.next_due()
        if due is None or due > until:
            break
        clock.now = max(clock.now, due)
        for reminder_id in core.claim_due(worker):
            fired = core.fire(reminder_id, worker)
            if fired is None:
                continue
            outcome, _alerts = fired
            posted.extend((clock.now, text) for text in outcome.notices)
            core.mark_sent(reminder_id, worker)
    else:
        raise AssertionError("the scheduler kept waking")
    clock.now = max(clock.now, until)
    return posted


def refused(call, *args, **kwargs) -> Refusal:
    with pytest.raises(Refusal) as exc:
        call(*args, **kwargs)
    return exc.value


def summary_of(outcome: Outcome, key: str = "retrospective") -> Message:
    [message] = [m for m in outcome.updates if m.key == key]
    return message


def section(message: Message, heading: str) -> str:
    """The text of the summary block that starts with `heading` ("*Measured*", "*Deadlines*" …)."""
    [text] = [b.text for b in message.blocks if isinstance(b, Section) and b.text.startswith(heading)]
    return text


def footer(message: Message) -> str:
    return [b.text for b in message.blocks if isinstance(b, Context)][-1]


def has_buttons(message: Message) -> bool:
    return any(isinstance(b, Actions) for b in message.blocks)


def record(core: Core, incident_id: int) -> tuple:
    """What a refused request must leave alone: timeline, phase, close and archive marks, lessons, jobs."""
    events = len(core.timeline(incident_id))
    with core.db.transaction() as s:
        incident = s.get(Incident, incident_id)
        lessons = tuple((x.kind, x.text, x.owner_id, x.author_id) for x in incident.lessons)
        pending = tuple(sorted((r.kind, r.due_at) for r in s.scalars(select(Reminder).where(
            Reminder.incident_id == incident_id, Reminder.state == "pending"))))
        return (events, incident.phase, incident.closed_at, incident.closed_by, incident.archived_at, lessons,
                pending)


def pending_reminders(core: Core, incident_id: int) -> list[tuple[str, datetime]]:
    with core.db.transaction() as s:
        return [(r.kind, r.due_at) for r in s.scalars(select(Reminder).where(
            Reminder.incident_id == incident_id, Reminder.state == "pending").order_by(Reminder.due_at))]


@dataclass
class Scripted:
    incident_id: int
    ref: str
    posted: list[tuple[datetime, str]]   # what the scheduler posted, and when
    closed: Outcome                      # what /crisis close returned
    lessons: list[Outcome]               # what adding each lesson returned


def scripted_incident(core: Core, clock, workspace: str = WS, lessons: bool = True) -> Scripted:
    """The scripted incident, minute by minute. Every expected value below follows from this script.

    SEV2 at start: acknowledge due 02:30 (reminders 02:15, 02:25), first statement due 04:00,
    update due 03:00 (reminders 02:45, 02:55). At 02:55 it becomes SEV1: first statement
    02:00 + 1 h + the 30 min snooze = 03:30 (reminders 03:15, 03:25), the open update
    02:52 + 30 min = 03:22 (reminder 03:12). Review from resolve (04:00) within 3 d.
    """
    posted: list[tuple[datetime, str]] = []

    def go(hh_mm: str) -> None:
        posted.extend(run_until(core, clock, T(hh_mm)))

    opening = core.start_incident(workspace, LEA, TITLE, severity=2, crisis_type="defective-product")
    iid = opening.incident_id
    core.opened(iid, "C0INCIDENT", opening.channel_name())                          # 02:00
    go("02:42")   # 02:15 and 02:25 remind, 02:30 escalates: the acknowledgement is missed
    core.claim_role(iid, COM, "comms")                                              # 02:42 acknowledged
    go("02:46")   # 02:45 reminds of the update
    core.claim_role(iid, LEG, "legal")                                              # 02:46
    go("02:47")
    core.claim_role(iid, SOC, "social")                                             # 02:47
    go("02:48")
    core.set_item(iid, LEA, "gather-facts", "item.done")                             # 02:48 → assessing
    go("02:50")
    core.set_item(iid, SOC, "measure-reach", "item.skip")                            # 02:50
    go("02:52")
    core.status_update(iid, LEA, "14 reports of hot chargers", "Checking batches", None)  # 02:52
    go("02:53")
    core.snooze(iid, LEA, "first_statement", timedelta(minutes=30), SNOOZE_REASON)  # 02:53: 04:00 → 04:30
    go("02:55")
    core.set_severity(iid, LEA, 1)                                                  # 02:55
    go("02:58")
    drafted = core.draft(iid, SOC, "free", {"text": STATEMENT_V1})                   # 02:58, policy strict
    assert drafted.updates[0].key == "statement:1"
    go("03:03")
    core.decide(iid, LEG, 1, 1, "changes", CHANGES_REASON)                          # 03:03
    go("03:05")
    core.edit(iid, SOC, 1, 1, STATEMENT_V2)                                         # 03:05 version 2
    go("03:08")
    core.decide(iid, LEG, 1, 2, "approve")                                          # 03:08 legal (all)
    go("03:12")   # 03:12 reminds of the update due 03:22
    core.decide(iid, COM, 1, 2, "approve")                                          # 03:12 comms
    go("03:15")   # 03:15 reminds of the first statement due 03:30
    core.decide(iid, LEA, 1, 2, "approve")                                          # 03:15 lead
    go("03:17")
    core.publish(iid, SOC, 1, 2, "X", LINK)                                         # 03:17
    go("03:18")
    core.set_item(iid, SOC, "publish-statement", "item.done")                        # 03:18 → responding
    go("03:40")   # 03:37 reminds of the update due 03:47
    core.status_update(iid, COM, "No new reports since the statement", "Answering replies", None)  # 03:40
    go("03:45")
    core.assign_role(iid, LEA, LEA2, "lead")                                        # 03:45 handover
    go("04:00")   # 04:00 reminds of the update due 04:10
    core.resolve(iid, LEA2)                                                         # 04:00
    go("04:30")
    closed = core.close(iid, LEA2)                                                  # 04:30
    added = []
    if lessons:
        go("04:35")
        added.append(core.add_lesson(iid, LEA2, "well", "Legal answered *within* 5 minutes"))
        go("04:36")
        added.append(core.add_lesson(iid, COM, "improve", "Nobody picked it up for 42 minutes at night"))
        go("04:37")
        added.append(core.add_lesson(iid, LEA2, "action", "Set up a night on-call rota | #ops", owner=LEA))
    return Scripted(iid, opening.ref, posted, closed, added)


# --- 1. every figure of the scripted incident ------------------------------------------------------

POSTED = [
    ("02:15", ":alarm_clock: The internal acknowledgement is due at 02:30 UTC, in 15 min. <@U01LEAD>"),
    ("02:25", ":alarm_clock: The internal acknowledgement is due at 02:30 UTC, in 5 min. <@U01LEAD>"),
    ("02:30", ":rotating_light: Missed: the internal acknowledgement was due at 02:30 UTC. <@U01LEAD>"),
    ("02:45", ":alarm_clock: The next status update is due at 03:00 UTC, in 15 min. <@U02COMMS>"),
    ("03:12", ":alarm_clock: The next status update is due at 03:22 UTC, in 10 min. <@U02COMMS>"),
    ("03:15", ":alarm_clock: The first public statement is due at 03:30 UTC, in 15 min. <@U02COMMS> <@U04SOCIAL>"),
    ("03:37", ":alarm_clock: The next status update is due at 03:47 UTC, in 10 min. <@U02COMMS>"),
    ("04:00", ":alarm_clock: The next status update is due at 04:10 UTC, in 10 min. <@U02COMMS>"),
]

TIMELINE_KINDS = [
    "incident.started", "role.assigned", "channel.created",                            # 02:00
    "deadline.missed",                                                                 # 02:30
    "role.assigned", "role.assigned", "role.assigned",                                 # 02:42, 02:46, 02:47
    "item.done", "phase.changed", "item.skipped",                                      # 02:48, 02:50
    "status.update", "deadline.met", "deadline.snoozed", "severity.changed",           # 02:52–02:55
    "statement.drafted", "statement.changes_requested", "statement.edited",            # 02:58–03:05
    "statement.approved", "statement.approved", "statement.approved",                  # 03:08, 03:12, 03:15
    "statement.published", "deadline.met", "deadline.met",                             # 03:17
    "item.done", "phase.changed",                                                      # 03:18
    "status.update", "deadline.met",                                                   # 03:40
    "role.assigned",                                                                   # 03:45
    "incident.resolved",                                                               # 04:00
    "incident.closed", "deadline.met",                                                 # 04:30
    "lesson.added", "lesson.added", "lesson.added",                                    # 04:35–04:37
]

NOT_SNOOZED = {"snoozed_by": None, "snooze_reason": None, "snoozed_for": None}
ON_TIME = {"late_by": None, "done_late_at": None}


def test_the_retrospective_measures_the_scripted_incident(core, clock):
    scripted = scripted_incident(core, clock)
    retro = core.retrospective(scripted.incident_id)

    # What the scheduler posted on the way, and when.
    assert [(at.strftime("%H:%M"), text) for at, text in scripted.posted] == POSTED

    # The incident and its three headline figures.
    assert (retro.ref, retro.title, retro.crisis_type, retro.language) == (
        "CRISIS-1", TITLE, "defective-product", "en")
    assert (retro.first_severity, retro.severity, retro.reporter) == (2, 1, LEA)
    assert retro.started_at == T("02:00")
    assert retro.acknowledged_at == T("02:42")
    assert retro.first_statement_at == T("03:17")
    assert retro.resolved_at == T("04:00")
    assert (retro.closed_at, retro.closed_by, retro.archived_at) == (T("04:30"), LEA2, None)
    assert retro.time_to_acknowledge == timedelta(minutes=42)
    assert retro.time_to_first_statement == timedelta(hours=1, minutes=17)
    assert retro.time_to_resolve == timedelta(hours=2)

    # Every deadline, in the order it was opened.
    assert retro.deadlines == (
        DeadlineResult(kind="acknowledge", starts_at=T("02:00"), due_at=T("02:30"), state="missed",
                       closed_at=T("02:30"), early_by=None, late_by=timedelta(minutes=12),
                       done_late_at=T("02:42"), **NOT_SNOOZED, reminders_sent=2, escalations=(T("02:30"),),
                       stopped_at_resolve=False),
        DeadlineResult(kind="first_statement", starts_at=T("02:00"), due_at=T("03:30"), state="met",
                       closed_at=T("03:17"), early_by=timedelta(minutes=13), **ON_TIME,
                       snoozed_by=LEA, snooze_reason=SNOOZE_REASON, snoozed_for=timedelta(minutes=30),
                       reminders_sent=1, escalations=(),
                       stopped_at_resolve=False),
        DeadlineResult(kind="update", starts_at=T("02:00"), due_at=T("03:00"), state="met", closed_at=T("02:52"),
                       early_by=timedelta(minutes=8), **ON_TIME, **NOT_SNOOZED, reminders_sent=1, escalations=(),
                       stopped_at_resolve=False),
        DeadlineResult(kind="update", starts_at=T("02:52"), due_at=T("03:22"), state="met", closed_at=T("03:17"),
                       early_by=timedelta(minutes=5), **ON_TIME, **NOT_SNOOZED, reminders_sent=1, escalations=(),
                       stopped_at_resolve=False),
        DeadlineResult(kind="update", starts_at=T("03:17"), due_at=T("03:47"), state="met", closed_at=T("03:40"),
                       early_by=timedelta(minutes=7), **ON_TIME, **NOT_SNOOZED, reminders_sent=1, escalations=(),
                       stopped_at_resolve=False),
        DeadlineResult(kind="update", starts_at=T("03:40"), due_at=T("04:10"), state="cancelled",
                       closed_at=T("04:00"), early_by=None, **ON_TIME, **NOT_SNOOZED, reminders_sent=1,
                       escalations=(), stopped_at_resolve=True),
        DeadlineResult(kind="review", starts_at=T("04:00"), due_at=T("04:00", day=25), state="met",
                       closed_at=T("04:30"), early_by=timedelta(days=2, hours=23, minutes=30), **ON_TIME,
                       **NOT_SNOOZED, reminders_sent=0, escalations=(), stopped_at_resolve=False),
    )
    assert (retro.met, retro.missed) == (5, 1)

    # The checklist, step by step: what was done, skipped (by whom) and left open.
    assert [(st.key, st.phase, len(st.of("done")), len(st.of("skipped")), len(st.of("open")))
            for st in retro.checklist] == [
        ("assess", "assessing", 1, 1, 3), ("respond", "responding", 1, 0, 4), ("offline", "responding", 0, 0, 4),
        ("monitor", "monitoring", 0, 0, 5), ("learn", "monitoring", 0, 0, 5)]
    changed = [(i.key, i.state, i.by, i.at) for st in retro.checklist for i in st.items if i.state != "open"]
    assert changed == [("gather-facts", "done", LEA, T("02:48")), ("measure-reach", "skipped", SOC, T("02:50")),
                       ("publish-statement", "done", SOC, T("03:18"))]
    assert [(i.key, i.owner_role, i.by, i.at) for i in retro.checklist[0].of("open")] == [
        ("secure-evidence", "social", None, None), ("check-legal", "legal", None, None),
        ("set-severity", "lead", None, None)]

    # The statement: two versions, changes requested on the first, three approval steps on the second.
    strict = (("legal",), "all"), (("comms",), "any"), (("lead",), "any")
    assert retro.statements == (StatementResult(
        number=1, title="Free statement", audience="public", template=None, state="published", created_by=SOC,
        created_at=T("02:58"),
        versions=(
            VersionResult(1, SOC, T("02:58"), (
                ApprovalStepResult(0, *strict[0], opened_at=T("02:58"), done_at=None, took=None, approvals=()),
                ApprovalStepResult(1, *strict[1], opened_at=None, done_at=None, took=None, approvals=()),
                ApprovalStepResult(2, *strict[2], opened_at=None, done_at=None, took=None, approvals=())),
                (Objection("changes", LEG, CHANGES_REASON, T("03:03")),), STATEMENT_V1),
            VersionResult(2, SOC, T("03:05"), (
                ApprovalStepResult(0, *strict[0], opened_at=T("03:05"), done_at=T("03:08"),
                                   took=timedelta(minutes=3), approvals=(Approval(LEG, "legal", T("03:08")),)),
                ApprovalStepResult(1, *strict[1], opened_at=T("03:08"), done_at=T("03:12"),
                                   took=timedelta(minutes=4), approvals=(Approval(COM, "comms", T("03:12")),)),
                ApprovalStepResult(2, *strict[2], opened_at=T("03:12"), done_at=T("03:15"),
                                   took=timedelta(minutes=3), approvals=(Approval(LEA, "lead", T("03:15")),))),
                (), STATEMENT_V2)),
        published_at=T("03:17"), published_by=SOC, published_where="X", published_link=LINK,
        draft_to_publish=timedelta(minutes=19)),)

    # Who held which role when, including the handover of the lead.
    assert retro.roles == (
        RoleSpan("lead", LEA, LEA, T("02:00"), T("03:45")),
        RoleSpan("comms", COM, COM, T("02:42"), None),
        RoleSpan("legal", LEG, LEG, T("02:46"), None),
        RoleSpan("social", SOC, SOC, T("02:47"), None),
        RoleSpan("lead", LEA2, LEA, T("03:45"), None),
    )
    # Actions are timeline events by a person (never the bot), most active first.
    assert retro.participants == (
        Participant(LEA, 11, T("02:00"), T("03:45"), ("lead",)),
        Participant(SOC, 9, T("02:47"), T("03:18"), ("social",)),
        Participant(COM, 5, T("02:42"), T("04:36"), ("comms",)),
        Participant(LEA2, 5, T("04:00"), T("04:37"), ("lead",)),
        Participant(LEG, 3, T("02:46"), T("03:08"), ("legal",)),
    )
    assert retro.severity_changes == (SeverityChange(T("02:55"), LEA, 2, 1),)
    assert retro.lessons == (
        LessonResult("well", "Legal answered *within* 5 minutes", None, LEA2, T("04:35")),
        LessonResult("improve", "Nobody picked it up for 42 minutes at night", None, COM, T("04:36")),
        LessonResult("action", "Set up a night on-call rota | #ops", LEA, LEA2, T("04:37")),
    )

    # The key moments, in order; the acknowledgement is the first role someone else took.
    assert [(m.at, m.actor, m.kind) for m in retro.moments] == [
        (T("02:00"), LEA, "incident.started"),
        (T("02:30"), BOT, "deadline.missed"),
        (T("02:42"), COM, "acknowledged"),
        (T("02:48"), LEA, "phase.changed"),
        (T("02:52"), LEA, "status.update"),
        (T("02:53"), LEA, "deadline.snoozed"),
        (T("02:55"), LEA, "severity.changed"),
        (T("03:17"), SOC, "statement.published"),
        (T("03:18"), SOC, "phase.changed"),
        (T("03:40"), COM, "status.update"),
        (T("04:00"), LEA2, "incident.resolved"),
        (T("04:30"), LEA2, "incident.closed"),
    ]
    assert [m.kind for m in retro.timeline] == TIMELINE_KINDS
    assert [e.kind for e in core.timeline(scripted.incident_id)] == TIMELINE_KINDS


def test_the_chat_summary_reads_as_measured(core, clock):
    scripted = scripted_incident(core, clock)
    closed = scripted.closed
    assert closed.notices == [":memo: <@U05LEAD> closed CRISIS-1. Here is the retrospective; everyone can add "
                              "lessons learned with its buttons."]
    # The checklist step with the after-resolve items loses its last buttons at close.
    assert [m.key for m in closed.updates] == ["header", "checklist:learn", "retrospective", "retrospective:announce"]
    summary = summary_of(closed)
    assert summary.text == (":memo: Retrospective of CRISIS-1: "
                            "Charger *overheats* _again_ &lt;b&gt;hot&lt;/b&gt; | #X200")
    assert summary.blocks[0].text == (
        ":memo: *Retrospective of CRISIS-1: Charger *overheats* _again_ &lt;b&gt;hot&lt;/b&gt; | #X200*\n"
        "Defective product · SEV1 · Critical (started as SEV2 · High)\n"
        "Started 2026-11-22 02:00 UTC · resolved 2026-11-22 04:00 UTC · closed 2026-11-22 04:30 UTC by <@U05LEAD>")
    assert section(summary, "*Measured*") == (
        "*Measured*\n"
        "• Time to acknowledge: *42 min*\n"
        "• Time to first public statement: *1 h 17 min*\n"
        "• Time to resolve: *2 h 00 min*\n"
        "• Deadlines: 5 met, 1 missed of 7")
    assert section(summary, "*Key moments*") == (
        "*Key moments*\n"
        "• 02:00 UTC Started by <@U01LEAD>\n"
        "• 02:30 UTC Missed: internal acknowledgement\n"
        "• 02:42 UTC Acknowledged: <@U02COMMS> took the role PR / communications\n"
        "• 02:48 UTC Phase: Assessing\n"
        "• 02:52 UTC Status update by <@U01LEAD>\n"
        "• 02:53 UTC <@U01LEAD> moved the first public statement: Legal checks the recall wording\n"
        "• 02:55 UTC Severity SEV2 · High → SEV1 · Critical (<@U01LEAD>)\n"
        "• 03:17 UTC Statement #1 published on X (<@U04SOCIAL>)\n"
        "• 03:18 UTC Phase: Responding\n"
        "• 03:40 UTC Status update by <@U02COMMS>\n"
        "• 04:00 UTC Resolved by <@U05LEAD>\n"
        "• 04:30 UTC Closed by <@U05LEAD>")
    # Missed and moved deadlines first: those are what a review talks about.
    assert section(summary, "*Deadlines*") == (
        "*Deadlines*\n"
        "• internal acknowledgement, due 02:30 UTC: *missed* by 12 min · escalated\n"
        "• first public statement, due 03:30 UTC: met, 13 min early · moved by <@U01LEAD> by 30 min: "
        "Legal checks the recall wording\n"
        "• next status update, due 03:00 UTC: met, 8 min early\n"
        "• next status update, due 03:22 UTC: met, 5 min early\n"
        "• next status update, due 03:47 UTC: met, 7 min early\n"
        "• next status update, due 04:10 UTC: stopped at resolve\n"
        "• post-crisis review, due 2026-11-25 04:00 UTC: met, 2 d 23 h early")
    checklist = section(summary, "*Checklist*")
    assert checklist.splitlines()[:5] == [
        "*Checklist*",
        "• *Identify and assess* (Assessing): 1 done, 1 skipped, 3 open",
        "   ⏭ Check reach and sentiment across all channels (skipped by <@U04SOCIAL>)",
        "   ☐ Find the original post and screenshot key mentions (Social-media manager)",
        "   ☐ Check legal risks (liability, data protection) (Legal)",
    ]
    assert "• *Respond promptly and transparently* (Responding): 1 done, 0 skipped, 4 open" in checklist
    assert "• *Learn and improve* (Monitoring): 0 done, 0 skipped, 5 open" in checklist
    assert section(summary, "*Statements*") == (
        "*Statements*\n"
        "• #1 Free statement (public): published 03:17 UTC on X https://x.example/brand/status/1 by <@U04SOCIAL>, "
        "19 min after the draft · 2 version(s), 1 objection(s)\n"
        "   step 1 (Legal): 3 min, <@U03LEGAL> 03:08 UTC\n"
        "   step 2 (PR / communications): 4 min, <@U02COMMS> 03:12 UTC\n"
        "   step 3 (Crisis lead): 3 min, <@U01LEAD> 03:15 UTC")
    # At close the lessons are still to come: U05LEAD has resolved, closed and met the review (3 actions),
    # U02COMMS has 4 until their lesson.
    assert section(summary, "*Roles*") == (
        "*Roles*\n"
        "• Crisis lead: <@U01LEAD> 02:00 UTC–03:45 UTC\n"
        "• PR / communications: <@U02COMMS> 02:42 UTC–end\n"
        "• Legal: <@U03LEGAL> 02:46 UTC–end\n"
        "• Social-media manager: <@U04SOCIAL> 02:47 UTC–end\n"
        "• Crisis lead: <@U05LEAD> 03:45 UTC–end\n"
        "*Participants* (actions): <@U01LEAD> 11, <@U04SOCIAL> 9, <@U02COMMS> 4, <@U03LEGAL> 3, <@U05LEAD> 3\n"
        "*Severity changes:* 02:55 UTC SEV2 · High → SEV1 · Critical (<@U01LEAD>)")
    assert section(summary, "*Lessons learned*") == (
        "*Lessons learned*\n"
        "_None yet: add what went well, what to improve and action items with the buttons below._")
    assert footer(summary) == ("31 timeline events in all: `/crisis export` gives the whole record as a file. "
                               "The channel will be archived 2026-11-29 04:30 UTC.")
    assert [b.action for b in summary.buttons()] == [
        "lesson.well", "lesson.improve", "lesson.action", "retro.export", "retro.archive"]
    assert [b.label for b in summary.buttons()] == [
        "What went well", "What to improve", "Add action item", "Export", "Archive channel"]

    # SEV1 announces: the same summary without buttons in the announcement channel.
    announce = summary_of(closed, "retrospective:announce")
    assert announce.place == "announcement" and not has_buttons(announce)
    # Its lessons section points to the incident channel, where the buttons are.
    # A broad channel: the copy names people (<+user>, no ping) where the summary mentions them.
    assert [b.text for b in announce.blocks[:7]] == [b.text.replace("<@", "<+") for b in summary.blocks[:7]]
    assert not any("<@" in b.text for b in announce.blocks if hasattr(b, "text"))
    assert "with the buttons of the retrospective in the incident channel" in announce.blocks[7].text
    assert footer(announce) == "Add lessons learned in <#C0INCIDENT>."

    # Each lesson edits the summary; the last one shows all three.
    well, improve, action = scripted.lessons
    assert (well.private, improve.private, action.private) == (
        "Thanks: added to what went well.", "Thanks: added to what to improve.", "Thanks: added to the action items.")
    assert action.notices == [
        ":memo: New action item for <@U01LEAD> from <@U05LEAD>: Set up a night on-call rota | #ops"]
    assert well.notices == [] and improve.notices == []
    latest = summary_of(action)
    assert section(latest, "*Lessons learned*") == (
        "*Lessons learned*\n"
        "What went well:\n"
        "• Legal answered *within* 5 minutes (<@U05LEAD>)\n"
        "What to improve:\n"
        "• Nobody picked it up for 42 minutes at night (<@U02COMMS>)\n"
        "Action items:\n"
        "• Set up a night on-call rota | #ops: *<@U01LEAD>*")
    assert "*Participants* (actions): <@U01LEAD> 11, <@U04SOCIAL> 9, <@U02COMMS> 5, <@U05LEAD> 5, <@U03LEGAL> 3" \
        in section(latest, "*Roles*")
    assert footer(latest).startswith("34 timeline events in all")
    # Reading the standing messages again gives the same summary the last lesson posted.
    assert summary_of(Outcome(0, "", updates=core.standing_messages(scripted.incident_id))) == latest


# --- 2. the review deadline ------------------------------------------------------------------------


def test_closing_meets_the_review_deadline_and_leaves_only_the_archive_job(core, clock):
    scripted = scripted_incident(core, clock, lessons=False)
    [review] = [d for d in core.retrospective(scripted.incident_id).deadlines if d.kind == "review"]
    assert (review.state, review.closed_at, review.early_by) == ("met", T("04:30"), timedelta(days=2, hours=23,
                                                                                              minutes=30))
    met = [e.data for e in core.timeline(scripted.incident_id) if e.kind == "deadline.met"][-1]
    assert met == {"kind": "review", "due": "2026-11-25T04:00:00+00:00", "by": "incident.closed",
                   "early_by_seconds": 257400}
    # The review's reminder (2026-11-24 04:00) and escalation (11-25 04:00) are gone; the archive is left.
    assert pending_reminders(core, scripted.incident_id) == [("archive", T("04:30", day=29))]
    assert run_until(core, clock, T("04:29", day=29)) == []


def test_a_review_missed_before_close_is_late_by_the_close(core, clock):
    opening = core.start_incident(WS, "U1", "Late review", severity=3)
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    clock.advance(minutes=5)
    core.claim_role(iid, "U2", "comms")                 # 02:05 acknowledged
    clock.advance(minutes=5)
    core.resolve(iid, "U1")                             # 02:10: review due 11-29 02:10, reminded a day before
    posted = run_until(core, clock, T("04:10", day=29))
    assert [(at, text) for at, text in posted] == [
        (T("02:10", day=28), ":alarm_clock: The post-crisis review is due at 02:10 UTC, in 1 d 0 h. <@U1>"),
        (T("02:10", day=29), ":rotating_light: Missed: the post-crisis review was due at 02:10 UTC. <@U1>"),
    ]
    closed = core.close(iid, "U1")                      # 11-29 04:10
    [review] = [d for d in core.retrospective(iid).deadlines if d.kind == "review"]
    assert (review.state, review.late_by, review.done_late_at, review.reminders_sent, review.escalations) == (
        "missed", timedelta(hours=2), T("04:10", day=29), 1, (T("02:10", day=29),))
    assert "• post-crisis review, due 2026-11-29 02:10 UTC: *missed* by 2 h 00 min · escalated" in \
        section(summary_of(closed), "*Deadlines*")


# --- 3. refusals change nothing ----------------------------------------------------------------------


def small_incident(core: Core, clock, workspace: str = WS, severity: int = 3) -> int:
    """U1 reports and leads, U2 takes comms at 02:05; resolved 02:35. Not closed."""
    opening = core.start_incident(workspace, "U1", "Small fire", severity=severity)
    iid = opening.incident_id
    core.opened(iid, f"C{workspace}{opening.number}", opening.channel_name())
    clock.advance(minutes=5)
    core.claim_role(iid, "U2", "comms")
    clock.advance(minutes=30)
    return iid


def refuses(core: Core, incident_id: int, text: str, explained: str, call, *args, **kwargs) -> None:
    """The call is refused with this text and this explanation, and nothing changed."""
    before = record(core, incident_id)
    refusal = refused(call, *args, **kwargs)
    assert refusal.text == text
    assert core.explain(refusal) == explained
    assert record(core, incident_id) == before


def test_close_refuses_what_it_cannot_do(core, clock):
    iid = small_incident(core, clock)
    refuses(core, iid, "close_not_resolved",
            "CRISIS-1 is not resolved yet. Resolve it first with `/crisis resolve`, then close it with "
            "`/crisis close`.",
            core.close, iid, "U1")
    core.resolve(iid, "U1")
    clock.advance(minutes=10)
    refuses(core, iid, "not_permitted_lead", "Only the lead (<@U1>) can close the incident.", core.close, iid, "U2")
    core.close(iid, "U1")                               # 02:45
    clock.advance(minutes=1)
    refuses(core, iid, "already_closed", "CRISIS-1 was already closed by <@U1> at 2026-11-22 02:45 UTC; nothing "
            "changed. `/crisis export` gives the retrospective as a file.", core.close, iid, "U1")
    refuses(core, iid, "already_closed", "CRISIS-1 was already closed by <@U1> at 2026-11-22 02:45 UTC; nothing "
            "changed. `/crisis export` gives the retrospective as a file.", core.close, iid, "U2")
    refuses(core, iid, "unknown_incident", "That incident does not exist (any more).", core.close, iid + 1000, "U1")


def test_lessons_refuse_bad_input(core, clock):
    iid = small_incident(core, clock)
    not_closed = "Lessons learned are collected after CRISIS-1 is closed (`/crisis close`)."
    refuses(core, iid, "lesson_not_closed", not_closed, core.add_lesson, iid, "U2", "well", "Fast pickup")
    core.resolve(iid, "U1")
    refuses(core, iid, "lesson_not_closed", not_closed, core.add_lesson, iid, "U2", "well", "Fast pickup")
    core.close(iid, "U1")
    empty = "Write the lesson first; nothing was added."
    refuses(core, iid, "lesson_empty", empty, core.add_lesson, iid, "U2", "well", "")
    refuses(core, iid, "lesson_empty", empty, core.add_lesson, iid, "U2", "improve", "  \n\t ")
    refuses(core, iid, "lesson_empty", empty, core.add_lesson, iid, "U2", "improve", None)
    refuses(core, iid, "lesson_too_long", "That lesson has 501 characters; keep it to 500. Nothing was added.",
            core.add_lesson, iid, "U2", "improve", "x" * 501)
    no_owner = "An action item needs an owner: choose who will do it. Nothing was added."
    refuses(core, iid, "lesson_owner_missing", no_owner, core.add_lesson, iid, "U1", "action", "Write a runbook")
    refuses(core, iid, "lesson_owner_missing", no_owner, core.add_lesson, iid, "U1", "action", "Write a runbook",
            owner=" @ ")
    malformed = "That request could not be read, so nothing was changed. Try again from the latest message."
    refuses(core, iid, "malformed_request", malformed, core.add_lesson, iid, "U1", "praise", "Great job")
    refuses(core, iid, "malformed_request", malformed, core.add_lesson, iid, "U1", "action", "Runbook",
            owner="<script>")

    # At the limit, after whitespace is folded to one line, a lesson is taken; twice is still once.
    long = "y" * 500
    core.add_lesson(iid, "U2", "improve", f"  {long}\n ")
    core.add_lesson(iid, "U2", "well", "Quick\n\n pickup ")
    again = core.add_lesson(iid, "U2", "well", "Quick pickup")
    assert again.private == "Thanks: added to what went well." and again.updates == []
    core.add_lesson(iid, "U1", "action", "Write a runbook", owner="@U2")
    core.add_lesson(iid, "U1", "well", "Owner ignored", owner="U2")
    assert [(x.kind, x.text, x.owner, x.author) for x in core.retrospective(iid).lessons] == [
        ("improve", long, None, "U2"), ("well", "Quick pickup", None, "U2"), ("action", "Write a runbook", "U2", "U1"),
        ("well", "Owner ignored", None, "U1")]
    assert [e.kind for e in core.timeline(iid)].count("lesson.added") == 4


def test_archive_refuses_what_it_cannot_do(core, clock):
    iid = small_incident(core, clock)
    not_closed = "CRISIS-1 is not closed yet; its channel is archived after `/crisis close`."
    refuses(core, iid, "archive_not_closed", not_closed, core.archive, iid, "U1")
    core.resolve(iid, "U1")
    refuses(core, iid, "archive_not_closed", not_closed, core.archive, iid, "U1")
    core.close(iid, "U1")
    refuses(core, iid, "not_permitted_lead", "Only the lead (<@U1>) can archive the channel.", core.archive, iid, "U2")
    refuses(core, iid, "not_permitted_lead", "Only the lead (<@U1>) can archive the channel.", core.archive, iid,
            "U9")
    assert core.archive(iid, "U1").archive is True
    refuses(core, iid, "already_archived", "The channel of CRISIS-1 is already archived.", core.archive, iid, "U1")
    refuses(core, iid, "lesson_archived", "The channel of CRISIS-1 is archived; lessons can no longer be added.",
            core.add_lesson, iid, "U2", "well", "Too late")
    refuses(core, iid, "already_closed", "CRISIS-1 was already closed by <@U1> at 2026-11-22 02:35 UTC; nothing "
            "changed. `/crisis export` gives the retrospective as a file.", core.close, iid, "U1")


@pytest.mark.parametrize("ref", ["CRISIS-9", "crisis-0", "9", "", "   ", None, "CRISIS-", "CRISIS", "CRISIS--1",
                                 "CRISIS-1.0", "CRISIS-1x", "#1", "CRISIS-1; DROP TABLE incidents", "CRISIS-²",
                                 "CRISIS-١", "CRISIS-99999999999999999999"])
def test_find_incident_refuses_unknown_and_garbage_refs(core, clock, ref):
    iid = small_incident(core, clock)
    before = record(core, iid)
    refusal = refused(core.find_incident, ref)
    assert refusal.text == "export_unknown_incident"
    assert core.explain(refusal) == f"There is no incident “{ref or ''}”. Give its reference, like CRISIS-3."
    assert record(core, iid) == before


def test_find_incident_finds_one_and_asks_which_workspace(core, clock):
    first = small_incident(core, clock, "T1")
    second = small_incident(core, clock, "T2")
    assert core.find_incident("CRISIS-1", "T1") == (first, "T1")
    assert core.find_incident(" crisis-1 ", "T2") == (second, "T2")
    assert core.find_incident("1", "T2") == (second, "T2")
    refusal = refused(core.find_incident, "CRISIS-1")
    assert refusal.text == "export_which_workspace"
    assert core.explain(refusal) == "CRISIS-1 exists in more than one workspace (T1, T2); say which with --workspace."
    assert refused(core.find_incident, "CRISIS-1", "T3").text == "export_unknown_incident"


# --- 4. archive ----------------------------------------------------------------------------------------


def test_archive_hides_the_buttons_and_a_failed_archive_brings_them_back(core, clock):
    scripted = scripted_incident(core, clock, lessons=False)
    iid = scripted.incident_id
    clock.now = T("05:00")
    archived = core.archive(iid, LEA2)
    assert archived.archive is True
    assert archived.notices == [":file_cabinet: <@U05LEAD> archives this channel now. The retrospective stays here; "
                                "`crisisbot export` still gives the whole record."]
    summary = summary_of(archived)
    assert not has_buttons(summary)
    assert footer(summary) == "32 timeline events in all: `/crisis export` gives the whole record as a file. " \
                              "The channel is archived."
    assert core.retrospective(iid).archived_at == T("05:00")
    assert core.timeline(iid)[-1].kind == "channel.archived"
    assert pending_reminders(core, iid) == []           # the archive job is not needed any more

    clock.now = T("05:01")
    failed = core.archive_failed(iid, "not_in_channel")
    assert failed.archive is False
    assert failed.notices == [":warning: I could not archive this channel (not_in_channel). The lead can try again "
                              "with Archive channel."]
    assert has_buttons(summary_of(failed))
    last = core.timeline(iid)[-1]
    assert (last.kind, last.actor_id, last.at, last.data) == (
        "channel.archive_failed", BOT, T("05:01"), {"reason": "not_in_channel"})
    assert core.retrospective(iid).archived_at is None
    # Lessons are welcome again, and the lead can try again.
    core.add_lesson(iid, COM, "improve", "Invite the bot before archiving")
    assert core.archive(iid, LEA2).archive is True
    assert refused(core.add_lesson, iid, COM, "well", "Late").text == "lesson_archived"
    # A report for a channel that is not archived changes nothing.
    core.archive_failed(iid, "again")
    before = record(core, iid)
    quiet = core.archive_failed(iid, "again")
    assert (quiet.notices, quiet.updates) == ([], [])
    assert record(core, iid) == before


def test_the_archive_job_fires_seven_days_after_close(db, playbook, clock):
    weekly = playbook.model_copy(update={"closing": Closing(archive_after=timedelta(days=7))})
    core = Core(db, weekly, language="en", clock=clock)
    iid = small_incident(core, clock)
    core.resolve(iid, "U1")
    clock.advance(minutes=10)
    closed = core.close(iid, "U1")                      # 02:45
    assert footer(summary_of(closed)).endswith("The channel will be archived 2026-11-29 02:45 UTC.")
    assert core.next_due() == T("02:45", day=29)

    clock.now = T("02:44", day=29)
    assert core.claim_due("w1") == []
    assert core.retrospective(iid).archived_at is None

    clock.now = T("02:45", day=29)
    [job] = core.claim_due("w1")
    outcome, alerts = core.fire(job, "w1")
    core.mark_sent(job, "w1")
    assert outcome.archive is True and alerts == []
    assert outcome.notices == [":file_cabinet: Archiving this channel now. The retrospective stays here; "
                               "`crisisbot export` still gives the whole record."]
    assert not has_buttons(summary_of(outcome))
    last = core.timeline(iid)[-1]
    assert (last.kind, last.actor_id, last.at) == ("channel.archived", BOT, T("02:45", day=29))
    assert core.retrospective(iid).archived_at == T("02:45", day=29)
    assert core.next_due() is None
    clock.advance(days=30)
    assert core.claim_due("w1") == []


def test_no_archive_job_without_archive_after_and_none_after_a_manual_archive(db, playbook, clock):
    manual = playbook.model_copy(update={"closing": Closing()})
    core = Core(db, manual, language="en", clock=clock)
    iid = small_incident(core, clock, severity=4)       # SEV4 is not announced
    core.resolve(iid, "U1")
    closed = core.close(iid, "U1")
    assert [m.key for m in closed.updates] == ["header", "checklist:learn", "retrospective"]
    assert "archived" not in footer(summary_of(closed))
    assert pending_reminders(core, iid) == [] and core.next_due() is None

    weekly = Core(db, playbook, language="en", clock=clock)  # the shipped playbook: 7 d
    other = small_incident(weekly, clock)
    weekly.resolve(other, "U1")
    weekly.close(other, "U1")
    weekly.archive(other, "U1")
    clock.advance(days=8)
    assert weekly.claim_due("w1") == []


def test_a_scheduled_archive_whose_delivery_failed_is_tried_again(core, clock):
    iid = small_incident(core, clock)
    core.resolve(iid, "U1")
    core.close(iid, "U1")                               # 02:35; the shipped playbook archives 7 d later
    clock.now = T("02:35", day=29)
    [job] = core.claim_due("w1")
    assert core.fire(job, "w1")[0].archive is True
    core.release(job)                                   # posting failed: the handler gives the job back
    clock.advance(minutes=5)
    assert core.claim_due("w1") == [job]                # … and the next wake-up tries again


def test_after_a_failed_archive_the_footer_promises_no_archive_that_will_not_come(core, clock):
    iid = small_incident(core, clock)
    core.resolve(iid, "U1")
    core.close(iid, "U1")
    core.archive(iid, "U1")
    failed = core.archive_failed(iid, "not_in_channel")
    promised = "will be archived" in footer(summary_of(failed))
    assert promised == bool(pending_reminders(core, iid))


def test_a_scheduled_archive_that_slack_refused_promises_nothing_more(core, clock):
    iid = small_incident(core, clock)
    core.resolve(iid, "U1")
    core.close(iid, "U1")
    clock.now = T("02:35", day=29)
    [job] = core.claim_due("w1")
    assert core.fire(job, "w1")[0].archive is True
    failed = core.archive_failed(iid, "restricted_action")   # Slack said no: the channel stays open
    core.mark_sent(job, "w1")
    assert "will be archived" not in footer(summary_of(failed))
    assert pending_reminders(core, iid) == []
    assert "restricted_action" in failed.notices[0]


def test_a_deadline_met_after_its_due_time_reads_late_not_early(core, clock):
    """The acknowledgement comes 10 minutes after it was due, before any escalation fired (the bot was down)."""
    opening = core.start_incident(WS, "U1", "Quiet night", severity=2)   # acknowledge within 30 min
    iid = opening.incident_id
    core.opened(iid, "CQUIET", opening.channel_name())
    clock.now = T("02:40")
    core.claim_role(iid, "U2", "comms")
    clock.now = T("03:00")
    core.resolve(iid, "U1")
    closed = core.close(iid, "U1")
    [acknowledge] = [d for d in core.retrospective(iid).deadlines if d.kind == "acknowledge"]
    assert (acknowledge.state, acknowledge.early_by, acknowledge.late_by) == ("met", None, timedelta(minutes=10))
    assert "• internal acknowledgement, due 02:30 UTC: done *10 min late*" in section(
        summary_of(closed), "*Deadlines*")


# --- 5. exports ----------------------------------------------------------------------------------------


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with CRISISBOT_UPDATE_GOLDEN=1 once and read it"
    assert text == path.read_text(encoding="utf-8")


def test_markdown_export_matches_the_golden_file_en(core, clock, playbook):
    scripted = scripted_incident(core, clock)
    markdown = export.to_markdown(core.retrospective(scripted.incident_id), playbook, NAMES)
    # Text from people cannot make Markdown: the title's and the statement's special characters are escaped.
    assert markdown.startswith(r"# Retrospective of CRISIS-1: Charger \*overheats\* \_again\_ \<b\>hot\</b\> \| \#X200"
                               "\n")
    assert "> We know about reports that our \\*X200\\* charger over\\_heats.\n> \\<Details\\> follow \\| \\#recall\n" \
        in markdown
    assert "## Timeline (34 events)" in markdown
    check_golden("retrospective_en.md", markdown)


def test_markdown_export_matches_the_golden_file_de(db, playbook, clock):
    core = Core(db, playbook, language="de", clock=clock)
    scripted = scripted_incident(core, clock)
    retro = core.retrospective(scripted.incident_id)
    assert retro.language == "de"
    markdown = export.to_markdown(retro, playbook, NAMES)
    assert markdown.startswith(r"# Nachbetrachtung von CRISIS-1: Charger \*overheats\*")
    assert "- Zeit bis zur Bestätigung: 42 min (2026-11-22 02:42 UTC)\n" in markdown
    check_golden("retrospective_de.md", markdown)


def test_json_export_has_every_event_and_the_figures_in_seconds(core, clock):
    scripted = scripted_incident(core, clock)
    retro = core.retrospective(scripted.incident_id)
    data = json.loads(export.to_json(retro))
    assert data["format"] == "crisisbot-retrospective/1"
    assert len(data["timeline"]) == len(core.timeline(scripted.incident_id)) == 34
    assert [e["kind"] for e in data["timeline"]] == TIMELINE_KINDS
    assert (data["time_to_acknowledge"], data["time_to_first_statement"], data["time_to_resolve"]) == (
        2520.0, 4620.0, 7200.0)
    assert (data["started_at"], data["acknowledged_at"], data["closed_at"]) == (
        "2026-11-22T02:00:00+00:00", "2026-11-22T02:42:00+00:00", "2026-11-22T04:30:00+00:00")
    assert (data["deadlines_met"], data["deadlines_missed"]) == (5, 1)
    ack, first, *_, review = data["deadlines"]
    assert (ack["late_by"], ack["done_late_at"], ack["escalations"]) == (
        720.0, "2026-11-22T02:42:00+00:00", ["2026-11-22T02:30:00+00:00"])
    assert (first["early_by"], first["snoozed_for"], first["snoozed_by"]) == (780.0, 1800.0, LEA)
    assert review["early_by"] == 257400.0
    [statement] = data["statements"]
    assert statement["draft_to_publish"] == 1140.0
    assert [s["took"] for s in statement["versions"][1]["steps"]] == [180.0, 240.0, 180.0]
    assert data["timeline"][0]["data"]["title"] == TITLE    # raw in JSON: a tool escapes for its own format
    assert export.filename(retro, "json") == "crisis-1-retrospective.json"


def test_export_of_an_incident_acknowledged_by_a_checklist_item(core, clock, playbook):
    opening = core.start_incident(WS, "U1", "Ticked first", severity=3)
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    clock.advance(minutes=3)
    core.set_item(iid, "U1", "gather-facts", "item.done")   # the reporter's own work acknowledges too
    clock.advance(minutes=3)
    core.resolve(iid, "U1")
    summary = summary_of(core.close(iid, "U1"))
    assert "• 02:03 UTC Acknowledged: <@U1> did “Gather the facts: what happened, where, since when”" in \
        section(summary, "*Key moments*")
    retro = core.retrospective(iid)
    assert retro.time_to_acknowledge == timedelta(minutes=3)
    for language in ("en", "de"):
        markdown = export.to_markdown(dataclasses.replace(retro, language=language), playbook)
        assert "Gather the facts: what happened, where, since when" in markdown or \
            "Fakten sammeln: Was ist passiert, wo, seit wann?" in markdown


# --- 6. a very large incident still fits a chat message ---------------------------------------------------

SECTION_MAX, CONTEXT_MAX, BLOCKS_MAX, LABEL_MAX = 3000, 2000, 50, 75  # Slack; contexts as the adapter cuts them


def assert_fits_slack(message: Message) -> None:
    assert len(message.blocks) <= BLOCKS_MAX, message.key
    assert len(message.text) <= SECTION_MAX, message.key
    for block in message.blocks:
        if isinstance(block, Section):
            assert len(block.text) <= SECTION_MAX, (message.key, len(block.text), block.text[:80])
        elif isinstance(block, Context):
            assert len(block.text) <= CONTEXT_MAX, (message.key, len(block.text), block.text[:80])
    for button in message.buttons():
        assert len(getattr(button, "label", "")) <= LABEL_MAX, message.key


def bulk_events(incident_id: int, start: datetime, count: int) -> list[dict]:
    """Status updates, checklist toggles, moved deadlines and severity changes by 300 people, a second apart."""
    reason = "r" * 480
    rows = []
    for n in range(count):
        kind, data = [
            ("status.update", {"known": f"Known {n} " + "k" * 200, "doing": "Watching", "next_due": None}),
            ("item.done" if n % 8 < 4 else "item.reopened",
             {"item": "watch-mentions", "title": "Watch mentions", "previous": "open"}),
            ("deadline.snoozed", {"kind": "update", "previous": None, "due": None, "reason": f"<{n}> {reason}"}),
            ("severity.changed", {"previous": 1 + n % 2, "severity": 2 - n % 2}),
        ][n % 4]
        rows.append({"incident_id": incident_id, "at": start + timedelta(seconds=n), "actor_id": f"U9{n % 300:03d}",
                     "kind": kind, "data": data})
    return rows


def test_a_large_incident_fits_slack_and_points_to_the_export(core, clock):
    title = "<b>&" * 37                                 # 148 characters, each one longer once escaped for chat
    opening = core.start_incident(WS, LEA, title, severity=1)
    iid = opening.incident_id
    core.opened(iid, "C0BIG", opening.channel_name())
    for role, user in (("comms", COM), ("legal", LEG), ("social", SOC)):
        core.claim_role(iid, user, role)                # 02:00: acknowledged by a role 
    with core.db.transaction() as s:                    # 02:00–02:45: the bulk of the timeline
        s.execute(insert(TimelineEvent), bulk_events(iid, START + timedelta(seconds=1), 2700))
    clock.now = T("02:46")
    for n in range(60):                                 # through the core: updates, toggles, severities
        clock.advance(minutes=1)
        core.status_update(iid, (COM, SOC)[n % 2], f"Update {n}", "Still on it", None)
        core.set_item(iid, LEA, "gather-facts", "item.done" if n % 2 == 0 else "item.reopen")
        if n % 6 == 0:
            core.set_severity(iid, LEA, 1 + (n // 6) % 2)
    core.snooze(iid, LEA, "first_statement", timedelta(hours=2), "<wait> " + "s" * 490)
    for n in range(12):                                 # 12 social-media managers in turn
        clock.advance(minutes=1)
        core.assign_role(iid, LEA, f"U8{n:03d}", "social")
    with core.db.transaction() as s:                    # 40 statements, each sent back once, then published
        for number in range(1, 41):
            at = clock.now + timedelta(seconds=number)
            versions = [StatementVersion(number=v, text=f"Statement {number}.{v} " + "t" * 300, values={},
                                         steps=[{"roles": ["legal"], "mode": "all"}, {"roles": ["comms"],
                                                                                     "mode": "any"}],
                                         author_id=SOC, created_at=at) for v in (1, 2)]
            versions[0].decisions = [StatementDecision(step=0, role="legal", user_id=LEG, kind="changes",
                                                       reason="No", at=at)]
            versions[1].decisions = [StatementDecision(step=0, role="legal", user_id=LEG, kind="approve", at=at),
                                     StatementDecision(step=1, role="comms", user_id=COM, kind="approve", at=at)]
            s.add(Statement(incident_id=iid, number=number, title="Holding statement – we are on it " + "#" * 150,
                            audience="public", state="published", created_by=SOC, created_at=at, published_at=at,
                            published_by=SOC, published_where="X " + "w" * 150, published_link=LINK + "/" + "l" * 300,
                            versions=versions))
        for n in range(60):                             # 60 missed update deadlines, each moved with a long reason
            due = T("02:30") + timedelta(minutes=n)
            s.add(Deadline(incident_id=iid, kind="update", starts_at=due - timedelta(minutes=30), due_at=due,
                           state="missed", closed_at=due, snoozed_by=LEA, snooze_reason="<late> " + "d" * 490,
                           snooze_seconds=600))
    clock.advance(minutes=5)
    core.resolve(iid, LEA)
    clock.advance(minutes=5)
    closed = core.close(iid, LEA)
    with core.db.transaction() as s:                    # 50 lessons of each kind, each as long as allowed
        at = clock.now
        for n in range(150):
            kind = ("well", "improve", "action")[n % 3]
            text = f"Lesson {n} <{kind}> " + "l" * 480
            owner = f"U7{n:03d}" if kind == "action" else None
            s.add(Lesson(incident_id=iid, kind=kind, text=text, owner_id=owner, author_id=COM, created_at=at))
            s.add(TimelineEvent(incident_id=iid, at=at, actor_id=COM, kind="lesson.added",
                                data={"lesson": kind, "text": text, "owner": owner}))
    clock.advance(minutes=1)
    lesson = core.add_lesson(iid, LEA, "action", "One more " + "m" * 480, owner=COM)

    events = len(core.timeline(iid))
    assert events >= 3000
    retro = core.retrospective(iid)
    assert len(retro.timeline) == events
    assert (len(retro.lessons), len(retro.statements), len(retro.participants)) == (151, 40, 300 + 4 + 12)
    assert len(retro.deadlines) > 100 and len(retro.severity_changes) > 600

    for outcome in (closed, lesson):
        for message in outcome.updates:
            assert_fits_slack(message)
    summary = summary_of(lesson)
    text = "\n".join(b.text for b in summary.blocks if isinstance(b, (Section, Context)))
    for heading in ("*Key moments*", "*Deadlines*", "*Statements*", "*Lessons learned*"):
        body = section(summary, heading)
        shown = body.count("\n• ")
        more = int(body.rsplit("_… and ", 1)[1].split(" ")[0])
        assert body.endswith(" more in the export_"), heading
        assert shown >= 1 and more >= 1, heading
    moments = section(summary, "*Key moments*")
    assert moments.count("\n• ") + int(moments.rsplit("_… and ", 1)[1].split(" ")[0]) == len(retro.moments)
    assert "more_" in section(summary, "*Roles*")       # roles, people and severity changes: "… and N more"
    assert f"{events} timeline events in all" in footer(summary)
    assert "more in the export" in text
    # The announcement copy and the archived summary fit too; the export holds every event.
    assert_fits_slack(summary_of(lesson, "retrospective:announce"))
    for message in core.archive(iid, LEA).updates:
        assert_fits_slack(message)
    markdown = export.to_markdown(core.retrospective(iid), core.playbook)
    timeline = markdown.split(f"## Timeline ({events + 1} events)\n\n", 1)[1]
    assert sum(1 for line in timeline.splitlines() if line.startswith("- ")) == events + 1
