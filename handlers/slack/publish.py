"""Carrying an Outcome into Slack: posts, in-place updates, invites, topic, announcements.

The state is already committed when this runs (DESIGN.md, invariant 3). slack_sdk's retry
handlers retry rate limits, connection and server errors; what still fails is recorded
with the incident (shown by /crisis status) and never undoes the change.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import Core, Outcome
from bot.messages import Message
from handlers.reminders import RetryLater, Undeliverable
from handlers.slack.blocks import to_blocks

log = logging.getLogger(__name__)
PLATFORM = "slack"
# Reminder delivery. Its posts carry this metadata event with the reminder's id, so a re-delivery
# after a crash finds what was posted (conversations.history, include_all_metadata).
REMINDER_EVENT = "crisisbot_reminder"
REMINDER_TIMEOUT = 15  # seconds per call; a slower answer is a transient failure of that row
HISTORY_PAGES = 3      # of 200 messages: how far back a re-delivery looks for its earlier post
# A failed reminder post: 429, 5xx, timeouts and these codes are transient (that row waits); every
# other error of an answered call is permanent (is_archived, channel_not_found, not_in_channel when
# joining fails, account_inactive, invalid_auth, missing_scope, a refused message): the row fails.
TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                       "request_timeout"})


def _by_name(channel: str) -> str:
    """Slack takes a channel by id, or by name when it starts with #."""
    return channel if re.fullmatch(r"[CG][A-Z0-9]{6,}", channel) else "#" + channel.lstrip("#")


def delivery_error(exc: SlackApiError) -> Exception:
    """A failed reminder post as the runner needs it: this row never (Undeliverable) or later (RetryLater)."""
    error = str(exc.response.get("error") or "")
    status = exc.response.status_code or 200
    if status == 429 or error == "ratelimited":
        try:
            after = timedelta(seconds=max(1, int(exc.response.headers.get("Retry-After", "1"))))
        except (TypeError, ValueError):
            after = None
        return RetryLater("ratelimited", after)
    if status >= 500 or error in TRANSIENT or not error:
        return RetryLater(error or f"HTTP {status}")
    return Undeliverable(error)


def slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc)
    return type(exc).__name__


class Publisher:
    def __init__(self, core: Core, client: AsyncWebClient, bot_user_id: str | None = None):
        self.core = core
        self.client = client
        self.bot_user_id = bot_user_id
        # Renders and posts of one incident run one at a time, so an older render can never
        # overwrite a newer one in the same message.
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.after_apply = lambda: None  # the reminder runner plans its next wake-up here

    async def apply(self, outcome: Outcome) -> None:
        channel = outcome.channel_id
        if channel is None:
            return
        if outcome.invite:
            await self.invite(channel, outcome.invite)
        # The changed messages first, so a notice that points at one ("please review") comes after it.
        if outcome.updates:
            await self.sync(outcome.incident_id, channel, outcome.updates)
        for notice in outcome.notices:
            await self._post(channel, notice, outcome.ref)
        if outcome.topic:
            await self._call("conversations_setTopic", outcome.ref, channel=channel, topic=outcome.topic)
        if outcome.announcement:
            await self.announce(outcome.announcement, outcome.ref)
        if outcome.archive:
            await self.archive(outcome)
        self.after_apply()

    async def archive(self, outcome: Outcome) -> bool:
        """Archive the incident channel; if Slack refuses, the core reopens it and the channel hears why."""
        try:
            await self.client.conversations_archive(channel=outcome.channel_id)
            return True
        except Exception as exc:
            reason = slack_error(exc)
            if reason == "already_archived":
                return True
            log.error("%s: could not archive %s: %s", outcome.ref, outcome.channel_id, reason)
            reopened = await asyncio.to_thread(self.core.archive_failed, outcome.incident_id, reason)
            await self.apply(reopened)
            return False

    @property
    def reminder_client(self) -> AsyncWebClient:
        """The client reminders are posted with: no retries inside a call. A rate limit's Retry-After
        slept inside the call would hold the lease and every other row behind it, and a retry after a
        timeout could post twice; the runner retries that one row instead, from the database."""
        if getattr(self, "_reminder_client", None) is None:
            self._reminder_client = AsyncWebClient(token=self.client.token, base_url=self.client.base_url,
                                                   timeout=REMINDER_TIMEOUT, retry_handlers=[])
        return self._reminder_client

    async def deliver_reminder(self, outcome: Outcome, alerts: list, *, reminder_id: int | None = None,
                               retry: bool = False) -> None:
        """A reminder or escalation: the notice must reach the channel. Raises Undeliverable when it
        never can, RetryLater when not now; on a re-delivery (`retry`) a notice already there is kept."""
        for part, notice in enumerate(outcome.notices):
            if retry and reminder_id is not None and await self._reminder_posted(
                    outcome.channel_id, reminder_id, part):
                log.info("%s: reminder %s was posted by an earlier attempt; not again", outcome.ref, reminder_id)
                continue
            metadata = None if reminder_id is None else {
                "event_type": REMINDER_EVENT, "event_payload": {"reminder_id": reminder_id, "part": part}}
            await self._post_reminder(outcome.channel_id, notice, metadata)
        if outcome.updates:
            await self.sync(outcome.incident_id, outcome.channel_id, outcome.updates)
        if outcome.archive:  # a failure is reported in the channel; retrying on a timer would repeat it
            await self.archive(outcome)
        for alert in alerts:
            await self._call("chat_postMessage", outcome.ref, channel=_by_name(alert.channel), text=alert.text)

    async def post_alerts(self, alerts: list) -> None:
        """What a failed reminder tells the alert channel instead (an escalation nobody could see)."""
        for alert in alerts:
            await self._call("chat_postMessage", "alert", channel=_by_name(alert.channel), text=alert.text)

    async def _post_reminder(self, channel: str, text: str, metadata: dict | None) -> None:
        client = self.reminder_client
        try:
            try:
                await client.chat_postMessage(channel=channel, text=text, metadata=metadata)
            except SlackApiError as exc:
                if exc.response.get("error") != "not_in_channel":
                    raise
                # Removed from a public channel: join again (a private one refuses, and the row fails).
                try:
                    await client.conversations_join(channel=channel)
                except SlackApiError as join:
                    log.error("could not rejoin %s: %s", channel, slack_error(join))
                    raise Undeliverable("not_in_channel") from join
                await client.chat_postMessage(channel=channel, text=text, metadata=metadata)
        except SlackApiError as exc:
            raise delivery_error(exc) from exc
        except (Undeliverable, RetryLater):
            raise
        except Exception as exc:  # a timeout, a dropped connection: the post may or may not be there
            raise RetryLater(type(exc).__name__) from exc

    async def _reminder_posted(self, channel: str, reminder_id: int, part: int) -> bool:
        """Is this reminder's notice among the channel's recent messages (an attempt that crashed)?"""
        cursor = None
        for _ in range(HISTORY_PAGES):
            try:
                response = await self.reminder_client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=200, **({"cursor": cursor} if cursor else {}))
            except SlackApiError as exc:
                error = delivery_error(exc)
                if isinstance(error, RetryLater):
                    raise error from exc
                # No history scope (an app made from an older manifest), or the bot was removed: the
                # post itself says what is wrong or goes out; rather twice than never.
                log.warning("could not read the history of %s: %s", channel, slack_error(exc))
                return False
            except Exception as exc:
                raise RetryLater(type(exc).__name__) from exc
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (metadata.get("event_type") == REMINDER_EVENT and str(payload.get("reminder_id")) == str(reminder_id)
                        and str(payload.get("part", 0)) == str(part)):
                    return True
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not response.get("has_more") or not cursor:
                return False
        return False

    async def sync(self, incident_id: int, channel: str, messages: list[Message]) -> None:
        """Post what was never posted, edit what changed, leave the rest alone."""
        async with self._locks[incident_id]:
            # Render from the newest state: a later action may have committed since this outcome.
            latest = {m.key: m for m in await asyncio.to_thread(self.core.standing_messages, incident_id)}
            messages = [latest.get(m.key, m) for m in messages]
            posted = await asyncio.to_thread(self.core.posted, incident_id, PLATFORM)
            for message in messages:
                row = posted.get(message.key)
                fingerprint = message.fingerprint()
                if row is not None and row.message_ref and row.fingerprint == fingerprint:
                    continue
                blocks = to_blocks(message, incident_id)
                target = channel
                if message.place == "announcement":
                    if not self.core.playbook.team.announcement_channel:
                        continue
                    target = _by_name(self.core.playbook.team.announcement_channel)
                try:
                    if row is not None and row.message_ref:
                        await self.client.chat_update(channel=row.channel_id, ts=row.message_ref,
                                                      text=message.text, blocks=blocks)
                        ref, target = row.message_ref, row.channel_id
                    else:
                        response = await self._post_message(target, message.text, blocks)
                        # Slack answers with the channel's id, which chat.update needs (a name will not do).
                        ref, target = response["ts"], response.get("channel") or target
                    await asyncio.to_thread(self.core.record_post, incident_id, PLATFORM, message.key,
                                            target, ref, fingerprint)
                except Exception as exc:  # any failure is recorded, never raised into the user's action
                    log.error("incident %s: could not post %s: %s", incident_id, message.key, slack_error(exc))
                    await asyncio.to_thread(self.core.record_post, incident_id, PLATFORM, message.key,
                                            channel, None, None, slack_error(exc))

    async def _post_message(self, channel: str, text: str, blocks: list | None = None) -> dict:
        try:
            return await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            if exc.response.get("error") != "not_in_channel":
                raise
            # A public announcement channel the bot was never added to: join it once, then post.
            await self.client.conversations_join(channel=channel)
            return await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)

    async def invite(self, channel: str, users: list[str]) -> None:
        for user in dict.fromkeys(users):
            if not user or user == self.bot_user_id:
                continue
            try:
                await self.client.conversations_invite(channel=channel, users=user)
            except SlackApiError as exc:
                if exc.response.get("error") != "already_in_channel":
                    log.warning("could not invite %s to %s: %s", user, channel, slack_error(exc))

    async def announce(self, text: str, ref: str) -> None:
        target = self.core.playbook.team.announcement_channel
        if not target:
            return
        try:
            await self._post_message(_by_name(target), text)
        except Exception as exc:  # logged with the incident; the state stays committed
            log.error("%s: announcement to %s failed: %s", ref, target, slack_error(exc))

    async def _post(self, channel: str, text: str, ref: str) -> None:
        await self._call("chat_postMessage", ref, channel=channel, text=text)

    async def _call(self, method: str, ref: str, **kwargs) -> dict | None:
        try:
            return (await getattr(self.client, method)(**kwargs)).data
        except Exception as exc:  # logged with the incident; the state stays committed
            log.error("%s: %s failed: %s", ref, method, slack_error(exc))
            return None
