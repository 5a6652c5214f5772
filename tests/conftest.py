"""Shared fixtures: a controlled clock, a fresh database (SQLite, and PostgreSQL when
CRISISBOT_TEST_DATABASE_URL is set), the core, and the core's playbook."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import hypothesis  # noqa: F401
import pytest
from slack_sdk import WebClient
from sqlalchemy import create_engine, text

from bot import playbook as playbooks
from bot.core import Core
from bot.db import Database, normalize_url
from bot.playbook import Team
from tests.fakes.slack_api import FakeSlack

# hypothesis is imported above, before any test starts a server thread: its plugin would otherwise
# import it at the end of a run while daemon threads still run, and CPython 3.11.7's compiler can
# then fail with "AST constructor recursion depth mismatch".
START = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


class FakeClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def _backends():
    yield pytest.param("sqlite", id="sqlite")
    marks = [] if os.environ.get("CRISISBOT_TEST_DATABASE_URL") else [
        pytest.mark.skip(reason="CRISISBOT_TEST_DATABASE_URL is not set")]
    yield pytest.param("postgresql", id="postgresql", marks=marks)


@pytest.fixture(params=list(_backends()))
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crisisbot.db'}"
    url = normalize_url(os.environ["CRISISBOT_TEST_DATABASE_URL"])
    engine = create_engine(url)
    with engine.begin() as conn:
        # Every test starts from an empty schema, so migrations run as on a fresh install.
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture
def fake():
    """The fake Slack Web API on loopback (tests/fakes/slack_api.py)."""
    f = FakeSlack().start()
    yield f
    f.stop()


@pytest.fixture
def client(fake):
    """A synchronous slack_sdk client of the fake."""
    return WebClient(base_url=fake.url, token="xoxb-test")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def playbook():
    """The shipped playbook, with an announcement channel and a standing member to exercise both."""
    default = playbooks.load()
    return default.model_copy(update={"team": Team(standing_members=["UBOSS"],
                                                   announcement_channel="crisis-announcements")})


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def core(db, playbook, clock) -> Core:
    return Core(db, playbook, language="en", clock=clock)
