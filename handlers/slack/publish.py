"""Carrying an Outcome into Slack: posts, in-place updates, invites, topic, announcements.

The state is already committed when this runs (DESIGN.md, invariant 3). slack_sdk's retry
handlers retry rate limits, connection and server errors; what still fails is recorded
with the incident (shown by /crisis status) and never undoes the change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import Core, Outcome
from bot.delivery import announcement_subject
from bot.messages import Message
from handlers.reminders import RetryLater, Undeliverable
from handlers.slack.blocks import to_blocks
from handlers.slack.people import People

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


CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,}")
# Channels per conversations.list page: Slack's largest (it is a Tier 2 method, about 20 calls a minute,
# so a large workspace is listed in few calls); a name not found is not looked up again for a while.
LIST_PAGE = 999
NOT_FOUND_FOR = 600.0  # seconds


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


async def _tell(respond, text: str) -> None:
    """Privately to the person who acted, where they acted (a response_url or the form's reply)."""
    if respond is None or not text:
        return
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception as exc:
        log.error("could not answer privately: %s", slack_error(exc))


class Publisher:
    def __init__(self, core: Core, client: AsyncWebClient, bot_user_id: str | None = None):
        self.core = core
        self.client = client
        self.bot_user_id = bot_user_id
        # Renders and posts of one incident run one at a time, so an older render can never
        # overwrite a newer one in the same message.
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.after_apply = lambda: None  # the reminder runner plans its next wake-up here
        self.people = People(client)     # people named without a ping (the announcement copy)
        # Channel names to ids, from conversations.list: ids never change, so the cache needs no expiry.
        self._channel_ids: dict[str, str] = {}
        self._not_found: dict[str, float] = {}  # name -> when a full listing did not find it (monotonic)

    async def apply(self, outcome: Outcome, respond=None, actor: str | None = None) -> list[str]:
        """Carry out an outcome. What failed and a person must know is recorded with the incident and
        told to `respond` (the person who acted) at the end; the texts are returned as well."""
        told: list[str] = []
        channel = outcome.channel_id
        if channel is None:
            return told
        if outcome.invite:
            await self.invite(channel, outcome.invite, outcome.incident_id, actor, told)
        # The changed messages first, so a notice that points at one ("please review") comes after it.
        if outcome.updates:
            await self.sync(outcome.incident_id, channel, outcome.updates, told)
        for notice in outcome.notices:
            await self._post(channel, notice, outcome.ref)
        if outcome.topic:
            await self.set_topic(outcome, actor, told)
        if outcome.announcement:
            await self.announce(outcome.announcement, outcome.ref, outcome.incident_id, actor, told)
        if outcome.archive:
            await self.archive(outcome)
        self.after_apply()
        if respond is not None and told:
            await _tell(respond, "\n".join(told))
        return told

    async def repair(self, incident_id: int, user: str, respond=None) -> None:
        """The Repair button of /crisis status: post what is missing, try again what failed, say how it went."""
        plan = await asyncio.to_thread(self.core.repair, incident_id, user, PLATFORM)
        outcome = plan.outcome
        told = await self.apply(outcome, actor=user)
        target = self.core.playbook.team.announcement_channel
        for problem_id, text in plan.announcements:
            if not target or not await asyncio.to_thread(self.core.claim_problem, problem_id):
                continue  # fixed meanwhile, or another click or instance is sending it now
            error = None
            try:
                await self._post_message(await self.channel_id(target), text)
            except Exception as exc:
                error = slack_error(exc)
                log.error("%s: announcement to %s failed again: %s", outcome.ref, target, error)
                told.append(await asyncio.to_thread(self.core.problem_told, incident_id, "announcement", error))
            await asyncio.to_thread(self.core.retry_done, problem_id, error)
        await _tell(respond, "\n".join([outcome.private or "", *told]).strip())

    async def _problem(self, told: list[str] | None, incident_id: int, kind: str, reason: str, *,
                       subject: str = "", payload: str | None = None, actor: str | None = None) -> None:
        await asyncio.to_thread(self.core.record_problem, incident_id, PLATFORM, kind, reason,
                                subject=subject, payload=payload, actor=actor)
        if told is not None:
            told.append(await asyncio.to_thread(self.core.problem_told, incident_id, kind, reason,
                                                subject=subject, actor=actor))

    async def set_topic(self, outcome: Outcome, actor: str | None = None, told: list[str] | None = None) -> None:
        try:
            await self.client.conversations_setTopic(channel=outcome.channel_id, topic=outcome.topic)
        except Exception as exc:  # recorded with the incident; the state stays committed
            log.error("%s: conversations_setTopic failed: %s", outcome.ref, slack_error(exc))
            await self._problem(told, outcome.incident_id, "topic", slack_error(exc), actor=actor)
            return
        await asyncio.to_thread(self.core.problem_fixed, outcome.incident_id, PLATFORM, "topic")

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
            # its own messages only: a reminder is never held up by repairing others
            await self.sync(outcome.incident_id, outcome.channel_id, outcome.updates, everything=False)
        if outcome.archive:  # a failure is reported in the channel; retrying on a timer would repeat it
            await self.archive(outcome)
        await self.post_alerts(alerts, outcome.ref, reminder_id=reminder_id, first_part=len(outcome.notices),
                               retry=retry)

    async def post_alerts(self, alerts: list, ref: str = "alert", *, reminder_id: int | None = None,
                          first_part: int = 0, retry: bool = False) -> None:
        """An escalation's copy in the alert channel, or what a failed reminder tells it instead; the
        channel is found by id like the announcement channel, so joining it works. A reminder's copy
        carries its metadata like its notice, so a re-delivery after a crash does not post it twice."""
        for part, alert in enumerate(alerts, start=first_part):
            metadata = None if reminder_id is None else {
                "event_type": REMINDER_EVENT, "event_payload": {"reminder_id": reminder_id, "part": part}}
            try:
                if alert.direct:  # a person: a user id opens the bot's direct message with them
                    await self.client.chat_postMessage(channel=alert.channel, text=alert.text)
                    continue
                target = await self.channel_id(alert.channel)
                if retry and metadata and await self._reminder_posted(target, reminder_id, part):
                    log.info("%s: the alert of reminder %s was posted by an earlier attempt", ref, reminder_id)
                    continue
                await self._post_message(target, alert.text, metadata=metadata)
            except Exception as exc:  # logged; the escalation itself went out or is marked failed
                log.error("%s: alert to %s failed: %s", ref, alert.channel, slack_error(exc))

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

    async def sync(self, incident_id: int, channel: str, messages: list[Message],
                   told: list[str] | None = None, everything: bool = True) -> None:
        """Post what was never posted or failed, edit what changed, leave the rest alone.

        The core decides what that is (bot.delivery.pending): the messages given and (with
        `everything`) every other standing message of the incident that is missing or stale,
        rendered from the newest state.
        """
        async with self._locks[incident_id]:
            todo = await asyncio.to_thread(self.core.to_send, incident_id, PLATFORM, messages,
                                           everything=everything)
            for item in todo:
                message, row = item.message, item.row
                fingerprint = message.fingerprint()
                blocks = to_blocks(await self.people.named(message), incident_id)  # names, never pings
                target = channel
                try:
                    if message.place == "announcement":
                        target = await self.channel_id(self.core.playbook.team.announcement_channel)
                    response = None
                    if not item.is_new:
                        try:
                            await self.client.chat_update(channel=row.channel_id, ts=row.message_ref,
                                                          text=message.text, blocks=blocks)
                            ref, target = row.message_ref, row.channel_id
                        except SlackApiError as exc:
                            if exc.response.get("error") != "message_not_found":
                                raise
                            # Someone deleted it in Slack: post it anew, so its buttons are back.
                            if not await self._claim(incident_id, message, channel, row.message_ref):
                                continue
                            response = await self._post_message(target, message.text, blocks)
                    else:
                        if not await self._claim(incident_id, message, channel, None):
                            continue  # posted meanwhile, or another instance is posting it now
                        response = await self._post_message(target, message.text, blocks)
                    if response is not None:
                        # Slack answers with the channel's id, which chat.update needs (a name will not do).
                        ref, target = response["ts"], response.get("channel") or target
                    await asyncio.to_thread(self.core.record_post, incident_id, PLATFORM, message.key,
                                            target, ref, fingerprint)
                except Exception as exc:  # any failure is recorded, never raised into the user's action
                    reason = slack_error(exc)
                    log.error("incident %s: could not post %s: %s", incident_id, message.key, reason)
                    await asyncio.to_thread(self.core.record_post, incident_id, PLATFORM, message.key,
                                            channel, None, None, reason)
                    if item.is_new and told is not None and message.key:
                        told.append(await asyncio.to_thread(self.core.problem_told, incident_id, "post",
                                                            reason, subject=message.key))

    async def _claim(self, incident_id: int, message: Message, channel: str, replacing: str | None) -> bool:
        if not message.key:
            return True  # posted once, never reconciled
        return await asyncio.to_thread(self.core.claim_post, incident_id, PLATFORM, message.key, channel, replacing)

    async def channel_id(self, channel: str) -> str:
        """A channel's id for a configured name (conversations.join takes only ids), cached.

        Looked up in the public channels (scope channels:read); a name not found there (a private
        channel, or an install without the scope) is handed on as #name, which chat.postMessage takes.
        """
        if CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.lstrip("#").lower()
        looked = self._not_found.get(name)
        if name not in self._channel_ids and (looked is None or time.monotonic() - looked > NOT_FOUND_FOR):
            cursor = None
            try:
                while True:
                    response = await self.client.conversations_list(
                        types="public_channel", exclude_archived=True, limit=LIST_PAGE,
                        **({"cursor": cursor} if cursor else {}))
                    for found in response.get("channels") or []:
                        self._channel_ids[found["name"]] = found["id"]
                    cursor = (response.get("response_metadata") or {}).get("next_cursor")
                    if name in self._channel_ids or not cursor:
                        break
                if name not in self._channel_ids:
                    log.warning("#%s is not a public channel; posting to it by name", name)
                    self._not_found[name] = time.monotonic()
            except Exception as exc:
                log.warning("could not look up the id of #%s: %s", name, slack_error(exc))
        return self._channel_ids.get(name) or "#" + name

    async def _post_message(self, channel: str, text: str, blocks: list | None = None,
                            metadata: dict | None = None) -> dict:
        extra = {"metadata": metadata} if metadata else {}
        try:
            return await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, **extra)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error == "channel_not_found":  # deleted since it was looked up: look it up afresh next time
                self._channel_ids = {n: i for n, i in self._channel_ids.items() if i != channel}
            if error != "not_in_channel" or not CHANNEL_ID.fullmatch(channel):
                raise
            # A public announcement channel the bot was never added to: join it once (by id), then post.
            await self.client.conversations_join(channel=channel)
            return await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, **extra)

    async def invite(self, channel: str, users: list[str], incident_id: int | None = None,
                     actor: str | None = None, told: list[str] | None = None) -> None:
        for user in dict.fromkeys(users):
            if not user or user == self.bot_user_id:
                continue
            try:
                await self.client.conversations_invite(channel=channel, users=user)
            except SlackApiError as exc:
                if exc.response.get("error") != "already_in_channel":
                    log.warning("could not invite %s to %s: %s", user, channel, slack_error(exc))
                    if incident_id is not None:
                        await self._problem(told, incident_id, "invite", slack_error(exc), subject=user,
                                            actor=actor)
                    continue
            except Exception as exc:  # a network failure after the retries
                log.warning("could not invite %s to %s: %s", user, channel, slack_error(exc))
                if incident_id is not None:
                    await self._problem(told, incident_id, "invite", slack_error(exc), subject=user, actor=actor)
                continue
            if incident_id is not None:
                await asyncio.to_thread(self.core.problem_fixed, incident_id, PLATFORM, "invite", user)

    async def announce(self, text: str, ref: str, incident_id: int | None = None, actor: str | None = None,
                       told: list[str] | None = None) -> bool:
        target = self.core.playbook.team.announcement_channel
        if not target:
            return True
        try:
            await self._post_message(await self.channel_id(target), text)
            return True
        except Exception as exc:  # recorded with the incident; the state stays committed
            log.error("%s: announcement to %s failed: %s", ref, target, slack_error(exc))
            if incident_id is not None:
                await self._problem(told, incident_id, "announcement", slack_error(exc),
                                    subject=announcement_subject(text), payload=text, actor=actor)
            return False

    async def _post(self, channel: str, text: str, ref: str) -> None:
        await self._call("chat_postMessage", ref, channel=channel, text=text)

    async def _call(self, method: str, ref: str, **kwargs) -> dict | None:
        try:
            return (await getattr(self.client, method)(**kwargs)).data
        except Exception as exc:  # logged with the incident; the state stays committed
            log.error("%s: %s failed: %s", ref, method, slack_error(exc))
            return None
