"""Nothing posted is lost, failures are told: what a platform must (re)send, decided once above the port.

Mixed into Core. `pending` is the reconciliation: of an incident's standing messages, which are
missing (never posted, or their post failed), failed to update, or stale, and so must be posted or
edited now. Every sync of every platform asks it, so a message whose post failed is posted by the
next change of the incident, not only by the one that built it.

A *problem* is something else a platform refused that a person must know: an invite, the topic, an
announcement, an escalation. `record_problem` keeps it with the incident (one row per kind and
subject) until the same thing succeeds later or a repair does it; `/crisis status` shows it, and its
Repair button posts what is missing and tries the rest again. A repair claims a problem for a short
lease in the database, so a double click or a second instance does not send an announcement twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from hashlib import sha256

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.messages import Actions, Button, Message, Section
from bot.models import DeliveryProblem, PostedMessage
from bot.texts import Trusted, channel_link, escape_chat, mention

log = logging.getLogger(__name__)
REPAIR_LEASE = timedelta(seconds=60)
POST_LEASE = timedelta(seconds=60)  # longer than slack_sdk's retries of one post
REPAIR = "repair.posts"
_CHANNEL_ID = re.compile(r"[A-Z0-9]{9,}")  # an id as the platforms write them, not a channel name
MAX_SHOWN = 10  # problems listed by /crisis status; the rest are counted


@dataclass(frozen=True)
class Pending:
    """A standing message to send: posted anew when it has no message there yet, else edited in place."""

    message: Message
    row: PostedMessage | None

    @property
    def is_new(self) -> bool:
        return self.row is None or not self.row.message_ref


def pending(standing: list[Message], posted: dict[str, PostedMessage], wanted: list[Message] = (), *,
            everything: bool = True, announcements: bool = True) -> list[Pending]:
    """What to send, in the order standing messages are first posted.

    `wanted` are the messages an action changed (rendered anew from `standing` when there);
    with `everything`, every other standing message that is missing, failed or stale is added too.
    Messages for the announcement channel are left out when the team has none.
    """
    latest = {m.key: m for m in standing if m.key}
    candidates = [*(standing if everything else []), *wanted]
    out: list[Pending] = []
    seen: set[str] = set()
    for candidate in candidates:
        message = latest.get(candidate.key, candidate) if candidate.key else candidate
        if message.key:
            if message.key in seen:
                continue
            seen.add(message.key)
        if message.place == "announcement" and not announcements:
            continue
        row = posted.get(message.key) if message.key else None
        if row is not None and row.message_ref and not row.last_error and row.fingerprint == message.fingerprint():
            continue
        out.append(Pending(message, row))
    return out


def announcement_subject(text: str) -> str:
    """One problem row per lost announcement text, so two different ones are both kept."""
    return sha256(text.encode()).hexdigest()[:32]


@dataclass
class Repair:
    """What a repair asks of the handler: the outcome to apply (every standing message, the topic,
    the invites that failed) and the lost announcements to claim and send again."""

    outcome: object  # bot.core.Outcome
    announcements: list[tuple[int, str]] = field(default_factory=list)  # (problem id, text)


class Delivery:
    """Delivery actions; expects the Core's db, playbook, views, clock and helpers."""

    # -- reconciliation ----------------------------------------------------------------------

    def to_send(self, incident_id: int, platform: str, wanted: list[Message] = (), *,
                everything: bool = True) -> list[Pending]:
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            standing = self._standing(s, incident)
            posted = {p.key: p for p in incident.posts if p.platform == platform}
            return pending(standing, posted, list(wanted), everything=everything,
                           announcements=bool(self.playbook.team.announcement_channel))

    def claim_post(self, incident_id: int, platform: str, key: str, channel_id: str,
                   replacing: str | None = None) -> bool:
        """Take the posting of a standing message that has none (or whose message `replacing` is gone)
        for a short lease; False when it was posted meanwhile or another process is posting it.
        record_post ends the claim, with the message or with the error."""
        for attempt in range(2):
            try:
                with self.db.transaction() as s:
                    now = self.clock()
                    row = s.scalar(select(PostedMessage).where(
                        PostedMessage.incident_id == incident_id, PostedMessage.platform == platform,
                        PostedMessage.key == key).with_for_update())
                    if row is None:
                        s.add(PostedMessage(incident_id=incident_id, platform=platform, key=key,
                                            channel_id=channel_id, claimed_until=now + POST_LEASE, updated_at=now))
                        return True
                    if row.message_ref != replacing or (row.claimed_until and row.claimed_until > now):
                        return False
                    row.claimed_until = now + POST_LEASE
                    return True
            except IntegrityError:  # another process made the row at the same moment: it posts
                if attempt:
                    raise
        return False

    # -- problems ----------------------------------------------------------------------------

    def _announcement_label(self) -> str:
        name = self.playbook.team.announcement_channel or ""
        if _CHANNEL_ID.fullmatch(name):
            return channel_link(name)
        return Trusted("#" + escape_chat(name.lstrip("#")))

    def record_problem(self, incident_id: int, platform: str, kind: str, reason: str, *, subject: str = "",
                       payload: str | None = None, actor: str | None = None) -> None:
        """Keep a failure with the incident until it is fixed (a second failure of the same thing updates it)."""
        for attempt in range(2):
            try:
                with self.db.transaction() as s:
                    now = self.clock()
                    row = s.scalar(select(DeliveryProblem).where(
                        DeliveryProblem.incident_id == incident_id, DeliveryProblem.platform == platform,
                        DeliveryProblem.kind == kind, DeliveryProblem.subject == subject[:80]).with_for_update())
                    if row is None:
                        row = DeliveryProblem(incident_id=incident_id, platform=platform, kind=kind,
                                              subject=subject[:80], created_at=now)
                        s.add(row)
                    row.reason, row.updated_at = (reason or "unknown")[:300], now
                    row.fixed_at = row.lease_until = None
                    if payload is not None:
                        row.payload = payload
                    if actor is not None:
                        row.actor_id = actor
                return
            except IntegrityError:  # another instance recorded the same thing at the same moment
                if attempt:
                    raise

    def problem_fixed(self, incident_id: int, platform: str, kind: str, subject: str = "") -> None:
        with self.db.transaction() as s:
            s.execute(update(DeliveryProblem).where(
                DeliveryProblem.incident_id == incident_id, DeliveryProblem.platform == platform,
                DeliveryProblem.kind == kind, DeliveryProblem.subject == subject[:80],
                DeliveryProblem.fixed_at.is_(None)).values(fixed_at=self.clock(), lease_until=None))

    def claim_problem(self, problem_id: int) -> bool:
        """Take an open problem for one retry; False when it is fixed or someone else is retrying it."""
        with self.db.transaction() as s:
            now = self.clock()
            result = s.execute(update(DeliveryProblem).where(
                DeliveryProblem.id == problem_id, DeliveryProblem.fixed_at.is_(None),
                or_(DeliveryProblem.lease_until.is_(None), DeliveryProblem.lease_until < now),
            ).values(lease_until=now + REPAIR_LEASE))
            return result.rowcount == 1

    def retry_done(self, problem_id: int, error: str | None) -> None:
        """A claimed retry ended: fixed, or still failing with this reason (and claimable again)."""
        with self.db.transaction() as s:
            row = s.get(DeliveryProblem, problem_id, with_for_update=True)
            if row is None:
                return
            now = self.clock()
            row.lease_until, row.updated_at = None, now
            if error is None:
                row.fixed_at = now
            else:
                row.reason = error[:300]

    def open_problems(self, incident_id: int, platform: str | None = None) -> list[DeliveryProblem]:
        with self.db.transaction() as s:
            query = select(DeliveryProblem).where(DeliveryProblem.incident_id == incident_id,
                                                  DeliveryProblem.fixed_at.is_(None))
            if platform:
                query = query.where(DeliveryProblem.platform == platform)
            return list(s.scalars(query.order_by(DeliveryProblem.id)))

    def problem_told(self, incident_id: int, kind: str, reason: str, *, subject: str = "",
                     actor: str | None = None) -> str:
        """What the person who acted is told privately about a failure."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            who = (mention(subject) if kind == "invite" and subject else
                   self.views.message_name(incident, subject) if kind == "post" else subject or None)
            return self.say("problem_told", incident.language, kind=kind, reason=reason, who=who,
                            yourself=bool(actor) and subject == actor, channel=self.views.channel(incident),
                            announcement=self._announcement_label())

    # -- /crisis status and its Repair button ----------------------------------------------------

    def _problem_lines(self, s, incident, platform: str | None) -> list[str]:
        """The status lines of what is missing or failed, missing standing messages first."""
        lines = []
        posts = [p for p in incident.posts if platform is None or p.platform == platform]
        platforms = {platform} if platform else {p.platform for p in posts}
        standing = self._standing(s, incident)
        announcements = bool(self.playbook.team.announcement_channel)
        for place in sorted(platforms):
            posted = {p.key: p for p in posts if p.platform == place}
            for item in pending(standing, posted, announcements=announcements):
                if item.is_new:
                    lines.append(self.say("status_missing", incident.language,
                                          key=self.views.message_name(incident, item.message.key),
                                          error=item.row.last_error if item.row else None))
        problems = s.scalars(select(DeliveryProblem).where(
            DeliveryProblem.incident_id == incident.id, DeliveryProblem.fixed_at.is_(None),
            *([DeliveryProblem.platform == platform] if platform else [])).order_by(DeliveryProblem.id))
        for problem in problems:
            lines.append(self.say(
                "status_problem", incident.language, kind=problem.kind, reason=problem.reason,
                who=mention(problem.subject) if problem.kind == "invite" else problem.subject or None,
                announcement=self._announcement_label(), at=problem.updated_at))
        if len(lines) > MAX_SHOWN:
            lines = [*lines[:MAX_SHOWN], self.say("status_more_problems", incident.language,
                                                  count=len(lines) - MAX_SHOWN)]
        return [Trusted(line) for line in lines]

    def status_message(self, incident_id: int, platform: str) -> Message:
        """/crisis status, with a Repair button when something it can repair is missing or failed."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            text, _problems = self._status(s, incident, platform)
            blocks: tuple = (Section(Trusted(text)),)
            if self._repair_plan(s, incident, platform)[-1]:
                blocks += (Actions((Button(REPAIR, self.say("btn_repair", incident.language), "all", "primary"),)),)
            return Message(None, text, blocks)

    def _repair_plan(self, s, incident, platform: str):
        """What a repair would do: the standing messages, who to invite, whether to set the topic, the
        lost announcements, the failed reminders, and how many things that is."""
        problems = list(s.scalars(select(DeliveryProblem).where(
            DeliveryProblem.incident_id == incident.id, DeliveryProblem.platform == platform,
            DeliveryProblem.fixed_at.is_(None)).order_by(DeliveryProblem.id)))
        standing = self._standing(s, incident)
        posted = {p.key: p for p in incident.posts if p.platform == platform}
        missing = [p for p in pending(standing, posted, announcements=bool(self.playbook.team.announcement_channel))
                   if p.is_new or p.row.last_error]  # merely stale ones are edited by the next change anyway
        invite = [p.subject for p in problems if p.kind == "invite" and p.subject]
        topic = any(p.kind == "topic" for p in problems)
        announcements = [(p.id, p.payload) for p in problems if p.kind == "announcement" and p.payload]
        reminders = self._failed_reminders(s, incident)
        return standing, invite, topic, announcements, (len(missing) + len(invite) + topic + len(announcements)
                                                         + len(reminders))

    def repair(self, incident_id: int, user: str, platform: str) -> Repair:
        """Post what is missing, set the topic and invite again where that failed, resend lost announcements."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            standing, invite, topic, announcements, count = self._repair_plan(s, incident, platform)
            self._retry_failed_reminders(s, incident)  # the runner sends them: the channel may be back
            private = self.say("repair_started" if count else "repair_nothing", incident.language, count=count)
            log.info("%s: repair by %s on %s: %d things", incident.ref, user, platform, count)
            outcome = self._outcome(incident, private=private, updates=standing, topic=topic, invite=invite)
            return Repair(outcome, announcements)
