"""Parsing what people type after /crisis, the same for every platform."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from bot.durations import parse_duration
from bot.errors import Refusal
from bot.playbook import DEADLINE_KINDS, INCIDENT_PHASES, Playbook

MAX_TITLE = 150
MAX_DESCRIPTION = 3000
SUBCOMMANDS = ("start", "roles", "assign", "severity", "phase", "status", "resolve", "draft", "statements",
               "update", "snooze", "close", "export", "archive", "help", "show")
# Slack sends <@U123|name> when the command escapes users; the console and tests send @name.
_USER = re.compile(r"^<@([A-Za-z0-9._-]+)(?:\|[^>]*)?>$|^@([A-Za-z0-9._-]+)$")
_SEVERITY = re.compile(r"^(?:sev)?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    name: str
    title: str = ""
    crisis_type: str | None = None
    severity: int | None = None
    user: str | None = None
    role: str | None = None
    phase: str | None = None
    deadline: str | None = None           # for snooze: which deadline
    length: timedelta | None = None       # for snooze: by how much
    template: str | None = None  # for draft: a template key, "free", or None to choose in a form
    text: str = ""               # for draft free: the statement's text
    args: list[str] = field(default_factory=list)


def parse(text: str, playbook: Playbook) -> Command:
    words = (text or "").split()
    if not words:
        return Command("help")
    name, rest = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        raise Refusal("unknown_command", command=words[0])
    if name == "start":
        # No words at all: the handler opens its start form (Slack modal, console questions).
        return _parse_start(rest, playbook) if rest else Command("start")
    if name == "assign":
        if len(rest) != 2:
            raise Refusal("usage_assign")
        return Command("assign", user=parse_user(rest[0]), role=parse_role(rest[1], playbook))
    if name == "severity":
        if len(rest) != 1:
            raise Refusal("usage_severity", levels=_levels(playbook))
        return Command("severity", severity=parse_severity(rest[0], playbook))
    if name == "phase":
        if len(rest) != 1:
            raise Refusal("usage_phase", phases=", ".join(INCIDENT_PHASES[1:4]))
        return Command("phase", phase=parse_phase(rest[0]))
    if name == "draft":
        return _parse_draft(text, rest, playbook)
    if name == "snooze":
        return _parse_snooze(rest)
    return Command(name, args=rest)


def _parse_snooze(words: list[str]) -> Command:
    kinds = ", ".join(DEADLINE_KINDS)
    if len(words) < 2:
        raise Refusal("usage_snooze", kinds=kinds)
    kind = words[0].lower().replace("-", "_")
    if kind not in DEADLINE_KINDS:
        raise Refusal("unknown_deadline", given=words[0], kinds=kinds)
    try:
        length = parse_duration(words[1])
    except ValueError:
        raise Refusal("duration_invalid", given=words[1]) from None
    if not length:
        raise Refusal("duration_invalid", given=words[1])
    reason = " ".join(words[2:])
    if not reason:
        raise Refusal("snooze_reason_missing")
    return Command("snooze", deadline=kind, length=length, text=reason)


def _parse_draft(text: str, words: list[str], playbook: Playbook) -> Command:
    if not words:
        return Command("draft")
    key = words[0].lower()
    if key == "free":
        # Keep the author's line breaks: the text after "free" is the statement, as typed.
        body = text.strip()[len("draft"):].strip()[len("free"):].strip()
        return Command("draft", template="free", text=body)
    if key not in playbook.statement_by_key:
        raise Refusal("unknown_template", given=words[0], templates=", ".join([*playbook.statement_by_key, "free"]))
    if len(words) > 1:
        raise Refusal("usage_draft")
    return Command("draft", template=key)


def _parse_start(words: list[str], playbook: Playbook) -> Command:
    severity, crisis_type = None, None
    # Options come before the title, in any order: `sev2 data-leak Title` or `data-leak sev2 Title`.
    while words:
        word = words[0]
        if severity is None and word.lower().startswith("sev"):
            severity = parse_severity(word, playbook)
        elif crisis_type is None and word.lower() in playbook.type_by_key:
            crisis_type = word.lower()
        else:
            break
        words = words[1:]
    return Command("start", title=check_title(" ".join(words)), severity=severity, crisis_type=crisis_type)


def check_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise Refusal("title_missing")
    if len(title) > MAX_TITLE:
        raise Refusal("title_too_long", length=len(title), limit=MAX_TITLE)
    return title


def check_description(description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise Refusal("description_too_long", length=len(description), limit=MAX_DESCRIPTION)
    return description


def parse_severity(word: str, playbook: Playbook) -> int:
    match = _SEVERITY.match(str(word).strip())
    if not match or int(match.group(1)) not in playbook.severity_by_level:
        raise Refusal("unknown_severity", given=word, levels=_levels(playbook))
    return int(match.group(1))


def parse_type(key: str | None, playbook: Playbook) -> str:
    if not key:
        return playbook.default_type
    if key not in playbook.type_by_key:
        raise Refusal("unknown_type", given=key, types=", ".join(playbook.type_by_key))
    return key


def parse_user(word: str) -> str:
    match = _USER.match(word.strip())
    if not match:
        raise Refusal("usage_assign")
    return match.group(1) or match.group(2)


def parse_role(word: str, playbook: Playbook) -> str:
    wanted = word.strip().lower()
    for role in playbook.roles:
        if wanted == role.key or wanted in (name.lower() for name in role.name.values()):
            return role.key
    raise Refusal("unknown_role", given=word, roles=", ".join(playbook.role_by_key))


def parse_phase(word: str) -> str:
    wanted = word.strip().lower()
    if wanted not in INCIDENT_PHASES[1:4]:
        raise Refusal("unknown_phase", given=word, phases=", ".join(INCIDENT_PHASES[1:4]))
    return wanted


def _levels(playbook: Playbook) -> str:
    return ", ".join(f"sev{level}" for level in sorted(playbook.severity_by_level))
