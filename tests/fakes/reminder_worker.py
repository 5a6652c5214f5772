"""A bot process that only sends reminders, for the test that runs two of them against one database.

    python -m tests.fakes.reminder_worker DATABASE_URL SLACK_API_URL SECONDS
"""

from __future__ import annotations

import asyncio
import sys

from bot import playbook as playbooks
from bot.core import Core
from bot.db import Database
from handlers.reminders import ReminderRunner
from handlers.slack.app import make_client
from handlers.slack.publish import Publisher


async def main(database_url: str, slack_url: str, seconds: float) -> None:
    core = Core(Database(database_url), playbooks.load())
    publisher = Publisher(core, make_client("xoxb-test", slack_url))
    runner = ReminderRunner(core, publisher.deliver_reminder, tick=0.5)
    runner.start()
    await asyncio.sleep(seconds)
    runner.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
