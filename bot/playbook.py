"""The playbook: a team's crisis plan as YAML, validated with file and line for every problem."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError

from bot.durations import format_duration, parse_duration

LANGUAGES = ("en", "de")
INCIDENT_PHASES = ("detected", "assessing", "responding", "monitoring", "resolved", "closed")
KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


def _as_localized(value: Any) -> Any:
    # A plain string is the same text in every language; teams with one language write less.
    if isinstance(value, str):
        return {lang: value for lang in LANGUAGES}
    return value


def _as_duration(value: Any) -> Any:
    if isinstance(value, timedelta) and value > timedelta(0):
        return value  # built in code (tests, tools) rather than read from YAML
    if isinstance(value, str):
        duration = parse_duration(value)
        if not duration:
            raise ValueError(f"{value!r} is zero; a duration must be longer than that")
        return duration
    raise ValueError(f"{value!r} is not a duration; write a whole number and a unit, like 90s, 15m, 2h or 3d")


Localized = Annotated[dict[str, Annotated[str, Field(min_length=1)]], BeforeValidator(_as_localized)]
Duration = Annotated[timedelta, BeforeValidator(_as_duration)]
Key = Annotated[str, Field(pattern=KEY_PATTERN, max_length=40)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(_Model):
    level: int = Field(ge=1, le=9)
    name: Localized
    description: Localized = {}
    notify: list[str] = []
    announce: bool = True


class CrisisType(_Model):
    key: Key
    name: Localized
    description: Localized = {}


class Role(_Model):
    key: Key
    name: Localized
    responsibilities: Localized
    required_at: list[int] = []


class ChecklistItem(_Model):
    key: Key
    title: Localized
    owner: Key
    # Work that follows the crisis (the debrief, the lessons): its buttons stay from resolve until close.
    after_resolve: StrictBool = False


class Step(_Model):
    key: Key
    name: Localized
    incident_phase: str = "responding"
    # A step is one chat message; Slack allows 50 blocks and an open item takes two.
    items: list[ChecklistItem] = Field(min_length=1, max_length=24)


class Team(_Model):
    standing_members: list[str] = []
    announcement_channel: str | None = None


class Closing(_Model):
    # The channel is archived this long after /crisis close; none: only by the Archive button.
    archive_after: Duration | None = None


DEADLINE_KINDS = ("acknowledge", "first_statement", "update", "review")
# Who is reminded of a deadline unless the playbook names other roles.
DEFAULT_OWNERS = {"acknowledge": ["lead"], "first_statement": ["comms", "social"], "update": ["comms"],
                  "review": ["lead"]}


class Escalation(_Model):
    roles: list[Key] = []
    channel: str | None = None


class DeadlineRule(_Model):
    """One promise: due `within` of its start (or `every` so long for updates), reminded before."""

    within: Duration | None = None
    every: Duration | None = None
    remind: list[Duration] | None = None   # offsets before the due time; default: deadlines.remind_before
    escalate: Escalation | None = None     # default: deadlines.escalate
    owners: list[Key] | None = None        # reminded; default by kind (lead, comms …)


class SeverityDeadlines(_Model):
    acknowledge: DeadlineRule | None = None
    first_statement: DeadlineRule | None = None
    update: DeadlineRule | None = None
    review: DeadlineRule | None = None


class Deadlines(_Model):
    remind_before: list[Duration] = Field(default_factory=lambda: [timedelta(minutes=15), timedelta(minutes=5)])
    escalate: Escalation = Escalation(roles=["lead"])
    by_severity: dict[int, SeverityDeadlines] = {}

    def rule(self, severity: int, kind: str) -> DeadlineRule | None:
        rules = self.by_severity.get(severity)
        return getattr(rules, kind) if rules else None


PURPOSES = ("holding", "apology", "corrective-action", "status-update", "take-offline", "talking-points")
AUDIENCES = ("public", "customers", "press", "internal")
PREFILLS = ("title", "description", "crisis_type", "ref")


class Variable(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=40)]
    label: Localized
    required: bool = True
    example: Localized = {}
    max_length: int = Field(280, ge=1, le=2900)
    # Filled in from the incident when the draft form opens; the author can still change it.
    prefill: Literal["title", "description", "crisis_type", "ref"] | None = None


class ApprovalStep(_Model):
    roles: list[Key] = Field(min_length=1)
    mode: Literal["any", "all"] = "any"


class ApprovalPolicy(_Model):
    steps: list[ApprovalStep] = Field(min_length=1, max_length=10)
    # Stricter (or lighter) steps at some severities, e.g. legal first at sev1.
    severities: dict[int, Annotated[list[ApprovalStep], Field(min_length=1, max_length=10)]] = {}
    # Four eyes: one person approves at most one step of a version, even holding the roles of
    # several. `true` lets one person approve several steps (a small team's explicit choice);
    # whoever wrote any version of a statement may still never approve it.
    allow_same_approver: StrictBool = False

    def steps_at(self, severity: int) -> list[ApprovalStep]:
        return self.severities.get(severity, self.steps)


class StatementTemplate(_Model):
    key: Key
    title: Localized
    purpose: Literal["holding", "apology", "corrective-action", "status-update", "take-offline",
                     "talking-points"]
    audience: Literal["public", "customers", "press", "internal"]
    crisis_types: list[Key] = []  # empty: fits every crisis type
    variables: list[Variable] = Field(default=[], max_length=10)
    text: Localized              # Jinja2, rendered in a sandbox with the variables only
    approval: Key                # a policy under approval_policies

    def fits(self, crisis_type: str) -> bool:
        return not self.crisis_types or crisis_type in self.crisis_types


class Playbook(_Model):
    name: str
    languages: list[str] = Field(default=list(LANGUAGES), min_length=1)
    lead_role: Key
    default_severity: int
    default_type: Key
    severities: list[Severity] = Field(min_length=1)
    crisis_types: list[CrisisType] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1, max_length=24)
    checklist: list[Step] = Field(min_length=1)
    team: Team = Team()
    deadlines: Deadlines = Deadlines()
    closing: Closing = Closing()
    approval_policies: dict[Key, ApprovalPolicy] = {}
    statements: list[StatementTemplate] = Field(default=[], max_length=100)
    # A statement written freely, without a template, needs this (the strictest) policy.
    free_statement_policy: Key | None = None

    @cached_property
    def statement_by_key(self) -> dict[str, StatementTemplate]:
        return {t.key: t for t in self.statements}

    def model_copy(self, *, update=None, deep=False):
        # The lookups above are cached in the instance; a copy with other fields must not inherit them.
        copy = super().model_copy(update=update, deep=deep)
        for name in ("severity_by_level", "type_by_key", "role_by_key", "statement_by_key"):
            copy.__dict__.pop(name, None)
        return copy

    @cached_property
    def severity_by_level(self) -> dict[int, Severity]:
        return {s.level: s for s in self.severities}

    @cached_property
    def type_by_key(self) -> dict[str, CrisisType]:
        return {t.key: t for t in self.crisis_types}

    @cached_property
    def role_by_key(self) -> dict[str, Role]:
        return {r.key: r for r in self.roles}

    def items(self) -> list[tuple[Step, ChecklistItem]]:
        return [(step, item) for step in self.checklist for item in step.items]

    def step_of(self, item_key: str) -> Step | None:
        return next((s for s, i in self.items() if i.key == item_key), None)

    def after_resolve(self, item_key: str) -> bool:
        """Whether the playbook marks this checklist item as done after resolve (until close)."""
        return any(i.after_resolve for _, i in self.items() if i.key == item_key)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PlaybookError(Exception):
    """A playbook that cannot be used; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def default_playbook_path() -> Path:
    return Path(str(resources.files("bot") / "playbooks" / "default.yaml"))


def load(path: str | os.PathLike | None = None) -> Playbook:
    """Load and validate a playbook; raises PlaybookError listing every problem."""
    path = Path(path) if path else default_playbook_path()
    playbook, problems = check_file(path)
    if problems:
        raise PlaybookError(problems)
    return playbook


def check_file(path: Path) -> tuple[Playbook | None, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(str(path), 0, f"cannot read the file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [Problem(str(path), 0, "the file is not UTF-8 text")]
    return check_text(text, str(path))


def check_text(text: str, filename: str = "<playbook>") -> tuple[Playbook | None, list[Problem]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        return None, [Problem(filename, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(data, dict):
        return None, [Problem(filename, 1, "a playbook is a YAML mapping with name, severities, roles, checklist …")]

    def line_of(loc: tuple) -> int:
        return _line_of(root, loc)

    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(filename, line_of(tuple(err["loc"])), f"{_dotted(err['loc'])}: {_plain(err)}")
            for err in exc.errors()
        ]
        return None, sorted(set(problems), key=lambda p: (p.line, p.message))
    problems = [Problem(filename, line_of(loc), msg) for loc, msg in _cross_check(playbook)]
    return (None if problems else playbook), problems


def _plain(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if err["type"] == "missing":
        return "required field is missing"
    message = err["msg"]
    return message.removeprefix("Value error, ")


def _dotted(loc) -> str:
    return ".".join(str(part) for part in loc)


def _line_of(node, loc: tuple) -> int:
    """Walk the composed YAML tree along a validation path to the nearest node's line."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(part, _TextLine):
            if isinstance(node, yaml.ScalarNode) and node.style == "|":
                return node.start_mark.line + 1 + part  # a literal block starts after its indicator line
            if isinstance(node, yaml.ScalarNode) and node.style is None and "\n" not in node.value:
                return node.start_mark.line + 1
            return line  # folded or quoted text: its lines are not the file's lines; point at the key
        if isinstance(node, yaml.ScalarNode):
            continue  # one text for every language: the language step has no node of its own
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    # The key's line, not the value's: a block value starts a line lower.
                    child, line = value_node, key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


MAX_CRISIS_TYPES = 100  # a chat platform's pick list offers this many (Slack's static_select: 100)


def _cross_check(pb: Playbook) -> list[tuple[tuple, str]]:
    """Rules that span fields: references resolve, keys are unique, every language is present."""
    out: list[tuple[tuple, str]] = []
    for i, lang in enumerate(pb.languages):
        if lang not in LANGUAGES:
            out.append((("languages", i), f"language {lang!r} is not supported; use {', '.join(LANGUAGES)}"))
    levels = [s.level for s in pb.severities]
    roles = [r.key for r in pb.roles]
    types = [t.key for t in pb.crisis_types]
    steps = [s.key for s in pb.checklist]
    for field, keys in (("severities", levels), ("roles", roles), ("crisis_types", types), ("checklist", steps)):
        seen: set = set()
        for i, key in enumerate(keys):
            if key in seen:
                out.append(((field, i), f"{field} lists {key!r} twice"))
            seen.add(key)
    item_keys: set[str] = set()
    for si, step in enumerate(pb.checklist):
        if step.incident_phase not in INCIDENT_PHASES[1:4]:
            out.append((("checklist", si, "incident_phase"),
                        f"incident_phase {step.incident_phase!r} must be one of assessing, responding, monitoring"))
        for ii, item in enumerate(step.items):
            where = ("checklist", si, "items", ii)
            if item.key in item_keys:
                out.append(((*where, "key"), f"checklist item {item.key!r} appears twice"))
            item_keys.add(item.key)
            if item.owner not in roles:
                out.append(((*where, "owner"),
                            f"owner {item.owner!r} is not a role of this playbook ({', '.join(roles)})"))
    for ri, role in enumerate(pb.roles):
        for li, level in enumerate(role.required_at):
            if level not in levels:
                out.append((("roles", ri, "required_at", li), f"severity {level} is not defined under severities"))
    if pb.lead_role not in roles:
        out.append((("lead_role",), f"lead_role {pb.lead_role!r} is not a role of this playbook"))
    if pb.default_severity not in levels:
        out.append((("default_severity",), f"default_severity {pb.default_severity} is not defined under severities"))
    if pb.default_type not in types:
        out.append((("default_type",), f"default_type {pb.default_type!r} is not a crisis type of this playbook"))
    if len(types) > MAX_CRISIS_TYPES:
        out.append((("crisis_types",), f"{len(types)} crisis types are more than a start form can offer; "
                    f"keep it to {MAX_CRISIS_TYPES}"))
    out.extend(_check_statements(pb, levels, roles, types))
    out.extend(_check_deadlines(pb, levels, roles))
    out.extend(_missing_languages(pb))
    return out


def _check_deadlines(pb: Playbook, levels, roles) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []

    def check_escalation(escalation, loc):
        for i, role in enumerate(escalation.roles):
            if role not in roles:
                out.append(((*loc, "roles", i), f"escalation to {role!r}, which is not a role of this playbook "
                                                f"({', '.join(roles)})"))

    check_escalation(pb.deadlines.escalate, ("deadlines", "escalate"))
    for level, rules in pb.deadlines.by_severity.items():
        where = ("deadlines", "by_severity", level)
        if level not in levels:
            out.append((where, f"severity {level} is not defined under severities"))
        for kind in DEADLINE_KINDS:
            rule = getattr(rules, kind)
            if rule is None:
                continue
            loc = (*where, kind)
            length = rule.every if kind == "update" else rule.within
            if kind == "update" and (rule.within is not None or rule.every is None):
                out.append((loc, "the update deadline repeats: write `every: 30m`, not `within`"))
            elif kind != "update" and (rule.every is not None or rule.within is None):
                out.append((loc, f"the {kind} deadline is due once: write `within: 1h`, not `every`"))
            for i, offset in enumerate(rule.remind if rule.remind is not None else pb.deadlines.remind_before):
                if length is not None and offset >= length:
                    remind_loc = (*loc, "remind", i) if rule.remind is not None else ("deadlines", "remind_before", i)
                    out.append((remind_loc, f"a reminder {format_duration(offset)} before a deadline of "
                                            f"{format_duration(length)} would come before the clock starts"))
            for i, role in enumerate(rule.owners or []):
                if role not in roles:
                    out.append(((*loc, "owners", i), f"{role!r} is not a role of this playbook"))
            if rule.escalate is not None:
                check_escalation(rule.escalate, (*loc, "escalate"))
    return out


def _check_statements(pb: Playbook, levels, roles, types) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for name, policy in pb.approval_policies.items():
        where = ("approval_policies", name)
        for level in policy.severities:
            if level not in levels:
                out.append(((*where, "severities", level), f"severity {level} is not defined under severities"))
        step_lists = [((*where, "steps"), policy.steps)] + [
            ((*where, "severities", level), steps) for level, steps in policy.severities.items()]
        if policy.allow_same_approver and all(len(steps) < 2 for _, steps in step_lists):
            out.append(((*where, "allow_same_approver"), f"policy {name!r} has a single step at every severity, "
                                                         "so allow_same_approver changes nothing; remove it"))
        for loc, steps in step_lists:
            for si, step in enumerate(steps):
                for ri, role in enumerate(step.roles):
                    if role not in roles:
                        out.append(((*loc, si, "roles", ri), f"approval by {role!r}, which is not a role of this "
                                                             f"playbook ({', '.join(roles)})"))
    if pb.free_statement_policy and pb.free_statement_policy not in pb.approval_policies:
        out.append((("free_statement_policy",), f"policy {pb.free_statement_policy!r} is not under approval_policies"))
    seen: set[str] = set()
    for ti, template in enumerate(pb.statements):
        where = ("statements", ti)
        if template.key in seen:
            out.append(((*where, "key"), f"statement template {template.key!r} appears twice"))
        seen.add(template.key)
        if template.approval not in pb.approval_policies:
            out.append(((*where, "approval"), f"template {template.key!r}: policy {template.approval!r} is not "
                                              f"under approval_policies"))
        for ci, crisis_type in enumerate(template.crisis_types):
            if crisis_type not in types:
                out.append(((*where, "crisis_types", ci), f"{crisis_type!r} is not a crisis type of this playbook"))
        names = [v.name for v in template.variables]
        for vi, name in enumerate(names):
            if names.index(name) != vi:
                out.append(((*where, "variables", vi, "name"), f"variable {name!r} is declared twice"))
        out.extend(_check_template_texts(template, where))
    return out


def _check_template_texts(template, where: tuple) -> list[tuple[tuple, str]]:
    from bot.statements import check_template  # the sandbox lives with the statements

    out = []
    for lang, source in template.text.items():
        examples = {v.name: v.example.get(lang, "") for v in template.variables}
        for line, message in check_template(source, {v.name for v in template.variables}, examples):
            # The line inside the text travels in the loc; _line_of adds it to where the text starts.
            out.append(((*where, "text", lang, _TextLine(line)), f"template {template.key!r} ({lang}): {message}"))
    return out


class _TextLine(int):
    """A line number inside a YAML string, as the last step of a validation path."""


def _missing_languages(pb: Playbook) -> list[tuple[tuple, str]]:
    out = []

    def visit(value: Any, loc: tuple) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                field_value = getattr(value, name)
                required = type(value).model_fields[name].is_required()
                if name in _LOCALIZED_FIELDS and isinstance(field_value, dict) and (field_value or required):
                    out.extend(((*loc, name), f"{_dotted((*loc, name))}: no text for language {lang!r}")
                               for lang in pb.languages if lang in LANGUAGES and lang not in field_value)
                else:
                    visit(field_value, (*loc, name))
        elif isinstance(value, list):
            for i, element in enumerate(value):
                visit(element, (*loc, i))

    visit(pb, ())
    return out


_LOCALIZED_FIELDS = {"name", "description", "responsibilities", "title", "text", "label"}
