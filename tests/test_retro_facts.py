"""The retrospective states why a deadline stopped (issue 9, item 16), on SQLite and PostgreSQL.

A real clock moves between two reads of it within one action: resolve stamps the incident and
then each deadline it stops, milliseconds apart. The retrospective must still say "stopped at
resolve", never "dropped by a severity change", and a severity change that drops a deadline
must say so, whatever the clock does.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bot.core import Core
from bot.models import Deadline
from bot.playbook import SeverityDeadlines
from tests.conftest import START, FakeClock
from tests.test_retrospective import section, summary_of


class TickingClock(FakeClock):
    """Like a real clock: every reading is a millisecond later than the one before."""

    def __call__(self):
        self.now += timedelta(milliseconds=1)
        return self.now


def _deadline_lines(core: Core, incident_id: int, heading: str = "*Deadlines*") -> list[str]:
    closed = core.close(incident_id, "U1")
    return section(summary_of(closed), heading).splitlines()[1:]


def test_deadlines_stopped_by_resolve_read_stopped_at_resolve_with_a_moving_clock(db, playbook):
    clock = TickingClock(START)
    core = Core(db, playbook, language="en", clock=clock)
    opening = core.start_incident("T1", "U1", "Charger overheats", severity=2)
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    clock.advance(minutes=10)
    core.resolve(iid, "U1")
    clock.advance(minutes=10)
    lines = _deadline_lines(core, iid)
    assert [line for line in lines if "severity" in line] == []
    assert sorted(line.split(":")[0] for line in lines if line.endswith("stopped at resolve")) == [
        "• first public statement, due 04", "• internal acknowledgement, due 02", "• next status update, due 03"]
    retro = core.retrospective(iid)
    assert [d.stopped_at_resolve for d in retro.deadlines if d.state == "cancelled"] == [True, True, True]


def test_a_deadline_dropped_by_a_severity_change_says_so_and_resolve_still_reads_right(db, playbook):
    """At SEV4 this playbook has no update deadline: raising nothing, lowering to 4 drops it."""
    rules = dict(playbook.deadlines.by_severity)
    rules[4] = SeverityDeadlines(acknowledge=rules[4].acknowledge, first_statement=rules[4].first_statement,
                                 review=rules[4].review)
    playbook = playbook.model_copy(update={"deadlines": playbook.deadlines.model_copy(
        update={"by_severity": rules})})
    clock = TickingClock(START)
    core = Core(db, playbook, language="de", clock=clock)
    opening = core.start_incident("T1", "U1", "Ladegerät überhitzt", severity=3)
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    clock.advance(minutes=5)
    core.set_severity(iid, "U1", 4)
    clock.advance(minutes=5)
    core.resolve(iid, "U1")
    retro = core.retrospective(iid)
    stopped = {d.kind: d.stopped_at_resolve for d in retro.deadlines if d.state == "cancelled"}
    assert stopped == {"update": False, "acknowledge": True, "first_statement": True}
    lines = _deadline_lines(core, iid, "*Fristen*")
    [dropped] = [line for line in lines if "Schweregrad" in line]
    assert dropped.startswith("• nächste Statusmeldung")


def test_rows_from_before_the_reason_was_recorded_read_right(db, playbook):
    """A deadline closed before 0009 has no reason: resolve closed it in someone's name, a severity change not."""
    clock = TickingClock(START)
    core = Core(db, playbook, language="en", clock=clock)
    opening = core.start_incident("T1", "U1", "Charger overheats", severity=2)
    iid = opening.incident_id
    core.opened(iid, "C1", opening.channel_name())
    core.resolve(iid, "U1")
    with db.transaction() as s:
        s.execute(update(Deadline).where(Deadline.incident_id == iid).values(close_reason=None))
    retro = core.retrospective(iid)
    assert [d.stopped_at_resolve for d in retro.deadlines if d.state == "cancelled"] == [True, True, True]
