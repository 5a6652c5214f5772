"""Block Kit validation for the fake Slack API.

Covers only the block and element kinds crisisbot uses, but for those it enforces
Slack's documented limits and rejects unknown ones, so a bot that passes here is
unlikely to meet `invalid_blocks` in production. Error lines mimic Slack's
"[ERROR] ... [json-pointer:...]" so a failing test points at the offending field.
Limits a real workspace rejects but this module accepts are bugs: tighten here.
"""

from __future__ import annotations

from typing import Any

PLAIN, TEXT = ("plain_text",), ("plain_text", "mrkdwn")
SELECTS = {"static_select", "users_select", "conversations_select"}
ACCESSORY = SELECTS | {"button", "overflow", "image"}
ACTIONS = SELECTS | {"button", "overflow"}
INPUTS = SELECTS | {"plain_text_input"}

# type -> (required keys besides "type", optional keys)
_BLOCKS = {
    "section": ((), ("text", "fields", "accessory")),
    "divider": ((), ()),
    "header": (("text",), ()),
    "context": (("elements",), ()),
    "actions": (("elements",), ()),
    "input": (("label", "element"), ("optional", "hint", "dispatch_action")),
    "image": (("image_url", "alt_text"), ("title",)),
}
_ELEMENTS = {
    "button": (("text",), ("action_id", "value", "style", "url", "confirm", "accessibility_label")),
    "static_select": (
        ("options",),
        ("action_id", "placeholder", "initial_option", "confirm", "focus_on_load"),
    ),
    "users_select": ((), ("action_id", "placeholder", "initial_user", "confirm", "focus_on_load")),
    "conversations_select": (
        (),
        (
            "action_id",
            "placeholder",
            "initial_conversation",
            "confirm",
            "filter",
            "default_to_current_conversation",
            "response_url_enabled",
            "focus_on_load",
        ),
    ),
    "overflow": (("options",), ("action_id", "confirm")),
    "plain_text_input": (
        (),
        (
            "action_id",
            "placeholder",
            "initial_value",
            "multiline",
            "min_length",
            "max_length",
            "dispatch_action_config",
            "focus_on_load",
        ),
    ),
    "image": (("image_url", "alt_text"), ()),
}
_VIEW_OPTIONAL = (
    "close",
    "submit",
    "private_metadata",
    "callback_id",
    "clear_on_close",
    "notify_on_close",
    "external_id",
    "submit_disabled",
)


class _Errors(list):
    """Error lines plus the ids seen so far (block_id/action_id must be unique per surface)."""

    def __init__(self, surface: str):
        super().__init__()
        self.surface, self.block_ids, self.action_ids = surface, set(), set()

    def add(self, path: str, msg: str) -> None:
        self.append(f"[ERROR] {msg} [json-pointer:{path}]")


def _fields(e: _Errors, obj: Any, path: str, required=(), optional=()) -> bool:
    if not isinstance(obj, dict):
        e.add(path, "must be an object")
        return False
    for key in required:
        if key not in obj:
            e.add(f"{path}/{key}", "missing required field")
    for key in sorted(obj.keys() - {"type", *required, *optional}):
        e.add(f"{path}/{key}", f"unknown field '{key}'")
    return True


def _str(e: _Errors, obj: dict, key: str, path: str, max_len: int, min_len: int = 0) -> None:
    if key not in obj:
        return
    value, path = obj[key], f"{path}/{key}"
    if not isinstance(value, str):
        e.add(path, "must be a string")
    elif len(value) < min_len:
        e.add(path, f"must be more than {min_len - 1} characters")
    elif len(value) > max_len:
        e.add(path, f"must be less than {max_len + 1} characters")


def _bools(e: _Errors, obj: dict, path: str, *keys: str) -> None:
    for key in keys:
        if key in obj and not isinstance(obj[key], bool):
            e.add(f"{path}/{key}", "must be a boolean")


def _list(e: _Errors, obj: dict, key: str, path: str, lo: int, hi: int) -> list:
    value = obj.get(key, [])
    if not isinstance(value, list):
        e.add(f"{path}/{key}", "must be an array")
        return []
    if key in obj and len(value) < lo:
        e.add(f"{path}/{key}", f"must provide at least {lo} item(s)")
    if len(value) > hi:
        e.add(f"{path}/{key}", f"no more than {hi} items allowed")
    return value


def _text(e: _Errors, obj: Any, path: str, max_len: int, kinds=PLAIN) -> None:
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind not in kinds:
        e.add(f"{path}/type", f"must be a text object of type {' or '.join(kinds)}")
        return
    extra = "emoji" if kind == "plain_text" else "verbatim"
    _fields(e, obj, path, ("text",), (extra,))
    _str(e, obj, "text", path, max_len, min_len=1)
    _bools(e, obj, path, extra)


def _unique(e: _Errors, obj: dict, key: str, path: str, seen: set) -> None:
    _str(e, obj, key, path, 255, min_len=1)
    if isinstance(obj.get(key), str):
        if obj[key] in seen:
            e.add(f"{path}/{key}", f"duplicate {key} '{obj[key]}'")
        seen.add(obj[key])


def _option(e: _Errors, opt: Any, path: str) -> None:
    if _fields(e, opt, path, ("text", "value"), ("description", "url")):
        for key in ("text", "description"):
            if key in opt:
                _text(e, opt[key], f"{path}/{key}", 75)
        _str(e, opt, "value", path, 150)
        _str(e, opt, "url", path, 3000)


def _element(e: _Errors, el: Any, path: str, allowed: set) -> None:
    kind = el.get("type") if isinstance(el, dict) else None
    if kind not in allowed:
        e.add(
            f"{path}/type",
            f"unsupported element type {kind!r} (allowed here: {', '.join(sorted(allowed))})",
        )
        return
    required, optional = _ELEMENTS[kind]
    _fields(e, el, path, required, optional)
    if "action_id" in el:
        _unique(e, el, "action_id", path, e.action_ids)
    if "placeholder" in el:
        _text(e, el["placeholder"], f"{path}/placeholder", 150)
    _bools(
        e,
        el,
        path,
        "multiline",
        "focus_on_load",
        "default_to_current_conversation",
        "response_url_enabled",
    )
    if kind == "button":
        if "text" in el:
            _text(e, el["text"], f"{path}/text", 75)
        _str(e, el, "value", path, 2000)
        _str(e, el, "url", path, 3000)
        if "style" in el and el["style"] not in ("primary", "danger"):
            e.add(f"{path}/style", "must be one of primary, danger")
    elif kind in ("static_select", "overflow"):
        for i, opt in enumerate(
            _list(e, el, "options", path, 1, 100 if kind == "static_select" else 5)
        ):
            _option(e, opt, f"{path}/options/{i}")
        if "initial_option" in el:
            _option(e, el["initial_option"], f"{path}/initial_option")
            # Slack: "A single option that exactly matches one of the options within options".
            if isinstance(el.get("options"), list) and el["initial_option"] not in el["options"]:
                e.add(f"{path}/initial_option", "must match one of the options")
    elif kind == "plain_text_input":
        for key, lo in (("max_length", 1), ("min_length", 0)):
            value = el.get(key, lo)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= 3000:
                e.add(f"{path}/{key}", f"must be an integer between {lo} and 3000")
        _str(e, el, "initial_value", path, 3000)
    elif kind == "image":
        _str(e, el, "image_url", path, 3000, min_len=1)
        _str(e, el, "alt_text", path, 2000, min_len=1)


def _block(e: _Errors, block: Any, path: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in _BLOCKS or (kind == "input" and e.surface != "modal"):
        e.add(f"{path}/type", f"unsupported block type {kind!r} in a {e.surface}")
        return
    required, optional = _BLOCKS[kind]
    _fields(e, block, path, required, (*optional, "block_id"))
    if "block_id" in block:
        _unique(e, block, "block_id", path, e.block_ids)
    if kind == "section":
        if "text" not in block and "fields" not in block:
            e.add(path, "must provide either text or fields")
        if "text" in block:
            _text(e, block["text"], f"{path}/text", 3000, TEXT)
        for i, f in enumerate(_list(e, block, "fields", path, 1, 10)):
            _text(e, f, f"{path}/fields/{i}", 2000, TEXT)
        if "accessory" in block:
            _element(e, block["accessory"], f"{path}/accessory", ACCESSORY)
    elif kind == "header" and "text" in block:
        _text(e, block["text"], f"{path}/text", 150)
    elif kind == "context":
        for i, el in enumerate(_list(e, block, "elements", path, 1, 10)):
            if isinstance(el, dict) and el.get("type") in TEXT:
                _text(e, el, f"{path}/elements/{i}", 3000, TEXT)
            else:
                _element(e, el, f"{path}/elements/{i}", {"image"})
    elif kind == "actions":
        for i, el in enumerate(_list(e, block, "elements", path, 1, 25)):
            _element(e, el, f"{path}/elements/{i}", ACTIONS)
    elif kind == "input":
        for key in ("label", "hint"):
            if key in block:
                _text(e, block[key], f"{path}/{key}", 2000)
        _bools(e, block, path, "optional", "dispatch_action")
        if "element" in block:
            _element(e, block["element"], f"{path}/element", INPUTS)
    elif kind == "image":
        _str(e, block, "image_url", path, 3000, min_len=1)
        _str(e, block, "alt_text", path, 2000, min_len=1)
        if "title" in block:
            _text(e, block["title"], f"{path}/title", 2000)


def _blocks(e: _Errors, blocks: Any, path: str) -> None:
    if not isinstance(blocks, list):
        e.add(path, "must be an array")
        return
    limit = 100 if e.surface == "modal" else 50
    if len(blocks) > limit:
        e.add(path, f"no more than {limit} items allowed")
    for i, block in enumerate(blocks):
        _block(e, block, f"{path}/{i}")


def validate_blocks(blocks: Any, surface: str = "message") -> list[str]:
    """Slack-style error lines for `blocks` on a "message" or "modal"; empty if valid."""
    e = _Errors(surface)
    _blocks(e, blocks, "/blocks")
    return list(e)


def validate_view(view: Any) -> list[str]:
    e = _Errors("modal")
    if not _fields(e, view, "/view", ("title", "blocks"), _VIEW_OPTIONAL):
        return list(e)
    if view.get("type") != "modal":
        e.add("/view/type", "must be 'modal'")
    for key in ("title", "submit", "close"):
        if key in view:
            _text(e, view[key], f"/view/{key}", 24)
    _str(e, view, "callback_id", "/view", 255)
    _str(e, view, "external_id", "/view", 255)
    _str(e, view, "private_metadata", "/view", 3000)
    _bools(e, view, "/view", "clear_on_close", "notify_on_close", "submit_disabled")
    _blocks(e, view.get("blocks", []), "/view/blocks")
    blocks = view.get("blocks") if isinstance(view.get("blocks"), list) else []
    if "submit" not in view and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    ):
        e.add("/view/submit", "submit is required when a view has input blocks")
    return list(e)


def validate_view_response(view: dict, answer: dict) -> list[str]:
    """What Slack would reject in an app's answer to a view_submission. `errors` may name only
    input blocks of the submitted view (else Slack shows its generic "trouble connecting" error);
    an `update` must be a valid modal."""
    e = _Errors("view_submission response")
    action = answer.get("response_action")
    if action == "errors":
        inputs = {b.get("block_id") for b in view.get("blocks") or [] if b.get("type") == "input"}
        errors = answer.get("errors")
        if not isinstance(errors, dict) or not errors:
            e.add("/errors", "must be a non-empty object")
        else:
            for block_id, text in errors.items():
                if block_id not in inputs:
                    e.add(f"/errors/{block_id}", "is not an input block of the view")
                if not isinstance(text, str) or not text:
                    e.add(f"/errors/{block_id}", "must be a non-empty string")
    elif action in ("update", "push"):
        return validate_view(answer.get("view"))
    elif action is not None and action != "clear":
        e.add("/response_action", "must be errors, update, push or clear")
    return list(e)
