"""Parsing what people type after /crisis, the same for every platform."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import timedelta

from bot.durations import DurationTooLong, parse_duration
from bot.errors import Refusal
from bot.playbook import DEADLINE_KINDS, INCIDENT_PHASES, Playbook

MAX_TITLE = 150
MAX_DESCRIPTION = 3000
MAX_SNOOZE_REASON = 500
MAX_COMMAND = 4000            # characters of one /crisis line (a free statement is the longest)
MAX_SHIFT = timedelta(days=30)  # the furthest a snooze or a next update may move a deadline
MAX_ID = 64                   # user, channel and workspace ids as the database keeps them
SUBCOMMANDS = ("start", "roles", "assign", "severity", "phase", "status", "resolve", "draft", "statements",
               "update", "snooze", "close", "export", "archive", "help", "show")
# Slack sends <@U123|name> when the command escapes users; the console and tests send @name.
_USER = re.compile(r"^<@([A-Za-z0-9._-]{1,64})(?:\|[^>]*)?>$|^@([A-Za-z0-9._-]{1,64})$")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# NUL and the other control characters a person cannot type (tab and line breaks are kept),
# and halves of a UTF-16 pair that came without their other half.
_UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
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
    text = text or ""
    check_chars(text)
    command = _parse(text, playbook)
    # Each field has its own limit, told first; this one bounds whatever has none of its own.
    if len(text) > MAX_COMMAND:
        raise Refusal("command_too_long", length=len(text), limit=MAX_COMMAND)
    return command


def _parse(text: str, playbook: Playbook) -> Command:
    words = (text or "").split()
    if not words:
        return Command("help")
    name, rest = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        guess = suggest(name, SUBCOMMANDS)
        if guess:
            raise Refusal("unknown_command_suggest", command=words[0], suggestion=guess)
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
    length = parse_shift(words[1], "duration_invalid")
    reason = " ".join(words[2:])
    if not reason:
        raise Refusal("snooze_reason_missing")
    if len(reason) > MAX_SNOOZE_REASON:
        raise Refusal("snooze_reason_too_long", length=len(reason), limit=MAX_SNOOZE_REASON)
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
    if crisis_type is None and words:
        # A first title word that looks like a mistyped crisis type (it has a hyphen, or is a key
        # without its hyphens) is asked about, rather than opening an incident of the default type
        # titled "data-leek …". Naming the type first (`start sev1 other data-leek …`) keeps it.
        guess = _type_typo(words[0].lower(), playbook)
        if guess:
            raise Refusal("type_typo", given=words[0], suggestion=guess, types=", ".join(playbook.type_by_key))
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
        guess = suggest(str(key).lower(), playbook.type_by_key)
        if guess:
            raise Refusal("unknown_type_suggest", given=key, suggestion=guess, types=", ".join(playbook.type_by_key))
        raise Refusal("unknown_type", given=key, types=", ".join(playbook.type_by_key))
    return key


def parse_user(word: str) -> str:
    match = _USER.match(word.strip())
    if not match:
        raise Refusal("usage_assign")
    return match.group(1) or match.group(2)


def check_user(user: str | None) -> str:
    """A user id as the platforms and the database keep them; anything else is a malformed request."""
    if not isinstance(user, str) or not _ID.match(user):
        raise Refusal("malformed_request")
    return user


def check_chars(text: str | None) -> None:
    """Refuse text with characters that no one types and no store keeps (NUL, lone surrogates)."""
    if text and _UNREADABLE.search(text):
        raise Refusal("text_unreadable")


def parse_shift(word: str, invalid: str) -> timedelta:
    """A duration a deadline moves by: positive and at most MAX_SHIFT; `invalid` names the refusal."""
    try:
        length = parse_duration(word)
    except DurationTooLong:
        raise Refusal("duration_too_long", given=word, limit=f"{MAX_SHIFT.days}d") from None
    except ValueError:
        raise Refusal(invalid, given=word) from None
    if not length:
        raise Refusal(invalid, given=word)
    if length > MAX_SHIFT:
        raise Refusal("duration_too_long", given=word, limit=f"{MAX_SHIFT.days}d")
    return length


def _type_typo(word: str, playbook: Playbook) -> str | None:
    squashed = {key.replace("-", ""): key for key in playbook.type_by_key}
    if word.replace("_", "").replace("-", "") in squashed:
        return squashed[word.replace("_", "").replace("-", "")]
    return suggest(word, playbook.type_by_key) if "-" in word or "_" in word else None


def suggest(word: str, choices) -> str | None:
    """The one choice a mistyped word was most likely meant to be, if any is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return close[0] if close and close[0] != word else None


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
