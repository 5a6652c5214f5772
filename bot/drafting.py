"""Statements in an incident: draft, edit, approve step by step, request changes, reject, publish.

Mixed into Core. Every decision belongs to one exact version of the text, and every change is a
timeline event that records that version and its text.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import statements
from bot.errors import Refusal
from bot.models import Incident, Statement, StatementDecision, StatementVersion
from bot.playbook import StatementTemplate
from bot.texts import mention

FREE = "free"
DECISIONS = ("approve", "changes", "reject")
EVENT_OF = {"approve": "statement.approved", "changes": "statement.changes_requested", "reject": "statement.rejected"}
MAX_REASON = 1000


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    required: bool
    max_length: int
    example: str
    value: str  # prefilled from the incident where the template says so
    multiline: bool


@dataclass(frozen=True)
class DraftForm:
    template: str
    title: str
    fields: tuple[FormField, ...]


class Drafting:
    """Statement actions; expects the Core's db, playbook, views, clock and helpers."""

    # -- what the draft form offers ------------------------------------------------------------

    def templates_for(self, incident_id: int) -> list[tuple[str, str]]:
        """(key, title) of the templates that fit the incident's crisis type, then the free statement."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            lang = incident.language
            fitting = [(t.key, t.title.get(lang) or t.key) for t in self.playbook.statements
                       if t.fits(incident.crisis_type)]
            return [*fitting, (FREE, self.say("free_statement", lang))]

    def draft_form(self, incident_id: int, template_key: str) -> DraftForm:
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            lang = incident.language
            if template_key == FREE:
                return DraftForm(FREE, self.say("free_statement", lang), (FormField(
                    "text", self.say("field_statement_text", lang), True, statements.MAX_TEXT, "", "", True),))
            template = self._template(template_key)
            prefills = {"title": incident.title, "description": incident.description, "ref": incident.ref,
                        "crisis_type": self.views.type_label(incident)}
            fields = tuple(FormField(
                v.name, v.label.get(lang) or v.name, v.required, v.max_length, v.example.get(lang, ""),
                (prefills.get(v.prefill) or "")[: v.max_length] if v.prefill else "", v.max_length > 300)
                for v in template.variables)
            return DraftForm(template.key, template.title.get(lang) or template.key, fields)

    def preview(self, incident_id: int, template_key: str, values: dict[str, str | None]) -> str:
        """The text a draft would have; refuses what draft() would refuse."""
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            return self._render(incident, template_key, values)

    # -- draft and edit ------------------------------------------------------------------------

    def draft(self, incident_id: int, user: str, template_key: str, values: dict[str, str | None],
              request_key: str | None = None):
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            if repeated := self._repeated(s, incident, request_key and f"draft:{request_key}"):
                return repeated  # a retried or second delivery of this request: one statement
            text = self._render(incident, template_key, values)
            template = None if template_key == FREE else self._template(template_key)
            lang = incident.language
            number = 1 + max((st.number for st in incident.statements), default=0)
            statement = Statement(
                incident_id=incident.id, number=number, template_key=template.key if template else None,
                title=(template.title.get(lang) if template else None) or self.say("free_statement", lang),
                audience=template.audience if template else "public", state="draft",
                created_by=user, created_at=self.clock())
            incident.statements.append(statement)
            version = self._new_version(incident, statement, user, text, values if template else {})
            s.flush()
            self._event(s, incident, user, "statement.drafted", statement=number, version=1,
                        template=statement.template_key, text=text)
            self._answered(s, incident, request_key and f"draft:{request_key}", "repeat_draft", number=number)
            return self._statement_outcome(incident, statement, [self.say(
                "statement_drafted", lang, number=number, title=statement.title, by=mention(user),
                approvers=self._approvers(incident, version))])

    def edit(self, incident_id: int, user: str, number: int, version_number: int, text: str):
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            statement, version = self._current(incident, number, version_number)
            if statement.state in ("published", "rejected"):
                raise Refusal("statement_closed", number=number, state=statement.state)
            if not incident.roles_of(user):
                raise Refusal("not_permitted_statement", number=number)
            text = statements.check_text(text)
            if text == version.text:
                return self._outcome(incident, private=self.say("statement_unchanged", incident.language,
                                                                number=number))
            statement.state = "draft"
            version = self._new_version(incident, statement, user, text, {})
            s.flush()
            self._event(s, incident, user, "statement.edited", statement=number, version=version.number, text=text)
            return self._statement_outcome(incident, statement, [self.say(
                "statement_edited", incident.language, number=number, version=version.number, by=mention(user),
                approvers=self._approvers(incident, version))])

    # -- decisions -------------------------------------------------------------------------------

    def decide(self, incident_id: int, user: str, number: int, version_number: int, kind: str,
               reason: str | None = None):
        if kind not in DECISIONS:
            raise Refusal("malformed_request")
        reason = (reason or "").strip()
        if kind != "approve" and not reason:
            raise Refusal("reason_missing")
        if len(reason) > MAX_REASON:
            raise Refusal("reason_too_long", length=len(reason), limit=MAX_REASON)
        try:
            with self.db.transaction() as s:
                return self._decide(s, incident_id, user, number, version_number, kind, reason)
        except IntegrityError:
            # The same person's second click raced the first; the first one counted.
            with self.db.transaction() as s:
                incident = self._load(s, incident_id)
                return self._outcome(incident, private=self.say("already_decided", incident.language,
                                                                number=number, version=version_number))

    def _decide(self, s: Session, incident_id, user, number, version_number, kind, reason):
        incident = self._load_live(s, incident_id)
        statement, version = self._current(incident, number, version_number)
        lang = incident.language
        if statement.state != "draft":
            raise Refusal("statement_closed", number=number, state=statement.state)
        states = self._progress(version)
        step = statements.current_step(states)
        user_roles = incident.roles_of(user)
        if kind == "approve":
            if any(d.user_id == user and d.kind == "approve" and d.step == step.index for d in version.decisions):
                return self._outcome(incident, private=self.say("already_decided", lang, number=number,
                                                                version=version.number))
            role = statements.approving_role(step, user_roles)
            if role is None:
                raise Refusal("not_current_approver", number=number, step=step.index + 1,
                              roles=", ".join(self.views.role_label(incident, r) for r in step.missing_roles()))
            if user == version.author_id:
                raise Refusal("four_eyes", number=number, version=version.number)
            if user in statements.authors(statement.versions):
                # Someone else's edit, however small, does not make the drafter a second pair of eyes.
                raise Refusal("four_eyes_earlier_version", number=number, version=version.number,
                              wrote=max(v.number for v in statement.versions if v.author_id == user))
            earlier = statements.approved_other_step(version.steps, self._approvals(version), user, step.index)
            if earlier is not None:
                raise Refusal("four_eyes_one_step", number=number, version=version.number, step=earlier + 1,
                              open_step=step.index + 1)
        else:
            allowed = {r for st in states for r in st.roles} | {self.playbook.lead_role}
            role = next((r for r in user_roles if r in allowed), None)
            if role is None and user_roles:
                raise Refusal("not_an_approver", number=number,
                              roles=", ".join(self.views.role_label(incident, r) for st in states for r in st.roles))
            if role is None:
                raise Refusal("not_permitted_statement", number=number)
        version.decisions.append(StatementDecision(step=step.index, role=role, user_id=user, kind=kind,
                                                   reason=reason or None, at=self.clock()))
        s.flush()
        self._event(s, incident, user, EVENT_OF[kind], statement=number, version=version.number, step=step.index,
                    role=role, reason=reason or None,
                    text=version.text)
        if kind == "reject":
            statement.state = "rejected"
            notice = self.say("statement_rejected", lang, number=number, by=mention(user), reason=reason)
        elif kind == "changes":
            notice = self.say("statement_changes", lang, number=number, by=mention(user), reason=reason,
                              author=mention(version.author_id))
        else:
            after = statements.current_step(self._progress(version))
            if after is None:
                statement.state = "approved"
                notice = self.say("statement_approved", lang, number=number, version=version.number,
                                  by=mention(user))
            elif after.index != step.index:
                notice = self.say("statement_step_open", lang, number=number, step=after.index + 1,
                                  by=mention(user), approvers=self._approvers(incident, version))
            else:
                notice = self.say("statement_approval_noted", lang, number=number, by=mention(user),
                                  approvers=self._approvers(incident, version))
        return self._statement_outcome(incident, statement, [notice])

    def publish(self, incident_id: int, user: str, number: int, version_number: int, where: str,
                link: str | None = None):
        where, link = (where or "").strip(), (link or "").strip()
        if not where:
            raise Refusal("published_where_missing")
        if len(where) > 200 or len(link) > 500:
            raise Refusal("published_too_long")
        if link and not link.startswith(("https://", "http://")):
            raise Refusal("published_link_invalid")
        with self.db.transaction() as s:
            incident = self._load_live(s, incident_id)
            statement, version = self._current(incident, number, version_number)
            if statement.state == "published":
                return self._outcome(incident, private=self.say("already_published", incident.language,
                                                                number=number))
            if statement.state != "approved":
                raise Refusal("not_approved_yet", number=number)
            if not incident.roles_of(user):
                raise Refusal("not_permitted_statement", number=number)
            statement.state = "published"
            statement.published_at, statement.published_by = self.clock(), user
            statement.published_where, statement.published_link = where, link or None
            self._event(s, incident, user, "statement.published", statement=number, version=version.number,
                        where=where, link=link or None, text=version.text)
            if statement.audience != "internal":
                self._meet(s, incident, "first_statement", user, "statement.published")
                self._meet(s, incident, "update", user, "statement.published")
            out = self._statement_outcome(incident, statement, [self.say(
                "statement_published", incident.language, number=number, by=mention(user), where=where,
                link=link or None)])
            out.updates.insert(0, self.views.header(incident))  # the next deadline moved
            return out

    # -- read-only -------------------------------------------------------------------------------

    def statement_list(self, incident_id: int) -> str:
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            rows = []
            for st in incident.statements:
                states = self._progress(st.current)
                rows.append((st.number, st.title, st.current.number, st.state,
                             sum(1 for x in states if x.done), len(states), st.published_where))
            return self.say("statement_list", incident.language, ref=incident.ref, rows=rows)

    def statement_text(self, incident_id: int, number: int) -> tuple[int, str]:
        """The current version and its plain text, for the edit form."""
        with self.db.transaction() as s:
            incident = self._load(s, incident_id)
            statement = self._statement(incident, number)
            return statement.current.number, statement.current.text

    # -- helpers ---------------------------------------------------------------------------------

    def _template(self, key: str) -> StatementTemplate:
        template = self.playbook.statement_by_key.get(key)
        if template is None:
            raise Refusal("unknown_template", given=key,
                          templates=", ".join([*self.playbook.statement_by_key, FREE]))
        return template

    def _render(self, incident: Incident, template_key: str, values: dict[str, str | None]) -> str:
        if template_key == FREE:
            return statements.check_text(values.get("text") or "")
        template = self._template(template_key)
        clean = statements.check_values(template, values, incident.language)
        return statements.render(template, incident.language, clean)

    def _new_version(self, incident: Incident, statement: Statement, user: str, text: str,
                     values: dict) -> StatementVersion:
        template = self.playbook.statement_by_key.get(statement.template_key or "")
        steps = statements.policy_steps(self.playbook, template, incident.severity)
        # The policy's opt-out of "one step per person" is kept with the version, as its steps are.
        same = {"allow_same_approver": True} if statements.allows_same_approver(self.playbook, template) else {}
        version = StatementVersion(
            number=len(statement.versions) + 1, text=text, values=dict(values), author_id=user,
            created_at=self.clock(),
            steps=[{"roles": list(step.roles), "mode": step.mode, **same} for step in steps])
        statement.versions.append(version)
        return version

    def _statement(self, incident: Incident, number: int) -> Statement:
        statement = next((st for st in incident.statements if st.number == number), None)
        if statement is None:
            raise Refusal("unknown_statement", number=number)
        return statement

    def _current(self, incident: Incident, number: int, version_number: int):
        statement = self._statement(incident, number)
        if version_number != statement.current.number:
            raise Refusal("old_version", number=number, version=version_number, current=statement.current.number)
        return statement, statement.current

    def _approvals(self, version: StatementVersion) -> list[statements.Decision]:
        return [statements.Decision(d.step, d.role, d.user_id) for d in version.decisions if d.kind == "approve"]

    def _progress(self, version: StatementVersion) -> list[statements.StepState]:
        return statements.progress(version.steps, self._approvals(version))

    def _approvers(self, incident: Incident, version: StatementVersion) -> list:
        """Mentions of the people who can approve the open step now: none of its authors, nor (unless the
        policy allows it) anyone who approved another step of this version."""
        step = statements.current_step(self._progress(version))
        if step is None:
            return []
        barred = statements.authors(version.statement.versions)
        approvals = self._approvals(version)
        users = [u for role in step.missing_roles() for u in incident.holders(role) if u not in barred
                 and statements.approved_other_step(version.steps, approvals, u, step.index) is None]
        return [mention(u) for u in dict.fromkeys(users)]

    def _statement_outcome(self, incident: Incident, statement: Statement, notices: list[str]):
        return self._outcome(incident, notices=notices, updates=[self.views.statement(incident, statement)])


def check_field(form: DraftForm, field: FormField, value: str | None) -> str:
    """One answer of the draft form as draft() will take it, or the refusal draft() would give for it;
    for forms that check each field as it is typed (the console)."""
    value = (value or "").strip()
    if form.template == FREE:
        return statements.check_text(value)
    if not value and field.required:
        raise Refusal("variable_missing", label=field.label, name=field.name)
    if len(value) > field.max_length:
        raise Refusal("variable_too_long", label=field.label, name=field.name, length=len(value),
                      limit=field.max_length)
    return value
