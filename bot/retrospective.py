"""The retrospective: what happened and how fast, measured from the incident's rows and timeline.

Pure: built from a loaded incident, its timeline and its reminders, so the same incident always
measures the same. The chat summary (bot/views.py) and the exports (bot/export.py) render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import statements
from bot.models import Deadline, Incident, Reminder, Statement, StatementVersion, TimelineEvent
from bot.playbook import Playbook

BOT = "crisisbot"
# What a person reading the summary wants to see at a glance; everything else is in the export.
KEY_KINDS = ("incident.started", "severity.changed", "phase.changed", "statement.published",
             "deadline.missed", "deadline.snoozed", "status.update", "incident.resolved", "incident.closed")


@dataclass(frozen=True)
class Moment:
    at: datetime
    actor: str
    kind: str
    data: dict


@dataclass(frozen=True)
class DeadlineResult:
    kind: str
    starts_at: datetime
    due_at: datetime
    state: str                       # met, missed, cancelled (stopped at resolve), open
    closed_at: datetime | None
    early_by: timedelta | None       # met in time: how long before the due time
    late_by: timedelta | None        # met or done after the due time: by how much
    done_late_at: datetime | None    # missed: when it was done after all; None if never
    stopped_at_resolve: bool         # cancelled because the incident was resolved
    snoozed_by: str | None
    snooze_reason: str | None
    snoozed_for: timedelta | None
    reminders_sent: int
    escalations: tuple[datetime, ...]  # when each escalation was sent


@dataclass(frozen=True)
class ItemResult:
    step: str
    key: str
    title: str
    owner_role: str
    state: str               # done, skipped, open
    by: str | None
    at: datetime | None


@dataclass(frozen=True)
class StepResult:
    key: str
    phase: str               # the incident phase the step belongs to
    items: tuple[ItemResult, ...]

    def of(self, state: str) -> tuple[ItemResult, ...]:
        return tuple(i for i in self.items if i.state == state)


@dataclass(frozen=True)
class Approval:
    user: str
    role: str | None
    at: datetime


@dataclass(frozen=True)
class ApprovalStepResult:
    index: int
    roles: tuple[str, ...]
    mode: str
    opened_at: datetime | None   # None: an earlier step never finished
    done_at: datetime | None
    took: timedelta | None
    approvals: tuple[Approval, ...]


@dataclass(frozen=True)
class Objection:
    kind: str                # changes, reject
    user: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class VersionResult:
    number: int
    author: str
    created_at: datetime
    steps: tuple[ApprovalStepResult, ...]
    objections: tuple[Objection, ...]
    text: str


@dataclass(frozen=True)
class StatementResult:
    number: int
    title: str
    audience: str
    template: str | None
    state: str
    created_by: str
    created_at: datetime
    versions: tuple[VersionResult, ...]
    published_at: datetime | None
    published_by: str | None
    published_where: str | None
    published_link: str | None
    draft_to_publish: timedelta | None


@dataclass(frozen=True)
class RoleSpan:
    role: str
    user: str
    assigned_by: str
    started_at: datetime
    ended_at: datetime | None    # None: held to the end


@dataclass(frozen=True)
class Participant:
    user: str
    actions: int
    first_at: datetime
    last_at: datetime
    roles: tuple[str, ...]


@dataclass(frozen=True)
class SeverityChange:
    at: datetime
    by: str
    previous: int
    severity: int


@dataclass(frozen=True)
class LessonResult:
    kind: str                # well, improve, action
    text: str
    owner: str | None
    author: str
    at: datetime


@dataclass(frozen=True)
class Retrospective:
    ref: str
    title: str
    crisis_type: str
    language: str
    severity: int
    first_severity: int
    reporter: str
    started_at: datetime
    acknowledged_at: datetime | None
    first_statement_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    archived_at: datetime | None
    archive_due: datetime | None     # when a pending archive job will archive the channel
    time_to_acknowledge: timedelta | None
    time_to_first_statement: timedelta | None
    time_to_resolve: timedelta | None
    moments: tuple[Moment, ...]
    deadlines: tuple[DeadlineResult, ...]
    checklist: tuple[StepResult, ...]
    statements: tuple[StatementResult, ...]
    roles: tuple[RoleSpan, ...]
    participants: tuple[Participant, ...]
    severity_changes: tuple[SeverityChange, ...]
    lessons: tuple[LessonResult, ...]
    timeline: tuple[Moment, ...]

    @property
    def missed(self) -> int:
        return sum(1 for d in self.deadlines if d.state == "missed")

    @property
    def met(self) -> int:
        return sum(1 for d in self.deadlines if d.state == "met")


def build(incident: Incident, events: Sequence[TimelineEvent], reminders: list[Reminder],
          playbook: Playbook) -> Retrospective:
    """`events` in order; anything with the attributes at, actor_id, kind and data will do."""
    timeline = tuple(Moment(e.at, e.actor_id, e.kind, dict(e.data or {})) for e in events)
    acknowledged = next((m.at for m in timeline if _acknowledges(m, incident.reporter_id)), None)
    public = sorted(st.published_at for st in incident.statements
                    if st.published_at is not None and st.audience != "internal")
    first_statement = public[0] if public else None
    changes = tuple(SeverityChange(m.at, m.actor, int(m.data.get("previous", 0)), int(m.data.get("severity", 0)))
                    for m in timeline if m.kind == "severity.changed")
    start = incident.created_at
    sent: dict[int, list[Reminder]] = {}
    for reminder in reminders:
        if reminder.state == "sent" and reminder.deadline_id is not None:
            sent.setdefault(reminder.deadline_id, []).append(reminder)
    return Retrospective(
        ref=incident.ref, title=incident.title, crisis_type=incident.crisis_type, language=incident.language,
        severity=incident.severity, first_severity=changes[0].previous if changes else incident.severity,
        reporter=incident.reporter_id, started_at=start, acknowledged_at=acknowledged,
        first_statement_at=first_statement, resolved_at=incident.resolved_at, closed_at=incident.closed_at,
        closed_by=incident.closed_by, archived_at=incident.archived_at,
        archive_due=min((r.due_at for r in reminders if r.kind == "archive" and r.state == "pending"), default=None),
        time_to_acknowledge=_since(start, acknowledged), time_to_first_statement=_since(start, first_statement),
        time_to_resolve=_since(start, incident.resolved_at),
        moments=_moments(timeline, incident.reporter_id),
        deadlines=tuple(_deadline(d, timeline, sent.get(d.id, []), incident, acknowledged, first_statement)
                        for d in incident.deadlines),
        checklist=_checklist(incident, playbook),
        statements=tuple(_statement(st) for st in incident.statements),
        roles=tuple(RoleSpan(a.role, a.user_id, a.assigned_by, a.started_at, a.ended_at)
                    for a in incident.assignments),
        participants=_participants(timeline, incident),
        severity_changes=changes,
        lessons=tuple(LessonResult(x.kind, x.text, x.owner_id, x.author_id, x.created_at) for x in incident.lessons),
        timeline=timeline,
    )


def _since(start: datetime, at: datetime | None) -> timedelta | None:
    return at - start if at is not None else None


def _acknowledges(moment: Moment, reporter: str) -> bool:
    # The same rule the acknowledge deadline uses (bot/core.py): another person takes a role, or work is done.
    if moment.kind == "role.assigned":
        return moment.data.get("user") not in (None, reporter)
    return moment.kind == "item.done"


def _moments(timeline: tuple[Moment, ...], reporter: str) -> tuple[Moment, ...]:
    out, acknowledged = [], False
    for moment in timeline:
        if not acknowledged and _acknowledges(moment, reporter):
            acknowledged = True
            out.append(Moment(moment.at, moment.actor, "acknowledged", moment.data))
        elif moment.kind in KEY_KINDS:
            out.append(moment)
    return tuple(out)


def _deadline(deadline: Deadline, timeline: tuple[Moment, ...], mine: list[Reminder], incident: Incident,
              acknowledged: datetime | None, first_statement: datetime | None) -> DeadlineResult:
    """`mine`: the reminders and escalations sent for this deadline."""
    early = late = done_late = None
    if deadline.state == "met" and deadline.closed_at is not None:
        # Met after the due time when the escalation had not fired yet (the bot was down, say): late.
        if deadline.closed_at > deadline.due_at:
            late = deadline.closed_at - deadline.due_at
        else:
            early = deadline.due_at - deadline.closed_at
    elif deadline.state == "missed":
        done_late = _done_after(deadline, timeline, incident, acknowledged, first_statement)
        late = done_late - deadline.due_at if done_late else None
    return DeadlineResult(
        kind=deadline.kind, starts_at=deadline.starts_at, due_at=deadline.due_at, state=deadline.state,
        closed_at=deadline.closed_at, early_by=early, late_by=late, done_late_at=done_late,
        stopped_at_resolve=deadline.state == "cancelled" and _stopped_by_resolve(deadline),
        snoozed_by=deadline.snoozed_by, snooze_reason=deadline.snooze_reason,
        snoozed_for=timedelta(seconds=deadline.snooze_seconds) if deadline.snoozed_by else None,
        reminders_sent=sum(1 for r in mine if r.kind == "remind"),
        escalations=tuple(sorted(r.sent_at for r in mine if r.kind == "escalate" and r.sent_at)))


def _stopped_by_resolve(deadline: Deadline) -> bool:
    """Resolve records why it stopped a deadline; a row from before that is told by its signature:
    resolve closed it in someone's name, a severity change in nobody's."""
    if deadline.close_reason is not None:
        return deadline.close_reason == "resolved"
    return deadline.closed_by is not None


def _done_after(deadline: Deadline, timeline: tuple[Moment, ...], incident: Incident,
                acknowledged: datetime | None, first_statement: datetime | None) -> datetime | None:
    """When a missed deadline's promise was kept after all, late."""
    if deadline.kind == "acknowledge":
        return acknowledged
    if deadline.kind == "first_statement":
        return first_statement
    if deadline.kind == "review":
        return incident.closed_at
    public = {st.number for st in incident.statements if st.audience != "internal"}
    return next((m.at for m in timeline if m.at > deadline.due_at and (
        m.kind == "status.update" or (m.kind == "statement.published" and m.data.get("statement") in public))), None)


def _checklist(incident: Incident, playbook: Playbook) -> tuple[StepResult, ...]:
    out = []
    for step in playbook.checklist:
        items = tuple(ItemResult(i.step, i.key, i.title, i.owner_role, i.state, i.changed_by, i.changed_at)
                      for i in incident.items if i.step == step.key)
        out.append(StepResult(step.key, step.incident_phase, items))
    known = {s.key for s in playbook.checklist}
    # Steps the playbook has dropped since the incident started still belong to its record.
    for key in dict.fromkeys(i.step for i in incident.items if i.step not in known):
        items = tuple(ItemResult(i.step, i.key, i.title, i.owner_role, i.state, i.changed_by, i.changed_at)
                      for i in incident.items if i.step == key)
        out.append(StepResult(key, "", items))
    return tuple(out)


def _statement(statement: Statement) -> StatementResult:
    published = statement.published_at
    return StatementResult(
        number=statement.number, title=statement.title, audience=statement.audience,
        template=statement.template_key, state=statement.state, created_by=statement.created_by,
        created_at=statement.created_at, versions=tuple(_version(v) for v in statement.versions),
        published_at=published, published_by=statement.published_by, published_where=statement.published_where,
        published_link=statement.published_link,
        draft_to_publish=published - statement.created_at if published else None)


def _version(version: StatementVersion) -> VersionResult:
    """Each approval step opens when the one before it is done and takes until its own is."""
    approvals: list[statements.Decision] = []
    done_at: dict[int, datetime] = {}
    by_step: dict[int, list[Approval]] = {}
    for decision in sorted(version.decisions, key=lambda d: (d.at, d.id or 0)):
        if decision.kind != "approve":
            continue
        approvals.append(statements.Decision(decision.step, decision.role, decision.user_id))
        by_step.setdefault(decision.step, []).append(Approval(decision.user_id, decision.role, decision.at))
        for state in statements.progress(version.steps, approvals):
            if state.done and state.index not in done_at:
                done_at[state.index] = decision.at
    steps, opened = [], version.created_at
    for index, step in enumerate(version.steps):
        done = done_at.get(index) if opened is not None else None
        steps.append(ApprovalStepResult(index, tuple(step["roles"]), step["mode"], opened, done,
                                        done - opened if done and opened else None, tuple(by_step.get(index, ()))))
        opened = done
    objections = tuple(Objection(d.kind, d.user_id, d.reason or "", d.at) for d in version.decisions
                       if d.kind != "approve")
    return VersionResult(version.number, version.author_id, version.created_at, tuple(steps), objections, version.text)


def _participants(timeline: tuple[Moment, ...], incident: Incident) -> tuple[Participant, ...]:
    seen: dict[str, list[datetime]] = {}
    for moment in timeline:
        if moment.actor and moment.actor != BOT:
            seen.setdefault(moment.actor, []).append(moment.at)
    for assignment in incident.assignments:  # assigned, never acted: still part of the team
        seen.setdefault(assignment.user_id, [])
    out = []
    for user, times in seen.items():
        roles = tuple(dict.fromkeys(a.role for a in incident.assignments if a.user_id == user))
        first = min(times) if times else min(a.started_at for a in incident.assignments if a.user_id == user)
        last = max(times) if times else first
        out.append(Participant(user, len(times), first, last, roles))
    return tuple(sorted(out, key=lambda p: (-p.actions, p.first_at, p.user)))
