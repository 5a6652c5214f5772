"""The incident's standing messages (header, roster, checklist), built from its state.

Pure: the same incident always gives the same messages, so handlers can compare
fingerprints and update a posted message only when what it shows has changed.
"""

from __future__ import annotations

from bot import statements
from bot.messages import Actions, Button, Context, Message, Section, UserPicker
from bot.models import ChecklistItem, Incident, Statement
from bot.playbook import Playbook
from bot.texts import Texts, Trusted, channel_link, escape_chat, mention


class Views:
    def __init__(self, playbook: Playbook, texts: Texts):
        self.playbook = playbook
        self.texts = texts

    def t(self, incident: Incident, text: str, /, **values) -> str:
        return self.texts.get(incident.language, text, **values)

    def loc(self, incident: Incident, localized: dict[str, str]) -> str:
        return localized.get(incident.language) or next(iter(localized.values()), "")

    def severity_label(self, incident: Incident, level: int | None = None) -> str:
        level = incident.severity if level is None else level
        severity = self.playbook.severity_by_level.get(level)
        name = self.loc(incident, severity.name) if severity else ""
        # Already escaped by its template; Trusted keeps it from being escaped a second time.
        return Trusted(self.t(incident, "severity_label", level=level, name=name))

    def phase_label(self, incident: Incident, phase: str | None = None) -> str:
        return Trusted(self.t(incident, "phase_name", phase=phase or incident.phase))

    def role_label(self, incident: Incident, role_key: str) -> str:
        role = self.playbook.role_by_key.get(role_key)
        return self.loc(incident, role.name) if role else role_key

    def type_label(self, incident: Incident) -> str:
        crisis_type = self.playbook.type_by_key.get(incident.crisis_type)
        return self.loc(incident, crisis_type.name) if crisis_type else incident.crisis_type

    def channel(self, incident: Incident):
        """A link to the incident's channel, or its reference before it has one."""
        return channel_link(incident.channel_id) if incident.channel_id else incident.ref

    def lead(self, incident: Incident) -> str | None:
        holders = incident.holders(self.playbook.lead_role)
        return holders[0] if holders else None

    def standing(self, incident: Incident) -> list[Message]:
        """Every standing message, in the order they are first posted."""
        return [self.header(incident), self.roster(incident), *self.checklist(incident),
                *(self.statement(incident, st) for st in incident.statements)]

    def header(self, incident: Incident) -> Message:
        lead = self.lead(incident)
        done = sum(1 for i in incident.items if i.state == "done")
        skipped = sum(1 for i in incident.items if i.state == "skipped")
        title = self.t(incident, "header_title", ref=incident.ref, title=incident.title)
        body = self.t(
            incident, "header_body",
            severity=self.severity_label(incident), phase=self.phase_label(incident),
            lead=mention(lead) if lead else None, crisis_type=self.type_label(incident),
            reporter=mention(incident.reporter_id), started=incident.created_at,
        )
        following = min((d for d in incident.deadlines if d.state == "open"), key=lambda d: d.due_at, default=None)
        progress = self.t(
            incident, "header_progress", done=done, skipped=skipped, total=len(incident.items),
            next_kind=following.kind if following else None, next_due=following.due_at if following else None,
        )
        blocks = [Section(title), Section(body)]
        if incident.description:
            blocks.append(Context(self.t(incident, "header_description", description=incident.description)))
        blocks.append(Context(progress))
        return Message("header", title, tuple(blocks))

    def roster(self, incident: Incident) -> Message:
        title = self.t(incident, "roster_title", ref=incident.ref)
        blocks: list = [Section(title)]
        pickers = []
        for role in self.playbook.roles:
            holders = incident.holders(role.key)
            text = self.t(
                incident, "role_line",
                name=self.loc(incident, role.name),
                required=incident.severity in role.required_at,
                holder=mention(holders[0]) if holders else None,
                responsibilities=self.loc(incident, role.responsibilities),
            )
            claim = None if holders or not incident.live else Button(
                "role.claim", self.t(incident, "btn_claim"), role.key, "primary")
            blocks.append(Section(text, claim))
            pickers.append(UserPicker(
                "role.assign", self.t(incident, "pick_assign", role=self.loc(incident, role.name)), role.key))
        if incident.live:
            blocks.append(Actions(tuple(pickers)))
        return Message("roster", title, tuple(blocks))

    def checklist(self, incident: Incident) -> list[Message]:
        return [self.checklist_step(incident, step.key) for step in self.playbook.checklist]

    def checklist_step(self, incident: Incident, step_key: str) -> Message:
        step = next(s for s in self.playbook.checklist if s.key == step_key)
        items = [i for i in incident.items if i.step == step_key]
        done = sum(1 for i in items if i.state != "open")
        title = self.t(incident, "step_title", name=self.loc(incident, step.name), done=done, total=len(items))
        blocks: list = [Section(title)]
        for item in items:
            blocks.extend(self._item_blocks(incident, item, self.clickable(incident, item)))
        return Message(f"checklist:{step_key}", title, tuple(blocks))

    def message_name(self, incident: Incident, key: str) -> str:
        """A standing message as people call it ("the checklist step Assess"), never its key."""
        kind, _, rest = key.partition(":")
        step = next((s for s in self.playbook.checklist if s.key == rest), None) if kind == "checklist" else None
        return self.t(incident, "message_name", kind=kind, detail=self.loc(incident, step.name) if step else rest)

    def clickable(self, incident: Incident, item: ChecklistItem) -> bool:
        """Items can be changed while the incident is live; after-resolve items also until close."""
        return incident.live or (incident.phase == "resolved" and self.playbook.after_resolve(item.key))

    def after_resolve_steps(self, incident: Incident) -> list[Message]:
        """The checklist messages that show after-resolve items (their buttons change at resolve and close)."""
        keys = dict.fromkeys(i.step for i in incident.items if self.playbook.after_resolve(i.key))
        known = {s.key for s in self.playbook.checklist}
        return [self.checklist_step(incident, key) for key in keys if key in known]

    def _item_blocks(self, incident: Incident, item: ChecklistItem, live: bool) -> list:
        text = self.t(
            incident, "item_line", state=item.state, title=item.title,
            owner=self.role_label(incident, item.owner_role),
            by=mention(item.changed_by) if item.changed_by else None, at=item.changed_at,
        )
        if not live:
            return [Section(text)]
        if item.state == "open":
            return [Section(text), Actions((
                Button("item.done", self.t(incident, "btn_done"), item.key, "primary"),
                Button("item.skip", self.t(incident, "btn_skip"), item.key),
            ))]
        return [Section(text, Button("item.reopen", self.t(incident, "btn_reopen"), item.key))]

    def statement(self, incident: Incident, statement: Statement) -> Message:
        version = statement.current
        approvals = [statements.Decision(d.step, d.role, d.user_id) for d in version.decisions if d.kind == "approve"]
        states = statements.progress(version.steps, approvals)
        current = statements.current_step(states)
        decided_at = {(d.user_id, d.step): d.at for d in version.decisions if d.kind == "approve"}
        title = self.t(incident, "statement_header", number=statement.number, title=statement.title,
                       version=version.number, audience=statement.audience, state=statement.state,
                       author=mention(version.author_id))
        # The text is shown exactly as it will be published, escaped as a whole.
        blocks: list = [Section(title), Section(Trusted(escape_chat(version.text)), verbatim=True)]
        for state in states:
            blocks.append(Context(self.t(
                incident, "statement_step", index=state.index + 1, total=len(states), mode=state.mode,
                roles=", ".join(self.role_label(incident, r) for r in state.roles), done=state.done,
                current=current is not None and state.index == current.index and statement.state == "draft",
                approvals=[(mention(d.user), decided_at[(d.user, d.step)]) for d in state.approvals])))
        for decision in version.decisions:
            if decision.kind != "approve":
                blocks.append(Context(self.t(incident, "statement_decision", kind=decision.kind,
                                             by=mention(decision.user_id), reason=decision.reason or "",
                                             at=decision.at)))
        if statement.state == "published":
            blocks.append(Context(self.t(incident, "statement_published_line", where=statement.published_where,
                                         link=statement.published_link, by=mention(statement.published_by),
                                         at=statement.published_at)))
        value = f"{statement.number}.{version.number}"
        buttons: tuple = ()
        if incident.live:
            if statement.state == "draft":
                buttons = (Button("stmt.approve", self.t(incident, "btn_approve"), value, "primary"),
                           Button("stmt.changes", self.t(incident, "btn_changes"), value),
                           Button("stmt.reject", self.t(incident, "btn_reject"), value, "danger"),
                           Button("stmt.edit", self.t(incident, "btn_edit"), value))
            elif statement.state == "approved":
                buttons = (Button("stmt.publish", self.t(incident, "btn_publish"), value, "primary"),
                           Button("stmt.edit", self.t(incident, "btn_edit"), value))
        if buttons:
            blocks.append(Actions(buttons))
        return Message(f"statement:{statement.number}", title, tuple(blocks))

    def topic(self, incident: Incident) -> str:
        return self.t(
            incident, "topic", ref=incident.ref, severity=self.severity_label(incident),
            phase=self.phase_label(incident), title=incident.title,
        )[:250]
