"""`crisisbot export CRISIS-N`, the installed command run as a subprocess against a database that a console
session filled: Markdown to standard output, JSON to a file, clear answers for incidents that do not exist,
and --workspace when two workspaces have an incident with the same number."""

from __future__ import annotations

import json

import pytest

from bot.core import Core
from bot.export import FORMAT, to_markdown
from handlers.console import WORKSPACE
from tests.test_console import Session, claim_button, crisisbot, last_number

TITLE = "# Retrospective of CRISIS-1: Charger overheats\n"


@pytest.fixture
def closed(core, clock) -> int:
    """A console session: alice starts CRISIS-1, bob claims Legal, alice resolves and closes it, lessons follow."""
    session = Session(core)
    session.run(
        "/crisis start sev2 Charger overheats",
        "/as bob", claim_button("Legal"),
        "/as alice", lambda _: (clock.advance(minutes=95), "/crisis resolve")[1],
        lambda _: (clock.advance(minutes=5), "/crisis close")[1],
        last_number(r"\[(\d+)\] What went well", "What went well"), "Bob took Legal at once",
        last_number(r"\[(\d+)\] Add action item", "Add action item"), "Write a FAQ", "carol",
    )
    assert "Thanks: added to the action items." in session.text
    return core.incident_by_ref(WORKSPACE, "CRISIS-1")


def export(database_url: str, *args: str):
    """Run `crisisbot export …` on the database; the helper already fails on any traceback."""
    return crisisbot("export", *args, DATABASE_URL=database_url)


def test_markdown_to_standard_output(database_url, core, closed):
    result = export(database_url, "CRISIS-1", "--format", "md")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert out.startswith(TITLE)
    events = core.timeline(closed)
    assert f"\n## Timeline ({len(events)} events)\n" in out
    assert "- [ ] Write a FAQ: owner @carol (added by @alice, 2026-11-22 03:40 UTC)" in out
    # The same document the console's /crisis export writes; md is the default format, and the ref's case is free.
    assert out == to_markdown(core.retrospective(closed), core.playbook)
    assert export(database_url, "crisis-1").stdout == out


def test_json_to_a_file(database_url, core, closed, tmp_path):
    path = tmp_path / "out" / "crisis-1.json"
    path.parent.mkdir()
    result = export(database_url, "CRISIS-1", "--format", "json", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == f"Wrote the retrospective to {path}."
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT == "crisisbot-retrospective/1"
    assert data["ref"] == "CRISIS-1" and data["title"] == "Charger overheats"
    events = core.timeline(closed)
    assert len(data["timeline"]) == len(events) > 5
    assert [e["kind"] for e in data["timeline"]] == [e.kind for e in events]
    assert data["time_to_resolve"] == 95 * 60
    assert data["closed_at"] == "2026-11-22T03:40:00+00:00" and data["closed_by"] == "alice"
    assert [(x["kind"], x["text"], x["owner"]) for x in data["lessons"]] == [
        ("well", "Bob took Legal at once", None), ("action", "Write a FAQ", "carol")]


@pytest.mark.parametrize("ref", ["CRISIS-99", "foo"])
def test_an_unknown_incident_exits_1_with_a_clear_message(database_url, closed, ref):
    result = export(database_url, ref)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"There is no incident “{ref}”. Give its reference, like CRISIS-3.\n"


@pytest.mark.parametrize("ref", ["CRISIS-²", "CRISIS-99999999999999999999"])
def test_a_ref_that_is_no_incident_number_exits_1_without_a_traceback(tmp_path, ref):
    result = export(f"sqlite:///{tmp_path / 'empty.db'}", ref)
    assert result.returncode == 1
    assert result.stderr == f"There is no incident “{ref}”. Give its reference, like CRISIS-3.\n"


def test_two_workspaces_with_the_same_number_need_workspace(database_url, core: Core):
    for workspace, title in (("T-ACME", "Acme charger recall"), ("T-GLOBEX", "Globex outage")):
        opening = core.start_incident(workspace, "alice", title)
        core.opened(opening.incident_id, f"C-{workspace}", f"crisis-1-{workspace.lower()}")

    ambiguous = export(database_url, "CRISIS-1")
    assert ambiguous.returncode == 1 and ambiguous.stdout == ""
    assert ambiguous.stderr == ("CRISIS-1 exists in more than one workspace (T-ACME, T-GLOBEX); "
                                "say which with --workspace.\n")

    globex = export(database_url, "CRISIS-1", "--workspace", "T-GLOBEX")
    assert globex.returncode == 0, globex.stderr
    assert globex.stdout.startswith("# Retrospective of CRISIS-1: Globex outage\n")
    assert "Acme" not in globex.stdout
    acme = export(database_url, "CRISIS-1", "--workspace", "T-ACME", "--format", "json")
    assert acme.returncode == 0, acme.stderr
    assert json.loads(acme.stdout)["title"] == "Acme charger recall"

    elsewhere = export(database_url, "CRISIS-1", "--workspace", "T-INITECH")
    assert elsewhere.returncode == 1
    assert elsewhere.stderr == "There is no incident “CRISIS-1”. Give its reference, like CRISIS-3.\n"


def test_a_console_subprocess_then_export(tmp_path):
    """The whole way through the installed command: a scripted console closes CRISIS-1, export reads it."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    script = "/crisis start sev2 Charger overheats\n/crisis resolve\n/crisis close\n/quit\n"
    console = crisisbot("console", "--user", "alice", input=script, DATABASE_URL=url)
    assert console.returncode == 0, console.stderr
    assert "📝 @alice closed CRISIS-1." in console.stdout
    result = crisisbot("export", "CRISIS-1", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(TITLE)
    assert "\n## Timeline (" in result.stdout
    assert " · @alice · closed the incident\n" in result.stdout


def test_a_refusal_prints_the_ref_as_typed_not_escaped_for_chat(tmp_path):
    result = export(f"sqlite:///{tmp_path / 'empty.db'}", "<!channel>&x")
    assert result.returncode == 1
    assert result.stderr == "There is no incident “<!channel>&x”. Give its reference, like CRISIS-3.\n"


def test_an_output_path_that_cannot_be_written_is_a_clear_message(database_url, closed, tmp_path):
    missing = tmp_path / "no such folder" / "out.md"
    result = export(database_url, "CRISIS-1", "-o", str(missing))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"I could not write {missing} (") and "nothing was written" in result.stderr
    assert not missing.exists()
