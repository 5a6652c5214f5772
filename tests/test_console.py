"""The terminal handler: in-process with scripted input, and the installed `crisisbot` command."""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, inspect

from bot.core import Core
from bot.playbook import Team, default_playbook_path
from handlers import cli
from handlers.console import WORKSPACE, Console

DEFAULT_TEXT = default_playbook_path().read_text(encoding="utf-8")
TABLES = {"incidents", "role_assignments", "checklist_items", "timeline_events", "workspace_counters",
          "posted_messages", "alembic_version"}


# --- helpers ------------------------------------------------------------------------------------


CTRL_D = object()  # a script line that is Ctrl-D at a terminal: the end of input for that one read


class Session:
    """A console whose input is a script; a line may be a function of the output so far, or CTRL_D."""

    def __init__(self, core: Core, user: str = "alice"):
        self.out = io.StringIO()
        self.lines: list = []
        self.read_count = 0
        self.console = Console(core, user, out=self.out, read=self._read, echo=True)

    def _read(self, prompt: str) -> str:
        if not self.lines:
            raise EOFError
        self.read_count += 1
        line = self.lines.pop(0)
        if line is CTRL_D:
            raise EOFError
        return line(self.out.getvalue()) if callable(line) else line

    def run(self, *lines) -> int:
        self.lines = list(lines)
        return self.console.run()

    @property
    def text(self) -> str:
        return self.out.getvalue()


def last_number(pattern: str, what: str):
    """A finder for the number of a button, as the output last showed it."""
    compiled = re.compile(pattern, re.MULTILINE)

    def find(output: str) -> str:
        numbers = compiled.findall(output)
        assert numbers, f"no {what} in the output"
        return numbers[-1]
    return find


def claim_button(role: str):
    """The Claim button under a role's line."""
    return last_number(rf"^{re.escape(role)}\b[^\n]*: open\n[^\n]*\n\s+\[(\d+)\] Claim$", f"Claim button for {role}")


def done_button(item_title: str):
    return last_number(rf"^☐ {re.escape(item_title)}[^\n]*\n\s+\[(\d+)\] Done", f"Done button for {item_title!r}")


def after(text: str, marker: str) -> str:
    """The output after the echo of a typed line, so an assertion looks at that line's answer."""
    assert f"> {marker}" in text, marker
    return text.split(f"> {marker}", 1)[1]


def crisisbot(*args: str, input: str = "", cwd: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DATABASE_URL", "CRISISBOT_PLAYBOOK", "CRISISBOT_LANGUAGE")}
    environment.update(env)
    result = subprocess.run(["crisisbot", *args], input=input, env=environment, capture_output=True,
                            text=True, timeout=60, check=False, cwd=cwd)
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr, result.stderr
    return result


def bad_playbook(path: Path) -> int:
    """Write a playbook with one mistake; return the line the checker must name."""
    text = DEFAULT_TEXT.replace("default_severity: 3 ", "default_severity: three ", 1)
    assert text != DEFAULT_TEXT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith("default_severity:"))


# --- in-process -----------------------------------------------------------------------------------


def test_a_scripted_incident(core, clock):
    session = Session(core)
    code = session.run(
        "/crisis start sev2 Charger overheats",
        claim_button("Legal"),
        done_button("Check legal risks"),
        "/as bob",
        claim_button("Legal"),          # a stale button: Legal was just taken
        done_button("Gather the facts"),  # owned by the lead
        "/crisis status",
        "/crisis resolve",
        "/as alice",
        lambda _: (clock.advance(minutes=95), "/crisis resolve")[1],
    )
    text = session.text
    assert code == 0
    assert text.startswith("crisisbot console: you are @alice")

    started = after(text, "/crisis start sev2 Charger overheats")
    assert "You are in #2026-11-22-crisis-1-charger-overheats." in started
    assert "🚨 CRISIS-1: Charger overheats" in started
    assert "Severity: SEV2 · High   Phase: Detected" in started
    assert "Lead: @alice" in started
    assert "Legal (required): open" in started
    assert "(topic: CRISIS-1 · SEV2 · High · Detected · Charger overheats)" in started
    assert "[announcement in #crisis-announcements] 🚨 CRISIS-1: Charger overheats (SEV2 · High)" in started

    claimed = started.split("> /as bob")[0].split("[announcement in", 1)[1]
    assert "@alice now holds Legal." in claimed
    assert "── roster (updated)" in claimed and "Legal (required): @alice" in claimed
    assert "── checklist:assess (updated)" in claimed
    assert "✅ ~Check legal risks (liability, data protection)~ · done by @alice at 02:00 UTC" in claimed
    assert "Phase: Detected → Assessing (after @alice completed a step of it)." in claimed

    as_bob = after(text, "/as bob")
    assert "You are now @bob." in as_bob
    refusals = [line for line in as_bob.splitlines() if line.startswith("[only you see this]")]
    assert refusals[0] == ("[only you see this] Legal is held by @alice. "
                           "They or the lead can hand it over with /crisis assign.")
    assert refusals[1].startswith("[only you see this] “Gather the facts: what happened, where, since when” "
                                  "belongs to Crisis lead. Only its holder or the lead (@alice) can change it")
    assert refusals[2].startswith("[only you see this] CRISIS-1: Charger overheats")
    assert refusals[3] == "[only you see this] Only the lead (@alice) can resolve the incident."
    assert "@alice resolved CRISIS-1 after 1 h 35 min." in after(text, "/as alice")

    incident_id = core.incident_by_ref(WORKSPACE, "CRISIS-1")
    assert [e.kind for e in core.timeline(incident_id)][-1] == "incident.resolved"


def test_the_start_form_asks_one_question_a_line(core):
    session = Session(core)
    code = session.run("/crisis start", "Ladegeräte überhitzen", "defective-product", "sev1",
                       "Seit heute Morgen & <!here>")
    text = session.text
    assert code == 0 and session.read_count == 5
    assert "You are in #2026-11-22-crisis-1-ladegeraete-ueberhitzen." in text
    assert "🚨 CRISIS-1: Ladegeräte überhitzen" in text
    assert "Severity: SEV1 · Critical" in text and "Type: Defective product" in text
    # The description reads as typed, and stays text: the escaping is only undone for the terminal.
    assert "  Seit heute Morgen & <!here>" in text
    assert "Marketing (required): open" in text


def test_the_start_form_keeps_defaults_and_refuses_bad_answers(core):
    session = Session(core)
    session.run("/crisis start", "Rumour about layoffs", "", "", "",
                "/crisis start", "Second", "", "sev9", "")
    text = session.text
    assert "🚨 CRISIS-1: Rumour about layoffs" in text
    assert "Severity: SEV3 · Medium" in text and "Type: Other" in text
    assert "[only you see this] “sev9” is not a severity here. Use one of sev1, sev2, sev3, sev4." in text
    assert "CRISIS-2" not in text
    assert core.incident_by_ref(WORKSPACE, "CRISIS-2") is None


def test_commands_outside_an_incident_channel_and_odd_input(core):
    session = Session(core)
    session.run("/crisis status", "/crisis resolve", "42", "hello", "/crisis frobnicate")
    text = session.text
    assert ("[only you see this] “/crisis status” works inside an incident channel. "
            "Run it there, or start one with /crisis start Title.") in text
    assert "[only you see this] “/crisis resolve” works inside an incident channel." in text
    assert "There is no button 42." in text
    assert "Commands start with /crisis, button numbers are typed alone; /quit leaves." in text
    assert "[only you see this] I don't know “/crisis frobnicate”." in text
    assert core.incident_by_ref(WORKSPACE, "CRISIS-1") is None


def test_quit_ends_the_session(core):
    session = Session(core)
    assert session.run("/quit", "/crisis start Never started") == 0
    assert session.read_count == 1
    assert "Never started" not in session.text
    assert core.incident_by_ref(WORKSPACE, "CRISIS-1") is None


def test_no_announcement_without_an_announcement_channel(db, playbook, clock):
    quiet = playbook.model_copy(update={"team": Team(standing_members=["UBOSS"], announcement_channel=None)})
    session = Session(Core(db, quiet, clock=clock))
    session.run("/crisis start sev1 Charger overheats")
    assert "🚨 CRISIS-1: Charger overheats" in session.text
    assert "[announcement in #" not in session.text


# --- the installed command ------------------------------------------------------------------------

SCRIPT = "/crisis start sev2 Charger overheats\n/crisis status\n/quit\n"


def test_console_command_keeps_its_data(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    first = crisisbot("console", "--user", "alice", input=SCRIPT, DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "you are @alice" in first.stdout
    assert "🚨 CRISIS-1: Charger overheats" in first.stdout
    assert "[only you see this] CRISIS-1: Charger overheats" in first.stdout
    second = crisisbot("console", "--user", "alice", input=SCRIPT, DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "🚨 CRISIS-2: Charger overheats" in second.stdout
    assert "CRISIS-1" not in second.stdout


def test_console_command_in_german(tmp_path):
    result = crisisbot("console", "--user", "alice", input=SCRIPT,
                       DATABASE_URL=f"sqlite:///{tmp_path}/c.db", CRISISBOT_LANGUAGE="de")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "crisisbot-Konsole: Sie sind @alice" in out
    assert "Sie sind in #" in out
    assert "Rollen für CRISIS-1: übernehmen Sie Ihre" in out
    assert "[1] Übernehmen" in out
    assert "Schweregrad: SEV2 · Hoch   Phase: Erkannt" in out
    assert "Rechtsabteilung (erforderlich): offen" in out
    assert "[nur für Sie sichtbar] CRISIS-1: Charger overheats" in out


def test_a_bad_playbook_stops_the_start_with_one_paragraph(tmp_path):
    bad = tmp_path / "bad.yaml"
    line = bad_playbook(bad)
    result = crisisbot("console", "--user", "alice", input=SCRIPT,
                       DATABASE_URL=f"sqlite:///{tmp_path}/c.db", CRISISBOT_PLAYBOOK=str(bad))
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message.startswith("crisisbot cannot start: the playbook ")
    assert "\n\n" not in message  # one paragraph
    flowing = " ".join(message.split())
    assert "bad.yaml" in flowing and f"the first at line {line}: default_severity" in flowing
    assert "crisisbot console" not in result.stdout  # the console never started


def test_the_bad_playbook_path_is_printed_whole(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "acme-social-media-team" / "crisis-playbooks"
    while len(str(folder)) < 100:
        folder = folder / "brand-team"
    bad = folder / "crisis-playbook-2026.yaml"
    bad_playbook(bad)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("CRISISBOT_PLAYBOOK", str(bad))
    # In-process: the playbook is checked before the console reads anything.
    assert cli.main(["console", "--user", "alice"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_playbook_check(tmp_path, capsys):
    # In-process through the command's own entry point: the same code as `crisisbot playbook check`,
    # without starting Python again (the console tests above cover the installed script).
    bad = tmp_path / "bad.yaml"
    text = DEFAULT_TEXT.replace("default_severity: 3 ", "default_severity: three ", 1)
    text = text.replace("lead_role: lead ", "lead_role: Boss! ", 1)
    bad.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    severity_line = next(n for n, line in enumerate(lines, 1) if line.startswith("default_severity:"))
    lead_line = next(n for n, line in enumerate(lines, 1) if line.startswith("lead_role:"))

    assert cli.main(["playbook", "check", str(bad)]) == 1
    out = capsys.readouterr()
    problems = out.out.splitlines()
    assert problems and all(re.match(rf"^{re.escape(str(bad))}:\d+: \S", p) for p in problems), problems
    assert any(p.startswith(f"{bad}:{severity_line}: default_severity") for p in problems), problems
    assert any(p.startswith(f"{bad}:{lead_line}: lead_role") for p in problems), problems
    assert "Traceback" not in out.err

    assert cli.main(["playbook", "check", str(default_playbook_path())]) == 0
    assert "the playbook is valid" in capsys.readouterr().out


def test_db_upgrade_creates_the_schema_and_can_run_again(tmp_path, monkeypatch, capsys):
    path = tmp_path / "fresh.db"
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    for _ in range(2):
        assert cli.main(["db", "upgrade"]) == 0
        assert "is up to date" in capsys.readouterr().out
    engine = create_engine(url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_console_reminds_escalates_and_takes_status_updates_and_snoozes(core, clock):
    session = Session(core)
    session.run(
        "/crisis start sev1 hacked-account Our account posts spam",
        lambda _: (clock.advance(minutes=6), "/crisis status")[1],   # 02:06: the 10-minutes-before reminder is due
        "/crisis snooze acknowledge 30m Waiting for the agency",
        "/crisis snooze acknowledge 30m Again",
        "/crisis update", "Spam came from a leaked password", "Password reset, posts removed", "45m",
        lambda _: (clock.advance(minutes=40), "/crisis status")[1],  # 02:46: the acknowledgement (02:45) was missed
    )
    text = session.text
    # Due reminders print before the next line is handled, as they would while the user typed.
    assert "⏰ The internal acknowledgement is due at 02:15 UTC, in 9 min. @alice\n> /crisis status" in text
    assert "💤 @alice moved the internal acknowledgement to 2026-11-22 02:45 UTC: Waiting for the agency" in text
    assert "was already snoozed once" in text
    assert "📢 Status update on CRISIS-1 by @alice" in text and "Next update: 02:51 UTC" in text
    assert "🚨 Missed: the internal acknowledgement was due at 02:45 UTC. @alice" in text
