"""`crisisbot --version` and `--help`: the installed command says what it is, every option and every
environment variable it reads, so nobody has to read the source to configure it."""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

import pytest

from bot.config import Settings
from handlers import cli
from tests.test_console import crisisbot

ROOT = Path(__file__).resolve().parent.parent
CORE = ["DATABASE_URL", "CRISISBOT_PLAYBOOK", "CRISISBOT_LANGUAGE"]
SLACK = ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_BASE_URL", "PORT"]
# What each command's --help must name: its options, and the environment variables it reads.
COMMANDS = {
    ("console",): (["--user"], [*CORE, "USER"]),
    ("slack",): (["--port", "--host", "--socket-mode"], [*CORE, *SLACK]),
    ("export",): (["ref", "--format", "--workspace", "--output", "-o"], CORE),
    ("db",): (["upgrade"], ["DATABASE_URL"]),
    ("playbook",): (["check", "path"], []),
}


def help_of(*command: str) -> str:
    result = crisisbot(*command, "--help")
    assert result.returncode == 0, result.stderr
    return result.stdout


def variables_in(text: str) -> dict[str, str]:
    """The 'environment variables:' section of a help: each name with its (wrapped) meaning."""
    assert "environment variables:" in text, text
    section = text.split("environment variables:", 1)[1].split("\n\n", 1)[0]
    found: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        match = re.match(r"^  ([A-Z_]+)  +(\S.*)$", line)
        if match:
            name = match.group(1)
            found[name] = match.group(2)
        elif name and line.startswith("    "):
            found[name] += " " + line.strip()
    return found


def test_version_prints_the_installed_version():
    result = crisisbot("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"crisisbot {metadata.version('crisisbot')}"


def test_the_top_level_help_names_every_setting_with_its_meaning():
    text = help_of()
    assert "--version" in text
    for command in COMMANDS:
        assert re.search(rf"^    {command[0]} +\S", text, re.MULTILINE), command
    variables = variables_in(text)
    # Every setting the program reads from the environment, with a sentence, not just a name.
    expected = [field.alias for field in Settings.model_fields.values()]
    assert sorted(variables) == sorted(expected)
    assert all(len(meaning.split()) >= 3 for meaning in variables.values()), variables
    assert "crisisbot.db" in variables["DATABASE_URL"] and "share" in variables["DATABASE_URL"]


@pytest.mark.parametrize("command", list(COMMANDS), ids=lambda c: " ".join(c))
def test_each_command_help_names_its_options_and_the_variables_it_reads(command):
    options, variables = COMMANDS[command]
    text = help_of(*command)
    usage_and_options = text.split("environment variables:", 1)[0]
    for option in options:
        # Named, and explained: the option's line carries words after it.
        assert re.search(rf"(^|\s|\{{|,){re.escape(option)}\b[^\n]*", usage_and_options), option
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command[0]]
    unexplained = [a.dest for a in sub._actions if not a.help or len(a.help.split()) < 3]
    assert unexplained == []  # every option carries a sentence in the help
    if variables:
        assert sorted(variables_in(text)) == sorted(variables)
    else:
        assert "environment variables: none" in text


def test_no_environment_variable_is_read_that_help_does_not_name():
    """A new os.environ read in the code must be added to the help (handlers/cli.py READS)."""
    named = set(variables_in(help_of("console"))) | set(variables_in(help_of()))
    read = set()
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        read |= set(re.findall(r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z_]+)["']""",
                               path.read_text(encoding="utf-8")))
    assert read and read <= named, read - named


def test_commands_started_in_one_folder_share_its_crisisbot_db(tmp_path):
    """The README's promise: without DATABASE_URL, every command uses ./crisisbot.db of the folder it starts in."""
    console = crisisbot("console", "--user", "alice", input="/crisis start sev2 Charger overheats\n",
                        cwd=str(tmp_path))
    assert console.returncode == 0, console.stderr
    assert (tmp_path / "crisisbot.db").exists()
    export = crisisbot("export", "CRISIS-1", cwd=str(tmp_path))
    assert export.returncode == 0, export.stderr
    assert export.stdout.startswith("# Retrospective of CRISIS-1: Charger overheats")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert crisisbot("export", "CRISIS-1", cwd=str(elsewhere)).returncode == 1
