"""Statements in Slack: the draft form (pick → fill → preview), and the forms behind the
Request changes, Reject, Edit and Mark published buttons."""

from __future__ import annotations

import json

from bot.core import Core
from bot.drafting import DraftForm
from bot.texts import Trusted, escape_chat
from handlers.slack.blocks import _mrkdwn, _plain

PICK, FILL, PREVIEW = "crisis.draft.pick", "crisis.draft.fill", "crisis.draft.preview"
REASON, EDIT, PUBLISH = "crisis.reason", "crisis.edit", "crisis.publish"
UPDATE = "crisis.update"
LESSON = "crisis.lesson"
MAX_METADATA = 3000


def _modal(core: Core, callback: str, title: str, submit: str, blocks: list, meta: dict) -> dict:
    """A modal; title and submit name texts in templates/<lang>/strings.j2."""
    return _modal_titled(core, callback, core.say(title), submit, blocks, meta)


def _modal_titled(core: Core, callback: str, title: str, submit: str, blocks: list, meta: dict) -> dict:
    return {"type": "modal", "callback_id": callback, "private_metadata": json.dumps(meta),
            "title": _plain(title, 24), "submit": _plain(core.say(submit), 24),
            "close": _plain(core.say("modal_close"), 24), "blocks": blocks}


def _input(block_id: str, label: str, *, multiline=False, max_length=3000, initial="", optional=False,
           placeholder="") -> dict:
    element = {"type": "plain_text_input", "action_id": block_id, "multiline": multiline,
               "max_length": max_length}
    if initial:
        element["initial_value"] = initial[:max_length]
    if placeholder:
        element["placeholder"] = _plain(placeholder, 150)
    return {"type": "input", "block_id": block_id, "label": _plain(label, 2000), "optional": optional,
            "element": element}


def pick_view(core: Core, templates: list[tuple[str, str]], meta: dict) -> dict:
    options = [{"text": _plain(title, 75), "value": key} for key, title in templates[:100]]
    block = {"type": "input", "block_id": "template", "label": _plain(core.say("field_template"), 2000),
             "element": {"type": "static_select", "action_id": "template", "options": options,
                         "initial_option": options[0]}}
    return _modal(core, PICK, "modal_draft_title", "modal_next", [block], meta)


def fill_view(core: Core, form: DraftForm, meta: dict) -> dict:
    blocks = [{"type": "section", "text": _mrkdwn(f"*{form.title}*")}]
    for field in form.fields:
        blocks.append(_input(f"var_{field.name}", field.label, multiline=field.multiline,
                             max_length=min(field.max_length, 3000), initial=field.value,
                             optional=not field.required, placeholder=field.example))
    return _modal(core, FILL, "modal_draft_title", "modal_next", blocks, {**meta, "template": form.template})


def preview_view(core: Core, text: str, meta: dict) -> dict:
    shown = escape_chat(text)  # shown exactly as it will be published
    blocks = [{"type": "context", "elements": [_mrkdwn(core.say("preview_intro"))]},
              {"type": "section", "text": {**_mrkdwn(shown), "verbatim": True}}]
    return _modal(core, PREVIEW, "modal_draft_title", "modal_post_draft", blocks, meta)


def reason_view(core: Core, kind: str, meta: dict) -> dict:
    return _modal_titled(core, REASON, core.say("modal_reason_title", kind=kind), "modal_save",
                         [_input("reason", core.say("field_reason"), multiline=True, max_length=1000)], meta)


def edit_view(core: Core, text: str, meta: dict) -> dict:
    return _modal(core, EDIT, "modal_edit_title", "modal_save",
                  [_input("text", core.say("field_statement_text"), multiline=True, max_length=2900, initial=text)],
                  meta)


def publish_view(core: Core, meta: dict) -> dict:
    return _modal(core, PUBLISH, "modal_publish_title", "modal_save",
                  [_input("where", core.say("field_where"), max_length=200),
                   _input("link", core.say("field_link"), max_length=500, optional=True)], meta)


def form_error(core: Core, view: dict, block_id: str, text: str) -> dict:
    """The ack that shows an error on a submitted form. Slack's `errors` may only name input blocks
    the form has (any other name gets its generic error): the block meant, else the first input;
    a form without inputs is shown again with the error on top."""
    inputs = [b.get("block_id") for b in view.get("blocks") or [] if isinstance(b, dict) and b.get("type") == "input"]
    if inputs:
        return {"response_action": "errors", "errors": {block_id if block_id in inputs else inputs[0]: text[:150]}}
    blocks = [{"type": "context", "elements": [_mrkdwn(core.say("form_failed", error=Trusted(text)), 2000)]},
              *[b for b in view.get("blocks") or [] if isinstance(b, dict)]][:100]
    shown = {key: view[key] for key in ("type", "callback_id", "private_metadata", "title", "submit", "close")
             if key in view}
    return {"response_action": "update", "view": {**shown, "blocks": blocks}}


def fits(meta: dict) -> bool:
    return len(json.dumps(meta)) <= MAX_METADATA


def field_values(view: dict, prefix: str = "") -> dict[str, str | None]:
    """Submitted text inputs by block id (without the prefix)."""
    out = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        if block_id.startswith(prefix):
            element = actions.get(block_id) or {}
            out[block_id[len(prefix):]] = element.get("value")  # as typed: Slack does not escape inputs
    return out


def selected(view: dict, block_id: str) -> str | None:
    element = (((view.get("state") or {}).get("values") or {}).get(block_id) or {}).get(block_id) or {}
    return (element.get("selected_option") or {}).get("value")


def update_view(core: Core, meta: dict) -> dict:
    return _modal(core, UPDATE, "modal_update_title", "modal_post",
                  [_input("known", core.say("field_known"), multiline=True, max_length=1500, optional=True),
                   _input("doing", core.say("field_doing"), multiline=True, max_length=1500, optional=True),
                   _input("next", core.say("field_next"), max_length=20, optional=True)], meta)


def lesson_view(core: Core, kind: str, meta: dict) -> dict:
    blocks = [_input("text", core.say("field_lesson", kind=kind), multiline=True, max_length=500)]
    if kind == "action":
        blocks.append({"type": "input", "block_id": "owner", "label": _plain(core.say("field_owner"), 2000),
                       "element": {"type": "users_select", "action_id": "owner"}})
    return _modal_titled(core, LESSON, core.say("modal_lesson_title", kind=kind), "modal_save", blocks,
                         {**meta, "kind": kind})


def selected_user(view: dict, block_id: str) -> str | None:
    element = (((view.get("state") or {}).get("values") or {}).get(block_id) or {}).get(block_id) or {}
    return element.get("selected_user")
