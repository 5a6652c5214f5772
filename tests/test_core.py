"""The incident lifecycle through the core, with the controlled clock, on SQLite and PostgreSQL.

Every test checks what a person would notice: the number CRISIS-N, who holds a role, which item is
done, the texts shown and the refusal answered privately.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from bot.core import Core, Outcome
from bot.db import Database
from bot.errors import Refusal
from bot.messages import Actions, Message
from bot.models import Incident
from tests.conftest import START

WS = "T1"
STEP_KEYS = ["assess", "respond", "offline", "monitor", "learn"]


# --- helpers ------------------------------------------------------------------------------------


def open_incident(core: Core, reporter: str = "U1", title: str = "Charger overheats", channel: str = "C1",
                  workspace: str = WS, **kwargs) -> tuple[int, Outcome]:
    opening = core.start_incident(workspace, reporter, title, **kwargs)
    return opening.incident_id, core.opened(opening.incident_id, channel, opening.channel_name())


def snapshot(core: Core, incident_id: int) -> Incident:
    """The incident as stored, with its roles and checklist loaded."""
    with core.db.transaction() as s:
        return s.scalar(select(Incident).where(Incident.id == incident_id).options(
            selectinload(Incident.assignments), selectinload(Incident.items)))


def item(core: Core, incident_id: int, key: str):
    return next(i for i in snapshot(core, incident_id).items if i.key == key)


def refused(call, *args, **kwargs) -> Refusal:
    with pytest.raises(Refusal) as exc:
        call(*args, **kwargs)
    return exc.value


def kinds(core: Core, incident_id: int) -> list[str]:
    return [e.kind for e in core.timeline(incident_id)]


def count_incidents(core: Core) -> int:
    with core.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Incident))


def message_texts(message: Message) -> list[str]:
    out = [message.text]
    for block in message.blocks:
        if hasattr(block, "text"):
            out.append(block.text)
    for element in message.buttons():
        out.append(getattr(element, "label", None) or element.placeholder)
    return out


def outcome_texts(outcome: Outcome) -> list[str]:
    out = [t for t in (outcome.private, outcome.topic, outcome.announcement) if t]
    out.extend(outcome.notices)
    for message in outcome.updates:
        out.extend(message_texts(message))
    return out


def block_text(message: Message) -> str:
    return "\n".join(b.text for b in message.blocks if hasattr(b, "text"))


# --- numbering, retries, abandoned starts ---------------------------------------------------------


def test_incidents_are_numbered_per_workspace(core):
    first = core.start_incident("T1", "U1", "First")
    second = core.start_incident("T1", "U1", "Second")
    other = core.start_incident("T2", "U9", "Elsewhere")
    assert (first.ref, second.ref, other.ref) == ("CRISIS-1", "CRISIS-2", "CRISIS-1")
    assert core.incident_by_ref("T1", "crisis-2") == second.incident_id
    assert core.incident_by_ref("T2", "CRISIS-1") == other.incident_id
    assert core.incident_by_ref("T2", "CRISIS-2") is None


def test_the_same_request_twice_starts_one_incident(core):
    first = core.start_incident(WS, "U1", "Charger overheats", request_key="req-1")
    again = core.start_incident(WS, "U1", "Charger overheats", request_key="req-1")
    assert again.incident_id == first.incident_id and again.ref == "CRISIS-1"
    assert count_incidents(core) == 1
    core.opened(first.incident_id, "C1", first.channel_name())
    # A retry that arrives after the channel exists points at that channel instead of opening another.
    late = core.start_incident(WS, "U1", "Charger overheats", request_key="req-1")
    assert (late.ref, late.channel_id) == ("CRISIS-1", "C1")
    assert core.start_incident(WS, "U1", "Another").ref == "CRISIS-2"


def test_abandoned_start_removes_the_incident_and_gives_the_number_back(core):
    open_incident(core)
    doomed = core.start_incident(WS, "U1", "No channel for this one")
    assert doomed.ref == "CRISIS-2"
    core.abandon_start(doomed.incident_id, "name_taken")
    assert core.incident_by_ref(WS, "CRISIS-2") is None
    assert count_incidents(core) == 1
    assert core.start_incident(WS, "U1", "Next try").ref == "CRISIS-2"


def test_abandon_does_nothing_once_the_channel_is_attached(core):
    incident_id, _ = open_incident(core)
    core.abandon_start(incident_id, "too late")
    assert core.incident_by_ref(WS, "CRISIS-1") == incident_id
    assert core.incident_in_channel(WS, "C1") == incident_id
    assert core.start_incident(WS, "U1", "Next").ref == "CRISIS-2"


# --- start ----------------------------------------------------------------------------------------


def test_start_makes_the_reporter_lead_and_copies_the_checklist(core, playbook):
    opening = core.start_incident(WS, "U1", "Charger overheats", crisis_type="defective-product", severity=2)
    incident = snapshot(core, opening.incident_id)
    assert incident.holders("lead") == ["U1"]
    assert (incident.title, incident.crisis_type, incident.severity, incident.phase) == (
        "Charger overheats", "defective-product", 2, "detected")
    assert incident.created_at == START
    expected = [(step.key, it.key, it.owner, it.title["en"]) for step, it in playbook.items()]
    assert [(i.step, i.key, i.owner_role, i.title) for i in incident.items] == expected
    assert len(expected) == 24 and all(i.state == "open" for i in incident.items)


def test_opened_invites_posts_the_standing_messages_and_announces(core, db, playbook, clock):
    # sev1 notifies a manager in this team's playbook.
    severities = [s.model_copy(update={"notify": ["UCEO"]}) if s.level == 1 else s for s in playbook.severities]
    core = Core(db, playbook.model_copy(update={"severities": severities}), clock=clock)
    opening = core.start_incident(WS, "U1", "Charger overheats", severity=1)
    out = core.opened(opening.incident_id, "C1", opening.channel_name())

    assert out.invite == ["U1", "UBOSS", "UCEO"]
    assert out.channel_id == "C1" and out.ref == "CRISIS-1"
    assert out.private == "CRISIS-1 is open in <#C1>. Claim your roles there."
    assert "CRISIS-1" in out.announcement and "<#C1>" in out.announcement
    assert "Charger overheats" in out.announcement and "<@U1>" in out.announcement
    assert "<@UCEO>" in out.announcement and "SEV1 · Critical" in out.announcement
    assert out.topic == "CRISIS-1 · SEV1 · Critical · Detected · Charger overheats"
    assert [m.key for m in out.updates] == ["header", "roster", *[f"checklist:{k}" for k in STEP_KEYS]]
    header = block_text(out.updates[0])
    assert "CRISIS-1: Charger overheats" in header and "*Lead:* <@U1>" in header
    # sev1: the team has 15 minutes to acknowledge internally, the first of its response-time clocks.
    assert "0 of 24 done" in header and "Next deadline: internal acknowledgement at 2026-11-22 02:15 UTC" in header
    assert "*Legal* (required): _open_" in block_text(out.updates[1])
    assess = out.updates[2]
    assert assess.blocks[0].text == "*Identify and assess*: 0/5"
    assert "Gather the facts" in block_text(assess)
    assert [b.label for b in assess.buttons()][:2] == ["Done", "Skip"]
    assert kinds(core, opening.incident_id) == ["incident.started", "role.assigned", "channel.created"]


def test_opened_twice_announces_once_and_low_severity_never(core):
    opening = core.start_incident(WS, "U1", "Charger overheats")
    first = core.opened(opening.incident_id, "C1", "c1")
    again = core.opened(opening.incident_id, "C1", "c1")
    assert first.announcement and again.announcement is None
    assert [m.key for m in again.updates] == [m.key for m in first.updates]
    assert kinds(core, opening.incident_id).count("channel.created") == 1
    _, low = open_incident(core, title="Typo in a post", channel="C2", severity=4)
    assert low.ref == "CRISIS-2" and low.announcement is None


# --- roles ----------------------------------------------------------------------------------------


def test_claim_a_free_role_and_a_held_one_is_refused(core):
    incident_id, _ = open_incident(core)  # sev3: acknowledge within 1 h, first statement within 4 h
    out = core.claim_role(incident_id, "U2", "legal")
    assert out.notices == ["<@U2> now holds *Legal*."]
    # The first person to join besides the reporter acknowledges the incident: the header moves on.
    assert [m.key for m in out.updates] == ["header", "roster"]
    assert "Next deadline: next status update at 2026-11-22 04:00 UTC" in block_text(out.updates[0])
    assert "*Legal*: <@U2>" in block_text(out.updates[1])
    assert snapshot(core, incident_id).holders("legal") == ["U2"]
    # Later claims leave the header alone: the acknowledgement is made once.
    out = core.claim_role(incident_id, "U3", "comms")
    assert [m.key for m in out.updates] == ["roster"]

    refusal = refused(core.claim_role, incident_id, "U3", "legal")
    assert refusal.text == "role_held"
    assert "<@U2>" in core.explain(refusal) and "Legal" in core.explain(refusal)
    assert refused(core.claim_role, incident_id, "U2", "Legal").text == "role_already_yours"
    assert refused(core.claim_role, incident_id, "U3", "astronaut").text == "unknown_role"
    assert snapshot(core, incident_id).holders("legal") == ["U2"]


def test_handover_ends_the_previous_assignment_and_keeps_history(core, clock):
    incident_id, _ = open_incident(core)
    core.claim_role(incident_id, "U2", "legal")
    handed_at = clock.advance(minutes=10)
    out = core.assign_role(incident_id, "U2", "U3", "legal")
    assert out.notices == ["<@U2> assigned *Legal* to <@U3> (handed over from <@U2>)."]
    assert out.invite == ["U3"]
    incident = snapshot(core, incident_id)
    assert incident.holders("legal") == ["U3"]
    history = [(a.user_id, a.started_at, a.ended_at) for a in incident.assignments if a.role == "legal"]
    assert history == [("U2", START, handed_at), ("U3", handed_at, None)]
    event = core.timeline(incident_id)[-1]
    assert (event.kind, event.actor_id, event.at) == ("role.assigned", "U2", handed_at)
    assert event.data == {"role": "legal", "user": "U3", "previous": "U2"}


def test_only_the_lead_or_the_holder_may_assign(core):
    incident_id, _ = open_incident(core)
    core.claim_role(incident_id, "U2", "legal")
    refusal = refused(core.assign_role, incident_id, "U4", "U4", "legal")
    assert refusal.text == "not_permitted_assign"
    assert "<@U1>" in core.explain(refusal)
    # A holder may hand over their own role, not someone else's.
    assert refused(core.assign_role, incident_id, "U2", "U5", "comms").text == "not_permitted_assign"
    assert snapshot(core, incident_id).holders("comms") == []
    # The lead staffs any role, also one somebody holds.
    core.assign_role(incident_id, "U1", "U5", "comms")
    core.assign_role(incident_id, "U1", "U6", "legal")
    incident = snapshot(core, incident_id)
    assert (incident.holders("comms"), incident.holders("legal")) == (["U5"], ["U6"])
    assert refused(core.assign_role, incident_id, "U1", "U6", "legal").text == "role_already_held_by"


def test_handing_over_the_lead_moves_decision_authority(core):
    incident_id, _ = open_incident(core)
    out = core.assign_role(incident_id, "U1", "U2", "lead")
    assert [m.key for m in out.updates] == ["header", "roster"]
    assert "*Lead:* <@U2>" in block_text(out.updates[0])
    assert refused(core.set_severity, incident_id, "U1", 2).text == "not_permitted_lead"
    core.set_severity(incident_id, "U2", 2)
    assert snapshot(core, incident_id).severity == 2


# --- checklist ------------------------------------------------------------------------------------


def test_owner_and_lead_tick_items_off(core, clock):
    incident_id, _ = open_incident(core)
    core.claim_role(incident_id, "U2", "social")
    done_at = clock.advance(minutes=3)
    out = core.set_item(incident_id, "U2", "secure-evidence", "item.done")
    state = item(core, incident_id, "secure-evidence")
    assert (state.state, state.changed_by, state.changed_at) == ("done", "U2", done_at)
    assert [m.key for m in out.updates] == ["header", "checklist:assess"]
    assert "1 of 24 done" in block_text(out.updates[0])
    assess = block_text(out.updates[1])
    assert "*Identify and assess*: 1/5" in assess
    assert "~Find the original post and screenshot key mentions~ · done by <@U2> at 02:03 UTC" in assess

    # The lead may tick an item of another role.
    core.set_item(incident_id, "U1", "measure-reach", "item.skip")
    state = item(core, incident_id, "measure-reach")
    assert (state.state, state.changed_by) == ("skipped", "U1")
    reopen_at = clock.advance(minutes=1)
    core.set_item(incident_id, "U2", "measure-reach", "item.reopen")
    state = item(core, incident_id, "measure-reach")
    assert (state.state, state.changed_by, state.changed_at) == ("open", "U2", reopen_at)
    assert [e.kind for e in core.timeline(incident_id) if e.kind.startswith("item.")] == [
        "item.done", "item.skipped", "item.reopened"]


def test_checklist_permissions(core):
    incident_id, _ = open_incident(core)
    core.claim_role(incident_id, "U2", "social")
    # Without any role: refused, even for an item whose owner role is free.
    for key in ("measure-reach", "check-legal"):
        refusal = refused(core.set_item, incident_id, "U3", key, "item.done")
        assert refusal.text == "not_permitted_item"
    assert "<@U1>" in core.explain(refusal) and "Legal" in core.explain(refusal)
    # A role holder may not take over an item whose owner role is held by someone else …
    assert refused(core.set_item, incident_id, "U2", "gather-facts", "item.done").text == "not_permitted_item"
    # … but may do one whose owner role is still free.
    core.set_item(incident_id, "U2", "check-legal", "item.done")
    assert item(core, incident_id, "check-legal").state == "done"
    assert item(core, incident_id, "measure-reach").state == "open"
    assert item(core, incident_id, "gather-facts").state == "open"
    assert refused(core.set_item, incident_id, "U1", "no-such-item", "item.done").text == "unknown_item"


def test_doing_an_item_twice_changes_nothing(core, clock):
    incident_id, _ = open_incident(core)
    core.set_item(incident_id, "U1", "gather-facts", "item.done")
    clock.advance(minutes=5)
    again = core.set_item(incident_id, "U1", "gather-facts", "item.done")
    assert again.private == "“Gather the facts: what happened, where, since when” is already done; nothing changed."
    assert again.notices == [] and again.updates == []
    assert item(core, incident_id, "gather-facts").changed_at == START
    assert kinds(core, incident_id).count("item.done") == 1


def test_a_later_step_advances_the_phase_but_never_back(core, clock):
    incident_id, _ = open_incident(core)
    at = clock.advance(minutes=7)
    out = core.set_item(incident_id, "U1", "pause-scheduled", "item.done")  # a "respond" item
    assert snapshot(core, incident_id).phase == "responding"
    assert out.notices == ["Phase: Detected → *Responding* (after <@U1> completed a step of it)."]
    assert out.topic and "Responding" in out.topic
    event = core.timeline(incident_id)[-1]
    assert (event.kind, event.at, event.actor_id) == ("phase.changed", at, "U1")
    assert event.data == {"previous": "detected", "phase": "responding", "auto": True}

    out = core.set_item(incident_id, "U1", "gather-facts", "item.done")  # an "assess" item
    assert snapshot(core, incident_id).phase == "responding"
    assert out.notices == [] and out.topic is None
    # Skipping a later step's item does not advance either.
    core.set_item(incident_id, "U1", "watch-mentions", "item.skip")
    assert snapshot(core, incident_id).phase == "responding"
    assert kinds(core, incident_id).count("phase.changed") == 1


# --- severity, phase ------------------------------------------------------------------------------


def test_severity_changes(core, clock):
    incident_id, _ = open_incident(core)  # default sev3
    refusal = refused(core.set_severity, incident_id, "U2", 1)
    assert refusal.text == "not_permitted_lead"
    assert core.explain(refusal) == "Only the lead (<@U1>) can change the severity."
    assert refused(core.set_severity, incident_id, "U1", 9).text == "unknown_severity"
    assert snapshot(core, incident_id).severity == 3

    raised_at = clock.advance(minutes=20)
    out = core.set_severity(incident_id, "U1", 1)
    assert out.notices == [":arrow_up: <@U1> changed the severity from SEV3 · Medium to *SEV1 · Critical*."]
    assert out.announcement.startswith(":arrow_up: *CRISIS-1: Charger overheats* was raised from SEV3")
    assert "<#C1>" in out.announcement
    assert "SEV1 · Critical" in out.topic
    assert "*Severity:* SEV1 · Critical" in block_text(out.updates[0])
    assert "*Marketing* (required)" in block_text(out.updates[1])

    out = core.set_severity(incident_id, "U1", 2)
    assert out.announcement is None
    assert out.notices[0].startswith(":arrow_down:")
    unchanged = core.set_severity(incident_id, "U1", 2)
    assert unchanged.private == "The severity already is SEV2 · High; nothing changed." and not unchanged.notices

    changes = [(e.at, e.actor_id, e.data) for e in core.timeline(incident_id) if e.kind == "severity.changed"]
    assert changes == [(raised_at, "U1", {"previous": 3, "severity": 1}),
                       (raised_at, "U1", {"previous": 1, "severity": 2})]
    assert snapshot(core, incident_id).severity == 2


def test_phase_is_set_by_the_lead(core):
    incident_id, _ = open_incident(core)
    out = core.set_phase(incident_id, "U1", "assessing")
    assert out.notices == ["Phase: Detected → *Assessing*, set by <@U1>."]
    assert snapshot(core, incident_id).phase == "assessing"
    assert refused(core.set_phase, incident_id, "U2", "responding").text == "not_permitted_lead"
    for bad in ("resolved", "party"):
        refusal = refused(core.set_phase, incident_id, "U1", bad)
        assert refusal.text == "unknown_phase"
        assert "assessing, responding, monitoring" in core.explain(refusal)
    assert core.set_phase(incident_id, "U1", "assessing").private.startswith("The incident already is in phase")
    assert snapshot(core, incident_id).phase == "assessing"
    event = core.timeline(incident_id)[-1]
    assert event.data == {"previous": "detected", "phase": "assessing", "auto": False}


# --- resolve --------------------------------------------------------------------------------------


def test_resolve(core, clock):
    incident_id, _ = open_incident(core)
    core.claim_role(incident_id, "U2", "legal")
    assert refused(core.resolve, incident_id, "U2").text == "not_permitted_lead"
    resolved_at = clock.advance(minutes=95)
    out = core.resolve(incident_id, "U1")
    incident = snapshot(core, incident_id)
    assert (incident.phase, incident.resolved_at) == ("resolved", resolved_at)
    # The debrief and the lessons are done after resolve (issue 9, item 17): not "left open" yet.
    assert out.notices == [(":white_check_mark: <@U1> resolved CRISIS-1 after 1 h 35 min. "
                            "22 checklist item(s) were left open."),
                           (":memo: Still to do before `/crisis close`: “Hold a debrief: what went well, what must "
                            "improve”, “Record lessons learned and update the plan”. Their buttons stay in the "
                            "checklist until the incident is closed.")]
    assert "after 1 h 35 min" in out.announcement and "<#C1>" in out.announcement
    assert "Resolved" in out.topic
    # The resolved room shows no buttons any more, but those of the debrief and the lessons.
    assert [(m.key, b.value) for m in out.updates for b in m.buttons()] == [
        ("checklist:learn", key) for key in ("hold-debrief", "hold-debrief", "record-lessons", "record-lessons")]
    assert not any(isinstance(b, Actions) for m in out.updates if m.key != "checklist:learn" for b in m.blocks)

    events = len(core.timeline(incident_id))
    for call, args in ((core.claim_role, ("U3", "comms")), (core.assign_role, ("U1", "U3", "legal")),
                       (core.set_item, ("U1", "gather-facts", "item.done")),
                       (core.set_severity, ("U1", 1)), (core.set_phase, ("U1", "monitoring"))):
        refusal = refused(call, incident_id, *args)
        assert refusal.text == "incident_resolved"
        assert core.explain(refusal) == "CRISIS-1 is resolved; it can no longer be changed."

    clock.advance(minutes=10)
    again = core.resolve(incident_id, "U1")
    assert again.private == "CRISIS-1 is already resolved; nothing changed."
    assert again.notices == [] and again.announcement is None
    assert snapshot(core, incident_id).resolved_at == resolved_at
    assert len(core.timeline(incident_id)) == events
    assert snapshot(core, incident_id).holders("legal") == ["U2"]


# --- the timeline ---------------------------------------------------------------------------------


def test_every_action_leaves_a_timeline_event(core, clock):
    t0 = START
    incident_id, _ = open_incident(core)
    t1 = clock.advance(minutes=5)
    core.claim_role(incident_id, "U2", "social")
    t2 = clock.advance(minutes=5)
    core.set_item(incident_id, "U2", "secure-evidence", "item.done")
    t3 = clock.advance(minutes=10)
    core.set_severity(incident_id, "U1", 2)
    t4 = clock.advance(minutes=10)
    core.set_phase(incident_id, "U1", "responding")
    t5 = clock.advance(minutes=10)
    core.assign_role(incident_id, "U1", "U3", "legal")
    t6 = clock.advance(minutes=1)
    core.set_item(incident_id, "U3", "check-legal", "item.skip")
    t7 = clock.advance(minutes=30)
    core.resolve(incident_id, "U1")

    got = [(e.kind, e.actor_id, e.at) for e in core.timeline(incident_id)]
    assert got == [
        ("incident.started", "U1", t0),
        ("role.assigned", "U1", t0),
        ("channel.created", "U1", t0),
        ("role.assigned", "U2", t1),
        ("deadline.met", "U2", t1),  # the first one to join besides the reporter acknowledges
        ("item.done", "U2", t2),
        ("phase.changed", "U2", t2),
        ("severity.changed", "U1", t3),
        ("phase.changed", "U1", t4),
        ("role.assigned", "U1", t5),
        ("item.skipped", "U3", t6),
        ("incident.resolved", "U1", t7),
    ]
    started = core.timeline(incident_id)[0].data
    assert started["title"] == "Charger overheats" and started["severity"] == 3
    met = core.timeline(incident_id)[4].data
    assert (met["kind"], met["by"]) == ("acknowledge", "role.assigned")
    # Read-only answers leave no trace.
    core.status(incident_id)
    core.roster(incident_id)
    assert len(core.timeline(incident_id)) == len(got)


def test_status_answers_where_we_stand(core, clock):
    incident_id, _ = open_incident(core)
    core.set_item(incident_id, "U1", "gather-facts", "item.done")
    clock.advance(minutes=42)
    text = core.status(incident_id)
    assert text.startswith("*CRISIS-1: Charger overheats*")
    assert "lead: <@U1>" in text and "running for 42 min" in text
    assert "Open checklist items (23):" in text and "… and 18 more" in text


# --- bad input ------------------------------------------------------------------------------------


BAD_STARTS = [
    ("", {}, "title_missing"),
    ("   \n ", {}, "title_missing"),
    ("x" * 151, {}, "title_too_long"),
    ("x" * 500, {}, "title_too_long"),
    ("Charger overheats", {"severity": 9}, "unknown_severity"),
    ("Charger overheats", {"severity": "sev9"}, "unknown_severity"),
    ("Charger overheats", {"crisis_type": "alien-invasion"}, "unknown_type"),
]


def test_bad_input_is_refused_and_uses_no_number(core):
    for title, kwargs, text in BAD_STARTS:
        refusal = refused(core.start_incident, WS, "U1", title, **kwargs)
        assert refusal.text == text, (title, kwargs)
        assert core.explain(refusal)  # a readable answer exists
    assert count_incidents(core) == 0
    assert core.start_incident(WS, "U1", "Real one").ref == "CRISIS-1"


def test_refusal_texts_for_bad_starts(core):
    assert core.explain(refused(core.start_incident, WS, "U1", "x" * 500)) == (
        "The title has 500 characters; keep it to 150. Put the details in the description.")
    assert "sev9" in core.explain(refused(core.parse, "start sev9 Charger overheats"))
    assert "sev1, sev2, sev3, sev4" in core.explain(refused(core.parse, "start sev9 Charger overheats"))
    assert "alien-invasion" in core.explain(refused(core.start_incident, WS, "U1", "T", crisis_type="alien-invasion"))
    # 150 characters is fine.
    assert core.start_incident(WS, "U1", "y" * 150).ref == "CRISIS-1"


def test_emoji_and_umlauts_are_kept(core):
    title = "Ladegeräte überhitzen 🔥 – Rückruf?"
    opening = core.start_incident(WS, "U1", title)
    out = core.opened(opening.incident_id, "C1", opening.channel_name())
    assert snapshot(core, opening.incident_id).title == title
    assert out.updates[0].blocks[0].text == f":rotating_light: *CRISIS-1: {title}*"
    assert out.topic.endswith(title)
    assert opening.channel_name() == "2026-11-22-crisis-1-ladegeraete-ueberhitzen-rueckruf"


# --- escaping -------------------------------------------------------------------------------------

NASTY = "<!channel> see <@U123> @everyone <https://evil|click>"


def assert_harmless(text: str) -> None:
    assert "<!" not in text, text
    assert "<@U123>" not in text, text
    assert "<http" not in text, text
    assert "@everyone" not in text.lower(), text


def test_user_text_cannot_ping_or_link(core, clock):
    opening = core.start_incident(WS, "U1", NASTY, description="@here <!here> look", severity=2)
    opened = core.opened(opening.incident_id, "C1", opening.channel_name())
    incident_id = opening.incident_id
    outcomes = [opened,
                core.claim_role(incident_id, "U2", "social"),
                core.set_item(incident_id, "U2", "pause-scheduled", "item.done"),
                core.set_severity(incident_id, "U1", 1)]
    clock.advance(minutes=30)
    outcomes.append(core.resolve(incident_id, "U1"))
    texts = [t for o in outcomes for t in outcome_texts(o)]
    texts += [core.status(incident_id)]
    texts += [t for m in core.standing_messages(incident_id) for t in message_texts(m)]
    for text in texts:
        assert_harmless(text)

    shown_title = "&lt;!channel&gt; see &lt;@U123&gt; @\u2060everyone &lt;https://evil|click&gt;"
    header = block_text(opened.updates[0])
    assert shown_title in header
    assert "@\u2060here &lt;!here&gt; look" in header  # the description
    assert shown_title in opened.topic and shown_title in opened.announcement
    assert shown_title in outcomes[3].announcement and shown_title in outcomes[4].announcement
    # Mentions the core makes itself stay real.
    assert "*Lead:* <@U1>" in header and "<@U1>" in opened.announcement and "<#C1>" in opened.announcement
    assert outcomes[1].notices == ["<@U2> now holds *Social-media manager*."]


def test_playbook_names_are_escaped_once(core, db, playbook, clock):
    severities = [s.model_copy(update={"name": {"en": "Critical & urgent", "de": "Kritisch & dringend"}})
                  if s.level == 1 else s for s in playbook.severities]
    core = Core(db, playbook.model_copy(update={"severities": severities}), clock=clock)
    _, out = open_incident(core, severity=1)
    assert "*Severity:* SEV1 · Critical &amp; urgent" in block_text(out.updates[0])
    assert "(SEV1 · Critical &amp; urgent)" in out.announcement
    assert "&amp;amp;" not in " ".join(outcome_texts(out))


# --- concurrency ----------------------------------------------------------------------------------


def test_two_people_claim_the_same_role_at_once(core, database_url, playbook, clock):
    incident_id, _ = open_incident(core)
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}

    def attempt(user: str) -> None:
        database = Database(database_url)  # each instance its own engine, as two processes would
        try:
            other = Core(database, playbook, clock=clock)
            barrier.wait()
            try:
                results[user] = other.claim_role(incident_id, user, "legal")
            except Refusal as refusal:
                results[user] = refusal
        except Exception as exc:  # reported by the assertions below
            results[user] = exc
        finally:
            database.dispose()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in ("U2", "U3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    winners = [u for u, r in results.items() if isinstance(r, Outcome)]
    losers = [u for u, r in results.items() if isinstance(r, Refusal)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert results[losers[0]].text == "role_held"
    assert f"<@{winners[0]}>" in core.explain(results[losers[0]])
    incident = snapshot(core, incident_id)
    assert incident.holders("legal") == winners
    assert [a.user_id for a in incident.assignments if a.role == "legal"] == winners
    assert [e.data["user"] for e in core.timeline(incident_id)
            if e.kind == "role.assigned" and e.data["role"] == "legal"] == winners
