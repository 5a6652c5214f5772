"""Settings from the environment, read when the program starts (never at import)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field("sqlite:///crisisbot.db", alias="DATABASE_URL")
    playbook: str | None = Field(None, alias="CRISISBOT_PLAYBOOK")
    language: Literal["en", "de"] = Field("en", alias="CRISISBOT_LANGUAGE")
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_base_url: str | None = Field(None, alias="SLACK_API_BASE_URL")
    port: int = Field(3000, alias="PORT")
