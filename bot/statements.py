"""Statement templates: sandboxed rendering, checks for the playbook, and approval policies.

A statement is plain text meant for publishing. Templates render in Jinja2's sandbox with
undefined variables as errors; the result is escaped as a whole when it is shown in chat,
so neither a value nor the template can ping a crowd or inject a link or mention.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot.errors import Refusal
from bot.playbook import ApprovalStep, Playbook, StatementTemplate
from bot.texts import escape_chat

MAX_TEXT = 2900       # characters a statement may have
SECTION_LIMIT = 3000  # characters a Slack section shows; the escaped text must fit


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, also closed to arithmetic that builds huge values (`'x' * 10**10`)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            raise SecurityError("the power operator is not allowed in statement templates")
        sequences = (str, list, tuple, bytes)
        if isinstance(left, sequences) or isinstance(right, sequences):
            count = right if isinstance(left, sequences) else left
            size = len(left if isinstance(left, sequences) else right)
            if isinstance(count, int) and count * size > MAX_TEXT:
                raise SecurityError("the repeated text would be longer than a statement may be")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return _Sandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


def _template_line(exc: BaseException) -> int:
    """The line inside the template where rendering failed, from the traceback Jinja rewrites."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == "<template>"]
    return lines[-1] if lines else 1


def check_template(source: str, declared: set[str], examples: dict[str, str]) -> list[tuple[int, str]]:
    """Problems of one template text as (line within the text, message); empty when it is fine."""
    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return [(exc.lineno or 1, f"template syntax error: {exc.message}")]
    problems = []
    for name in sorted(meta.find_undeclared_variables(ast) - declared):
        line = min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"), default=1)
        problems.append((line, f"uses {name!r}, which is not declared under variables"))
    if problems:
        return problems
    try:
        text = env.from_string(source).render(**{name: examples.get(name) or name for name in declared})
    except Exception as exc:  # SecurityError, a bad filter, 1/0 …: found now, not during a crisis
        return [(_template_line(exc), f"template cannot be rendered: {exc}")]
    if _shown_length(text.strip()) > SECTION_LIMIT:
        return [(1, f"filled with the examples the text is too long for a chat message "
                    f"({len(text.strip())} characters; at most {MAX_TEXT})")]
    return []


def check_values(template: StatementTemplate, values: dict[str, str | None], language: str) -> dict[str, str]:
    """The values to render with; refuses a missing required value or one over its length."""
    clean = {}
    for variable in template.variables:
        value = (values.get(variable.name) or "").strip()
        label = variable.label.get(language) or variable.name
        if not value and variable.required:
            raise Refusal("variable_missing", label=label, name=variable.name)
        if len(value) > variable.max_length:
            raise Refusal("variable_too_long", label=label, name=variable.name, length=len(value),
                          limit=variable.max_length)
        clean[variable.name] = value
    return clean


def render(template: StatementTemplate, language: str, values: dict[str, str]) -> str:
    source = template.text.get(language) or next(iter(template.text.values()))
    try:
        text = environment().from_string(source).render(**values).strip()
    except Exception as exc:  # a value can make a sound template fail (a filter on an odd value)
        raise Refusal("template_failed", template=template.key, error=str(exc)) from None
    return check_text(text)


def check_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise Refusal("statement_empty")
    # Approvers must see every character: the text has to fit one chat section once escaped.
    if len(text) > MAX_TEXT or _shown_length(text) > SECTION_LIMIT:
        raise Refusal("statement_too_long", length=len(text), limit=MAX_TEXT)
    return text


def _shown_length(text: str) -> int:
    return len(escape_chat(text))


# -- approval policies -------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    step: int
    role: str
    user: str


@dataclass(frozen=True)
class StepState:
    index: int
    roles: tuple[str, ...]
    mode: str
    approvals: tuple[Decision, ...]
    done: bool

    def missing_roles(self) -> tuple[str, ...]:
        """For an `all` step, the roles still to approve; for `any`, every role until one did."""
        approved = {d.role for d in self.approvals}
        if self.mode == "any":
            return () if approved else self.roles
        return tuple(r for r in self.roles if r not in approved)


def policy_steps(playbook: Playbook, template: StatementTemplate | None, severity: int) -> list[ApprovalStep]:
    key = template.approval if template else playbook.free_statement_policy
    policy = playbook.approval_policies.get(key) if key else None
    if policy is None:
        # A playbook without policies still needs four eyes: the lead approves.
        return [ApprovalStep(roles=[playbook.lead_role], mode="any")]
    return policy.steps_at(severity)


def allows_same_approver(playbook: Playbook, template: StatementTemplate | None) -> bool:
    """Whether the policy explicitly lets one person approve several steps of a version."""
    key = template.approval if template else playbook.free_statement_policy
    policy = playbook.approval_policies.get(key) if key else None
    return bool(policy and policy.allow_same_approver)


def authors(versions) -> set[str]:
    """Everyone who wrote a version of a statement: none of them may approve any of it."""
    return {v.author_id for v in versions}


def one_step_each(steps: list[dict]) -> bool:
    """Four eyes across steps: unless the version's policy opted out, a person approves one step only."""
    return not any(step.get("allow_same_approver") for step in steps)


def approved_other_step(steps: list[dict], approvals: list[Decision], user: str, step: int) -> int | None:
    """The earlier step this user approved, when one person may approve only one step of a version."""
    if not one_step_each(steps):
        return None
    return next((d.step for d in approvals if d.user == user and d.step != step), None)


def progress(steps: list[dict], approvals: list[Decision]) -> list[StepState]:
    """Where each step stands. Steps run in order: an approval only ever counts for its own step."""
    out = []
    for index, step in enumerate(steps):
        mine = tuple(d for d in approvals if d.step == index)
        roles = tuple(step["roles"])
        approved = {d.role for d in mine}
        done = bool(approved) if step["mode"] == "any" else all(r in approved for r in roles)
        out.append(StepState(index, roles, step["mode"], mine, done))
    return out


def current_step(states: list[StepState]) -> StepState | None:
    return next((s for s in states if not s.done), None)


def approving_role(state: StepState, user_roles: list[str]) -> str | None:
    """The role under which a user may approve the current step, if any."""
    for role in state.missing_roles():
        if role in user_roles:
            return role
    return None
