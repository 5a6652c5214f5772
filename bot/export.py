"""The retrospective as a file: Markdown for people (templates/<lang>/export.md.j2), JSON for tools.

Both hold the whole timeline; the chat summary only summarises. Markdown escapes every value
it did not write itself, so a title or a statement cannot change the document's structure.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.playbook import LANGUAGES, Playbook
from bot.retrospective import Retrospective
from bot.texts import format_span, format_time

FORMAT = "crisisbot-retrospective/1"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~!&])")
# What makes a line a list item, a heading underline or a rule when it starts the line.
_LINE_START = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)]))")


class Markdown(str):
    """Markdown this module wrote itself; not escaped again."""


def md(value: object) -> str:
    """Text as it reads, in Markdown: special characters escaped, one line (lists stay lists)."""
    if value is None:
        return ""
    if isinstance(value, Markdown):
        return value
    return _plain_line(" ".join(str(value).split()))


def _plain_line(line: str) -> str:
    escaped = _MD_SPECIAL.sub(r"\\\1", line)
    return _LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
                           escaped)


def quote(value: str) -> Markdown:
    """A multi-line text (a statement) as a block quote, every line escaped and read as plain text."""
    lines = []
    for line in value.splitlines():
        lines.append(f"> {_plain_line(line)}" if line.strip() else ">")
    return Markdown("\n".join(lines))


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(resources.files("templates"))), undefined=StrictUndefined,
                      finalize=md, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters.update(time=format_time, span=format_span, quote=quote, stamp=_stamp, at=_at, seconds=_seconds,
                       written=Markdown)  # a macro's output: its values are escaped already
    return env


def _stamp(value: datetime) -> str:
    """A timeline entry's time, to the second: events of one minute keep their order for a reader."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _at(value: object) -> str:
    """A time kept in an event as ISO 8601 text, as people read times elsewhere in the file."""
    if isinstance(value, datetime):
        return format_time(value)
    try:
        return format_time(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value or "")


def _seconds(value: object) -> str:
    """A number of seconds kept in an event (early_by_seconds) as a span: 4 d 23 h, 13 min."""
    try:
        return format_span(timedelta(seconds=abs(int(value))))
    except (TypeError, ValueError, OverflowError):
        return ""


class Labels:
    """Names from the playbook, in the incident's language, and people's names where known."""

    def __init__(self, playbook: Playbook, language: str, names: dict[str, str] | None = None):
        self.playbook, self.language, self.names = playbook, language, names or {}

    def _loc(self, localized: dict[str, str], fallback: str) -> str:
        return localized.get(self.language) or next(iter(localized.values()), fallback)

    def role(self, key: str) -> str:
        role = self.playbook.role_by_key.get(key)
        return self._loc(role.name, key) if role else key

    def severity(self, level: int) -> str:
        severity = self.playbook.severity_by_level.get(level)
        return f"SEV{level} · {self._loc(severity.name, '')}" if severity else f"SEV{level}"

    def crisis_type(self, key: str) -> str:
        crisis_type = self.playbook.type_by_key.get(key)
        return self._loc(crisis_type.name, key) if crisis_type else key

    def step(self, key: str) -> str:
        step = next((s for s in self.playbook.checklist if s.key == key), None)
        return self._loc(step.name, key) if step else key

    def template(self, key: str | None) -> str:
        """A statement template by its title, as the team knows it, not by its key."""
        template = self.playbook.statement_by_key.get(key or "")
        return self._loc(template.title, key or "") if template else (key or "")

    def who(self, user: str | None) -> str:
        if not user:
            return ""
        name = self.names.get(user)
        return f"@{name} ({user})" if name else f"@{user}"


def to_markdown(retro: Retrospective, playbook: Playbook, names: dict[str, str] | None = None) -> str:
    language = retro.language if retro.language in LANGUAGES else "en"
    template = _environment().get_template(f"{language}/export.md.j2")
    return template.render(r=retro, label=Labels(playbook, language, names)).rstrip() + "\n"


def to_json(retro: Retrospective) -> str:
    """Every figure and the whole timeline; times in ISO 8601 UTC, durations in seconds."""
    data = {"format": FORMAT, **_plain(dataclasses.asdict(retro)),
            "deadlines_met": retro.met, "deadlines_missed": retro.missed}
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def filename(retro: Retrospective, extension: str) -> str:
    return f"{retro.ref.lower()}-retrospective.{extension}"
