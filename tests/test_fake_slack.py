"""Tests of the fake Slack Web API, driven through the real slack_sdk clients."""

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack, validate_blocks


def error_of(call, **kwargs):
    with pytest.raises(SlackApiError) as exc:
        call(**kwargs)
    return exc.value.response["error"]


def button(text="Go", action_id="go", **extra):
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        **extra,
    }


def section(text="hi", **extra):
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def post(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# -- auth and plumbing --------------------------------------------------------


def test_auth_test(fake, client):
    resp = client.auth_test()
    assert (resp["user_id"], resp["team_id"], resp["bot_id"]) == ("UBOT", "T1", "B1")
    assert fake.url.startswith("http://127.0.0.1:") and fake.url.endswith("/api/")
    assert fake.calls_to("auth.test")[0].ok


def test_auth_required(fake):
    assert error_of(WebClient(base_url=fake.url).auth_test) == "not_authed"
    assert error_of(WebClient(base_url=fake.url, token="xoxp-user").auth_test) == "invalid_auth"
    # A token in the body instead of the header is accepted and not recorded as a param.
    _, body = post(fake.url + "auth.test", {"token": "xoxb-test"})
    assert body["ok"] and "token" not in fake.calls[-1].params


def test_unknown_method(client):
    assert error_of(client.api_call, api_method="files.upload") == "unknown_method"


def test_form_encoded_blocks_are_parsed(fake, client):
    cid = fake.add_channel("general")
    blocks = [section("form")]
    # params= goes out form-encoded, so blocks arrive as a JSON string the fake must parse.
    client.api_call(
        "chat.postMessage", params={"channel": cid, "text": "t", "blocks": json.dumps(blocks)}
    )
    client.chat_postMessage(
        channel=cid, text="t", blocks=blocks
    )  # slack_sdk sends this one as JSON
    assert [c.params["blocks"] for c in fake.calls_to("chat.postMessage")] == [blocks, blocks]


def test_async_client_get_requests(fake):
    fake.add_user("U1", real_name="Ada", tz="Europe/Paris")

    async def run():
        async_client = AsyncWebClient(base_url=fake.url, token="xoxb-test")
        return await async_client.users_info(user="U1")  # sent as GET with a query string

    user = asyncio.run(run())["user"]
    assert (user["id"], user["real_name"], user["tz"]) == ("U1", "Ada", "Europe/Paris")


# -- conversations -------------------------------------------------------------


def test_conversations_create(fake, client):
    channel = client.conversations_create(name="inc-42_acme", is_private=True)["channel"]
    assert (
        channel["id"].startswith("C") and channel["name"] == "inc-42_acme" and channel["is_private"]
    )
    assert fake.channels[channel["id"]].members == {"UBOT"}
    assert error_of(client.conversations_create, name="inc-42_acme") == "name_taken"


@pytest.mark.parametrize(
    "name, error",
    [
        ("", "invalid_name_required"),
        ("a" * 81, "invalid_name_maxlength"),
        ("Inc-1", "invalid_name_specials"),
        ("inc 1", "invalid_name_specials"),
        ("inc.1", "invalid_name_specials"),
    ],
)
def test_conversations_create_invalid_names(client, name, error):
    assert error_of(client.conversations_create, name=name) == error


def test_conversations_create_accepts_80_chars(client):
    assert client.conversations_create(name="a" * 80)["ok"]


def test_conversations_invite(fake, client):
    cid = client.conversations_create(name="inc-1")["channel"]["id"]
    fake.add_user("U1"), fake.add_user("U2")
    assert client.conversations_invite(channel=cid, users=["U1"])["ok"]
    assert error_of(client.conversations_invite, channel=cid, users="U1") == "already_in_channel"
    assert client.conversations_invite(channel=cid, users="U1,U2")["ok"]  # only some already in
    assert fake.channels[cid].members == {"UBOT", "U1", "U2"}
    assert error_of(client.conversations_invite, channel=cid, users="UNOPE") == "user_not_found"
    assert error_of(client.conversations_invite, channel=cid, users="UBOT") == "cant_invite_self"
    assert error_of(client.conversations_invite, channel="CNOPE", users="U1") == "channel_not_found"
    other = fake.add_channel("elsewhere", bot_is_member=False)
    assert error_of(client.conversations_invite, channel=other, users="U1") == "not_in_channel"


def test_conversations_join_info_archive(fake, client):
    cid = fake.add_channel("announcements", members=["U9"], bot_is_member=False)
    assert error_of(client.chat_postMessage, channel=cid, text="x") == "not_in_channel"
    assert client.conversations_info(channel=cid)["channel"]["is_member"] is False
    client.conversations_join(channel=cid)
    assert client.conversations_info(channel=cid)["channel"]["is_member"] is True
    client.conversations_archive(channel=cid)
    assert fake.channels[cid].is_archived
    assert error_of(client.conversations_archive, channel=cid) == "already_archived"
    assert error_of(client.chat_postMessage, channel=cid, text="x") == "is_archived"
    assert error_of(client.conversations_info, channel="CNOPE") == "channel_not_found"


def test_conversations_set_topic(fake, client):
    cid = client.conversations_create(name="inc-2")["channel"]["id"]
    assert (
        client.conversations_setTopic(channel=cid, topic="t" * 250)["channel"]["topic"]["value"]
        == "t" * 250
    )
    assert fake.channels[cid].topic == "t" * 250
    assert error_of(client.conversations_setTopic, channel=cid, topic="t" * 251) == "too_long"
    assert (
        error_of(client.conversations_setTopic, channel="CNOPE", topic="x") == "channel_not_found"
    )
    other = fake.add_channel("other", bot_is_member=False)
    assert error_of(client.conversations_setTopic, channel=other, topic="x") == "not_in_channel"


# -- chat ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_chat_post_message(fake, client):
    cid = fake.add_channel("war-room")
    first = client.chat_postMessage(channel=cid, text="one")
    second = client.chat_postMessage(channel="#war-room", text="two", blocks=[section("two")])
    assert second["channel"] == cid and float(second["ts"]) > float(first["ts"])
    assert fake.channels[cid].messages[second["ts"]] == {
        "text": "two",
        "blocks": [section("two")],
        "user": "UBOT",
        "thread_ts": None,
    }
    assert error_of(client.chat_postMessage, channel=cid) == "no_text"
    assert error_of(client.chat_postMessage, channel=cid, text="x" * 40001) == "msg_too_long"
    assert error_of(client.chat_postMessage, channel="#nope", text="x") == "channel_not_found"


def test_chat_post_message_to_user_opens_dm(fake, client):
    fake.add_user("U1")
    resp = client.chat_postMessage(channel="U1", text="you are the incident lead")
    dm = fake.channels[resp["channel"]]
    assert dm.is_im and dm.members == {"UBOT", "U1"} and resp["channel"].startswith("D")
    assert client.chat_postMessage(channel="U1", text="again")["channel"] == dm.id


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_chat_update(fake, client):
    cid = fake.add_channel("war-room")
    ts = client.chat_postMessage(channel=cid, text="old", blocks=[section("old")])["ts"]
    client.chat_update(channel=cid, ts=ts, text="new")
    assert fake.channels[cid].messages[ts]["text"] == "new"
    assert fake.channels[cid].messages[ts]["blocks"] == [section("old")]  # untouched when not sent
    client.chat_update(channel=cid, ts=ts, blocks=[section("newer")])
    assert fake.channels[cid].messages[ts]["blocks"] == [section("newer")]
    assert error_of(client.chat_update, channel=cid, ts="1.000000", text="x") == "message_not_found"
    assert (
        error_of(client.chat_update, channel=cid, ts=ts, blocks=[{"type": "nope"}])
        == "invalid_blocks"
    )


def test_chat_post_ephemeral(fake, client):
    cid = fake.add_channel("war-room", members=["U1"])
    fake.add_user("U2")
    assert client.chat_postEphemeral(channel=cid, user="U1", text="psst")["message_ts"]
    assert fake.channels[cid].messages == {}  # ephemeral messages are not part of the channel
    assert (
        error_of(client.chat_postEphemeral, channel=cid, user="U2", text="x")
        == "user_not_in_channel"
    )
    assert (
        error_of(client.chat_postEphemeral, channel="CNOPE", user="U1", text="x")
        == "channel_not_found"
    )
    other = fake.add_channel("other", members=["U1"], bot_is_member=False)
    assert (
        error_of(client.chat_postEphemeral, channel=other, user="U1", text="x") == "not_in_channel"
    )


# -- Block Kit validation --------------------------------------------------------

VALID_MESSAGE = [
    {"type": "header", "text": {"type": "plain_text", "text": "Incident", "emoji": True}},
    {
        "type": "section",
        "block_id": "s1",
        "fields": [{"type": "mrkdwn", "text": "*Sev*\n1"}],
        "accessory": {
            "type": "overflow",
            "action_id": "more",
            "options": [{"text": {"type": "plain_text", "text": "Close"}, "value": "close"}],
        },
    },
    {"type": "divider"},
    {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": "by <@U1>"},
            {"type": "image", "image_url": "https://x/y.png", "alt_text": "y"},
        ],
    },
    {
        "type": "actions",
        "elements": [
            button("Ack", "ack", style="primary", value="1"),
            button("Docs", "docs", url="https://x"),
            {
                "type": "users_select",
                "action_id": "assign",
                "placeholder": {"type": "plain_text", "text": "Assign"},
            },
            {"type": "conversations_select", "action_id": "chan"},
            {
                "type": "static_select",
                "action_id": "sev",
                "options": [{"text": {"type": "plain_text", "text": "SEV1"}, "value": "1"}],
            },
        ],
    },
    {"type": "image", "image_url": "https://x/chart.png", "alt_text": "chart"},
]


def test_valid_message_blocks(fake, client):
    cid = fake.add_channel("war-room")
    assert validate_blocks(VALID_MESSAGE) == []
    assert client.chat_postMessage(channel=cid, text="fallback", blocks=VALID_MESSAGE)["ok"]


@pytest.mark.parametrize(
    "blocks, pointer",
    [
        ([{"type": "actions", "elements": [button("x" * 76)]}], "/blocks/0/elements/0/text/text"),
        (
            [{"type": "actions", "elements": [button("A", "dup"), button("B", "dup")]}],
            "/blocks/0/elements/1/action_id",
        ),
        (
            [
                section(),
                {"type": "actions", "elements": [button("A", "dup")]},
                section(accessory=button("B", "dup")),
            ],
            "/blocks/2/accessory/action_id",
        ),
        ([section()] * 51, "/blocks"),
        ([{"type": "carousel"}], "/blocks/0/type"),
        (
            [
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "L"},
                    "element": {"type": "plain_text_input"},
                }
            ],
            "/blocks/0/type",
        ),  # input only in modals
        ([section(colour="red")], "/blocks/0/colour"),
        ([section(block_id="a"), section(block_id="a")], "/blocks/1/block_id"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "section"}], "/blocks/0"),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
            "/blocks/0/fields",
        ),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type"),
        (
            [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            "/blocks/0/text/text",
        ),
        ([{"type": "section", "text": {"type": "plain_text", "text": ""}}], "/blocks/0/text/text"),
        ([{"type": "context", "elements": []}], "/blocks/0/elements"),
        (
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            "/blocks/0/elements",
        ),
        (
            [{"type": "actions", "elements": [button(action_id=f"b{i}") for i in range(26)]}],
            "/blocks/0/elements",
        ),
        (
            [{"type": "actions", "elements": [button(style="warning")]}],
            "/blocks/0/elements/0/style",
        ),
        (
            [{"type": "actions", "elements": [button(value="v" * 2001)]}],
            "/blocks/0/elements/0/value",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [{"type": "button", "text": {"type": "mrkdwn", "text": "*b*"}}],
                }
            ],
            "/blocks/0/elements/0/text/type",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "static_select",
                            "options": [
                                {"text": {"type": "plain_text", "text": str(i)}, "value": str(i)}
                                for i in range(101)
                            ],
                        }
                    ],
                }
            ],
            "/blocks/0/elements/0/options",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "static_select",
                            "options": [
                                {"text": {"type": "plain_text", "text": "o"}, "value": "v" * 151}
                            ],
                        }
                    ],
                }
            ],
            "/blocks/0/elements/0/options/0/value",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "users_select",
                            "placeholder": {"type": "plain_text", "text": "p" * 151},
                        }
                    ],
                }
            ],
            "/blocks/0/elements/0/placeholder/text",
        ),
        (
            [{"type": "actions", "elements": [{"type": "plain_text_input"}]}],
            "/blocks/0/elements/0/type",
        ),
        ("not-a-list", None),
    ],
)
def test_invalid_message_blocks(fake, client, blocks, pointer):
    cid = fake.add_channel("war-room")
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=cid, text="fallback", blocks=blocks)
    if pointer is None:
        assert exc.value.response["error"] == "invalid_blocks_format"
        return
    assert exc.value.response["error"] == "invalid_blocks"
    messages = exc.value.response["response_metadata"]["messages"]
    assert any(
        m.startswith("[ERROR] ") and m.endswith(f"[json-pointer:{pointer}]") for m in messages
    ), messages


# -- views -----------------------------------------------------------------------


def modal(**extra):
    view = {
        "type": "modal",
        "callback_id": "declare",
        "title": {"type": "plain_text", "text": "Declare"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": "{}",
        "blocks": [
            {
                "type": "input",
                "block_id": "title",
                "label": {"type": "plain_text", "text": "Title"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "v",
                    "multiline": True,
                    "max_length": 3000,
                    "initial_value": "x",
                },
            },
            {
                "type": "input",
                "block_id": "lead",
                "optional": True,
                "label": {"type": "plain_text", "text": "Lead"},
                "element": {"type": "users_select", "action_id": "v2"},
            },
            {
                "type": "input",
                "block_id": "sev",
                "label": {"type": "plain_text", "text": "Severity"},
                "element": {
                    "type": "static_select",
                    "action_id": "v3",
                    "options": [{"text": {"type": "plain_text", "text": "SEV1"}, "value": "1"}],
                },
            },
        ],
    }
    view.update(extra)
    return view


def test_views_open(fake, client):
    view = client.views_open(trigger_id="123.456", view=modal())["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "declare"
    assert fake.views[view["id"]]["blocks"] == modal()["blocks"]
    assert fake.calls_to("views.open")[0].params["view"]["type"] == "modal"
    assert client.views_open(trigger_id="1", view=modal(blocks=[section()] * 100))["ok"]


@pytest.mark.parametrize(
    "view, pointer",
    [
        (modal(title={"type": "plain_text", "text": "t" * 25}), "/view/title/text"),
        (modal(submit={"type": "plain_text", "text": "s" * 25}), "/view/submit/text"),
        (modal(type="home"), "/view/type"),
        (modal(callback_id="c" * 256), "/view/callback_id"),
        (modal(private_metadata="m" * 3001), "/view/private_metadata"),
        (modal(blocks=[section()] * 101), "/view/blocks"),
        (modal(submit=None), "/view/submit/type"),
        ({k: v for k, v in modal().items() if k != "submit"}, "/view/submit"),
        (
            modal(
                blocks=[
                    {
                        "type": "input",
                        "label": {"type": "plain_text", "text": "L"},
                        "element": {"type": "plain_text_input", "max_length": 3001},
                    }
                ]
            ),
            "/view/blocks/0/element/max_length",
        ),
        (
            modal(
                blocks=[
                    {
                        "type": "input",
                        "label": {"type": "plain_text", "text": "L"},
                        "element": button(),
                    }
                ]
            ),
            "/view/blocks/0/element/type",
        ),
    ],
)
def test_views_open_invalid(client, view, pointer):
    with pytest.raises(SlackApiError) as exc:
        client.views_open(trigger_id="123.456", view=view)
    assert exc.value.response["error"] == "invalid_arguments"
    messages = exc.value.response["response_metadata"]["messages"]
    assert any(m.endswith(f"[json-pointer:{pointer}]") for m in messages), messages


def test_views_open_needs_trigger_id(client):
    assert (
        error_of(client.api_call, api_method="views.open", json={"view": modal()})
        == "invalid_arguments"
    )


# -- users -----------------------------------------------------------------------


def test_users_info(fake, client):
    fake.add_user("U1")
    user = client.users_info(user="U1")["user"]
    assert user["id"] == "U1" and user["name"] and user["real_name"] and user["tz"]
    assert error_of(client.users_info, user="UNOPE") == "user_not_found"


# -- files (files_upload_v2) -----------------------------------------------------

REPORT = "# Nachbericht\n\nÄrger über die Störung — Grüße an alle Beteiligten.\n"


def upload_v2(fake, **kwargs):
    """files_upload_v2 through the real async client: get URL, POST bytes, complete."""

    async def run():
        return await AsyncWebClient(base_url=fake.url, token="xoxb-test").files_upload_v2(**kwargs)

    return asyncio.run(run())


def post_bytes(url, data):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_files_upload_v2(fake):
    cid = fake.add_channel("inc-7")
    resp = upload_v2(
        fake,
        channel=cid,
        content=REPORT,
        filename="nachbericht.md",
        title="Nachbericht",
        initial_comment="Der Bericht",
    )
    size = len(REPORT.encode())
    file = resp["file"]
    assert file["id"].startswith("F") and (file["name"], file["title"]) == (
        "nachbericht.md",
        "Nachbericht",
    )
    assert (file["size"], file["channels"]) == (size, [cid])
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "files.upload_bytes",
        "files.completeUploadExternal",
    ]
    assert fake.calls[0].params["length"] == str(size)  # slack_sdk sends a query string
    assert fake.calls[1].params == {"file_id": file["id"], "length": size}
    assert fake.calls[1].response == {"status": 200, "body": f"OK - {size}"}
    assert fake.calls[2].params["files"] == [{"id": file["id"], "title": "Nachbericht"}]
    assert fake.uploaded_files(cid) == [
        {
            "channel": cid,
            "file_id": file["id"],
            "filename": "nachbericht.md",
            "title": "Nachbericht",
            "initial_comment": "Der Bericht",
            "thread_ts": None,
            "data": REPORT.encode(),
            "content": REPORT,
        }
    ]
    assert fake.uploaded_files() == fake.uploaded_files(cid)
    assert fake.uploaded_files("COTHER") == []
    # Once completed, the upload URL is gone.
    url = fake.calls[0].response["upload_url"]
    assert url.startswith(fake.url.removesuffix("api/") + "upload/")
    assert post_bytes(url, b"again") == (404, "file_not_found")


def test_files_upload_v2_in_thread_title_defaults_to_filename(fake):
    cid = fake.add_channel("inc-8")
    upload_v2(fake, channel=cid, content="x", filename="a.txt", thread_ts="1700000000.000100")
    shared = fake.uploaded_files(cid)[0]
    assert (shared["title"], shared["thread_ts"], shared["initial_comment"]) == (
        "a.txt",
        "1700000000.000100",
        None,
    )


@pytest.mark.parametrize(
    "where, error",
    [
        ("outside", "not_in_channel"),
        ("archived", "is_archived"),
        ("missing", "channel_not_found"),
    ],
)
def test_files_upload_v2_channel_errors(fake, where, error):
    cid = {
        "outside": lambda: fake.add_channel("elsewhere", bot_is_member=False),
        "archived": lambda: fake.add_channel("old"),
        "missing": lambda: "CNOPE",
    }[where]()
    if where == "archived":
        fake.channels[cid].is_archived = True
    with pytest.raises(SlackApiError) as exc:
        upload_v2(fake, channel=cid, content=REPORT, filename="r.md", initial_comment="c")
    assert exc.value.response["error"] == error
    assert fake.calls[-1].method == "files.completeUploadExternal"
    assert fake.uploaded_files() == []


def test_files_complete_upload_external_unknown_or_not_uploaded(fake, client):
    cid = fake.add_channel("inc-9")
    assert (
        error_of(
            client.files_completeUploadExternal,
            files=[{"id": "FNOPE", "title": "x"}],
            channel_id=cid,
        )
        == "file_not_found"
    )
    # A file id that was handed out but never got its bytes is not complete either.
    file_id = client.files_getUploadURLExternal(filename="r.md", length=3)["file_id"]
    assert (
        error_of(client.files_completeUploadExternal, files=[{"id": file_id}], channel_id=cid)
        == "file_not_found"
    )
    assert error_of(client.files_completeUploadExternal, files=[]) == "invalid_arguments"
    assert fake.uploaded_files() == []


def test_files_upload_url_errors(fake, client):
    assert post_bytes(fake.url.removesuffix("api/") + "upload/FNOPE", b"x") == (
        404,
        "file_not_found",
    )
    for params in (
        {"filename": "r.md"},
        {"length": 3},
        {"filename": "r.md", "length": 0},
        {"filename": "r.md", "length": "three"},
    ):
        assert (
            error_of(client.api_call, api_method="files.getUploadURLExternal", params=params)
            == "invalid_arguments"
        ), params


def test_files_upload_fail_next(fake):
    cid = fake.add_channel("inc-10")
    fake.fail_next("files.upload_bytes", "fatal_error")
    with pytest.raises(SlackRequestError, match="status: 500"):
        upload_v2(fake, channel=cid, content=REPORT, filename="r.md")
    fake.fail_next("files.completeUploadExternal", "ratelimited")
    with pytest.raises(SlackApiError) as exc:
        upload_v2(fake, channel=cid, content=REPORT, filename="r.md")
    assert exc.value.response["error"] == "ratelimited"
    assert [c.error for c in fake.calls_to("files.upload_bytes")] == ["fatal_error", None]
    assert fake.uploaded_files() == []
    # The sync client uploads the same way.
    WebClient(base_url=fake.url, token="xoxb-test").files_upload_v2(
        channel=cid, content=REPORT, filename="r.md"
    )
    assert [f["content"] for f in fake.uploaded_files(cid)] == [REPORT]


# -- test helpers: wait_for, fail_next, response_url ---------------------------


def test_wait_for_blocks_until_calls_arrive(fake, client):
    cid = fake.add_channel("war-room")

    def later():
        time.sleep(0.2)
        client.chat_postMessage(channel=cid, text="first")
        client.chat_postMessage(channel=cid, text="second")

    threading.Thread(target=later).start()
    calls = fake.wait_for("chat.postMessage", count=2)
    assert [c.params["text"] for c in calls] == ["first", "second"]
    assert fake.wait_for("chat.postMessage", predicate=lambda c: c.params["text"] == "second")[0].ok


def test_wait_for_timeout_lists_all_calls(fake, client):
    client.auth_test()
    with pytest.raises(AssertionError) as exc:
        fake.wait_for("chat.postMessage", timeout=0.2)
    assert "chat.postMessage" in str(exc.value) and "auth.test -> ok" in str(exc.value)


def test_fail_next(fake, client):
    cid = fake.add_channel("war-room")
    fake.fail_next("chat.postMessage", "fatal_error", times=2)
    assert error_of(client.chat_postMessage, channel=cid, text="x") == "fatal_error"
    assert error_of(client.chat_postMessage, channel=cid, text="x") == "fatal_error"
    assert client.chat_postMessage(channel=cid, text="x")["ok"]
    assert [c.error for c in fake.calls_to("chat.postMessage")] == [
        "fatal_error",
        "fatal_error",
        None,
    ]
    assert fake.channels[cid].messages and len(fake.channels[cid].messages) == 1


def test_fail_next_ratelimited_is_http_429(fake, client):
    fake.fail_next("auth.test", "ratelimited")
    with pytest.raises(SlackApiError) as exc:
        client.auth_test()
    assert exc.value.response.status_code == 429 and exc.value.response["error"] == "ratelimited"


def test_response_url(fake):
    url = fake.response_url("cmd1")
    assert url.startswith(fake.url.removesuffix("api/")) and url.endswith("/response/cmd1")
    status, body = post(
        url,
        {
            "text": "Declared",
            "response_type": "in_channel",
            "replace_original": True,
            "blocks": json.dumps([section()]),
        },
    )
    assert (status, body["ok"]) == (200, True)
    call = fake.wait_for("response_url")[0]
    assert call.url_name == "cmd1" and call.params["blocks"] == [section()]
    assert call.params["response_type"] == "in_channel"
    status, body = post(url, {"blocks": [{"type": "nope"}]})
    assert (status, body["error"]) == (400, "invalid_blocks")
    status, body = post(url, {})
    assert (status, body["error"]) == (400, "no_text")
    assert post(url, {"delete_original": True})[0] == 200


def test_stop_and_restart_are_independent():
    with FakeSlack() as a, FakeSlack() as b:
        assert a.url != b.url
        assert WebClient(base_url=b.url, token="xoxb-test").auth_test()["ok"]


def test_fake_bugs_are_recorded_not_500(fake):
    # An unhashable user id trips the fake itself; the caller still gets Slack-shaped JSON.
    status, body = post(fake.url + "users.info", {"token": "xoxb-test", "user": ["U1"]})
    assert (status, body["error"]) == (200, "fake_internal_error")
    assert fake.calls[-1].error == "fake_internal_error"
    fake.clear_calls()
    assert fake.calls == []
