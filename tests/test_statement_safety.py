"""Property-based safety of statements: no value escapes the sandbox, is evaluated as a template, or
injects a mention, link or crowd ping into what the chat shows; values are checked against their
limits; templates that try to break out of the sandbox are reported, not run.

Hypothesis never uses the function-scoped DB fixtures: rendering is called directly, and the chat
message is built through one Core on a module-level SQLite file.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot import playbook as playbooks
from bot.core import Core
from bot.db import Database
from bot.errors import Refusal
from bot.messages import Context, Section
from bot.playbook import StatementTemplate, Variable
from bot.statements import MAX_TEXT, check_template, check_values, render
from bot.texts import escape_chat
from tests.conftest import FakeClock

PLAYBOOK = playbooks.load()
TEMPLATES = [(t.key, lang) for t in PLAYBOOK.statements for lang in PLAYBOOK.languages]
SLACK_SECTION = 3000  # what one Slack section shows; the rest is cut off
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_TEMPLATE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORD_JOINER = "\u2060"

# Control sequences of Slack and Discord, template syntax, escapes and odd characters.
TRICKS = [
    "<!channel>", "<!here>", "<!everyone>", "<!subteam^S123|@team>", "<!date^1392734382^{date}|x>",
    "<@U123>", "<@U123|bob>", "<#C123>", "<#C123|general>", "<https://evil|click>", "<http://evil.example>",
    "<mailto:a@b.c|mail>", "@everyone", "@here", "@channel", "@Everyone", "@HERE", "@ChAnNeL", "<@&123>",
    "{{ 7*7 }}", "{{7*7}}", "{% for %}", "{% for x in range(3) %}x{% endfor %}", "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__ }}", "{# comment #}", "{%- raw %}", "{{", "}}", "{%", "%}", "${7*7}",
    "&", "<", ">", "&lt;", "&gt;", "&amp;", "&#60;", "\n", "\r\n", "\t", "  ", "|", "!", "@", "#",
    "*bold*", "_it_", "~x~", "`code`", "```", ":rotating_light:", WORD_JOINER, "\u200d", "\u200b",
    "\u202e", "ü", "ß", "🚨", "日本", "\x00",
]
pieces = st.one_of(st.sampled_from(TRICKS), st.text(max_size=8))
tricky_text = st.lists(pieces, max_size=12).map("".join)

PING = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
UNSAFE = ("<!", "<@", "<#", "<http", "<mailto")


def assert_safe(shown: str) -> None:
    """What the chat shows can neither mention, link nor ping a crowd."""
    for sequence in UNSAFE:
        assert sequence not in shown, (sequence, shown)
    # The chat's own markup needs a raw bracket; escaped text has none at all.
    assert "<" not in shown and ">" not in shown, shown
    assert not PING.search(shown), shown


def unescape(text: str) -> str:
    """What a reader sees of escaped chat text (the order matters: &amp; last)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def template(key: str) -> StatementTemplate:
    return PLAYBOOK.statement_by_key[key]


def fill(tpl: StatementTemplate, data, strategy=tricky_text) -> dict[str, str]:
    """Tricky values within each variable's limit; required ones are never blank."""
    values = {}
    for variable in tpl.variables:
        value = data.draw(strategy, label=variable.name)[: variable.max_length]
        if variable.required and not value.strip():
            value = ("x" + value)[: variable.max_length]
        values[variable.name] = value
    return values


def substituted(tpl: StatementTemplate, lang: str, clean: dict[str, str]) -> str:
    """The text as pure substitution: render with inert markers, then put the values in their place."""
    markers = {name: f"QQ{i}MARKERQQ" if value else "" for i, (name, value) in enumerate(clean.items())}
    text = render(tpl, lang, markers)
    back = {marker: clean[name] for name, marker in markers.items() if marker}
    return re.sub("|".join(back) or "(?!)", lambda m: back[m.group(0)], text) if back else text


# --- rendering and escaping -----------------------------------------------------------------------


@pytest.mark.parametrize(("key", "lang"), TEMPLATES, ids=[f"{k}-{lang}" for k, lang in TEMPLATES])
@PER_TEMPLATE
@given(data=st.data())
def test_values_render_literally_and_show_without_markup(key, lang, data):
    tpl = template(key)
    clean = check_values(tpl, fill(tpl, data), lang)
    text = render(tpl, lang, clean)

    # Never evaluated: the text is the template with each value put in as it is.
    assert text == substituted(tpl, lang, clean)
    for name, value in clean.items():
        assert value in text, name

    # Shown in chat: nothing that mentions, links or pings, yet it reads as the text itself.
    shown = escape_chat(text)
    assert_safe(shown)
    assert unescape(shown).replace(WORD_JOINER, "") == text.replace(WORD_JOINER, "")


@pytest.mark.parametrize("lang", PLAYBOOK.languages)
@pytest.mark.parametrize("value", ["{{ 7*7 }}", "{% for x in range(3) %}x{% endfor %}", "{{ ''.__class__ }}",
                                   "{{ cycler.__init__.__globals__ }}", "{% for %}", "{{ issue }}"])
def test_a_value_that_looks_like_a_template_stays_text(value, lang):
    tpl = template("holding-statement")
    text = render(tpl, lang, check_values(tpl, {"issue": value}, lang))
    assert value in text
    assert "49" not in text and "xxx" not in text and "class" not in text.replace(value, "")


@FAST
@given(value=tricky_text)
@example(value="<!channel> <!here> <!everyone> <@U123> <#C123> <https://evil|click>")
@example(value="@everyone @here @channel @EVERYONE hi@here (@channel)")
@example(value="&lt;!channel&gt; &amp;lt;@U1&amp;gt; <<!here>>")
def test_escape_chat_alone_never_lets_markup_through(value):
    shown = escape_chat(value)
    assert_safe(shown)
    assert unescape(shown).replace(WORD_JOINER, "") == value.replace(WORD_JOINER, "")


# --- the chat message of a real draft --------------------------------------------------------------


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """A sev1 data leak: alice leads, bob is legal, carol comms, dave social. SQLite, built once."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('safety') / 'crisisbot.db'}")
    database.upgrade()
    core = Core(database, PLAYBOOK, language="en", clock=FakeClock())
    opening = core.start_incident("console", "alice", "Customer list online", crisis_type="data-leak", severity=1)
    core.opened(opening.incident_id, "c1", "c1")
    for user, role in (("bob", "legal"), ("carol", "comms"), ("dave", "social")):
        core.claim_role(opening.incident_id, user, role)
    yield core, opening.incident_id
    database.dispose()


TEAM = {"alice", "bob", "carol", "dave"}
OWN_MARKUP = re.compile(r"<@([A-Za-z0-9._-]+)>")


def assert_message_safe(texts: list[str]) -> None:
    """Only the core's own mentions of team members; the value adds no markup of its own."""
    for shown in texts:
        rest = OWN_MARKUP.sub(lambda m: "" if m.group(1) in TEAM else m.group(0), shown)
        assert_safe(rest)


def block_texts(outcome) -> list[str]:
    message = outcome.updates[0]
    return [b.text for b in message.blocks if isinstance(b, (Section, Context))] + [message.text, *outcome.notices]


stored_text = tricky_text.map(lambda s: s.replace("\x00", ""))  # no database column holds NUL


def draft_from(data) -> tuple[str, dict[str, str]]:
    key = data.draw(st.sampled_from(["free", "holding-statement", "apology", "data-leak-notice"]), label="template")
    if key == "free":
        text = data.draw(stored_text, label="text")
        return key, {"text": text if text.strip() else "x" + text}
    return key, fill(template(key), data, stored_text)


def check_draft(core: Core, incident: int, key: str, values: dict[str, str], reason: str) -> None:
    drafted = core.draft(incident, "dave", key, values)
    message = drafted.updates[0]
    number, version = (int(x) for x in message.buttons()[0].value.split("."))
    text = core.statement_text(incident, number)[1]

    # The text section shows exactly the text to publish, and nothing else can ping or link.
    verbatim = [b for b in message.blocks if isinstance(b, Section) and b.verbatim]
    assert len(verbatim) == 1
    assert unescape(verbatim[0].text).replace(WORD_JOINER, "") == text.replace(WORD_JOINER, "")
    if key == "free":
        assert text == values["text"].strip()
    assert_message_safe(block_texts(drafted))

    # A reason for changes shows in a context line of the same message, just as harmless.
    changed = core.decide(incident, "bob", number, version, "changes", reason)
    assert_message_safe(block_texts(changed))
    assert any(unescape(b.text).replace(WORD_JOINER, "").endswith(reason.replace(WORD_JOINER, ""))
               for b in changed.updates[0].blocks if isinstance(b, Context))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_statement_message_shows_any_text_without_markup(room, data):
    key, values = draft_from(data)
    reason = data.draw(stored_text, label="reason").strip()[:1000].strip() or "x"
    check_draft(*room, key, values, reason)


@pytest.mark.parametrize("key", ["free", "holding-statement"])
def test_the_classic_injections_stay_text_in_the_statement_message(room, key):
    sample = "<!channel> @here <@U1> <#C1> <https://evil|click> {{ 7*7 }} @everyone & <!everyone>"
    values = {"text": sample} if key == "free" else {"issue": sample[:90]}
    check_draft(*room, key, values, "@everyone <!here> <@U2> see <https://evil|click>")


def test_a_long_text_with_ampersands_is_shown_whole_or_refused(room):
    """Slack cuts a section at 3000 characters; approvers must never sign off a text they cannot read."""
    core, incident = room
    text = ("We, Smith & Sons, are sorry. " * 100)[:MAX_TEXT - 10].strip()  # about a hundred ampersands
    with pytest.raises(Refusal) as refused:
        core.draft(incident, "dave", "free", {"text": text})
    assert refused.value.text == "statement_too_long"
    shorter = text[:2400].strip()
    message = core.draft(incident, "dave", "free", {"text": shorter}).updates[0]
    verbatim = next(b for b in message.blocks if isinstance(b, Section) and b.verbatim)
    assert len(verbatim.text) <= SLACK_SECTION and verbatim.text.replace("&amp;", "&") == shorter


# --- check_values -----------------------------------------------------------------------------------

blank = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=6)


def one_variable(max_length: int, required: bool = True) -> StatementTemplate:
    return StatementTemplate(
        key="t", title={"en": "T"}, purpose="holding", audience="public", approval="standard",
        variables=[Variable(name="v", label={"en": "The value", "de": "Der Wert"}, required=required,
                            max_length=max_length)],
        text={"en": "{{ v }}"})


@FAST
@given(limit=st.integers(1, 300), extra=st.integers(1, 50), pad=blank, lang=st.sampled_from(["en", "de"]),
       required=st.booleans(), char=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")))
def test_a_value_over_its_length_is_refused(limit, extra, pad, lang, required, char):
    tpl = one_variable(limit, required)
    value = pad + char * (limit + extra) + pad
    with pytest.raises(Refusal) as refused:
        check_values(tpl, {"v": value}, lang)
    assert refused.value.text == "variable_too_long"
    assert refused.value.values == {"label": "The value" if lang == "en" else "Der Wert", "name": "v",
                                    "length": limit + extra, "limit": limit}


@FAST
@given(value=st.one_of(st.none(), blank), lang=st.sampled_from(["en", "de"]), present=st.booleans())
def test_a_required_value_that_is_empty_or_blank_is_refused(value, lang, present):
    tpl = one_variable(50)
    with pytest.raises(Refusal) as refused:
        check_values(tpl, {"v": value} if present else {}, lang)
    assert refused.value.text == "variable_missing"
    assert refused.value.values["name"] == "v"
    # An optional one may stay empty.
    assert check_values(one_variable(50, required=False), {"v": value} if present else {}, lang) == {"v": ""}


@FAST
@given(limit=st.integers(1, 300), data=st.data(), pad=blank, lang=st.sampled_from(["en", "de"]))
def test_accepted_values_are_returned_stripped(limit, data, pad, lang):
    core_text = data.draw(tricky_text.map(str.strip).filter(bool).map(lambda s: s[:limit].strip()).filter(bool))
    tpl = one_variable(limit)
    assert check_values(tpl, {"v": pad + core_text + pad, "undeclared": "ignored"}, lang) == {"v": core_text}


DATA_LEAK = PLAYBOOK.statement_by_key["data-leak-notice"]


@FAST
@given(values=st.fixed_dictionaries({}, optional={
    v.name: st.one_of(st.none(), blank, tricky_text.map(lambda s, n=v.max_length: s * (1 + n // 40))
                      .map(lambda s, n=v.max_length: s[: n + 10]))
    for v in DATA_LEAK.variables}))
def test_check_values_refuses_the_first_bad_variable_in_order(values):
    tpl = DATA_LEAK
    expected = None
    for variable in tpl.variables:
        value = (values.get(variable.name) or "").strip()
        if variable.required and not value:
            expected = ("variable_missing", variable.name)
            break
        if len(value) > variable.max_length:
            expected = ("variable_too_long", variable.name)
            break
    try:
        clean = check_values(tpl, values, "en")
    except Refusal as refusal:
        assert (refusal.text, refusal.values["name"]) == expected
    else:
        assert expected is None
        assert set(clean) == {v.name for v in tpl.variables}
        assert all(len(v) <= var.max_length and v == v.strip() for var, v in
                   ((var, clean[var.name]) for var in tpl.variables))


# --- the sandbox ------------------------------------------------------------------------------------

ESCAPES = ["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}", "{{ 'x' * 100000 }}",
           "{{ 2 ** 1000 }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ lipsum.__globals__ }}",
           "{{ self.__init__ }}", "{{ v.__class__ }}", "{{ v|attr('__class__') }}", "{{ v * 100000 }}",
           "{{ 100000 * 'x' }}", "{{ ['x'] * 100000 }}", "{{ ('x' * 2000) * 2 }}", "{{ 10 ** 10 ** 10 }}",
           "{{ namespace.__init__.__globals__ }}", "{{ v.__len__() }}"]


def sandboxed(source: str) -> StatementTemplate:
    return StatementTemplate(
        key="evil", title={"en": "Evil"}, purpose="holding", audience="public", approval="standard",
        variables=[Variable(name="v", label={"en": "V"})], text={"en": source, "de": source})


@pytest.mark.parametrize("source", ESCAPES)
def test_a_template_that_breaks_out_is_reported_and_refused(source):
    problems = check_template(source, {"v"}, {"v": "example"})  # reported, never raised
    assert problems and all(isinstance(line, int) and line >= 1 for line, _ in problems), problems
    with pytest.raises(Refusal) as refused:
        render(sandboxed(source), "en", {"v": "value"})
    assert refused.value.text == "template_failed"
    assert refused.value.values["template"] == "evil"


@FAST
@given(prefix=st.text(alphabet="abc {}%\n", max_size=10), escape=st.sampled_from(ESCAPES),
       lines=st.integers(0, 3))
def test_breakouts_anywhere_in_a_template_are_reported_not_raised(prefix, escape, lines):
    source = "Hello {{ v }}\n" * lines + escape
    problems = check_template(prefix + source, {"v"}, {"v": "example"})
    assert problems
    try:
        render(sandboxed(prefix + source), "en", {"v": "value"})
    except Refusal as refusal:
        assert refusal.text == "template_failed"
    else:  # pragma: no cover - a breakout must never render
        pytest.fail("rendered a template that escapes the sandbox")


def test_tuple_repetition_is_closed_like_text_repetition():
    source = "{{ (('x',) * 1000000)|length }}"  # one million items, built in full before |length
    assert check_template(source, {"v"}, {"v": "example"}), "playbook check accepts it"
    with pytest.raises(Refusal) as refused:
        render(sandboxed(source), "en", {"v": "value"})
    assert refused.value.text == "template_failed"
