"""The schema. Every change to it is an Alembic migration in migrations/versions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Stores naive UTC and hands back aware UTC, so SQLite and PostgreSQL compare the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class WorkspaceCounter(Base):
    """Last incident number handed out per workspace (CRISIS-1, CRISIS-2, …)."""

    __tablename__ = "workspace_counters"
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("workspace_id", "number", name="uq_incident_number"),
        UniqueConstraint("workspace_id", "channel_id", name="uq_incident_channel"),
        UniqueConstraint("workspace_id", "request_key", name="uq_incident_request"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    crisis_type: Mapped[str] = mapped_column(String(40))
    severity: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    reporter_id: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    channel_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # Set by the handler for a retried delivery of the same start request, so it starts one incident.
    request_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # While its channel is being made and first posted to, the incident is "opening": one request
    # holds it until opening_until; a retry waits, and after the lease runs out another may take over.
    opening_platform: Mapped[str | None] = mapped_column(String(20), nullable=True)
    opening_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    opening_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="incident", order_by="RoleAssignment.id", cascade="all, delete-orphan"
    )
    items: Mapped[list[ChecklistItem]] = relationship(
        back_populates="incident", order_by="ChecklistItem.position", cascade="all, delete-orphan"
    )
    events: Mapped[list[TimelineEvent]] = relationship(
        back_populates="incident", order_by="TimelineEvent.id", cascade="all, delete-orphan"
    )
    posts: Mapped[list[PostedMessage]] = relationship(
        back_populates="incident", cascade="all, delete-orphan"
    )
    statements: Mapped[list[Statement]] = relationship(order_by="Statement.number", cascade="all, delete-orphan")
    deadlines: Mapped[list[Deadline]] = relationship(order_by="Deadline.id", cascade="all, delete-orphan")
    lessons: Mapped[list[Lesson]] = relationship(order_by="Lesson.id", cascade="all, delete-orphan")
    problems: Mapped[list[DeliveryProblem]] = relationship(order_by="DeliveryProblem.id",
                                                           cascade="all, delete-orphan")

    @property
    def ref(self) -> str:
        return f"CRISIS-{self.number}"

    @property
    def live(self) -> bool:
        """Still being handled: buttons work and the clocks run."""
        return self.phase not in ("resolved", "closed")

    def holders(self, role: str) -> list[str]:
        return [a.user_id for a in self.assignments if a.role == role and a.ended_at is None]

    def roles_of(self, user_id: str) -> list[str]:
        return [a.role for a in self.assignments if a.user_id == user_id and a.ended_at is None]


class RoleAssignment(Base):
    """Who held a role from when to when; a handover ends one row and starts another."""

    __tablename__ = "role_assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(64))
    assigned_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    incident: Mapped[Incident] = relationship(back_populates="assignments")


class ChecklistItem(Base):
    __tablename__ = "checklist_items"
    __table_args__ = (UniqueConstraint("incident_id", "key", name="uq_item_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    step: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer)
    owner_role: Mapped[str] = mapped_column(String(40))
    # The title is copied from the playbook at start, so a later playbook edit cannot rewrite history.
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(10), default="open")
    changed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    incident: Mapped[Incident] = relationship(back_populates="items")


class TimelineEvent(Base):
    __tablename__ = "timeline_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    incident: Mapped[Incident] = relationship(back_populates="events")


class PostedMessage(Base):
    """Where a message with a stable key was posted, so state changes edit it in place."""

    __tablename__ = "posted_messages"
    __table_args__ = (UniqueConstraint("incident_id", "platform", "key", name="uq_posted_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(80))
    channel_id: Mapped[str] = mapped_column(String(64))
    message_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Last delivery error that survived the retries; shown by /crisis status until a post succeeds.
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set while one process posts the message anew (bot.delivery.claim_post), so another does not post it too.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    incident: Mapped[Incident] = relationship(back_populates="posts")


class Statement(Base):
    """A public or internal message drafted in the incident, approved step by step, then published."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("incident_id", "number", name="uq_statement_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    template_key: Mapped[str | None] = mapped_column(String(40), nullable=True)  # None: a free statement
    title: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(20))
    # draft → approved → published, or rejected; an edit of an approved draft makes it a draft again
    state: Mapped[str] = mapped_column(String(20), default="draft")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    published_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    published_where: Mapped[str | None] = mapped_column(String(200), nullable=True)
    published_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    versions: Mapped[list[StatementVersion]] = relationship(
        back_populates="statement", order_by="StatementVersion.number", cascade="all, delete-orphan")

    @property
    def current(self) -> StatementVersion:
        return self.versions[-1]


class StatementVersion(Base):
    """One exact text; approvals belong to it, so an edit starts the approvals afresh."""

    __tablename__ = "statement_versions"
    __table_args__ = (UniqueConstraint("statement_id", "number", name="uq_statement_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    values: Mapped[dict] = mapped_column(JSON, default=dict)
    # The approval steps as the policy gave them when this version was made: [{roles, mode}, …];
    # allow_same_approver: true on each step when the policy lets one person approve several steps.
    steps: Mapped[list] = mapped_column(JSON, default=list)
    author_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    statement: Mapped[Statement] = relationship(back_populates="versions")
    decisions: Mapped[list[StatementDecision]] = relationship(
        back_populates="version", order_by="StatementDecision.id", cascade="all, delete-orphan")


class StatementDecision(Base):
    """An approval, a request for changes or a rejection of one version, by one person."""

    __tablename__ = "statement_decisions"
    # One decision of a kind per person, step and version: a double click or a retried request counts once.
    __table_args__ = (UniqueConstraint("version_id", "step", "user_id", "kind", name="uq_decision_once"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("statement_versions.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(40), nullable=True)
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # approve, changes, reject
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[StatementVersion] = relationship(back_populates="decisions")


class Deadline(Base):
    """A promise with a due time: first public statement, next update … met by an event or missed."""

    __tablename__ = "deadlines"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)   # what the due time is measured from
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(12), default="open")  # open, met, missed, cancelled
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Why a cancelled deadline stopped: "resolved" (the incident was resolved) or "severity" (the new
    # severity has no such deadline). Recorded when it happens; times are never compared to find out.
    close_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    snoozed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    snooze_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    snooze_seconds: Mapped[int] = mapped_column(Integer, default=0)  # kept when a severity change recalculates


class Reminder(Base):
    """A message due at a time: a reminder before a deadline or its escalation after it.

    The row is the truth; the scheduler only wakes the process. A process claims a due row
    for a short lease, posts, then marks it sent; a lease that runs out (the process died)
    makes the row claimable again, so nothing is lost.
    """

    __tablename__ = "reminders"
    # The scheduler's two questions (what is due, when is the next) read these in order.
    __table_args__ = (Index("ix_reminders_pending_due", "state", "due_at"),
                      Index("ix_reminders_pending_lease", "state", "lease_until"),
                      Index("ix_reminders_pending_retry", "state", "next_attempt_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    # None for a job of the incident itself (archive the channel), not of a deadline
    deadline_id: Mapped[int | None] = mapped_column(ForeignKey("deadlines.id", ondelete="CASCADE"), index=True,
                                                    nullable=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # remind, escalate, archive
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending, sent, cancelled, failed
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    late: Mapped[bool] = mapped_column(default=False)
    # Delivery: how often it was claimed (a second claim looks for what the first one posted), when a
    # transiently failed row may be tried again (its own back-off, never everyone's), and the last
    # error, which is the reason of a `failed` row.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)


class Lesson(Base):
    """What the team learned, added after close: what went well, what to improve, an action item."""

    __tablename__ = "lessons"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # well, improve, action
    text: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # action items have one
    author_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeliveryProblem(Base):
    """Something a platform refused that a person must know: an invite, the topic, an announcement,
    an escalation. One row per thing (kind and subject); shown by /crisis status until fixed_at is set.
    A repair claims the row for a short lease, so two instances never send it again twice."""

    __tablename__ = "delivery_problems"
    __table_args__ = (UniqueConstraint("incident_id", "platform", "kind", "subject", name="uq_problem_subject"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))      # invite, topic, announcement, escalation, …
    subject: Mapped[str] = mapped_column(String(80))   # who was not invited, which announcement; "" for one of a kind
    reason: Mapped[str] = mapped_column(String(300))   # the platform's error
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)  # what to send again (an announcement)
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # who acted, and was told
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fixed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RequestClaim(Base):
    """One request, done once: a retried delivery, a double submit or a second instance finds it here.

    The key comes from the request (a trigger id, a view id and hash, an event id) or names a
    guard (one export of an incident at a time). A row is "running" while its holder's lease
    lasts, or "done" with what the request answered, so a retry gets the same answer.
    """

    __tablename__ = "request_claims"
    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_request_claim"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(10), default="done")  # running, done
    claimed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
