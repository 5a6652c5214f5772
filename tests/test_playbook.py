"""The shipped default playbook, and the checker's problems, each with its line and a plain message.

Bad playbooks are made by editing the default YAML text; expected line numbers are computed from the
edited text, never typed in by hand.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml
from pydantic import BaseModel

from bot.durations import format_duration, parse_duration
from bot.playbook import (
    LANGUAGES,
    Playbook,
    PlaybookError,
    Problem,
    check_file,
    check_text,
    default_playbook_path,
    load,
)

DEFAULT_TEXT = default_playbook_path().read_text(encoding="utf-8")
FILENAME = "team.yaml"
LOCALIZED_FIELDS = ("name", "description", "responsibilities", "title")
STEPS = ["assess", "respond", "offline", "monitor", "learn"]


# --- helpers ------------------------------------------------------------------------------------


def edit(old: str, new: str, text: str = DEFAULT_TEXT) -> str:
    """Replace one exact, unique piece of the text, so a test cannot silently edit nothing."""
    assert text.count(old) == 1, f"{old!r} must occur exactly once in the playbook text"
    return text.replace(old, new)


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based line on which the n-th occurrence of ``fragment`` starts."""
    index = -1
    for _ in range(occurrence):
        index = text.index(fragment, index + 1)
    return text.count("\n", 0, index) + 1


def problems_of(text: str) -> list[Problem]:
    playbook, problems = check_text(text, FILENAME)
    assert playbook is None, "a playbook with problems must not be returned"
    assert problems, "expected the checker to report a problem"
    assert all(p.file == FILENAME for p in problems)
    return problems


def find_problem(problems: list[Problem], line: int, *words: str) -> Problem:
    matches = [p for p in problems if p.line == line and all(w in p.message for w in words)]
    got = "\n".join(map(str, problems))
    assert matches, f"no problem on line {line} mentioning {words}; got:\n{got}"
    return matches[0]


def only_problem(text: str, line: int, *words: str) -> Problem:
    problems = problems_of(text)
    got = "\n".join(map(str, problems))
    assert len(problems) == 1, f"expected exactly one problem, got:\n{got}"
    return find_problem(problems, line, *words)


# --- the shipped default ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> Playbook:
    return load()


def test_default_playbook_loads_without_problems(default):
    playbook, problems = check_file(default_playbook_path())
    assert problems == []
    assert playbook == default
    assert default.name == "Default social-media crisis playbook"
    assert default.languages == ["en", "de"]
    assert default.lead_role == "lead"
    assert default.default_severity == 3
    assert default.default_type == "other"


def _localized_texts(node, path=()):
    """Every localized text as the YAML writes it, before plain strings are copied."""
    if isinstance(node, dict):
        for key, value in node.items():
            # The playbook's own top-level name is a plain string, not a localized text.
            if key in LOCALIZED_FIELDS and not (key == "name" and isinstance(value, str)) and path:
                yield (*path, key), value
            else:
                yield from _localized_texts(value, (*path, key))
    elif isinstance(node, list):
        for i, element in enumerate(node):
            yield from _localized_texts(element, (*path, i))


def test_every_text_of_the_default_is_written_in_english_and_german():
    texts = list(_localized_texts(yaml.safe_load(DEFAULT_TEXT)))
    assert len(texts) > 60
    for path, value in texts:
        assert isinstance(value, dict), f"{path}: write {{en: ..., de: ...}}, not one shared text"
        assert set(value) == set(LANGUAGES), f"{path}: has {sorted(value)}"
        for lang, text in value.items():
            assert isinstance(text, str) and text and text.strip() == text, (path, lang, text)
    german = " ".join(value["de"] for _, value in texts)
    assert re.search("[äöüßÄÖÜ]", german), "German texts should use real umlauts"


def test_every_localized_field_of_the_loaded_model_has_both_languages(default):
    seen = 0

    def visit(value):
        nonlocal seen
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                field = getattr(value, name)
                if name in LOCALIZED_FIELDS and isinstance(field, dict):
                    assert set(field) == {"en", "de"}, (type(value).__name__, name)
                    assert all(field.values()), (type(value).__name__, name)
                    seen += 1
                else:
                    visit(field)
        elif isinstance(value, list):
            for element in value:
                visit(element)

    visit(default)
    assert seen > 60


def test_severities(default):
    assert [s.level for s in default.severities] == [1, 2, 3, 4]
    assert [s.name["en"] for s in default.severities] == ["Critical", "High", "Medium", "Low"]
    assert [s.name["de"] for s in default.severities] == ["Kritisch", "Hoch", "Mittel", "Niedrig"]
    # The first public statement is due sooner the more severe the crisis (the "golden hour" at sev1).
    assert [default.deadlines.rule(s.level, "first_statement").within for s in default.severities] == [
        timedelta(hours=1), timedelta(hours=2), timedelta(hours=4), timedelta(days=1),
    ]
    assert [s.announce for s in default.severities] == [True, True, True, False]
    assert all(s.notify == [] for s in default.severities)
    assert all(s.description.get("en") and s.description.get("de") for s in default.severities)


def test_crisis_types(default):
    assert list(default.type_by_key) == [
        "defective-product", "offensive-post", "data-leak", "hacked-account", "fake-news",
        "employee-misconduct", "supplier-conflict", "complaint-wave", "other",
    ]
    assert all(t.description for t in default.crisis_types)


def test_roles(default):
    assert {r.key: r.required_at for r in default.roles} == {
        "lead": [1, 2, 3, 4],
        "comms": [1, 2, 3],
        "legal": [1, 2],
        "social": [1, 2, 3, 4],
        "service": [1, 2],
        "marketing": [1],
    }
    assert default.lead_role in default.role_by_key


def test_the_five_steps_are_present_in_order(default):
    assert [s.key for s in default.checklist] == STEPS
    assert [s.incident_phase for s in default.checklist] == [
        "assessing", "responding", "responding", "monitoring", "monitoring",
    ]


def test_checklist_items_are_short_unique_and_owned_by_a_role(default):
    keys = [item.key for _, item in default.items()]
    assert len(keys) == len(set(keys))
    for step in default.checklist:
        assert 3 <= len(step.items) <= 5, step.key
    for step, item in default.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", item.key), item.key
        assert item.owner in default.role_by_key, item.key
        for lang in LANGUAGES:
            assert len(item.title[lang]) <= 70, (item.key, lang, item.title[lang])
        assert default.step_of(item.key) is step


def test_team_is_left_for_the_team_to_fill_in(default):
    assert default.team.standing_members == []
    assert default.team.announcement_channel is None


# --- what the checker reports -------------------------------------------------------------------


def test_yaml_syntax_error():
    text = edit("default_severity: 3 ", "default_severity: 3: 4 ")
    only_problem(text, line_of(text, "default_severity: 3: 4"), "not valid YAML")


def test_yaml_syntax_error_deep_in_the_file():
    text = edit("      - key: post-updates\n", "      - key: post-updates\n\t\tbad: tab\n")
    only_problem(text, line_of(text, "\t\tbad: tab"), "not valid YAML")


@pytest.mark.parametrize("text", ["", "just a sentence", "- a list\n- of things\n"])
def test_a_playbook_must_be_a_mapping(text):
    only_problem(text, 1, "YAML mapping")


def test_unknown_field():
    text = edit("first_statement: {within: 2h}", "first_statement: {within: 2h, colour: red}")
    only_problem(text, line_of(text, "colour: red"), "deadlines.by_severity.2.first_statement.colour",
                 "unknown field")


def test_unknown_field_in_a_severity():
    text = edit("      de: Hoch\n", "      de: Hoch\n    colour: red\n")
    only_problem(text, line_of(text, "colour: red"), "severities.1.colour", "unknown field")


def test_unknown_field_in_a_checklist_item():
    text = edit("- key: hold-debrief\n", "- key: hold-debrief\n        due: 2h\n")
    only_problem(text, line_of(text, "due: 2h"), "checklist.4.items.3.due", "unknown field")


def test_missing_required_field():
    # The legal role loses its name; the problem points at the role's entry.
    text = edit("  - key: legal\n    name:\n      en: Legal\n      de: Rechtsabteilung\n",
                "  - key: legal\n")
    only_problem(text, line_of(text, "  - key: legal\n"),
                 "roles.2.name", "required field is missing")


def test_missing_top_level_fields_in_a_small_playbook():
    text = "# almost empty\nname: Mini\n"
    problems = problems_of(text)
    for field in ("lead_role", "default_severity", "default_type", "severities", "crisis_types",
                  "roles", "checklist"):
        find_problem(problems, line_of(text, "name: Mini"), f"{field}: required field is missing")


def test_unknown_owner_role():
    text = edit("- key: check-legal\n        owner: legal\n",
                "- key: check-legal\n        owner: lawyer\n")
    only_problem(text, line_of(text, "owner: lawyer"), "'lawyer'", "not a role")


def test_duplicate_item_key():
    text = edit("- key: secure-evidence\n", "- key: gather-facts\n")
    # The second occurrence is the duplicate.
    only_problem(text, line_of(text, "- key: gather-facts", occurrence=2),
                 "'gather-facts'", "twice")


def test_duplicate_item_key_in_another_step():
    text = edit("- key: record-lessons\n", "- key: post-updates\n")
    only_problem(text, line_of(text, "- key: post-updates", occurrence=2),
                 "'post-updates'", "twice")


def test_required_at_names_a_severity_that_is_not_defined():
    # Two roles have required_at [1, 2]; the one right before `social` is legal.
    text = edit("    required_at: [1, 2]\n  - key: social",
                "    required_at: [1, 2, 5]\n  - key: social")
    only_problem(text, line_of(text, "required_at: [1, 2, 5]"), "severity 5", "not defined")


def test_required_at_as_a_block_list_points_at_the_bad_entry():
    text = edit("    required_at: [1]\n", "    required_at:\n      - 1\n      - 7\n")
    only_problem(text, line_of(text, "      - 7"), "severity 7", "not defined")


@pytest.mark.parametrize("bad", ["soon", "10 minutes", "1.5h", "-3m", "2 hours", "1w"])
def test_bad_duration(bad):
    text = edit("first_statement: {within: 2h}", f"first_statement: {{within: {bad}}}")
    only_problem(text, line_of(text, f"within: {bad}"),
                 "deadlines.by_severity.2.first_statement.within", repr(bad), "not a duration")


def test_a_bare_number_is_not_a_duration():
    text = edit("first_statement: {within: 4h,", "first_statement: {within: 30,")
    only_problem(text, line_of(text, "within: 30,"),
                 "deadlines.by_severity.3.first_statement.within", "not a duration")


def test_missing_german_text_written_inline():
    text = edit(
        "        title:\n          en: Pause scheduled posts and ads\n"
        "          de: Geplante Beiträge und Anzeigen pausieren\n",
        "        title: {en: Pause scheduled posts and ads}\n",
    )
    only_problem(text, line_of(text, "title: {en: Pause scheduled"),
                 "checklist.1.items.0.title", "no text for language 'de'")


def test_missing_german_text_in_a_block():
    text = edit("          de: Geplante Beiträge und Anzeigen pausieren\n", "")
    [problem] = problems_of(text)
    assert "checklist.1.items.0.title" in problem.message
    assert "no text for language 'de'" in problem.message
    title_line = line_of(text, "        title:\n          en: Pause scheduled")
    # The checker names the line of the text mapping that lacks German (the `en:` line right below
    # `title:`); pointing at the `title:` key itself would be just as right.
    assert problem.line == title_line


def test_empty_german_text():
    text = edit("de: Geplante Beiträge und Anzeigen pausieren", 'de: ""')
    only_problem(text, line_of(text, 'de: ""'),
                 "checklist.1.items.0.title.de", "at least 1 character")


def test_missing_german_role_name_in_a_one_line_mapping():
    text = edit("    name:\n      en: Marketing\n      de: Marketing\n",
                "    name: {en: Marketing}\n")
    only_problem(text, line_of(text, "name: {en: Marketing}"), "roles.5.name", "'de'")


def test_a_plain_string_counts_for_every_language():
    text = edit("    name:\n      en: Marketing\n      de: Marketing\n", "    name: Marketing\n")
    playbook, problems = check_text(text, FILENAME)
    assert problems == []
    assert playbook.role_by_key["marketing"].name == {"en": "Marketing", "de": "Marketing"}


def test_language_other_than_english_or_german():
    text = edit("languages: [en, de]", "languages: [en, de, fr]")
    problems = problems_of(text)
    find_problem(problems, line_of(text, "languages: [en, de, fr]"), "'fr'", "not supported")


def test_language_other_than_english_or_german_in_a_block_list():
    text = edit("languages: [en, de]", "languages:\n  - en\n  - es")
    problems = problems_of(text)
    find_problem(problems, line_of(text, "  - es"), "'es'", "not supported")


def test_lead_role_that_is_not_a_role():
    text = edit("lead_role: lead ", "lead_role: boss ")
    only_problem(text, line_of(text, "lead_role: boss"), "lead_role 'boss'", "not a role")


def test_default_severity_and_type_must_exist():
    text = edit("default_severity: 3 ", "default_severity: 6 ")
    text = edit("default_type: other ", "default_type: meteor ", text)
    problems = problems_of(text)
    assert len(problems) == 2
    find_problem(problems, line_of(text, "default_severity: 6"), "default_severity 6")
    find_problem(problems, line_of(text, "default_type: meteor"), "'meteor'")


def test_bad_incident_phase():
    text = edit("    incident_phase: assessing\n", "    incident_phase: panicking\n")
    only_problem(text, line_of(text, "incident_phase: panicking"), "'panicking'")


def test_several_problems_are_all_reported_in_line_order():
    text = edit("- key: check-legal\n        owner: legal\n",
                "- key: check-legal\n        owner: lawyer\n")
    text = edit("lead_role: lead ", "lead_role: boss ", text)
    problems = problems_of(text)
    assert len(problems) == 2
    find_problem(problems, line_of(text, "lead_role: boss"), "lead_role")
    find_problem(problems, line_of(text, "owner: lawyer"), "lawyer")


def test_load_raises_with_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    text = edit("lead_role: lead ", "lead_role: boss ")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load(path)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert problem.line == line_of(text, "lead_role: boss")
    assert f"{path}:{problem.line}: " in str(info.value)


def test_check_file_on_a_missing_file(tmp_path):
    playbook, [problem] = check_file(tmp_path / "nope.yaml")
    assert playbook is None and "cannot read" in problem.message


# --- known gaps in the checker (see the report); strict, so they flag when fixed ----------------


def test_duplicate_step_key():
    text = edit("  - key: learn\n", "  - key: assess\n")
    only_problem(text, line_of(text, "  - key: assess\n", occurrence=2), "'assess'", "twice")


def test_empty_role_name():
    text = edit("    name:\n      en: Marketing\n      de: Marketing\n", "    name: {}\n")
    find_problem(problems_of(text), line_of(text, "name: {}"), "roles.5.name")


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("3d", timedelta(days=3)),
    (" 45m ", timedelta(minutes=45)),
    ("0s", timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "5", "1.5h", "-3m", "0x", "soon", "10 minutes", "2hours", "h", "1h30m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(("delta", "expected"), [
    (timedelta(seconds=90), "90s"),
    (timedelta(minutes=15), "15m"),
    (timedelta(hours=2), "2h"),
    (timedelta(days=3), "3d"),
    (timedelta(minutes=120), "2h"),
    (timedelta(hours=48), "2d"),
    (timedelta(0), "0s"),
])
def test_format_duration(delta, expected):
    assert format_duration(delta) == expected


@pytest.mark.parametrize("text", ["90s", "15m", "2h", "3d", "1d", "4h"])
def test_format_duration_round_trips(text):
    assert format_duration(parse_duration(text)) == text
