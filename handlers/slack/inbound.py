"""What comes in from Slack, taken as the person meant it, and refused at the edge when it cannot be.

`from_slack` turns Slack's escaping and markup back into what was typed; it is applied to the text
of every slash command (Slack escapes `& < >` there and turns links and mentions into markup). The
values of a form's plain_text_input arrive as typed and are read unchanged: a typed `&amp;` or
`<!channel>` in a form means those characters. `edge` is a Bolt middleware that
answers requests of the wrong shape (a 400), or with ids or characters no store keeps (a private
refusal), before any listener acknowledges or changes anything.
"""

from __future__ import annotations

import json
import logging
import re

from slack_bolt.response import BoltResponse

from bot.commands import MAX_ID, check_chars, check_user
from bot.core import Core
from bot.errors import Refusal

log = logging.getLogger(__name__)
_MARKUP = re.compile(r"<([^<>]*)>")
_CROWD = {"here", "channel", "everyone"}
_MAX_DEPTH, _MAX_STRINGS = 30, 50_000


def from_slack(text: str | None) -> str | None:
    """Slack's text as the person typed it: `&amp;` is `&`, a link is its label (or its address),
    `@here` and user-group handles are words again; mentions of people and channels stay mentions
    (`<@U123>`, `<#C123>`), which the core reads as such."""
    if not isinstance(text, str):
        return text
    return _MARKUP.sub(_unmark, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _unmark(match: re.Match) -> str:
    inside = match.group(1)
    target, _, label = inside.partition("|")
    if target.startswith(("@U", "@W", "@B")):
        return f"<{target}>"  # a person: kept as a mention, without the display name Slack adds
    if target.startswith("#C") or target.startswith("#G"):
        return f"<{target}>"  # a channel: kept as a channel link
    if target.startswith("!"):
        word = target[1:]
        if word in _CROWD:
            return f"@{word}"  # what was typed; the renderer keeps it from pinging anyone
        return label or f"@{word.split('^')[0]}"  # a user group (its @handle) or a date (its fallback)
    return label or target  # a link: its label if it has one (Slack adds one for bare domains)


def _strings(value, depth: int = 0, found: list | None = None) -> list[str]:
    found = [] if found is None else found
    if depth > _MAX_DEPTH or len(found) > _MAX_STRINGS:
        raise ValueError("payload nested too deep or too large")
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append(str(key))
            _strings(item, depth + 1, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, depth + 1, found)
    return found


def _unreadable(value) -> bool:
    try:
        check_chars("\n".join(_strings(value)))  # one scan of everything: ~15 KB of form in ~0.1 ms
    except Refusal:
        return True
    return False


def _shape_error(body: dict) -> str | None:
    """What is wrong with the shape of a request we handle, or None."""
    kind = body.get("type")
    if "command" in body:
        for key in ("text", "user_id", "team_id", "channel_id", "trigger_id", "response_url"):
            if key in body and not isinstance(body[key], str):
                return f"{key} is not a string"
        return None
    if kind in ("block_actions", "view_submission", "view_closed"):
        if not isinstance(body.get("user"), dict):
            return "user is not an object"
        for key in ("team", "channel", "container", "message"):
            if body.get(key) is not None and not isinstance(body[key], dict):
                return f"{key} is not an object"
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return "actions is not a list of objects"
        if not all(isinstance(a.get("action_id"), str) for a in actions):
            return "an action has no action_id"
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict):
            return "view is not an object"
        state = view.get("state", {})
        if not isinstance(state, dict) or not isinstance(state.get("values", {}), dict):
            return "view.state is not an object"
        for block in state.get("values", {}).values():
            if not isinstance(block, dict) or not all(isinstance(e, dict) for e in block.values()):
                return "view.state.values is not an object of objects"
        if view.get("private_metadata") is not None and not isinstance(view["private_metadata"], str):
            return "view.private_metadata is not a string"
    if kind == "event_callback" and not isinstance(body.get("event"), dict):
        return "event is not an object"
    return None


def _ids(body: dict) -> list:
    """The ids a request acts with: who, in which workspace and channel."""
    if "command" in body:
        return [body.get("user_id"), body.get("team_id"), body.get("channel_id")]
    ids = [body["user"].get("id")] if isinstance(body.get("user"), dict) else []
    if isinstance(body.get("team"), dict):
        ids.append(body["team"].get("id"))
    if isinstance(body.get("channel"), dict):
        ids.append(body["channel"].get("id"))
    for action in body.get("actions") or []:
        if action.get("selected_user") is not None:
            ids.append(action["selected_user"])
    if isinstance(body.get("view"), dict):
        for block in ((body["view"].get("state") or {}).get("values") or {}).values():
            for element in block.values():
                if element.get("selected_user") is not None:
                    ids.append(element["selected_user"])
    return [i for i in ids if i is not None]


def _bad_block(body: dict) -> str | None:
    """The block of a submitted form whose value has unreadable characters."""
    for block_id, block in ((body["view"].get("state") or {}).get("values") or {}).items():
        if _unreadable(block):
            return block_id
    return None


def edge(core: Core):
    """The Bolt middleware that refuses what no listener should see."""

    def answer(refusal: Refusal, body: dict) -> BoltResponse:
        text = core.explain(refusal)
        log.info("refused at the edge (%s): %s", body.get("type") or body.get("command"), refusal.text)
        if "command" in body:
            return _json_response({"response_type": "ephemeral", "text": text})
        if body.get("type") == "event_callback":
            return BoltResponse(status=200, body="")  # acknowledged and ignored: a 4xx would be retried
        if body.get("type") == "view_submission":
            block = _bad_block(body) if refusal.text == "text_unreadable" else None
            if block is None:
                inputs = [b for b in body["view"].get("blocks") or []
                          if isinstance(b, dict) and b.get("type") == "input"]
                block = inputs[0].get("block_id") if inputs else None
            if block is not None:
                return _json_response({"response_action": "errors", "errors": {block: text[:150]}})
        return BoltResponse(status=400, body="bad request")

    async def middleware(body, next):  # Bolt passes its arguments by name
        if not isinstance(body, dict):
            return BoltResponse(status=400, body="bad request")
        try:
            shape = _shape_error(body)
            unreadable = shape is None and _unreadable(body)
        except (ValueError, AttributeError, TypeError) as exc:
            shape = str(exc)
        if shape:
            log.info("refused a malformed request: %s", shape)
            return BoltResponse(status=400, body="bad request")
        if unreadable:
            return answer(Refusal("text_unreadable"), body)
        try:
            for value in _ids(body):
                check_user(value)
        except Refusal:
            return answer(Refusal("id_too_long", limit=MAX_ID), body)
        return await next()

    return middleware


def _json_response(payload: dict) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(payload),
                        headers={"content-type": "application/json;charset=utf-8"})
