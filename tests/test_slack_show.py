"""`/crisis show` in Slack: the incident's standing messages again, privately (chat.postEphemeral to the
person who asked), as they are now and with buttons that work; outside an incident channel it says where
it works. Signed requests through the real Bolt app against the fake Slack."""

from __future__ import annotations

from tests.test_slack import button, room, texts  # noqa: F401 - room is the fixture


def test_show_posts_each_standing_message_privately_with_working_buttons(room):  # noqa: F811
    channel, _ = room.start()
    keys = [m.key for m in room.core.standing_messages(room.core.incident_in_channel("T1", channel))
            if m.place == "incident"]
    room.fake.clear_calls()

    reply, _ = room.send.command("show", user="U1", channel=channel)
    assert reply.status == 200
    shown = room.fake.wait_for("chat.postEphemeral", count=len(keys))
    room.settle()
    assert len(room.fake.calls_to("chat.postEphemeral")) == len(keys)
    assert all(c.params["user"] == "U1" and c.params["channel"] == channel for c in shown)
    assert room.fake.calls_to("chat.postMessage") == [] and room.fake.calls_to("chat.update") == []
    header, roster = shown[0].params, shown[1].params
    assert "CRISIS-1: Charger overheats" in texts(header)
    claim = button(roster, "role.claim", "legal")  # the same action as on the posted roster

    # A button of the private copy works like the one in the channel: the posted roster is edited in place.
    ts, _ = room.standing(channel, "roster")
    room.send.click(claim, "U1", channel)
    room.fake.wait_for("chat.update", predicate=lambda c: c.params["ts"] == ts)
    room.fake.wait_for("chat.postMessage", predicate=lambda c: "now holds" in c.params.get("text", ""))
    room.settle()
    legal = next(line for line in texts(room.messages(channel)[ts]).splitlines() if "Legal" in line)
    assert "<@U1>" in legal, legal


def test_show_outside_an_incident_channel_says_where_it_works(room):  # noqa: F811
    _, name = room.send.command("show", user="U2", channel=room.general)
    answer = room.private_answers(name)[0]
    assert answer.startswith("“/crisis show” works inside an incident channel.")
    room.settle()
    assert room.fake.calls_to("chat.postEphemeral") == []
