"""Platform-neutral messages: what to show and which buttons, never how a platform draws it.

Text uses a small shared markup that Slack reads as is and the other handlers translate:
``*bold*``, ``<@user>``, ``<#channel>``, and ``&amp; &lt; &gt;`` for literal characters;
``<+user>`` names a person without pinging them (bot.texts.person), for broad channels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256


@dataclass(frozen=True)
class Button:
    action: str          # what the core does when pressed, e.g. "item.done"
    label: str
    value: str           # which thing, e.g. an item key; the incident comes from the message
    style: str | None = None  # "primary" or "danger"


@dataclass(frozen=True)
class UserPicker:
    """Choose a person; the handler calls ``action`` with ``value`` and the chosen user."""

    action: str
    placeholder: str
    value: str


@dataclass(frozen=True)
class Header:
    text: str


@dataclass(frozen=True)
class Section:
    text: str
    button: Button | None = None
    verbatim: bool = False  # shown exactly: no automatic links, channel names or mentions


@dataclass(frozen=True)
class Context:
    text: str


@dataclass(frozen=True)
class Actions:
    elements: tuple[Button | UserPicker, ...]


@dataclass(frozen=True)
class Divider:
    pass


Block = Header | Section | Context | Actions | Divider


@dataclass(frozen=True)
class Message:
    key: str | None        # stable within the incident ("header", "roster", "checklist:assess"); None = post once
    text: str              # the notification / fallback line
    blocks: tuple[Block, ...] = field(default_factory=tuple)
    place: str = "incident"  # or "announcement": the team's announcement channel

    def fingerprint(self) -> str:
        """Changes exactly when what a person sees changes; an unchanged message is not re-sent."""
        payload = json.dumps([self.text, [repr(b) for b in self.blocks]], ensure_ascii=False)
        return sha256(payload.encode()).hexdigest()[:32]

    def buttons(self) -> list[Button | UserPicker]:
        out: list[Button | UserPicker] = []
        for block in self.blocks:
            if isinstance(block, Section) and block.button:
                out.append(block.button)
            elif isinstance(block, Actions):
                out.extend(block.elements)
        return out
