"""A whole Slack bot process (HTTP), for the tests that run two of them against one database or
kill one with SIGKILL:

    python -m tests.fakes.slack_bot DATABASE_URL SLACK_API_URL [OPENING_LEASE_SECONDS]

It prints its port on stdout once it serves. The database must be upgraded already.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from aiohttp import web

from bot import playbook as playbooks
from bot.clock import system_clock
from bot.core import Core
from bot.db import Database
from bot.playbook import Team
from handlers.slack.app import SlackBot
from handlers.slack.server import web_app
from tests.fakes.slack_requests import SECRET


async def main(database_url: str, slack_url: str, lease: float) -> None:
    playbook = playbooks.load().model_copy(update={"team": Team(
        standing_members=["UBOSS"], announcement_channel="crisis-announcements")})
    core = Core(Database(database_url), playbook, clock=system_clock)
    core.opening_lease = timedelta(seconds=lease)
    runner = web.AppRunner(web_app(SlackBot(core, "xoxb-test", SECRET, base_url=slack_url)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 30.0))
