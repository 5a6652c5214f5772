"""The incident lifecycle: every action checks, changes, records a timeline event and commits.

Actions return an Outcome: what to tell the person privately, what to post, which
standing messages changed. Handlers post only after the change is committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bot import commands, permissions
from bot.clock import Clock, system_clock
from bot.clocks import Clocks
from bot.closing import REF_NUMBER, Closing
from bot.db import Database
from bot.delivery import Delivery
from bot.drafting import Drafting
from bot.errors import Refusal
from bot.messages import Message
from bot.models import (
    ChecklistItem,
    Incident,
    PostedMessage,
    RoleAssignment,
    TimelineEvent,
    WorkspaceCounter,
)
from bot.naming import channel_name
from bot.once import Once
from bot.playbook import INCIDENT_PHASES, Playbook
from bot.summary import Summary
from bot.texts import Texts, channel_link, mention
from bot.views import Views

log = logging.getLogger(__name__)
ITEM_STATES = {"item.done": "done", "item.skip": "skipped", "item.reopen": "open"}


@dataclass
class Outcome:
    incident_id: int
    ref: str
    channel_id: str | None = None
    private: str | None = None                          # answered only to the person who acted
    notices: list[str] = field(default_factory=list)    # new messages in the incident channel
    updates: list[Message] = field(default_factory=list)  # standing messages to edit in place
    topic: str | None = None
    announcement: str | None = None                     # for the announcement channel
    invite: list[str] = field(default_factory=list)
    archive: bool = False                               # archive the incident channel after posting


@dataclass(frozen=True)
class Opening:
    """A started incident that still needs its channel; the handler creates it, then calls opened().

    `state` says what this request must do: "create" the channel (a new incident), "recover" it
    (the request that held the opening died: look for its channel by name first), "wait" for
    another request that holds the opening now, or nothing: it is "open".
    """

    incident_id: int
    ref: str
    number: int
    created_at: datetime
    title: str
    channel_id: str | None  # set when a retried request finds the incident already open
    state: str = "create"
    recorded_name: str | None = None
    reporter: str = ""
    language: str = "en"
    workspace: str = ""

    def channel_name(self, attempt: int = 1) -> str:
        return channel_name(self.created_at.date(), self.number, self.title, attempt)


class Core(Drafting, Clocks, Closing, Delivery, Once):
    # How long one request holds an incident's opening (make the channel, post into it) before a
    # retry or the recovery sweep may take it over.
    opening_lease = timedelta(seconds=30)

    def __init__(self, db: Database, playbook: Playbook, *, language: str = "en",
                 clock: Clock = system_clock, texts: Texts | None = None):
        self.db = db
        self.playbook = playbook
        self.language = language
        self.clock = clock
        self.texts = texts or Texts()
        self.views = Views(playbook, self.texts)
        self.summary = Summary(self.views)

    # -- texts ---------------------------------------------------------------------------

    def explain(self, refusal: Refusal, language: str | None = None) -> str:
        return self.texts.get(language or self.language, refusal.text, **refusal.values)

    def say(self, text: str, language: str | None = None, /, **values) -> str:
        return self.texts.get(language or self.language, text, **values)

    def help_text(self) -> str:
        pb = self.playbook
        return self.say("help", levels=", ".join(f"sev{s.level}" for s in pb.severities),
                        types=", ".join(pb.type_by_key), roles=", ".join(pb.role_by_key))

    def parse(self, text: str) -> commands.Command:
        return commands.parse(text, self.playbook)

    # -- lookups -------------------------------------------------------------------------

    def incident_in_channel(self, workspace: str, channel_id: str) -> int | None:
        with self.db.transaction() as s:
            return s.scalar(select(Incident.id).where(
                Incident.workspace_id == workspace, Incident.channel_id == channel_id))

    def incident_by_ref(self, workspace: str, ref: str) -> int | None:
        number = ref.upper().removeprefix("CRISIS-")
        if not REF_NUMBER.fullmatch(number):
            return None
        with self.db.transaction() as s:
            return s.scalar(select(Incident.id).where(
                Incident.workspace_id == workspace, Incident.number == int(number)))

    def channel_of(self, incident_id: int) -> str | None:
        """The incident's channel id, or None while it is being opened."""
        with self.db.transaction() as s:
            return s.scalar(select(Incident.channel_id).where(Incident.id == incident_id))

    # -- start ---------------------------------------------------------------------------

    def start_incident(self, workspace: str, reporter: str, title: str, *, crisis_type: str | None = None,
                       severity: int | None = None, description: str = "",
                       request_key: str | None = None, platform: str | None = None) -> Opening:
        title = commands.check_title(title)
        description = commands.check_description(description)
        crisis_type = commands.parse_type(crisis_type, self.playbook)
        severity = self.playbook.default_severity if severity is None else severity
        if severity not in self.playbook.severity_by_level:
            raise Refusal("unknown_severity", given=str(severity), levels=commands._levels(self.playbook))
        # Two first incidents of a workspace, or a retried request, can race on a unique key; the retry wins.
        for attempt in range(3):
            try:
                with self.db.transaction() as s:
                    return self._start(s, workspace, reporter, title, crisis_type, severity, description, request_key,
                                       platform)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("start of %r raced another request; retrying", title)
        raise AssertionError("unreachable")

    def _start(self, s: Session, workspace, reporter, title, crisis_type, severity, description, request_key,
               platform=None):
        if request_key:
            existing = s.scalar(select(Incident).where(
                Incident.workspace_id == workspace, Incident.request_key == request_key).with_for_update())
            if existing:
                return self._take_opening(existing)
        counter = s.get(WorkspaceCounter, workspace, with_for_update=True)
        if counter is None:
            counter = WorkspaceCounter(workspace_id=workspace, last_number=0)
            s.add(counter)
        counter.last_number += 1
        now = self.clock()
        incident = Incident(
            workspace_id=workspace, number=counter.last_number, title=title, crisis_type=crisis_type,
            severity=severity, phase="detected", description=description, reporter_id=reporter,
            language=self.language, request_key=request_key, created_at=now,
        )
        if platform:  # the channel is made outside the database: hold the opening while it is
            incident.opening_platform, incident.opening_by = platform, self.worker
            incident.opening_until = now + self.opening_lease
        language = self.language
        position = 0
        for step in self.playbook.checklist:
            for item in step.items:
                incident.items.append(ChecklistItem(
                    key=item.key, step=step.key, position=position, owner_role=item.owner,
                    title=item.title.get(language) or next(iter(item.title.values()))))
                position += 1
        # The reporter leads until they hand over: someone must hold decision authority from minute one.
        incident.assignments.append(RoleAssignment(
            role=self.playbook.lead_role, user_id=reporter, assigned_by=reporter, started_at=now))
        s.add(incident)
        s.flush()
        self._event(s, incident, reporter, "incident.started", title=title, crisis_type=crisis_type,
                    severity=severity, description=description)
        self._event(s, incident, reporter, "role.assigned", role=self.playbook.lead_role, user=reporter,
                    previous=None)
        self._start_clocks(s, incident)
        return self._opening(incident)

    def _opening(self, incident: Incident, state: str = "create") -> Opening:
        return Opening(incident.id, incident.ref, incident.number, incident.created_at, incident.title,
                       incident.channel_id, state, incident.channel_name, incident.reporter_id, incident.language,
                       incident.workspace_id)

    def _take_opening(self, incident: Incident) -> Opening:
        """A second request for an incident being opened: it is open, held by someone, or free to take over."""
        now = self.clock()
        if incident.opening_until is None and incident.channel_id:
            return self._opening(incident, "open")
        if incident.opening_until is not None and incident.opening_until > now:
            return self._opening(incident, "wait")  # held by a request that is still at it (here or elsewhere)
        log.warning("%s: the opening by %s ran out; %s takes it over", incident.ref, incident.opening_by, self.worker)
        incident.opening_by, incident.opening_until = self.worker, now + self.opening_lease
        return self._opening(incident, "recover")

    def retake_opening(self, incident_id: int) -> Opening | None:
        """How an opening stands now (None: it was rolled back); takes it over if its lease ran out."""
        with self.db.transaction() as s:
            incident = s.get(Incident, incident_id, with_for_update=True, populate_existing=True)
            return None if incident is None else self._take_opening(incident)

    def hold_opening(self, incident_id: int) -> bool:
        """Before each attempt at making the channel: extend this request's lease, or learn that it ran
        out and another request took the opening over (then this one must not make a channel)."""
        with self.db.transaction() as s:
            incident = s.get(Incident, incident_id, with_for_update=True, populate_existing=True)
            if incident is None or incident.channel_id is not None:
                return False
            if incident.opening_until is not None and incident.opening_by != self.worker:
                return False
            if incident.opening_until is not None:
                incident.opening_until = self.clock() + self.opening_lease
            return True

    def may_record_channel(self, incident_id: int, channel_id: str) -> str:
        """After making a channel: "record" it (this request still holds the opening), or it was
        "recorded" already (another request found it by name), or this request "lost" the opening
        while the channel was made (the incident is gone, or has another holder or channel)."""
        with self.db.transaction() as s:
            incident = s.get(Incident, incident_id, with_for_update=True, populate_existing=True)
            if incident is None:
                return "lost"
            if incident.channel_id is not None:
                return "recorded" if incident.channel_id == channel_id else "lost"
            if incident.opening_until is not None and incident.opening_by != self.worker:
                return "lost"
            return "record"

    def extend_opening(self, incident_id: int) -> bool:
        """While the first posts go out (slow when Slack rate-limits): keep this request's opening, so
        neither a retry nor the sweep takes a start over that is still being finished."""
        with self.db.transaction() as s:
            incident = s.get(Incident, incident_id, with_for_update=True, populate_existing=True)
            if incident is None or incident.opening_until is None or incident.opening_by != self.worker:
                return False
            incident.opening_until = self.clock() + self.opening_lease
            return True

    def finish_opening(self, incident_id: int) -> None:
        """The channel is made and posted to: the incident is open, nothing is left to recover."""
        with self.db.transaction() as s:
            incident = s.get(Incident, incident_id, with_for_update=True, populate_existing=True)
            if incident is not None and incident.channel_id is not None:
                incident.opening_by = incident.opening_until = None

    def stale_openings(self, platform: str, limit: int = 20) -> list[int]:
        """Incidents of this platform whose opening did not complete and whose lease ran out."""
        with self.db.transaction() as s:
            return list(s.scalars(select(Incident.id).where(
                Incident.opening_platform == platform, Incident.opening_until.is_not(None),
                Incident.opening_until < self.clock()).order_by(Incident.id).limit(limit)))

    def abandon_start(self, incident_id: int, reason: str) -> None:
        """The channel could not be created: remove the incident so nothing half-made is left."""
        with self.db.transaction() as s:
            incident = s.get(Incident, incident_id, with_for_update=True)
            if incident is None or incident.channel_id is not None:
                return
            counter = s.get(WorkspaceCounter, incident.workspace_id, with_for_update=True)
            if counter is not None and counter.last_number == incident.number:
                counter.last_number -= 1  # give the number back, so the next incident is not a gap
            log.warning("abandoned %s %r: %s", incident.ref, incident.title, reason)
            s.delete(incident)

    def opened(self, incident_id: int, channel_id: str, channel_name: str) -> Outcome:
        """The channel exists: record it and say what to post there and where to announce it."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            fresh = incident.channel_id is None
            if fresh:
                incident.channel_id, incident.channel_name = channel_id, channel_name
                self._event(s, incident, incident.reporter_id, "channel.created",
                            channel_id=channel_id, channel_name=channel_name)
            severity = self.playbook.severity_by_level[incident.severity]
            invite = list(dict.fromkeys([incident.reporter_id, *self.playbook.team.standing_members,
                                         *severity.notify]))
            out = self._outcome(incident, updates=self.views.standing(incident), topic=True, invite=invite)
            out.private = self.say("started_private", incident.language, ref=incident.ref,
                                   channel=channel_link(channel_id))
            if fresh and severity.announce:
                out.announcement = self.say(
                    "announce_started", incident.language, ref=incident.ref, title=incident.title,
                    severity=self.views.severity_label(incident), channel=channel_link(channel_id),
                    reporter=mention(incident.reporter_id),
                    notify=[mention(u) for u in severity.notify])
            return out

    # -- roles ---------------------------------------------------------------------------

    def claim_role(self, incident_id: int, user: str, role: str) -> Outcome:
        role = commands.parse_role(role, self.playbook)
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            holders = incident.holders(role)
            if user in holders:
                raise Refusal("role_already_yours", role=self.views.role_label(incident, role))
            if holders:
                raise Refusal("role_held", role=self.views.role_label(incident, role), holder=mention(holders[0]))
            return self._assign(s, incident, user, role, by=user)

    def assign_role(self, incident_id: int, actor: str, user: str, role: str) -> Outcome:
        role = commands.parse_role(role, self.playbook)
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            if not permissions.may_assign(incident, actor, role, self.playbook.lead_role):
                raise Refusal("not_permitted_assign", role=self.views.role_label(incident, role),
                              lead=self._lead_mention(incident))
            if user in incident.holders(role):
                raise Refusal("role_already_held_by", role=self.views.role_label(incident, role),
                              holder=mention(user))
            return self._assign(s, incident, user, role, by=actor)

    def _assign(self, s: Session, incident: Incident, user: str, role: str, by: str) -> Outcome:
        now = self.clock()
        previous = None
        for assignment in incident.assignments:
            if assignment.role == role and assignment.ended_at is None:
                assignment.ended_at, previous = now, assignment.user_id
        incident.assignments.append(RoleAssignment(role=role, user_id=user, assigned_by=by, started_at=now))
        s.flush()
        self._event(s, incident, by, "role.assigned", role=role, user=user, previous=previous)
        acknowledged = user != incident.reporter_id and self._meet(s, incident, "acknowledge", user, "role.assigned")
        label = self.views.role_label(incident, role)
        if by == user:
            notice = self.say("role_claimed", incident.language, user=mention(user), role=label)
        else:
            notice = self.say("role_assigned", incident.language, user=mention(user), role=label,
                              by=mention(by), previous=mention(previous) if previous else None)
        updates = [self.views.roster(incident)]
        if role == self.playbook.lead_role or acknowledged:
            updates.insert(0, self.views.header(incident))
        return self._outcome(incident, notices=[notice], updates=updates, invite=[user])

    # -- checklist -----------------------------------------------------------------------

    def set_item(self, incident_id: int, user: str, item_key: str, action: str) -> Outcome:
        state = ITEM_STATES.get(action)
        if state is None:
            raise Refusal("malformed_request")
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            item = next((i for i in incident.items if i.key == item_key), None)
            if not incident.live and not (item is not None and self.views.clickable(incident, item)):
                # Resolved: refused, unless the playbook has the item done after resolve (until close).
                raise Refusal("incident_resolved", ref=incident.ref)
            if item is None:
                raise Refusal("unknown_item", given=item_key)
            if not permissions.may_change_item(incident, user, item, self.playbook.lead_role):
                raise Refusal("not_permitted_item", item=item.title,
                              role=self.views.role_label(incident, item.owner_role),
                              lead=self._lead_mention(incident))
            if item.state == state:
                # A double click or a retried delivery: already so, nothing to change.
                return self._outcome(incident, private=self.say(
                    "item_already", incident.language, item=item.title, state=state))
            before, now = item.state, self.clock()
            item.state, item.changed_by, item.changed_at = state, user, now
            kind = {"done": "item.done", "skipped": "item.skipped", "open": "item.reopened"}[state]
            self._event(s, incident, user, kind, item=item.key, title=item.title, previous=before)
            if state == "done":
                self._meet(s, incident, "acknowledge", user, "item.done")
            updates = [self.views.checklist_step(incident, item.step)]
            notices = []
            step = next(st for st in self.playbook.checklist if st.key == item.step)
            if state == "done" and _later(step.incident_phase, incident.phase):
                notices.append(self._change_phase(s, incident, user, step.incident_phase, auto=True))
            updates.insert(0, self.views.header(incident))
            return self._outcome(incident, notices=notices, updates=updates, topic=bool(notices))

    # -- severity, phase, resolve ----------------------------------------------------------

    def set_severity(self, incident_id: int, user: str, level: int) -> Outcome:
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            self._require_lead(incident, user, "severity")
            if level not in self.playbook.severity_by_level:
                raise Refusal("unknown_severity", given=str(level), levels=commands._levels(self.playbook))
            if level == incident.severity:
                return self._outcome(incident, private=self.say(
                    "severity_unchanged", incident.language, severity=self.views.severity_label(incident)))
            before = incident.severity
            old_label = self.views.severity_label(incident)
            incident.severity = level
            self._event(s, incident, user, "severity.changed", previous=before, severity=level)
            self._reschedule_for_severity(s, incident)
            new_label = self.views.severity_label(incident)
            severity = self.playbook.severity_by_level[level]
            notice = self.say("severity_changed", incident.language, by=mention(user), old=old_label,
                              new=new_label, raised=level < before)
            out = self._outcome(incident, notices=[notice], topic=True, invite=list(severity.notify),
                                updates=[self.views.header(incident), self.views.roster(incident)])
            if level < before and severity.announce:
                out.announcement = self.say(
                    "announce_severity", incident.language, ref=incident.ref, title=incident.title,
                    old=old_label, new=new_label, channel=channel_link(incident.channel_id),
                    notify=[mention(u) for u in severity.notify])
            return out

    def set_phase(self, incident_id: int, user: str, phase: str) -> Outcome:
        phase = commands.parse_phase(phase)
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            self._require_lead(incident, user, "phase")
            if phase == incident.phase:
                return self._outcome(incident, private=self.say(
                    "phase_unchanged", incident.language, phase=self.views.phase_label(incident)))
            notice = self._change_phase(s, incident, user, phase, auto=False)
            return self._outcome(incident, notices=[notice], topic=True, updates=[self.views.header(incident)])

    def _change_phase(self, s: Session, incident: Incident, user: str, phase: str, auto: bool) -> str:
        before = incident.phase
        incident.phase = phase
        self._event(s, incident, user, "phase.changed", previous=before, phase=phase, auto=auto)
        return self.say("phase_changed", incident.language, by=mention(user), auto=auto,
                        old=self.views.phase_label(incident, before), new=self.views.phase_label(incident, phase))

    def resolve(self, incident_id: int, user: str) -> Outcome:
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            if not incident.live:
                return self._outcome(incident, private=self.say("already_resolved", incident.language,
                                                                ref=incident.ref))
            self._require_lead(incident, user, "resolve")
            now = self.clock()
            before = incident.phase
            incident.phase, incident.resolved_at = "resolved", now
            self._event(s, incident, user, "incident.resolved", previous=before)
            self._stop_live_clocks(s, incident, user)
            later = [i.title for i in incident.items if i.state == "open" and self.playbook.after_resolve(i.key)]
            open_items = sum(1 for i in incident.items if i.state == "open") - len(later)
            notice = self.say("resolved", incident.language, ref=incident.ref, by=mention(user),
                              duration=now - incident.created_at, open_items=open_items)
            notices = [notice, self.say("after_resolve_open", incident.language, items=later)] if later else [notice]
            out = self._outcome(incident, notices=notices, topic=True, updates=self.views.standing(incident))
            if self.playbook.severity_by_level[incident.severity].announce:
                out.announcement = self.say("announce_resolved", incident.language, ref=incident.ref,
                                            title=incident.title, by=mention(user),
                                            duration=now - incident.created_at,
                                            channel=channel_link(incident.channel_id))
            return out

    def run(self, command: commands.Command, incident_id: int, user: str,
            request_key: str | None = None) -> Outcome:
        """The incident commands that change state, the same for every platform."""
        if command.name == "assign":
            return self.assign_role(incident_id, user, command.user, command.role)
        if command.name == "severity":
            return self.set_severity(incident_id, user, command.severity)
        if command.name == "phase":
            return self.set_phase(incident_id, user, command.phase)
        if command.name == "resolve":
            return self.resolve(incident_id, user)
        if command.name == "close":
            return self.close(incident_id, user)
        if command.name == "archive":
            return self.archive(incident_id, user)
        if command.name == "snooze":
            return self.snooze(incident_id, user, command.deadline, command.length, command.text)
        if command.name == "draft" and command.template == "free" and command.text:
            return self.draft(incident_id, user, "free", {"text": command.text}, request_key=request_key)
        raise Refusal("unknown_command", command=command.name)

    # -- read-only answers -----------------------------------------------------------------

    def roster(self, incident_id: int) -> Message:
        with self.db.transaction() as s:
            return self.views.roster(self._load(s, incident_id))

    def status(self, incident_id: int, platform: str | None = None) -> str:
        with self.db.transaction() as s:
            return self._status(s, self._load(s, incident_id), platform)[0]

    def _status(self, s: Session, incident: Incident, platform: str | None) -> tuple[str, list[str]]:
        """The status text, and its lines of what did not get through (bot.delivery)."""
        # Failed edits here; what was never posted is among the problems.
        failures = [p for p in incident.posts if p.last_error and p.message_ref and platform in (None, p.platform)]
        problems = self._problem_lines(s, incident, platform)
        open_items = [i for i in incident.items if i.state == "open"]
        lead = self.views.lead(incident)
        text = self.say(
            "status", incident.language, ref=incident.ref, title=incident.title,
            severity=self.views.severity_label(incident), phase=self.views.phase_label(incident),
            lead=mention(lead) if lead else None, now=self.clock(), started=incident.created_at,
            open_items=[(i.title, self.views.role_label(incident, i.owner_role)) for i in open_items[:5]],
            open_count=len(open_items), problems=problems,
            failures=[(self.views.message_name(incident, p.key), p.last_error) for p in failures],
            undelivered=self.undelivered(s, incident))
        return text, problems

    def standing_messages(self, incident_id: int) -> list[Message]:
        with self.db.transaction() as s:
            return self._standing(s, self._load(s, incident_id))

    def timeline(self, incident_id: int) -> list[TimelineEvent]:
        with self.db.transaction() as s:
            return list(s.scalars(select(TimelineEvent).where(TimelineEvent.incident_id == incident_id)
                                  .order_by(TimelineEvent.id)))

    # -- where messages were posted --------------------------------------------------------

    def posted(self, incident_id: int, platform: str) -> dict[str, PostedMessage]:
        with self.db.transaction() as s:
            rows = s.scalars(select(PostedMessage).where(
                PostedMessage.incident_id == incident_id, PostedMessage.platform == platform))
            return {row.key: row for row in rows}

    def record_post(self, incident_id: int, platform: str, key: str, channel_id: str,
                    message_ref: str | None, fingerprint: str | None, error: str | None = None) -> None:
        with self.db.transaction() as s:
            row = s.scalar(select(PostedMessage).where(
                PostedMessage.incident_id == incident_id, PostedMessage.platform == platform,
                PostedMessage.key == key).with_for_update())
            if row is None:
                row = PostedMessage(incident_id=incident_id, platform=platform, key=key, channel_id=channel_id)
                s.add(row)
            if message_ref:
                row.message_ref, row.channel_id = message_ref, channel_id
            if error is None:
                row.fingerprint = fingerprint
            row.last_error = error[:300] if error else None
            row.updated_at, row.claimed_until = self.clock(), None

    # -- helpers ---------------------------------------------------------------------------

    def _load(self, s: Session, incident_id: int) -> Incident:
        # The row lock serialises concurrent actions on one incident in PostgreSQL; SQLite
        # serialises writers itself (BEGIN IMMEDIATE, see bot.db).
        incident = s.scalar(select(Incident).where(Incident.id == incident_id).with_for_update()
                            .execution_options(populate_existing=True))
        if incident is None:
            raise Refusal("unknown_incident")
        s.scalars(select(Incident).where(Incident.id == incident_id)
                  .options(selectinload(Incident.assignments), selectinload(Incident.items),
                           selectinload(Incident.posts))).all()
        return incident

    def _load_live(self, s: Session, incident_id: int) -> Incident:
        incident = self._load(s, incident_id)
        if not incident.live:
            raise Refusal("incident_resolved", ref=incident.ref)
        return incident

    def _require_lead(self, incident: Incident, user: str, action: str) -> None:
        if not permissions.may_lead(incident, user, self.playbook.lead_role):
            raise Refusal("not_permitted_lead", action=action, lead=self._lead_mention(incident))

    def _lead_mention(self, incident: Incident):
        lead = self.views.lead(incident)
        return mention(lead) if lead else None

    def _event(self, s: Session, incident: Incident, actor: str, kind: str, /, **data) -> None:
        s.add(TimelineEvent(incident_id=incident.id, at=self.clock(), actor_id=actor, kind=kind, data=data))

    def _outcome(self, incident: Incident, *, topic: bool = False, **fields) -> Outcome:
        return Outcome(incident.id, incident.ref, incident.channel_id,
                       topic=self.views.topic(incident) if topic else None, **fields)


def _later(phase: str, than: str) -> bool:
    return INCIDENT_PHASES.index(phase) > INCIDENT_PHASES.index(than)
