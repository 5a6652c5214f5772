"""Neutral messages to Block Kit, and the start modal."""

from __future__ import annotations

import json

from bot.core import Core
from bot.messages import Actions, Button, Context, Divider, Header, Message, Section, UserPicker

ACTION_SEPARATOR = "|"


def action_id(action: str, incident_id: int, value: str) -> str:
    # The incident travels in the action id: unique per message, and no lookup by channel needed.
    return ACTION_SEPARATOR.join((action, str(incident_id), value))


def parse_action_id(raw: str) -> tuple[str, int, str] | None:
    parts = (raw or "").split(ACTION_SEPARATOR)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def _plain(text: str, limit: int) -> dict:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int = 3000) -> dict:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _element(element: Button | UserPicker, incident_id: int) -> dict:
    if isinstance(element, UserPicker):
        return {"type": "users_select", "action_id": action_id(element.action, incident_id, element.value),
                "placeholder": _plain(element.placeholder, 150)}
    out = {"type": "button", "action_id": action_id(element.action, incident_id, element.value),
           "text": _plain(element.label, 75), "value": element.value[:2000]}
    if element.style:
        out["style"] = element.style
    return out


def to_blocks(message: Message, incident_id: int) -> list[dict]:
    blocks: list[dict] = []
    for block in message.blocks:
        if isinstance(block, Header):
            blocks.append({"type": "header", "text": _plain(block.text, 150)})
        elif isinstance(block, Section):
            section = {"type": "section", "text": _mrkdwn(block.text)}
            if block.verbatim:
                section["text"]["verbatim"] = True
            if block.button:
                section["accessory"] = _element(block.button, incident_id)
            blocks.append(section)
        elif isinstance(block, Context):
            blocks.append({"type": "context", "elements": [_mrkdwn(block.text, 2000)]})
        elif isinstance(block, Actions):
            blocks.append({"type": "actions", "elements": [_element(e, incident_id) for e in block.elements[:25]]})
        elif isinstance(block, Divider):
            blocks.append({"type": "divider"})
    return blocks[:50]


def start_modal(core: Core, private_metadata: dict) -> dict:
    lang, pb = core.language, core.playbook

    def option(text: str, value: str) -> dict:
        return {"text": _plain(text, 75), "value": value}

    # Slack offers at most 100 options, and the initial one must be among them: the default first.
    offered = {pb.default_type, *[t.key for t in pb.crisis_types if t.key != pb.default_type][:99]}
    types = [option(t.name.get(lang, t.key), t.key) for t in pb.crisis_types if t.key in offered]
    levels = [option(core.say("severity_label", lang, level=s.level, name=s.name.get(lang, "")), str(s.level))
              for s in pb.severities]
    default_type = next(o for o in types if o["value"] == pb.default_type)
    default_level = next(o for o in levels if o["value"] == str(pb.default_severity))
    return {
        "type": "modal",
        "callback_id": "crisis.start",
        "private_metadata": json.dumps(private_metadata)[:3000],
        "title": _plain(core.say("modal_title", lang), 24),
        "submit": _plain(core.say("modal_submit", lang), 24),
        "close": _plain(core.say("modal_close", lang), 24),
        "blocks": [
            {"type": "input", "block_id": "title", "label": _plain(core.say("field_title", lang), 2000),
             "element": {"type": "plain_text_input", "action_id": "title", "max_length": 150,
                         "placeholder": _plain(core.say("field_title_hint", lang), 150)}},
            {"type": "input", "block_id": "type", "label": _plain(core.say("field_type", lang), 2000),
             "element": {"type": "static_select", "action_id": "type", "options": types,
                         "initial_option": default_type}},
            {"type": "input", "block_id": "severity", "label": _plain(core.say("field_severity", lang), 2000),
             "element": {"type": "static_select", "action_id": "severity", "options": levels,
                         "initial_option": default_level}},
            {"type": "input", "block_id": "description", "optional": True,
             "label": _plain(core.say("field_description", lang), 2000),
             "element": {"type": "plain_text_input", "action_id": "description", "multiline": True,
                         "max_length": 3000}},
        ],
    }


def modal_values(view: dict) -> dict[str, str | None]:
    """The submitted fields; missing or odd shapes come back as None for the core to refuse."""
    values = (view.get("state") or {}).get("values") or {}

    def field(block: str) -> str | None:
        element = (values.get(block) or {}).get(block) or {}
        if element.get("type") == "static_select":
            return (element.get("selected_option") or {}).get("value")
        return element.get("value")  # as typed: Slack escapes a command's text, not a form's inputs

    return {name: field(name) for name in ("title", "type", "severity", "description")}
