"""Response-time clocks: deadlines that events meet, reminders before them, escalation after.

Mixed into Core. Deadlines and reminders are rows; `claim_due` hands due reminders to one
process at a time (FOR UPDATE SKIP LOCKED on PostgreSQL, a lease against crashes) and
`fire` says what to post. Nothing here sleeps: the handler's scheduler wakes for `next_due`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.commands import parse_shift
from bot.errors import Refusal
from bot.models import Deadline, Incident, Reminder
from bot.playbook import DEADLINE_KINDS, DEFAULT_OWNERS, DeadlineRule, Escalation
from bot.texts import Trusted, mention

LEASE = timedelta(seconds=60)    # a claimed reminder not confirmed sent by then is claimed again
MAX_ATTEMPTS = 12  # transient failures of one row (its own back-off each time) before it counts as failed
LATE_AFTER = timedelta(seconds=60)  # sent this long after its time: marked late (the bot was down)
LIVE = ("acknowledge", "first_statement", "update")
_CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Alert:
    channel: str          # a channel, or with `direct` the person to tell privately
    text: str
    direct: bool = False


class Clocks:
    """Deadline actions; expects the Core's db, playbook, views, clock and helpers."""

    lease = LEASE  # how long a claim holds; the deliverer extends it while a post is under way

    # -- rules -------------------------------------------------------------------------------

    def _rule(self, severity: int, kind: str) -> DeadlineRule | None:
        return self.playbook.deadlines.rule(severity, kind)

    def _length(self, rule: DeadlineRule, kind: str) -> timedelta | None:
        return rule.every if kind == "update" else rule.within

    def _offsets(self, rule: DeadlineRule) -> list[timedelta]:
        return rule.remind if rule.remind is not None else self.playbook.deadlines.remind_before

    def _escalation(self, rule: DeadlineRule | None) -> Escalation:
        return (rule.escalate if rule and rule.escalate else None) or self.playbook.deadlines.escalate

    # -- creating and moving deadlines ---------------------------------------------------------

    def _open_deadline(self, s: Session, incident: Incident, kind: str, starts: datetime,
                       due: datetime | None = None) -> Deadline | None:
        rule = self._rule(incident.severity, kind)
        if rule is None:
            return None
        deadline = Deadline(incident_id=incident.id, kind=kind, starts_at=starts,
                            due_at=due or starts + self._length(rule, kind), state="open")
        incident.deadlines.append(deadline)
        s.flush()
        self._schedule(s, incident, deadline, rule)
        return deadline

    def _schedule(self, s: Session, incident: Incident, deadline: Deadline, rule: DeadlineRule) -> None:
        """Reminders before the due time (those still ahead) and the escalation at it."""
        s.execute(update(Reminder).where(Reminder.deadline_id == deadline.id, Reminder.state == "pending")
                  .values(state="cancelled"))
        now = self.clock()
        for offset in self._offsets(rule):
            at = deadline.due_at - offset
            if at > now:
                s.add(Reminder(deadline_id=deadline.id, incident_id=incident.id, kind="remind", due_at=at))
        # A due time moved into the past (a raised severity) escalates now, not "late".
        s.add(Reminder(deadline_id=deadline.id, incident_id=incident.id, kind="escalate",
                       due_at=max(deadline.due_at, now)))

    def _start_clocks(self, s: Session, incident: Incident) -> None:
        for kind in LIVE:
            self._open_deadline(s, incident, kind, incident.created_at)

    def _open(self, incident: Incident, kind: str) -> Deadline | None:
        return next((d for d in incident.deadlines if d.kind == kind and d.state == "open"), None)

    def _close(self, s: Session, incident: Incident, deadline: Deadline, state: str, user: str | None,
               keep: int | None = None, reason: str | None = None) -> None:
        deadline.state, deadline.closed_at, deadline.closed_by = state, self.clock(), user
        deadline.close_reason = reason
        s.execute(update(Reminder).where(Reminder.deadline_id == deadline.id, Reminder.state == "pending",
                                         Reminder.id != (keep or 0)).values(state="cancelled"))

    def _meet(self, s: Session, incident: Incident, kind: str, user: str, by: str,
              next_due: datetime | None = None) -> bool:
        """An event met the deadline of this kind; an update's clock starts again at once."""
        deadline = self._open(incident, kind)
        if deadline is None:
            return False
        now = self.clock()
        self._close(s, incident, deadline, "met", user)
        self._event(s, incident, user, "deadline.met", kind=kind, due=deadline.due_at.isoformat(), by=by,
                    early_by_seconds=int((deadline.due_at - now).total_seconds()))
        if kind == "update" and incident.live:
            self._open_deadline(s, incident, "update", now, next_due)
        return True

    def _reschedule_for_severity(self, s: Session, incident: Incident) -> None:
        """A new severity brings new lengths: each open deadline keeps its start, gets a new due time."""
        for deadline in [d for d in incident.deadlines if d.state == "open"]:
            rule = self._rule(incident.severity, deadline.kind)
            if rule is None:
                self._close(s, incident, deadline, "cancelled", None, reason="severity")
                continue
            deadline.due_at = deadline.starts_at + self._length(rule, deadline.kind) + timedelta(
                seconds=deadline.snooze_seconds or 0)
            self._schedule(s, incident, deadline, rule)
        for kind in LIVE:  # a deadline this severity has and the old one had not
            if self._rule(incident.severity, kind) and not any(d.kind == kind for d in incident.deadlines):
                self._open_deadline(s, incident, kind, incident.created_at)

    def _stop_live_clocks(self, s: Session, incident: Incident, user: str) -> None:
        for deadline in [d for d in incident.deadlines if d.state == "open" and d.kind in LIVE]:
            self._close(s, incident, deadline, "cancelled", user, reason="resolved")
        self._open_deadline(s, incident, "review", self.clock())

    # -- actions -----------------------------------------------------------------------------

    def snooze(self, incident_id: int, user: str, kind: str, length: timedelta, reason: str):
        reason = (reason or "").strip()
        if not reason:
            raise Refusal("snooze_reason_missing")
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            if kind not in DEADLINE_KINDS:
                raise Refusal("unknown_deadline", given=kind, kinds=", ".join(DEADLINE_KINDS))
            if incident.phase == "closed":
                raise Refusal("incident_resolved", ref=incident.ref)
            self._require_lead(incident, user, "snooze")
            deadline = self._open(incident, kind)
            if deadline is None:
                raise Refusal("deadline_not_open", kind=kind)
            if deadline.snoozed_by:
                raise Refusal("snooze_twice", kind=kind, by=mention(deadline.snoozed_by))
            before = deadline.due_at
            deadline.due_at = before + length
            deadline.snoozed_by, deadline.snooze_reason = user, reason[:500]
            deadline.snooze_seconds = int(length.total_seconds())
            self._schedule(s, incident, deadline, self._rule(incident.severity, kind) or DeadlineRule())
            self._event(s, incident, user, "deadline.snoozed", kind=kind, previous=before.isoformat(),
                        due=deadline.due_at.isoformat(), reason=reason)
            notice = self.say("deadline_snoozed", incident.language, kind=kind, by=mention(user),
                              due=deadline.due_at, reason=reason)
            return self._outcome(incident, notices=[notice], updates=[self.views.header(incident)])

    def status_update(self, incident_id: int, user: str, known: str, doing: str, next_at: str | None,
                      request_key: str | None = None):
        known, doing = (known or "").strip(), (doing or "").strip()
        if not known and not doing:
            raise Refusal("update_empty")
        if len(known) > 1500 or len(doing) > 1500:
            raise Refusal("update_too_long", limit=1500)
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            if not incident.roles_of(user):
                raise Refusal("not_permitted_update")
            if repeated := self._repeated(s, incident, request_key and f"update:{request_key}"):
                return repeated  # a double submit or a second instance: one update, one announcement
            self._answered(s, incident, request_key and f"update:{request_key}", "repeat_update", ref=incident.ref)
            now = self.clock()
            next_due = parse_next(next_at, now) if next_at and next_at.strip() else None
            self._event(s, incident, user, "status.update", known=known, doing=doing,
                        next_due=next_due.isoformat() if next_due else None)
            self._meet(s, incident, "update", user, "status.update", next_due)
            following = self._open(incident, "update")
            due = following.due_at if following else next_due
            text = self.say("status_update", incident.language, ref=incident.ref, by=mention(user), known=known,
                            doing=doing, next_due=due)
            out = self._outcome(incident, notices=[text], updates=[self.views.header(incident)])
            out.announcement = self.say("announce_update", incident.language, ref=incident.ref,
                                        title=incident.title, by=mention(user), known=known, doing=doing,
                                        next_due=due)
            return out

    # -- the scheduler's side -------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """When the next pending reminder can be claimed (due, and any lease run out), for the wake-up."""
        with self.db.transaction() as s:
            free = s.scalar(select(Reminder.due_at).where(
                Reminder.state == "pending", Reminder.lease_until.is_(None), Reminder.next_attempt_at.is_(None))
                .order_by(Reminder.due_at).limit(1))
            # A row that failed for now waits for its own next attempt, never holding up the others.
            retry = s.scalar(select(func.min(Reminder.next_attempt_at)).where(
                Reminder.state == "pending", Reminder.lease_until.is_(None), Reminder.next_attempt_at.is_not(None)))
            leased = s.scalar(select(func.min(Reminder.lease_until)).where(
                Reminder.state == "pending", Reminder.lease_until.is_not(None)))
            times = [t for t in (free, retry, leased) if t is not None]
            return min(times) if times else None

    def claim_due(self, worker: str, limit: int = 50) -> list[int]:
        """Claim due reminders for this process; another process skips the rows this one holds."""
        now = self.clock()
        with self.db.transaction() as s:
            rows = s.scalars(
                select(Reminder).where(
                    Reminder.state == "pending", Reminder.due_at <= now,
                    or_(Reminder.next_attempt_at.is_(None), Reminder.next_attempt_at <= now),
                    or_(Reminder.lease_until.is_(None), Reminder.lease_until < now))
                .order_by(Reminder.due_at).limit(limit).with_for_update(skip_locked=True)).all()
            for row in rows:
                row.lease_until, row.claimed_by = now + self.lease, worker
                row.attempts = (row.attempts or 0) + 1
            return [row.id for row in rows]

    @staticmethod
    def _holds(reminder: Reminder | None, worker: str, now: datetime) -> bool:
        """This worker's claim, and its lease has not run out (else another may have it by now)."""
        return (reminder is not None and reminder.state == "pending" and reminder.claimed_by == worker
                and reminder.lease_until is not None and reminder.lease_until > now)

    def extend_lease(self, reminder_id: int, worker: str) -> bool:
        """While a post is under way: keep the claim. False when it was lost (ran out, or taken)."""
        now = self.clock()
        with self.db.transaction() as s:
            done = s.execute(update(Reminder).where(
                Reminder.id == reminder_id, Reminder.state == "pending", Reminder.claimed_by == worker,
                Reminder.lease_until > now).values(lease_until=now + self.lease))
            return done.rowcount == 1

    def delivery_attempt(self, reminder_id: int) -> int:
        """1 for the first claim; more means an earlier attempt may have posted already."""
        with self.db.transaction() as s:
            return s.scalar(select(Reminder.attempts).where(Reminder.id == reminder_id)) or 0

    def fire(self, reminder_id: int, worker: str):
        """What a claimed reminder posts; None when its deadline was met, moved or cancelled meanwhile."""
        with self.db.transaction() as s:
            incident_id = s.scalar(select(Reminder.incident_id).where(Reminder.id == reminder_id))
            if incident_id is None:
                return None
            # The incident first, then the reminder: the order every action takes, so no deadlock.
            incident = self._load(s, incident_id)
            reminder = s.get(Reminder, reminder_id, with_for_update=True, populate_existing=True)
            if not self._holds(reminder, worker, self.clock()):
                return None
            if reminder.kind == "archive":
                return self.archive_due(s, incident, reminder)
            deadline = s.get(Deadline, reminder.deadline_id)
            now = self.clock()
            late = now - reminder.due_at > LATE_AFTER
            rule = self._rule(incident.severity, deadline.kind)
            lang = incident.language
            escalation = self._escalation(rule)
            if reminder.kind == "escalate" and deadline.state == "missed" and reminder.due_at >= deadline.due_at:
                # Marked missed by an earlier attempt whose post failed: send it, do not repeat the rest.
                return self._escalation_outcome(incident, deadline, escalation, late), self._alerts(
                    incident, deadline, escalation)
            stale = reminder.kind == "remind" and deadline.due_at <= now  # its escalation says it all
            moved = reminder.kind == "escalate" and reminder.due_at != max(deadline.due_at, reminder.due_at)
            if deadline.state != "open" or stale or moved:
                reminder.state = "cancelled"
                return None
            if reminder.kind == "remind":
                owners = (rule.owners if rule and rule.owners else DEFAULT_OWNERS[deadline.kind])
                text = self.say("reminder", lang, kind=deadline.kind, due=deadline.due_at,
                                left=max(deadline.due_at - now, timedelta(0)), late=late,
                                people=self._people(incident, owners))
                return self._outcome(incident, notices=[text]), []
            self._close(s, incident, deadline, "missed", None, keep=reminder.id)  # this one is being sent
            self._event(s, incident, "crisisbot", "deadline.missed", kind=deadline.kind,
                        due=deadline.due_at.isoformat(), late=late)
            if deadline.kind == "update":  # the cadence goes on: the next update is due from now
                self._open_deadline(s, incident, "update", now)
            return self._escalation_outcome(incident, deadline, escalation, late), self._alerts(
                incident, deadline, escalation)

    def _escalation_outcome(self, incident: Incident, deadline: Deadline, escalation: Escalation, late: bool):
        text = self.say("escalation", incident.language, kind=deadline.kind, due=deadline.due_at, late=late,
                        people=self._people(incident, escalation.roles))
        return self._outcome(incident, notices=[text], updates=[self.views.header(incident)])

    def _alerts(self, incident: Incident, deadline: Deadline, escalation: Escalation) -> list[Alert]:
        if not escalation.channel:
            return []
        return [Alert(escalation.channel, self.say(
            "escalation_alert", incident.language, kind=deadline.kind, due=deadline.due_at, ref=incident.ref,
            title=incident.title, channel=self.views.channel(incident),
            people=self._people(incident, escalation.roles)))]

    def mark_sent(self, reminder_id: int, worker: str) -> bool:
        """Only by the worker whose lease still holds: one that lost it leaves the row to the next
        claim, which finds the post (see the deliverer) instead of sending it again."""
        with self.db.transaction() as s:
            reminder = s.get(Reminder, reminder_id, with_for_update=True, populate_existing=True)
            now = self.clock()
            if not self._holds(reminder, worker, now):
                return False
            reminder.state, reminder.sent_at = "sent", now
            reminder.late = now - reminder.due_at > LATE_AFTER
            reminder.lease_until = reminder.next_attempt_at = reminder.last_error = None
            return True

    def release(self, reminder_id: int) -> None:
        """Let the next wake-up try again at once (a test's crash; the deliverer uses retry_later)."""
        with self.db.transaction() as s:
            reminder = s.get(Reminder, reminder_id, with_for_update=True)
            if reminder is not None and reminder.state == "pending":
                reminder.lease_until, reminder.claimed_by = None, None

    def retry_later(self, reminder_id: int, worker: str, after: timedelta, reason: str) -> list[Alert]:
        """A transient failure (rate limit, Slack down, a timeout): this row alone waits `after`.
        After MAX_ATTEMPTS it counts as failed; returns what to tell the alert channel then."""
        with self.db.transaction() as s:
            reminder = s.get(Reminder, reminder_id, with_for_update=True, populate_existing=True)
            if reminder is None or reminder.state != "pending" or reminder.claimed_by != worker:
                return []  # another worker holds it now
            if reminder.attempts >= MAX_ATTEMPTS:
                return self._fail(s, reminder, f"{reason} ({reminder.attempts}×)")
            reminder.lease_until, reminder.claimed_by = None, None
            reminder.next_attempt_at = self.clock() + after
            reminder.last_error = reason[:300]
            return []

    def reminder_failed(self, reminder_id: int, worker: str, reason: str) -> list[Alert]:
        """The channel cannot be reached (archived, deleted, the bot removed, no permission): this row
        is failed with its reason, shown by /crisis status; an escalation goes to the alert channel."""
        with self.db.transaction() as s:
            reminder = s.get(Reminder, reminder_id, with_for_update=True, populate_existing=True)
            if reminder is None or reminder.state != "pending" or reminder.claimed_by != worker:
                return []
            return self._fail(s, reminder, reason)

    def _failed_reminders(self, s: Session, incident: Incident) -> list[Reminder]:
        return list(s.scalars(select(Reminder).where(Reminder.incident_id == incident.id,
                                                     Reminder.state == "failed")))

    def _retry_failed_reminders(self, s: Session, incident: Incident) -> None:
        """Repair: the failed rows are due again from the start (the channel may be back); one whose
        deadline has passed meanwhile gives way to its escalation, as after a downtime."""
        for reminder in self._failed_reminders(s, incident):
            reminder.state, reminder.attempts, reminder.last_error = "pending", 0, None
            reminder.next_attempt_at = reminder.lease_until = reminder.claimed_by = None

    def _fail(self, s: Session, reminder: Reminder, reason: str) -> list[Alert]:
        reminder.state, reminder.last_error = "failed", reason[:300]
        reminder.lease_until = reminder.next_attempt_at = None
        incident = s.get(Incident, reminder.incident_id)
        deadline = s.get(Deadline, reminder.deadline_id) if reminder.deadline_id else None
        self._event(s, incident, "crisisbot", "reminder.failed", reminder=reminder.kind,
                    kind=deadline.kind if deadline else None, reason=reason[:300])
        if reminder.kind != "escalate" or deadline is None:
            return []
        escalation = self._escalation(self._rule(incident.severity, deadline.kind))
        text = self.say("escalation_undeliverable", incident.language, kind=deadline.kind, due=deadline.due_at,
                        ref=incident.ref, title=incident.title, channel=self.views.channel(incident), reason=reason,
                        people=self._people(incident, escalation.roles))
        if escalation.channel:
            return [Alert(escalation.channel, text)]
        # No alert channel: the people the escalation is for hear it privately, or nobody would.
        people = [u for role in escalation.roles for u in incident.holders(role)] or incident.holders(
            self.playbook.lead_role)
        return [Alert(user, text, direct=True) for user in dict.fromkeys(people)]

    def undelivered(self, s: Session, incident: Incident) -> str:
        """The status lines of this incident's reminders that could not be posted ('' if none)."""
        rows = s.execute(select(Reminder.kind, Deadline.kind, Deadline.due_at, Reminder.last_error)
                         .join(Deadline, Deadline.id == Reminder.deadline_id)
                         .where(Reminder.incident_id == incident.id, Reminder.state == "failed")
                         .order_by(Reminder.due_at)).all()
        if not rows:
            return ""
        return Trusted(self.say("undelivered_reminders", incident.language,
                                rows=[(r[0], r[1], r[2], r[3] or "") for r in rows]))

    def _people(self, incident: Incident, roles: list[str]) -> list:
        """Mentions of the holders of these roles, or the role names where nobody holds one."""
        out = []
        for role in roles:
            holders = incident.holders(role)
            out.extend(mention(u) for u in holders) if holders else out.append(self.views.role_label(incident, role))
        return list(dict.fromkeys(out))


def parse_next(text: str, now: datetime) -> datetime:
    """'30m', '2h' from now, or a clock time like '15:30' (UTC; tomorrow if already past)."""
    text = text.strip().removesuffix("UTC").removesuffix("utc").strip()
    match = _CLOCK_TIME.match(text)
    if match:
        at = now.replace(hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    return now + parse_shift(text, "next_update_invalid")
