"""A bot process that only sends reminders, for the tests that run two of them against one database.

    python -m tests.fakes.reminder_worker DATABASE_URL SLACK_API_URL SECONDS [LEASE_SECONDS]

LEASE_SECONDS shortens the claim's lease (60 s in production) so a test can outlast it.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from bot import clocks
from bot import playbook as playbooks
from bot.core import Core
from bot.db import Database
from handlers.reminders import ReminderRunner
from handlers.slack.app import make_client
from handlers.slack.publish import Publisher


async def main(database_url: str, slack_url: str, seconds: float, lease: float | None = None) -> None:
    core = Core(Database(database_url), playbooks.load())
    if lease:
        clocks.LEASE = core.lease = timedelta(seconds=lease)
    publisher = Publisher(core, make_client("xoxb-test", slack_url))
    alert = {"alert": publisher.post_alerts} if hasattr(publisher, "post_alerts") else {}
    runner = ReminderRunner(core, publisher.deliver_reminder, tick=0.5, **alert)
    runner.start()
    await asyncio.sleep(seconds)
    runner.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else None))
