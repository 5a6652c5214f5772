"""The fake Slack's conversations.list and conversations.join behave as Slack documents them."""

from __future__ import annotations

from tests.test_fake_slack import error_of


def test_conversations_join_takes_an_id_only(fake, client):
    press = fake.add_channel("press-room", bot_is_member=False)
    assert error_of(client.conversations_join, channel="#press-room") == "channel_not_found"
    assert error_of(client.conversations_join, channel="press-room") == "channel_not_found"
    assert client.conversations_join(channel=press)["channel"]["id"] == press
    assert "UBOT" in fake.channels[press].members


def test_conversations_list_pages_with_a_cursor(fake, client):
    ids = [fake.add_channel(f"team-{n:03d}", bot_is_member=n % 2 == 0) for n in range(7)]
    fake.add_channel("secret", is_private=True, bot_is_member=False)  # not listed: neither public nor ours
    archived = fake.add_channel("old")
    fake.channels[archived].is_archived = True

    seen, cursor, pages = [], None, 0
    while True:
        page = client.conversations_list(limit=3, exclude_archived=True, **({"cursor": cursor} if cursor else {}))
        seen += [c["id"] for c in page["channels"]]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == ids and pages == 3
    assert archived in [c["id"] for c in client.conversations_list()["channels"]]  # archived ones by default
    assert all(c["is_member"] == (n % 2 == 0) for n, c in enumerate(client.conversations_list()["channels"][:7]))


def test_conversations_list_refuses_what_slack_refuses(fake, client):
    assert error_of(client.conversations_list, limit=1001) == "invalid_limit"
    assert error_of(client.conversations_list, cursor="not-a-cursor") == "invalid_cursor"
    assert error_of(client.conversations_list, types="public_channel,rooms") == "invalid_types"


def test_fail_matching_fails_only_the_calls_it_matches(fake, client):
    a, b = fake.add_channel("a"), fake.add_channel("b")
    fake.fail_matching("chat.postMessage", "fatal_error", lambda p: p.get("channel") == b, times=1)
    assert client.chat_postMessage(channel=a, text="x")["ok"]
    assert error_of(client.chat_postMessage, channel=b, text="x") == "fatal_error"
    assert client.chat_postMessage(channel=b, text="x")["ok"]
