"""Every text a person reads comes from templates/<lang>/*.j2 through Jinja2.

Each file holds macros, one per text; ``Texts.get(lang, "name", **values)`` calls one.
Every ``{{ value }}`` is escaped for chat on the way out unless the core marked it
trusted (mentions, channel links it built itself), so no user-supplied text can ping a
crowd or inject markup (DESIGN.md, invariant 7).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.playbook import LANGUAGES

# The chat texts: every `<name>.j2` of a language folder (files with a second suffix, like the
# export's `export.md.j2`, are formats of their own and are not searched for texts).
CORE_TEXT_FILES = ("strings", "errors", "help", "retro")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_CROWD = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)


class Trusted(str):
    """Markup the core built itself; passes the chat escaping untouched."""


def escape_chat(value: object) -> str:
    if isinstance(value, Trusted):
        return value
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A zero-width joiner keeps the word readable while no platform treats it as a crowd ping.
    return _CROWD.sub(lambda m: "@\u2060" + m.group(1), text)


def is_chat_id(value: str | None) -> bool:
    """A user or channel id as the platforms write them (and the console's names)."""
    return bool(_ID.match(value or ""))


def mention(user_id: str) -> Trusted:
    if not _ID.match(user_id or ""):
        return Trusted(escape_chat(user_id))
    return Trusted(f"<@{user_id}>")


# A person named without a ping, for broad channels (the retrospective's announcement copy): the
# neutral markup `<+user>`. No platform reads it as a mention; each handler writes the person's
# name in its place (name_people), with the name it knows or, failing that, the id.
_PERSON = re.compile(r"<\+([A-Za-z0-9._-]{1,80})>")


def person(user_id: str) -> Trusted:
    if not _ID.match(user_id or ""):
        return Trusted(escape_chat(user_id))
    return Trusted(f"<+{user_id}>")


def people_in(text: str) -> set[str]:
    return set(_PERSON.findall(text or ""))


def name_people(text: str, names: dict[str, str]) -> str:
    """Each `<+user>` as "@name" in plain text (escaped, so a name like "here" pings nobody either)."""
    return _PERSON.sub(lambda m: escape_chat("@" + (names.get(m.group(1)) or m.group(1))), text)


def channel_link(channel_id: str) -> Trusted:
    if not _ID.match(channel_id or ""):
        return Trusted(escape_chat(channel_id))
    return Trusted(f"<#{channel_id}>")


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M UTC")


def format_span(value: timedelta) -> str:
    """4 h 05 min, 12 min, 45 s: how long something took, for people, not machines."""
    seconds = max(0, int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _finalize(value: object) -> object:
    if value is None:
        return ""
    return escape_chat(value)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(resources.files("templates"))),
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.globals.update(mention=mention, channel=channel_link)
    env.filters.update(time=format_time, clock=format_clock, span=format_span)
    return env


@lru_cache(maxsize=4)
def text_files(lang: str) -> tuple[str, ...]:
    """The core's files first, then the others by name, so a lookup order never depends on the disk."""
    folder = resources.files("templates") / lang
    found = sorted(e.name[:-3] for e in folder.iterdir() if e.name.endswith(".j2") and "." not in e.name[:-3])
    return (*[f for f in CORE_TEXT_FILES if f in found], *[f for f in found if f not in CORE_TEXT_FILES])


class Texts:
    """Looks texts up by language and name; unknown languages fall back to English."""

    def __init__(self) -> None:
        self._modules: dict[tuple[str, str], object] = {}

    def _macro(self, lang: str, name: str):
        lang = lang if lang in LANGUAGES else "en"
        for file in text_files(lang):
            key = (lang, file)
            if key not in self._modules:
                self._modules[key] = environment().get_template(f"{lang}/{file}.j2").module
            macro = getattr(self._modules[key], name, None)
            if macro is not None:
                return macro
        raise KeyError(f"no text named {name!r} in templates/{lang}/")

    def get(self, lang: str, text: str, /, **values) -> str:
        return str(self._macro(lang, text)(**values)).strip()


def macro_names(lang: str) -> dict[str, tuple[str, ...]]:
    """Every text and its parameters in one language; tests compare en and de with it."""
    out = {}
    for file in text_files(lang):
        module = environment().get_template(f"{lang}/{file}.j2").module
        for name in dir(module):
            macro = getattr(module, name)
            if not name.startswith("_") and hasattr(macro, "arguments"):
                out[name] = tuple(macro.arguments)
    return out
