"""The end of an incident: close with the retrospective, lessons learned, archive, export.

Mixed into Core. Closing meets the review deadline and posts the summary; lessons are added
to it afterwards and each is a timeline event; archiving is asked of the handler, which
reports back whether the platform did it.
"""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import retrospective
from bot.errors import Refusal
from bot.messages import Message
from bot.models import Incident, Lesson, Reminder, TimelineEvent
from bot.retrospective import BOT, Retrospective
from bot.texts import is_chat_id, mention

LESSON_KINDS = ("well", "improve", "action")
MAX_LESSON = 500
REF_NUMBER = re.compile(r"[0-9]{1,9}")


class Closing:
    """Closing actions; expects the Core's db, playbook, views, summary, clock and helpers."""

    def close(self, incident_id: int, user: str):
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            if incident.phase == "closed":
                raise Refusal("already_closed", ref=incident.ref, by=mention(incident.closed_by or BOT),
                              at=incident.closed_at)
            if incident.phase != "resolved":
                raise Refusal("close_not_resolved", ref=incident.ref)
            self._require_lead(incident, user, "close")
            now = self.clock()
            incident.phase, incident.closed_at, incident.closed_by = "closed", now, user
            self._event(s, incident, user, "incident.closed")
            self._meet(s, incident, "review", user, "incident.closed")
            after = self.playbook.closing.archive_after
            if after:
                s.add(Reminder(deadline_id=None, incident_id=incident.id, kind="archive", due_at=now + after))
            notice = self.say("closed_notice", incident.language, ref=incident.ref, by=mention(user))
            # After-resolve items lose their buttons now; what is still open counts as left open.
            return self._outcome(incident, notices=[notice], topic=True,
                                 updates=[self.views.header(incident), *self.views.after_resolve_steps(incident),
                                          *self._summary(s, incident)])

    def add_lesson(self, incident_id: int, user: str, kind: str, text: str, owner: str | None = None,
                   request_key: str | None = None):
        text, owner = check_lesson(kind, text, owner)
        with self.db.transaction() as s:
            incident = self._load_closed(s, incident_id, "lesson_not_closed", "lesson_archived")
            if repeated := self._repeated(s, incident, request_key and f"lesson:{request_key}"):
                return repeated
            self._answered(s, incident, request_key and f"lesson:{request_key}", "lesson_added", kind=kind)
            if any((x.kind, x.text, x.owner_id, x.author_id) == (kind, text, owner, user) for x in incident.lessons):
                # A double submit or a retried delivery: the lesson is there once.
                return self._outcome(incident, private=self.say("lesson_added", incident.language, kind=kind))
            incident.lessons.append(Lesson(kind=kind, text=text, owner_id=owner, author_id=user,
                                           created_at=self.clock()))
            self._event(s, incident, user, "lesson.added", lesson=kind, text=text, owner=owner)
            notices = []
            if kind == "action":
                notices.append(self.say("lesson_action_notice", incident.language, owner=mention(owner),
                                        by=mention(user), text=text))
            # The owner of an action item may not be in the channel yet: the notice is for them.
            return self._outcome(incident, private=self.say("lesson_added", incident.language, kind=kind),
                                 notices=notices, updates=self._summary(s, incident), invite=[owner] if owner else [])

    def archive(self, incident_id: int, user: str):
        """Mark the channel archived and ask the handler to archive it (Outcome.archive)."""
        with self.db.transaction() as s:
            incident = self._load_closed(s, incident_id, "archive_not_closed", "already_archived")
            self._require_lead(incident, user, "archive")
            return self._archive(s, incident, user)

    def _load_closed(self, s: Session, incident_id: int, not_closed: str, archived: str) -> Incident:
        incident = self._load(s, incident_id)
        if incident.phase != "closed":
            raise Refusal(not_closed, ref=incident.ref)
        if incident.archived_at is not None:
            raise Refusal(archived, ref=incident.ref)
        return incident

    def _archive(self, s: Session, incident: Incident, user: str, keep: int | None = None):
        incident.archived_at = self.clock()
        # Other archive jobs are moot; the one being sent (keep) stays pending until it is confirmed.
        s.execute(update(Reminder).where(Reminder.incident_id == incident.id, Reminder.kind == "archive",
                                         Reminder.state == "pending", Reminder.id != (keep or 0))
                  .values(state="cancelled"))
        self._event(s, incident, user, "channel.archived")
        # The notice and the summary without buttons go out first: an archived channel takes no posts.
        notice = self.say("archiving_notice", incident.language, by=mention(user) if user != BOT else None)
        out = self._outcome(incident, notices=[notice], updates=self._summary(s, incident))
        out.archive = True
        return out

    def archive_failed(self, incident_id: int, reason: str):
        """The platform refused to archive: the channel is open after all, and says why."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            if incident.archived_at is None:
                return self._outcome(incident)
            incident.archived_at = None
            # A scheduled archive that failed is not tried again on its own: the summary must not promise it.
            s.execute(update(Reminder).where(Reminder.incident_id == incident.id, Reminder.kind == "archive",
                                             Reminder.state == "pending").values(state="cancelled"))
            self._event(s, incident, BOT, "channel.archive_failed", reason=reason[:200])
            return self._outcome(incident, notices=[self.say("archive_failed_notice", incident.language,
                                                             reason=reason)],
                                 updates=self._summary(s, incident))

    # -- reading the record ------------------------------------------------------------------

    def retrospective(self, incident_id: int) -> Retrospective:
        with self.db.transaction() as s:
            return self._retrospective(s, self._load(s, incident_id))

    def _retrospective(self, s: Session, incident: Incident) -> Retrospective:
        s.flush()
        # Plain rows, not ORM objects: an incident can have tens of thousands of events.
        events = s.execute(select(TimelineEvent.at, TimelineEvent.actor_id, TimelineEvent.kind, TimelineEvent.data)
                           .where(TimelineEvent.incident_id == incident.id).order_by(TimelineEvent.id)).all()
        reminders = list(s.scalars(select(Reminder).where(Reminder.incident_id == incident.id)))
        return retrospective.build(incident, events, reminders, self.playbook)

    def _summary(self, s: Session, incident: Incident) -> list[Message]:
        if incident.phase != "closed":
            return []
        announce = self.playbook.severity_by_level.get(incident.severity)
        return self.summary.messages(incident, self._retrospective(s, incident),
                                     announce=bool(announce and announce.announce))

    def _standing(self, s: Session, incident: Incident) -> list[Message]:
        return [*self.views.standing(incident), *self._summary(s, incident)]

    def archive_due(self, s: Session, incident: Incident, reminder: Reminder):
        """An archive job fell due (playbook closing.archive_after)."""
        if incident.phase != "closed":
            reminder.state = "cancelled"
            return None
        if incident.archived_at is not None:
            # Marked archived by an earlier attempt whose posting failed: archive, do not record it again.
            out = self._outcome(incident, updates=self._summary(s, incident))
            out.archive = True
            return out, []
        return self._archive(s, incident, BOT, keep=reminder.id), []

    def find_incident(self, ref: str, workspace: str | None = None) -> tuple[int, str]:
        """For the command line: CRISIS-N, in the one workspace that has it (or the one given)."""
        number = (ref or "").strip().upper().removeprefix("CRISIS-")
        if not REF_NUMBER.fullmatch(number):  # ASCII digits only, and few enough for any database
            raise Refusal("export_unknown_incident", given=ref)
        with self.db.transaction() as s:
            query = select(Incident.id, Incident.workspace_id).where(Incident.number == int(number))
            if workspace:
                query = query.where(Incident.workspace_id == workspace)
            rows = s.execute(query).all()
        if len(rows) != 1:
            raise Refusal("export_unknown_incident" if not rows else "export_which_workspace", given=ref,
                          **({} if not rows else {"workspaces": ", ".join(sorted(r[1] for r in rows))}))
        return rows[0][0], rows[0][1]


def check_lesson(kind: str, text: str | None, owner: str | None) -> tuple[str, str | None]:
    """The lesson as it is kept (one line; an owner only for action items), or why it cannot be."""
    if kind not in LESSON_KINDS:
        raise Refusal("malformed_request")
    text = " ".join((text or "").split())  # one line: the summary lists lessons as bullets
    if not text:
        raise Refusal("lesson_empty")
    if len(text) > MAX_LESSON:
        raise Refusal("lesson_too_long", length=len(text), limit=MAX_LESSON)
    owner = (owner or "").strip().lstrip("@") or None
    if kind != "action":
        return text, None
    if not owner:
        raise Refusal("lesson_owner_missing")
    if not is_chat_id(owner):
        raise Refusal("malformed_request")
    return text, owner
