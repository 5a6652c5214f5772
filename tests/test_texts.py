"""Every text exists in English and German, and no text lets user input ping a crowd or inject markup."""

from __future__ import annotations

from importlib import resources

import pytest

from bot import playbook as playbooks
from bot.commands import SUBCOMMANDS
from bot.texts import Texts, Trusted, channel_link, escape_chat, macro_names, mention

ZWJ = "\u2060"


def template_files(lang: str) -> set[str]:
    folder = resources.files("templates") / lang
    return {entry.name for entry in folder.iterdir() if entry.name.endswith(".j2")}


def test_every_english_text_exists_in_german_with_the_same_parameters():
    english, german = macro_names("en"), macro_names("de")
    assert len(english) > 50  # the texts were really found
    assert sorted(set(english) - set(german)) == []
    assert sorted(set(german) - set(english)) == []
    different = {name: (english[name], german[name]) for name in english if english[name] != german[name]}
    assert different == {}


@pytest.mark.parametrize("lang", ["en", "de"])
def test_every_text_is_defined_in_one_file_only(lang):
    """Texts are found by name across files; a second definition would be silently ignored."""
    from bot.texts import environment, text_files

    seen: dict[str, str] = {}
    twice = []
    for file in text_files(lang):
        module = environment().get_template(f"{lang}/{file}.j2").module
        for name in dir(module):
            if not name.startswith("_") and hasattr(getattr(module, name), "arguments"):
                if name in seen:
                    twice.append((name, seen[name], file))
                seen[name] = file
    assert twice == []


def test_both_languages_have_the_same_template_files():
    assert template_files("en") == template_files("de")
    assert {"strings.j2", "errors.j2", "help.j2"} <= template_files("en")


@pytest.mark.parametrize("crowd", ["<!here>", "<!channel>", "<!everyone>", "<!HERE>"])
def test_escape_chat_neutralises_broadcasts(crowd):
    escaped = escape_chat(f"look {crowd} now")
    assert "<" not in escaped and ">" not in escaped
    assert escaped == f"look &lt;{crowd[1:-1]}&gt; now"


@pytest.mark.parametrize("crowd", ["@here", "@channel", "@everyone", "@Everyone", "@HERE", "@ChAnNeL"])
def test_escape_chat_neutralises_at_crowds(crowd):
    escaped = escape_chat(f"hey {crowd}!")
    assert crowd not in escaped
    assert escaped == f"hey @{ZWJ}{crowd[1:]}!"  # still reads the same


def test_escape_chat_escapes_ampersand_links_and_mentions():
    assert escape_chat("Q&A") == "Q&amp;A"
    assert escape_chat("&lt;") == "&amp;lt;"  # a typed entity stays literal text
    assert escape_chat("<https://evil|click>") == "&lt;https://evil|click&gt;"
    assert escape_chat("<@U123>") == "&lt;@U123&gt;"
    assert escape_chat("mail me: a@example.com") == "mail me: a@example.com"
    assert escape_chat(42) == "42"


def test_mentions_and_channel_links():
    assert mention("U1") == "<@U1>"
    assert isinstance(mention("U1"), Trusted)
    assert escape_chat(mention("U1")) == "<@U1>"  # the core's own mentions pass the escaping
    for hostile in ("<!here>", "@everyone", "U1> <!channel", "<@U123|x>"):
        shown = mention(hostile)
        assert "<!" not in shown and "<@" not in shown
        assert "@everyone" not in shown
    assert channel_link("C012ABC") == "<#C012ABC>"
    assert "<!" not in channel_link("<!channel>")


def test_values_in_texts_are_escaped_and_trusted_ones_are_not():
    texts = Texts()
    text = texts.get("en", "role_claimed", user=mention("U1"), role="<!channel> @here")
    assert text == f"<@U1> now holds *&lt;!channel&gt; @{ZWJ}here*."
    text = texts.get("de", "role_claimed", user="<@U9>", role="Legal")
    assert text == "&lt;@U9&gt; hat jetzt die Rolle *Legal*."


def test_unknown_language_falls_back_to_english():
    assert Texts().get("fr", "btn_claim") == "Claim"
    assert Texts().get("de", "btn_claim") == "Übernehmen"


def test_german_help_mentions_every_command():
    pb = playbooks.load()
    values = {"levels": "sev1, sev2, sev3, sev4", "types": ", ".join(pb.type_by_key),
              "roles": ", ".join(pb.role_by_key)}
    german, english = Texts().get("de", "help", **values), Texts().get("en", "help", **values)
    # `help` is the text itself; every other subcommand is explained.
    for name in SUBCOMMANDS:
        if name != "help":
            assert f"`/crisis {name}" in german, name
            assert f"`/crisis {name}" in english, name
    assert "Schweregrade: sev1, sev2, sev3, sev4." in german
    assert "defective-product" in german and "legal" in german
