"""Settings from the environment, read when the program starts (never at import)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Each description is what `crisisbot --help` prints for the variable (handlers/cli.py).
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field("sqlite:///crisisbot.db", alias="DATABASE_URL", description=(
        "SQLAlchemy URL of the database (default: sqlite:///crisisbot.db in the current folder, "
        "which the console and `crisisbot slack` started in the same folder share)"))
    playbook: str | None = Field(None, alias="CRISISBOT_PLAYBOOK", description=(
        "path to the team's playbook YAML (default: the shipped playbook)"))
    language: Literal["en", "de"] = Field("en", alias="CRISISBOT_LANGUAGE", description=(
        "language of everything the bot says: en or de (default: en)"))
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN", description="the bot token, xoxb-…")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET",
                                             description="the Slack app's signing secret")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN", description=(
        "app-level token xapp-…, for --socket-mode only"))
    slack_api_base_url: str | None = Field(None, alias="SLACK_API_BASE_URL", description=(
        "where Web API calls go (default: Slack's; e.g. https://slack-gov.com/api/)"))
    port: int = Field(3000, alias="PORT", description="HTTP port when --port is not given (default: 3000)")
