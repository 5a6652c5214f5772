"""Claims of due reminders through the core, with the controlled clock, on SQLite and PostgreSQL:
a lease is honoured (issue 9, item 2) and a failed row waits alone (item 1)."""

from __future__ import annotations

from datetime import timedelta

from bot.clocks import LEASE, MAX_ATTEMPTS
from tests.test_clocks import ACK, at, missed, open_incident, remind, reminder_rows


def test_a_worker_whose_lease_ran_out_may_neither_fire_nor_confirm(core, clock):
    open_incident(core, severity=1)
    clock.now = at(minutes=5)
    [reminder] = core.claim_due("a")
    clock.advance(seconds=LEASE.total_seconds() + 1)  # a's post took longer than the lease; nobody else came
    assert core.fire(reminder, "a") is None
    assert core.extend_lease(reminder, "a") is False
    assert core.mark_sent(reminder, "a") is False
    assert reminder_rows(core)[reminder].state == "pending"  # for the next claim, which looks for a's post
    [again] = core.claim_due("b")
    assert again == reminder and core.delivery_attempt(reminder) == 2
    assert core.fire(reminder, "b")[0].notices == [remind(ACK, "02:15", "8 min", "<@U1>", late=True)]
    assert core.mark_sent(reminder, "a") is False  # a, back too late, cannot confirm b's claim
    assert core.mark_sent(reminder, "b") is True


def test_a_lease_extended_while_posting_keeps_the_row(core, clock):
    open_incident(core, severity=1)
    clock.now = at(minutes=5)
    [reminder] = core.claim_due("a")
    assert core.fire(reminder, "a") is not None
    for _ in range(5):  # a long post (rate limits, a slow Slack): the heartbeat extends the lease
        clock.advance(seconds=LEASE.total_seconds() / 2)
        assert core.extend_lease(reminder, "a") is True
        assert core.claim_due("b") == []
    assert core.extend_lease(reminder, "b") is False
    assert core.mark_sent(reminder, "a") is True


def test_a_row_that_failed_for_now_waits_alone_and_is_not_claimed_first_again(core, clock):
    open_incident(core, severity=1)
    second = open_incident(core, severity=1, channel="C2", title="Second")
    clock.now = at(minutes=5)
    first_reminder, second_reminder = core.claim_due("a")
    assert core.retry_later(first_reminder, "a", timedelta(seconds=40), "ratelimited") == []
    core.release(second_reminder)  # not yet sent either
    # The failed row is oldest, but waits for its own next attempt; the other is claimed at once.
    assert core.claim_due("b") == [second_reminder]
    assert core.next_due() == at(minutes=5, seconds=40)
    clock.now = at(minutes=5, seconds=40)
    assert core.claim_due("b") == [first_reminder]
    assert reminder_rows(core)[first_reminder].last_error == "ratelimited"
    assert second != 0


def test_a_row_that_keeps_failing_counts_as_failed_and_its_escalation_goes_to_the_alert_channel(core, clock):
    from bot.playbook import Escalation

    core.playbook = core.playbook.model_copy(update={"deadlines": core.playbook.deadlines.model_copy(
        update={"escalate": Escalation(roles=["lead"], channel="crisis-leadership")})})
    incident_id = open_incident(core, severity=1)
    clock.now = at(minutes=15)
    escalation = core.claim_due("a")[-1]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt > 1:
            clock.advance(seconds=10)
            assert core.claim_due("a") == [escalation]
        assert core.fire(escalation, "a")[0].notices == [missed(ACK, "02:15", "<@U1>", late=clock.now > at(minutes=16))]
        alerts = core.retry_later(escalation, "a", timedelta(seconds=10), "service_unavailable")
        assert (alerts != []) == (attempt == MAX_ATTEMPTS)
    [alert] = alerts
    assert alert.channel == "crisis-leadership"
    assert alert.text.startswith(":rotating_light: *CRISIS-1: Charger overheats* missed its internal acknowledgement")
    assert f"could not say so in <#C1> (service_unavailable ({MAX_ATTEMPTS}×))" in alert.text
    assert reminder_rows(core)[escalation].state == "failed"
    assert "could not be posted: service_unavailable" in core.status(incident_id)
    assert core.claim_due("a") == []


def test_a_failed_reminder_reads_as_a_sentence_in_the_export(core, clock):
    from bot.export import to_markdown

    incident_id = open_incident(core, severity=1)
    clock.now = at(minutes=15)
    escalation = core.claim_due("a")[-1]
    core.fire(escalation, "a")
    core.reminder_failed(escalation, "a", "is_archived")
    timeline = to_markdown(core.retrospective(incident_id), core.playbook, {}).split("\n## Timeline (", 1)[1]
    line = next(x for x in timeline.splitlines() if "is\\_archived" in x)  # Markdown-escaped
    assert line.endswith("· @crisisbot · could not post the escalation of the internal acknowledgement deadline: "
                         "is\\_archived")
    assert "reminder.failed" not in timeline and "escalate" not in line
