"""Input taken as meant, bad input refused at the edge (issue 9, items 12–15 and 19): signed
requests through the real Bolt app against the fake Slack."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import playbook as playbooks
from bot.models import Incident
from bot.playbook import CrisisType, StatementTemplate
from handlers.slack import drafts
from tests.fakes.block_kit import validate_view_response
from tests.test_slack import USERS, Room, slack_room, texts


def slack_escaped(text: str) -> str:
    """What Slack sends for what a person typed: &, < and > as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.fixture
def room(core):
    with slack_room(core) as the_room:
        yield the_room


def ack_text(reply) -> str:
    assert reply.status == 200, reply
    return reply.json().get("text", "") if reply.body.startswith("{") else reply.body


def title_of(room: Room, channel: str) -> str:
    with room.core.db.transaction() as s:
        return s.get(Incident, incident_of(room, channel)).title


def incident_of(room: Room, channel: str) -> int:
    incident = room.core.incident_in_channel("T1", channel)
    assert incident is not None
    return incident


# -- 12: Slack's escaping and markup become what was typed ----------------------------------------

def test_an_ampersand_in_the_title_is_shown_once_not_escaped_twice(room):
    channel, _ = room.start(slack_escaped("sev2 defective-product Fish & Chips <fried>"))
    header = texts(room.standing(channel, "header")[1])
    assert "Fish &amp; Chips &lt;fried&gt;" in header  # Slack shows: Fish & Chips <fried>
    assert "&amp;amp;" not in header and "&amp;lt;" not in header
    assert "&amp;amp;" not in room.fake.channels[channel].topic
    assert title_of(room, channel) == "Fish & Chips <fried>"


def test_a_free_statement_keeps_ampersands_and_links_as_typed(room):
    channel, _ = room.start()
    # Slack sends a typed domain as a link with a label, a typed address as a bare link.
    typed = slack_escaped("Q&A at 5 <today>: see ") + "<http://example.com/faq|example.com/faq> and <https://x.io/a?b=1&amp;c=2>"
    reply, _ = room.send.command(f"draft free {typed}", channel=channel)
    assert reply.status == 200
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "drafted statement 1" in c.params.get("text", ""))
    _version, text = room.core.statement_text(incident_of(room, channel), 1)
    assert text == "Q&A at 5 <today>: see example.com/faq and https://x.io/a?b=1&c=2"


def test_mentions_stay_mentions_and_a_crowd_mention_pings_nobody(room):
    channel, _ = room.start()
    reply, _ = room.send.command("assign <@U2|sam> legal", channel=channel)
    assert reply.status == 200
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "to <@U2>" in c.params.get("text", ""))
    second, _ = room.start("sev3 <!here> and <!subteam^S1|@press> asked")
    header = texts(room.standing(second, "header")[1])
    assert "<!here>" not in header and "<!subteam" not in header
    assert "asked" in header and "@press" in header


def test_a_start_form_value_is_kept_as_typed(room):
    """Slack escapes a command's text, not a form's inputs: what arrives there is what was typed."""
    room.send.command("start", channel=room.general)
    view = room.fake.wait_for("views.open")[-1].response["view"]
    answer = room.send.submit(view, {"title": "Fish & Chips, not &amp;", "type": "other", "severity": "3",
                                     "description": None})
    assert answer.status == 200
    room.fake.wait_for("chat.postMessage", count=3)
    channel = room.fake.calls_to("conversations.create")[-1].response["channel"]["id"]
    assert title_of(room, channel) == "Fish & Chips, not &amp;"


# -- 13: no HTTP 500, ever ---------------------------------------------------------------------

def _kinds(room: Room) -> dict[str, tuple[str, str]]:
    """One body of each request kind we serve, with its content type."""
    form = "application/x-www-form-urlencoded"
    command, _ = room.send.command_body("status")
    click, _ = room.send.click_payload("item.done|1|gather-facts", "U1", room.general)
    view = {"id": "V1", "callback_id": "crisis.update", "private_metadata": "{}", "blocks": [],
            "state": {"values": {}}}
    submission = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"},
                  "view": view}
    event = {"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1",
             "event": {"type": "app_mention", "user": "U1", "channel": room.general, "text": "hi", "ts": "1.0"}}
    return {"command": (command, form), "click": (room.send.interaction_body(click), form),
            "submission": (room.send.interaction_body(submission), form),
            "closed": (room.send.interaction_body({**submission, "type": "view_closed"}), form),
            "event": (json.dumps(event), "application/json"),
            "challenge": (json.dumps({"type": "url_verification", "challenge": "c"}), "application/json")}


@pytest.mark.parametrize("stamp", ["abc", "", "1e9", "-5", "12.5", " 17", "9" * 40])
def test_an_unreadable_request_timestamp_is_a_401(room, stamp):
    for kind, (body, content_type) in _kinds(room).items():
        headers = {**room.send.sign(body), "X-Slack-Request-Timestamp": stamp}
        reply = room.send.post(body, headers=headers, content_type=content_type, signed=False)
        assert reply.status == 401, (kind, reply)


def test_a_missing_timestamp_is_a_401(room):
    for kind, (body, content_type) in _kinds(room).items():
        headers = {"X-Slack-Signature": room.send.sign(body)["X-Slack-Signature"]}
        reply = room.send.post(body, headers=headers, content_type=content_type, signed=False)
        assert reply.status == 401, kind


def test_durations_that_would_overflow_are_refused_privately(room):
    channel, _ = room.start()
    for text in ("snooze update 9999999999d because", "snooze update 99999999999999999999999999s x"):
        reply, _ = room.send.command(text, channel=channel)
        assert "a deadline moves by at most 30d" in ack_text(reply)
    room.send.command("update", channel=channel)
    view = room.fake.wait_for("views.open")[-1].response["view"]
    for given_ in ("99999999d", "31d"):
        answer = room.send.submit(view, {"known": "x", "doing": "", "next": given_})
        assert answer.status == 200
        body = answer.json()
        assert body["response_action"] == "errors" and "at most 30d" in body["errors"]["next"]
        assert not validate_view_response(view, body)


def test_malformed_payload_shapes_are_a_400_not_a_500(room):
    room.start()
    click, _ = room.send.click_payload("item.done|1|gather-facts", "U1", room.general)
    view = {"id": "V1", "callback_id": "crisis.update", "private_metadata": "{}", "blocks": []}
    submission = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"}}
    shapes = [
        {**submission, "view": {**view, "state": []}},
        {**submission, "view": {**view, "state": "values"}},
        {**submission, "view": {**view, "state": {"values": []}}},
        {**submission, "view": {**view, "state": {"values": {"known": "x"}}}},
        {**submission, "view": [view]},
        {**submission, "view": {**view, "callback_id": "crisis.start", "state": {"values": {"title": []}}}},
        {**click, "actions": [None]},
        {**click, "actions": "item.done"},
        {**click, "actions": []},
        {**click, "user": "U1"},
        [click],
        "payload",
    ]
    for shape in shapes:
        reply = room.send.post(room.send.interaction_body(shape))
        assert reply.status == 400, (shape, reply)


_ANY = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)


def test_fuzzed_payload_shapes_never_get_a_500(room):
    """Any field of a click or a form submission replaced by any JSON value: never a 500."""
    room.start()
    callbacks = {"update": "crisis.update", "start": "crisis.start", "fill": "crisis.draft.fill",
                 "lesson": "crisis.lesson", "publish": "crisis.publish"}

    @settings(max_examples=480, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def one(data):
        kind = data.draw(st.sampled_from(["click", *callbacks]))
        if kind == "click":
            payload, _ = room.send.click_payload("item.done|1|gather-facts", "U1", room.general)
        else:
            payload = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"},
                       "view": {"id": "V1", "callback_id": callbacks[kind], "blocks": [],
                                "private_metadata": '{"incident": 1, "value": "1.1", "kind": "well"}',
                                "state": {"values": {
                                    "known": {"known": {"type": "plain_text_input", "value": "x"}},
                                    "title": {"title": {"type": "plain_text_input", "value": "x"}}}}}}
        path = data.draw(st.sampled_from(_paths(payload)))
        _replace(payload, path, data.draw(_ANY))
        reply = room.send.post(room.send.interaction_body(payload))
        # 404 is Bolt's answer to a payload type nothing listens to
        assert reply.status in (200, 400, 401, 404), (path, payload, reply)

    started = time.monotonic()
    one()
    assert time.monotonic() - started < 120


def _paths(value, prefix=()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*prefix, i)))
    return out


def _replace(payload, path: tuple, value) -> None:
    for key in path[:-1]:
        payload = payload[key]
    payload[path[-1]] = value


# -- 14: bounded and valid before anything changes ---------------------------------------------

def test_a_huge_snooze_reason_is_refused_and_the_deadline_stays(room):
    channel, _ = room.start()
    before = room.core.status(incident_of(room, channel))
    reply, _ = room.send.command("snooze acknowledge 30m " + "x" * 100_000, channel=channel)
    assert "The reason has 100000 characters; keep it to 500" in ack_text(reply)
    room.settle()
    assert room.core.status(incident_of(room, channel)) == before
    assert not [e for e in room.core.timeline(incident_of(room, channel)) if e.kind == "deadline.snoozed"]


def test_a_reason_at_the_limit_is_snoozed_and_told(room):
    channel, _ = room.start()
    reply, _ = room.send.command("snooze acknowledge 30m " + "y" * 500, channel=channel)
    assert ack_text(reply) == ""
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "y" * 500 in c.params.get("text", ""))


@pytest.mark.parametrize("user,text", [
    ("U" * 65, "start Charger overheats"),
    ("U1", "start Charger \x00overheats"),
    ("U1", "start Charger\x07 overheats"),
])
def test_a_start_that_will_be_refused_never_says_opening(room, user, text):
    room.fake.add_user(user)
    reply, _ = room.send.command(text, user=user, channel=room.general)
    answer = ack_text(reply)
    assert "Opening" not in answer and answer
    room.settle()
    assert not room.fake.calls_to("conversations.create")
    assert not room.fake.calls_to("response_url")  # no "Something went wrong" afterwards


def test_a_mention_of_an_overlong_user_id_is_refused(room):
    channel, _ = room.start()
    reply, _ = room.send.command(f"assign <@U{'X' * 70}> legal", channel=channel)
    assert "Usage: /crisis assign" in ack_text(reply)


def test_a_lone_surrogate_in_a_form_is_shown_under_its_field(room):
    room.send.command("start", channel=room.general)
    view = room.fake.wait_for("views.open")[-1].response["view"]
    answer = room.send.submit(view, {"title": "Charger \ud800 overheats", "type": "other", "severity": "3",
                                     "description": "fine"})
    body = answer.json()
    assert body["response_action"] == "errors" and "cannot be kept" in body["errors"]["title"]
    assert not validate_view_response(view, body)
    room.settle()
    assert not room.fake.calls_to("conversations.create")


def test_a_selected_user_with_an_overlong_id_is_refused(room):
    channel, _ = room.start()
    _, roster = room.standing(channel, "roster")
    picker = next(e["action_id"] for b in roster["blocks"] for e in b.get("elements", [])
                  if e.get("type") == "users_select")
    reply, _ = room.send.click(picker, "U1", channel, selected_user="U" * 65)
    assert reply.status == 400
    room.settle()
    assert "U" * 65 not in texts(room.standing(channel, "roster")[1])


# -- 15: form errors, Slack Connect, the start form's types --------------------------------------

def test_a_form_without_inputs_shows_its_error_instead_of_slacks_generic_one(core, playbook):
    empty = StatementTemplate(key="notice", title={"en": "Notice", "de": "Hinweis"}, purpose="holding",
                              audience="public", approval="standard", text={"en": "{{ '' }}", "de": "{{ '' }}"})
    core.playbook = playbook.model_copy(update={"statements": [empty]})
    with slack_room(core, (*USERS, "U4")) as room:
        channel, _ = room.start()
        room.send.command("draft notice", channel=channel)
        view = room.fake.wait_for("views.open")[-1].response["view"]
        body = room.send.submit(view, {}).json()
        assert not validate_view_response(view, body)
        assert body["response_action"] == "update"
        assert "The statement has no text" in json.dumps(body["view"]["blocks"])


def test_statement_forms_refuse_overlong_or_empty_fields_before_closing(room):
    channel, _ = room.start()
    meta = {"incident": incident_of(room, channel), "value": "1.1", "ephemeral_in": channel}
    cases = [
        (drafts.reason_view(room.core, "changes", {**meta, "kind": "changes"}), {"reason": "r" * 1001},
         "reason", "keep it to 1000"),
        (drafts.edit_view(room.core, "old", meta), {"text": "  "}, "text", "no text"),
        (drafts.publish_view(room.core, meta), {"where": "w" * 201, "link": ""}, "where", "200"),
        (drafts.publish_view(room.core, meta), {"where": "", "link": ""}, "where", "where the statement"),
        (drafts.publish_view(room.core, meta), {"where": "Web", "link": "https://x/" + "l" * 500}, "link", "500"),
    ]
    for view, values, block, fragment in cases:
        body = room.send.submit(view, values).json()
        assert body["response_action"] == "errors" and fragment in body["errors"][block], (values, body)
        assert not validate_view_response(view, body)
    room.settle()
    assert not [e for e in room.core.timeline(meta["incident"]) if e.kind.startswith("statement.")]


def test_in_a_slack_connect_channel_the_incident_belongs_to_the_installed_workspace(room):
    room.send.command("start", channel=room.general)
    view = room.fake.wait_for("views.open")[-1].response["view"]
    guest = type(room.send)(room.served.url, room.fake.response_url, team="TGUEST")
    guest.submit(view, {"title": "Charger overheats", "type": "other", "severity": "3", "description": None},
                 user="U2")
    room.fake.wait_for("chat.postMessage", count=3)
    channel = room.fake.calls_to("conversations.create")[-1].response["channel"]["id"]
    assert room.core.incident_in_channel("T1", channel) is not None
    assert room.core.incident_in_channel("TGUEST", channel) is None
    reply, name = guest.command("status", user="U2", channel=channel)
    assert reply.status == 200
    assert "CRISIS-1" in room.private_answers(name)[0]


def test_the_start_form_offers_the_default_type_among_at_most_100(core, playbook):
    many = [CrisisType(key=f"type-{i}", name={"en": f"Type {i}", "de": f"Art {i}"}) for i in range(120)]
    core.playbook = playbook.model_copy(update={"crisis_types": many, "default_type": "type-110"})
    with slack_room(core) as room:
        room.send.command("start", channel=room.general)
        opened = room.fake.wait_for("views.open")[-1]
        assert opened.response["ok"], opened.response
        select = opened.params["view"]["blocks"][1]["element"]
        assert len(select["options"]) == 100 and select["initial_option"] in select["options"]
        assert select["initial_option"]["value"] == "type-110"


def test_the_playbook_checker_allows_at_most_100_crisis_types():
    import yaml

    data = yaml.safe_load(playbooks.default_playbook_path().read_text())
    data["crisis_types"] += [{"key": f"extra-{i}", "name": {"en": f"Extra {i}", "de": f"Extra {i}"}}
                             for i in range(101 - len(data["crisis_types"]))]
    pb, problems = playbooks.check_text(yaml.safe_dump(data))
    assert pb is None and any("keep it to 100" in p.message for p in problems)
    data["crisis_types"] = data["crisis_types"][:100]
    pb, problems = playbooks.check_text(yaml.safe_dump(data))
    assert not problems, problems


# -- 19: typos get "did you mean" -----------------------------------------------------------------

def test_a_mistyped_subcommand_gets_a_suggestion(room):
    reply, _ = room.send.command("stauts", channel=room.general)
    assert "Did you mean `/crisis status`?" in ack_text(reply)


def test_a_mistyped_type_is_asked_about_not_folded_into_the_title(room):
    reply, _ = room.send.command("start sev1 data-leek Customer list online", channel=room.general)
    answer = ack_text(reply)
    assert "Did you mean data-leak?" in answer and "Opening" not in answer
    room.settle()
    assert not room.fake.calls_to("conversations.create")


def test_naming_the_type_first_keeps_a_type_like_word_in_the_title(room):
    channel, _ = room.start("sev1 other data-leek Customer list online")
    assert "CRISIS-1: data-leek Customer list online" in texts(room.standing(channel, "header")[1])


def test_suggestions_are_in_german_too(db, playbook, clock):
    from bot.core import Core

    german = Core(db, playbook, language="de", clock=clock)
    with slack_room(german) as room:
        reply, _ = room.send.command("strat Ladegerät", channel=room.general)
        assert "Meinten Sie `/crisis start`?" in ack_text(reply)


def test_a_playbook_duration_that_would_overflow_a_date_is_a_problem_not_a_crash():
    text = playbooks.default_playbook_path().read_text()
    head, deadlines = text.split("deadlines", 1)
    first = next(w for w in deadlines.split() if w.rstrip(",]}").endswith(("m", "h", "d")) and w[0].isdigit())
    pb, problems = playbooks.check_text(head + "deadlines" + deadlines.replace(first.rstrip(",]}"), "99999999999d", 1))
    assert pb is None and any("longer than 3660 days" in p.message for p in problems)


def test_an_event_with_unreadable_text_is_acknowledged_and_ignored(room):
    event = {"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev9",
             "event": {"type": "app_mention", "user": "U1", "channel": room.general, "text": "hi \u0000", "ts": "1.0"}}
    reply = room.send.post(json.dumps(event), content_type="application/json")
    assert reply.status == 200  # a 4xx would make Slack send it again
    room.settle()
    assert not room.fake.calls_to("chat.postEphemeral")
