"""Closing an incident in the console, in-process: who may close, the retrospective with its sections and
buttons, lessons learned and action items, the Markdown export in the working directory, archiving and
what is refused afterwards; and the same summary in German. Every assertion reads what a person at the
terminal sees."""

from __future__ import annotations

import re
from pathlib import Path

from bot.core import Core
from handlers.console import WORKSPACE
from tests.test_console import CTRL_D, claim_button, last_number
from tests.test_console_statements import Terminal

PRIVATE = "[only you see this] "
CHANNEL = "2026-11-22-crisis-1-charger-overheats"
SECTIONS = ["Measured", "Key moments", "Deadlines", "Checklist", "Roles", "Lessons learned"]
BUTTONS = ["What went well", "What to improve", "Add action item", "Export", "Archive channel"]


# --- helpers ------------------------------------------------------------------------------------------


def button(label: str, keep: dict | None = None, name: str | None = None):
    """The number of the last button with this label; `keep` remembers it under `name` (default: label)."""
    find = last_number(rf"\[(\d+)\] {re.escape(label)}(?=  |$)", f"{label!r} button")

    def press(output: str) -> str:
        number = find(output)
        if keep is not None:
            keep[name or label] = number
        return number
    return press


def remember(label: str, keep: dict, name: str):
    """Note a button's number without pressing it (an empty line does nothing), to press it later."""
    return lambda output: (button(label, keep, name)(output), "")[1]


def replies(text: str) -> list[tuple[str, str]]:
    """(typed line, what the console answered) for every line typed at the prompt, in order."""
    parts = re.split(r"^> ", text, flags=re.MULTILINE)[1:]
    return [tuple(part.split("\n", 1)) if "\n" in part else (part, "") for part in parts]


def message(output: str, key: str) -> str | None:
    """A message as printed (its heading line included), up to the next message, notice or typed line."""
    found = re.search(rf"^── {re.escape(key)}(?: \([^)\n]*\))? ─+\n.*?(?=^── |^\[|^> |\Z)", output,
                      re.MULTILINE | re.DOTALL)
    return found.group(0) if found else None


def privately(output: str) -> list[str]:
    return [line[len(PRIVATE):] for line in output.splitlines() if line.startswith(PRIVATE)]


def events(core: Core) -> int:
    """How many timeline events CRISIS-1 has now (read at the moment a script line is typed)."""
    return len(core.timeline(core.incident_by_ref(WORKSPACE, "CRISIS-1")))


def counting(core: Core, counts: list[int], line: str):
    """Type `line`, first noting how many timeline events there are."""
    return lambda _: (counts.append(events(core)), line)[1]


# --- the whole close in English -------------------------------------------------------------------------


def test_close_lessons_export_and_archive(core, clock, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # /crisis export writes into the current directory
    keep: dict[str, str] = {}
    counts: list[int] = []
    terminal = Terminal(core)
    code = terminal.run(
        "/crisis start sev2 Charger overheats",
        "/crisis close",                                          # not resolved yet
        "/as bob", claim_button("Legal"),
        "/as alice", lambda _: (clock.advance(minutes=95), "/crisis resolve")[1],
        "/as bob", "/crisis close",                               # bob is not the lead
        "/as alice", lambda _: (clock.advance(minutes=5), "/crisis close")[1],
        lambda _: (clock.advance(minutes=10), counts.append(events(core)), "/crisis close")[2],  # again
        counting(core, counts, "/crisis status"),
        button("What went well"), "Bob took Legal within a minute",
        "/as bob", button("What to improve"), "Nobody posted the status update at 03:00",
        "/as alice", button("Add action item"), "Write a FAQ for chargers", "@carol",
        button("Add action item"), "   ", CTRL_D,                 # no text: refused before the owner is asked
        button("Export"),
        counting(core, counts, "/crisis export"),
        "/as bob", button("Archive channel"),                     # only the lead archives
        "/as alice", remember("What to improve", keep, "stale"), button("Archive channel"),
        lambda _: keep["stale"],                                  # a lesson from the old summary
        "/crisis close",
    )
    text = terminal.text
    assert code == 0 and "Traceback" not in text
    (start, early_close, _, claim, _, resolve, _, bob_close, _, close, close_again, status, well, _, improve,
     _, action, empty_action, export_button, export, _, bob_archive, _, archive, late_lesson,
     close_archived) = replies(text)

    assert start[0] == "/crisis start sev2 Charger overheats" and f"You are in #{CHANNEL}." in start[1]
    assert privately(early_close[1]) == [
        "CRISIS-1 is not resolved yet. Resolve it first with `/crisis resolve`, then close it with `/crisis close`."]
    assert "@bob now holds Legal." in claim[1]
    assert "✅ @alice resolved CRISIS-1 after 1 h 35 min." in resolve[1]

    # A non-lead is told privately, and nothing is closed.
    assert bob_close[0] == "/crisis close"
    assert bob_close[1] == PRIVATE + "Only the lead (@alice) can close the incident.\n"

    # The lead closes: a notice, the header in phase Closed, the retrospective with its buttons.
    out = close[1]
    assert out.startswith("📝 @alice closed CRISIS-1. Here is the retrospective; everyone can add lessons "
                          "learned with its buttons.\n")
    assert "Severity: SEV2 · High   Phase: Closed" in message(out, "header")
    retro = message(out, "retrospective")
    lines = retro.splitlines()
    assert lines[:4] == [
        "── retrospective ────────────────────",
        "📝 Retrospective of CRISIS-1: Charger overheats",
        "Other · SEV2 · High",
        "Started 2026-11-22 02:00 UTC · resolved 2026-11-22 03:35 UTC · closed 2026-11-22 03:40 UTC by @alice",
    ]
    assert [line for line in lines if line in SECTIONS] == SECTIONS
    assert "• Time to acknowledge: 0 s" in lines
    assert "• Time to first public statement: none published" in lines
    assert "• Time to resolve: 1 h 35 min" in lines
    assert "• 02:00 UTC Acknowledged: @bob took the role Legal" in lines
    assert "• 03:35 UTC Resolved by @alice" in lines and "• 03:40 UTC Closed by @alice" in lines
    assert "• next status update, due 03:00 UTC: missed, never done · escalated" in lines
    assert "• internal acknowledgement, due 02:30 UTC: met, 30 min early" in lines
    assert "• Identify and assess (Assessing): 0 done, 0 skipped, 5 open" in lines
    assert "• Crisis lead: @alice 02:00 UTC–end" in lines and "• Legal: @bob 02:00 UTC–end" in lines
    assert ("None yet: add what went well, what to improve and action items with the buttons below."
            in lines)
    assert re.fullmatch(r"    " + "  ".join(rf"\[\d+\] {b}" for b in BUTTONS), lines[-2]), lines[-2]
    assert lines[-1] == (f"  {counts[0]} timeline events in all: `/crisis export` gives the whole record as a "
                         "file. The channel will be archived 2026-11-29 03:40 UTC.")
    # The copy for the announcement channel has the summary but no buttons, and says where to add lessons.
    assert "[announcement in #crisis-announcements]\n── retrospective:announce ─" in out
    copy = message(out, "retrospective:announce")
    assert "📝 Retrospective of CRISIS-1: Charger overheats" in copy and "Lessons learned" in copy
    assert "[" not in copy and f"  Add lessons learned in #{CHANNEL}." in copy
    assert "  (topic: CRISIS-1 · SEV2 · High · Closed · Charger overheats)" in out

    # Closing again changes nothing: a private answer with the first close's time, no new event, no reprint.
    assert close_again[1] == PRIVATE + ("CRISIS-1 was already closed by @alice at 2026-11-22 03:40 UTC; nothing "
                                        "changed. `/crisis export` gives the retrospective as a file.\n")
    assert counts[1] == counts[0]
    assert "SEV2 · High · Closed · lead: @alice" in status[1]

    # What went well: the form asks, thanks privately, and the summary is printed again with the lesson.
    assert well[1].startswith("What went well? Bob took Legal within a minute\n"
                              + PRIVATE + "Thanks: added to what went well.\n")
    updated = message(well[1], "retrospective")
    assert updated.startswith("── retrospective (updated) ─")
    assert "Lessons learned\nWhat went well:\n• Bob took Legal within a minute (@alice)\n" in updated
    assert "None yet" not in updated
    assert "• Bob took Legal within a minute (@alice)" in message(well[1], "retrospective:announce")
    # Anyone on the team may add lessons, not only the lead.
    assert "What to improve:\n• Nobody posted the status update at 03:00 (@bob)\n" in message(
        improve[1], "retrospective")

    # An action item asks for the owner and tells the channel who owns it.
    assert action[1].startswith("What needs to be done? Write a FAQ for chargers\nOwner (name): @carol\n"
                                + PRIVATE + "Thanks: added to the action items.\n"
                                "📝 New action item for @carol from @alice: Write a FAQ for chargers\n")
    assert "Action items:\n• Write a FAQ for chargers: @carol\n" in message(action[1], "retrospective")

    # An action item without text is refused, even with an owner; the summary is not printed again.
    assert privately(empty_action[1]) == ["Write the lesson first; nothing was added."]
    assert "── retrospective" not in empty_action[1] and "New action item" not in empty_action[1]
    assert "Owner" not in empty_action[1]

    # Export (the button and the command) writes the Markdown file here, with the whole timeline.
    path = tmp_path / "crisis-1-retrospective.md"
    assert privately(export_button[1]) == [f"Wrote the retrospective to {path}."]
    assert privately(export[1]) == [f"Wrote the retrospective to {path}."]
    document = path.read_text(encoding="utf-8")
    assert document.startswith("# Retrospective of CRISIS-1: Charger overheats\n")
    timeline = document.split(f"\n## Timeline ({counts[2]} events)\n\n", 1)[1]
    rows = timeline.splitlines()
    kinds = [e.kind for e in core.timeline(core.incident_by_ref(WORKSPACE, "CRISIS-1"))][:counts[2]]
    assert len(rows) == counts[2] and all(row.startswith("- 2026-11-22 ") for row in rows)
    # Each event reads as a sentence, without its internal kind (issue 9, item 20).
    assert kinds[0] == "incident.started" and rows[0].split(" · ")[2].startswith("started the incident")
    assert kinds.count("incident.closed") == 1 and kinds[-3:] == ["lesson.added"] * 3
    assert sum(1 for row in rows if row.endswith(" · closed the incident")) == 1
    assert all(" · added a lesson (" in row for row in rows[-3:])
    assert not any(kind in timeline for kind in kinds)
    assert "- [ ] Write a FAQ for chargers: owner @carol (added by @alice, " in document

    # Archiving: only the lead; then the archived line, and the summary without buttons.
    assert privately(bob_archive[1]) == ["Only the lead (@alice) can archive the channel."]
    assert "── retrospective" not in bob_archive[1]
    out = archive[1]
    assert out.startswith("🗄 @alice archives this channel now. The retrospective stays here; `crisisbot export` "
                          "still gives the whole record.\n")
    final = message(out, "retrospective")
    assert final.startswith("── retrospective (updated) ─")
    assert not re.search(r"\[\d+\]", final)
    assert "Add action item" not in final and "Archive channel" not in final
    assert final.rstrip("\n").endswith("The channel is archived.")
    assert "• Write a FAQ for chargers: @carol" in final  # the lessons stay
    assert out.rstrip("\n").endswith(f"  (#{CHANNEL} is archived)")

    # The old summary's lesson button afterwards is refused before the lesson is asked; nothing is reprinted.
    assert late_lesson[0] == keep["stale"]
    assert late_lesson[1] == PRIVATE + "The channel of CRISIS-1 is archived; lessons can no longer be added.\n"
    assert privately(close_archived[1])[0].startswith("CRISIS-1 was already closed by @alice at 2026-11-22 03:40 UTC")
    assert "Archive sooner" not in Path(path).read_text(encoding="utf-8")
    assert [e.kind for e in core.timeline(core.incident_by_ref(WORKSPACE, "CRISIS-1"))].count("lesson.added") == 3


def test_an_action_item_without_owner_is_refused(core):
    terminal = Terminal(core)
    terminal.run("/crisis start sev2 Charger overheats", "/crisis resolve", "/crisis close",
                 button("Add action item"), "Write a FAQ", "")
    answer = replies(terminal.text)[-1][1]
    assert privately(answer) == ["An action item needs an owner: choose who will do it. Nothing was added."]
    assert "@someone" not in answer


# --- German ------------------------------------------------------------------------------------------------


def test_the_retrospective_in_german(db, playbook, clock, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    core = Core(db, playbook, language="de", clock=clock)
    terminal = Terminal(core)
    terminal.run(
        "/crisis start sev2 Ladegeräte überhitzen",
        "/as bob", last_number(r"^Rechtsabteilung\b[^\n]*: offen\n[^\n]*\n\s+\[(\d+)\] Übernehmen$",
                               "Übernehmen button for Rechtsabteilung"),
        "/as alice", lambda _: (clock.advance(minutes=40), "/crisis resolve")[1],
        "/as bob", "/crisis close",
        "/as alice", "/crisis close", "/crisis close",
        button("Was gut lief"), "Schnelle Bestätigung",
        button("Maßnahme ergänzen"), "FAQ schreiben", "carol",
        "/crisis export",
        button("Kanal archivieren"),
    )
    text = terminal.text
    assert "Traceback" not in text
    steps = replies(text)
    bob_close, close, close_again, well, action, export, archive = [out for _, out in steps[6:7] + steps[8:]]

    assert bob_close == "[nur für Sie sichtbar] Nur die Leitung (@alice) kann den Vorfall schließen.\n"
    assert close.startswith("📝 @alice hat CRISIS-1 geschlossen. Hier ist die Nachbetrachtung;")
    retro = message(close, "retrospective").splitlines()
    assert retro[1] == "📝 Nachbetrachtung von CRISIS-1: Ladegeräte überhitzen"
    assert [line for line in retro if line in ("Gemessen", "Wichtige Momente", "Fristen", "Checkliste", "Rollen",
                                               "Erkenntnisse")] == [
        "Gemessen", "Wichtige Momente", "Fristen", "Checkliste", "Rollen", "Erkenntnisse"]
    assert "• Zeit bis zur Bestätigung: 0 s" in retro
    assert "• Zeit bis zur ersten öffentlichen Stellungnahme: keine veröffentlicht" in retro
    assert "• Zeit bis zur Lösung: 40 min" in retro
    assert "• 02:00 UTC Bestätigt: @bob übernahm die Rolle Rechtsabteilung" in retro
    assert "• Rechtsabteilung: @bob 02:00 UTC–Ende" in retro
    assert re.fullmatch(r"    \[\d+\] Was gut lief  \[\d+\] Was besser werden soll  \[\d+\] Maßnahme ergänzen  "
                        r"\[\d+\] Exportieren  \[\d+\] Kanal archivieren", retro[-2]), retro[-2]
    assert "Ereignisse in der Zeitleiste: `/crisis export` liefert den vollständigen Verlauf als Datei." in retro[-1]
    assert close_again.startswith("[nur für Sie sichtbar] CRISIS-1 wurde bereits von @alice um 2026-11-22 02:40 UTC "
                                  "geschlossen; nichts geändert.")

    assert well.startswith("Was lief gut? Schnelle Bestätigung\n[nur für Sie sichtbar] Danke: ergänzt unter "
                           "„Was gut lief“.\n")
    assert "Erkenntnisse\nWas gut lief:\n• Schnelle Bestätigung (@alice)\n" in message(well, "retrospective")
    assert action.startswith("Was ist zu tun? FAQ schreiben\nVerantwortlich (Name): carol\n")
    assert "📝 Neue Maßnahme für @carol von @alice: FAQ schreiben" in action
    assert "Maßnahmen:\n• FAQ schreiben: @carol\n" in message(action, "retrospective")

    path = tmp_path / "crisis-1-retrospective.md"
    assert export == f"[nur für Sie sichtbar] Die Nachbetrachtung steht in {path}.\n"
    document = path.read_text(encoding="utf-8")
    assert document.startswith("# Nachbetrachtung von CRISIS-1: Ladegeräte überhitzen\n")
    assert "\n## Gemessen\n" in document and "\n## Zeitleiste (" in document

    assert archive.startswith("🗄 @alice archiviert diesen Kanal jetzt.")
    final = message(archive, "retrospective")
    assert "Der Kanal ist archiviert." in final and "Kanal archivieren" not in final
    assert "(#2026-11-22-crisis-1-ladegeraete-ueberhitzen ist archiviert)" in archive
