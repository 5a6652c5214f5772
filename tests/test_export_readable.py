"""What a new user met in the export and the announcement copy (issue 9, item 20).

The Markdown timeline reads as sentences: times to the second, no raw keys (German showed
`early_by_seconds: 431999`), steps counted from 1, approvals that name the version instead of
repeating its text, no internal codes; the JSON export keeps every figure. The retrospective's
copy in the announcement channel names people without pinging them.
"""

from __future__ import annotations

import dataclasses
import json
import re

from bot.core import Core
from bot.export import to_json, to_markdown
from tests.test_slack import slack_room, texts
from tests.test_slack_retro import closed, copy, summary

TEXT = "Wir wissen von der geleakten Kundenliste und prüfen das gerade sehr gründlich."
NAMES = {"U1": "Lea", "U2": "Cem", "U3": "Sam", "U4": "Lia"}


def german_incident(db, playbook, clock) -> tuple[Core, int]:
    """SEV2, at odd seconds; a free statement through the strict policy's three steps; resolved, then
    closed one second later, so the review deadline is met 431,999 seconds early."""
    core = Core(db, playbook, language="de", clock=clock)
    opening = core.start_incident("T1", "U1", "Kundenliste online", severity=2, crisis_type="data-leak")
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    clock.advance(minutes=7, seconds=31)
    core.claim_role(iid, "U2", "comms")                 # 02:07:31 acknowledges
    clock.advance(seconds=4)
    core.claim_role(iid, "U4", "legal")
    core.claim_role(iid, "U3", "social")
    core.draft(iid, "U3", "free", {"text": TEXT})
    clock.advance(seconds=9)
    core.decide(iid, "U4", 1, 1, "approve")             # step 1, legal
    core.decide(iid, "U2", 1, 1, "approve")             # step 2, comms
    core.decide(iid, "U1", 1, 1, "approve")             # step 3, lead
    core.publish(iid, "U3", 1, 1, "X")
    clock.advance(minutes=30)
    core.resolve(iid, "U1")
    clock.advance(seconds=1)
    core.close(iid, "U1")
    return core, iid


def test_the_german_timeline_reads_as_sentences(db, playbook, clock):
    core, iid = german_incident(db, playbook, clock)
    document = to_markdown(core.retrospective(iid), core.playbook, NAMES)
    timeline = document.split("\n## Zeitleiste (", 1)[1]
    # No raw keys, codes or machine times.
    for raw in ("early_by_seconds", "431999", "step:", "version:", "statement:", "by:", "kind:", "due:",
                "+00:00", "first_statement", "status.update", "incident.closed", "deadline.met"):
        assert raw not in timeline, raw
    assert not re.search(r"\((?:[a-z]+\.[a-z_]+)\)", timeline)  # "(statement.approved)" and the like
    # Times to the second.
    assert "- 2026-11-22 02:07:31 UTC · @Cem (U2) · übernahm die Rolle PR / Kommunikation\n" in timeline
    # Approvals name the statement, its version and the step counted from 1; the text is under Statements.
    assert "· @Lia (U4) · gab Stellungnahme #1, Version 1 frei: Schritt 1 als Rechtsabteilung\n" in timeline
    assert "· @Lea (U1) · gab Stellungnahme #1, Version 1 frei: Schritt 3 als Krisenleitung\n" in timeline
    assert "Wir wissen von der geleakten Kundenliste" not in timeline
    assert document.count("Wir wissen von der geleakten Kundenliste") == 1  # once, as version 1's text
    # The review met one second after resolve reads as a span, not as seconds.
    assert ("· @Lea (U1) · Frist eingehalten (Nachbesprechung) mit dem Schließen des Vorfalls, 4 d 23 h vorher "
            "(fällig 2026-11-27 02:37 UTC)\n") in timeline


def test_the_english_timeline_and_the_json_keeps_every_figure(db, playbook, clock):
    core, iid = german_incident(db, playbook, clock)
    core.language = "en"
    retro = core.retrospective(iid)
    data = json.loads(to_json(retro))
    review = next(e for e in data["timeline"] if e["kind"] == "deadline.met" and e["data"]["kind"] == "review")
    assert review["data"]["early_by_seconds"] == 431999 and review["at"] == "2026-11-22T02:37:45+00:00"
    approvals = [e["data"] for e in data["timeline"] if e["kind"] == "statement.approved"]
    assert [(a["step"], a["version"], a["text"]) for a in approvals] == [(0, 1, TEXT), (1, 1, TEXT), (2, 1, TEXT)]

    english = dataclasses.replace(retro, language="en")
    timeline = to_markdown(english, core.playbook, NAMES).split("\n## Timeline (", 1)[1]
    assert "· @Cem (U2) · approved statement #1, version 1: step 2 as PR / communications\n" in timeline
    assert ("· @Lea (U1) · kept the post-crisis review deadline by closing the incident, 4 d 23 h early "
            "(due 2026-11-27 02:37 UTC)\n") in timeline
    assert "early_by_seconds" not in timeline and TEXT not in timeline


def test_the_announcement_copy_names_people_without_pinging_them(core):
    """In the incident channel the summary mentions the team; in the broad announcement channel its
    copy writes their names (users.info) as plain text, so nobody there is notified."""
    with slack_room(core) as room:
        room.fake.add_user("U2", profile={"display_name": "Dana Scully"})
        channel = closed(room)
        room.settle()
        _, here = summary(room, channel)
        _, broad = copy(room, channel)
    assert "<@U1>" in texts(here) and "<@U2>" in texts(here)
    shown = texts(broad)
    assert "<@" not in shown and "<+" not in shown
    assert "@Dana Scully" in shown and "@u1" in shown  # the fake's display name for U1 is its name
    assert "*Participants* (actions): @u1" in shown
