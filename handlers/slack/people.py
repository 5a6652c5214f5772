"""People named without a ping: the core's `<+user>` becomes "@Display Name" in plain text.

Slack has no silent mention: `<@U…>` always notifies. A broad channel (the announcement
channel's copy of the retrospective) therefore gets people's names as text, looked up with
users.info (scope users:read) and kept for a while; a user Slack does not show is named by id.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import Context, Header, Message, Section
from bot.texts import name_people, people_in

log = logging.getLogger(__name__)
KEEP = 3600.0  # seconds a display name is reused before it is looked up again


class People:
    def __init__(self, client: AsyncWebClient):
        self.client = client
        self._names: dict[str, tuple[float, str | None]] = {}

    async def names(self, users: set[str]) -> dict[str, str]:
        now, out = time.monotonic(), {}
        for user in sorted(users):
            cached = self._names.get(user)
            if cached is None or now - cached[0] > KEEP:
                cached = (now, await self._lookup(user))
                self._names[user] = cached
            if cached[1]:
                out[user] = cached[1]
        return out

    async def _lookup(self, user: str) -> str | None:
        try:
            profile = (await self.client.users_info(user=user))["user"]
        except Exception as exc:  # named by id instead; never a reason to lose the post
            log.info("no name for %s: %s", user, exc)
            return None
        return ((profile.get("profile") or {}).get("display_name") or profile.get("real_name")
                or profile.get("name") or None)

    async def named(self, message: Message) -> Message:
        """The message with every `<+user>` written as the person's name; unchanged if it names nobody."""
        texts = [message.text, *(b.text for b in message.blocks if isinstance(b, (Section, Context, Header)))]
        users = set().union(*(people_in(t) for t in texts))
        if not users:
            return message
        names = await self.names(users)
        blocks = tuple(dataclasses.replace(b, text=name_people(b.text, names))
                       if isinstance(b, (Section, Context, Header)) else b for b in message.blocks)
        return dataclasses.replace(message, text=name_people(message.text, names), blocks=blocks)
