"""The Slack app manifest declares what the bot uses, so an app made by pasting it works."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_declares_command_scopes_interactivity_and_events():
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/crisis"]
    assert commands[0]["should_escape"] is True  # users arrive as <@U…>, which `assign` parses
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # conversations.create/invite/setTopic, chat.postMessage/update, the command, @mentions
    assert {"commands", "chat:write", "chat:write.public", "channels:manage", "channels:join",
            "app_mentions:read", "files:write", "users:read", "channels:history", "groups:history"} <= scopes
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    for url in (commands[0]["url"], settings["interactivity"]["request_url"],
                settings["event_subscriptions"]["request_url"]):
        assert url.endswith("/slack/events")
    assert "app_mention" in settings["event_subscriptions"]["bot_events"]


def test_procfile_serves_slack_over_http_on_the_platform_port():
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert "web: crisisbot slack --port $PORT" in lines
