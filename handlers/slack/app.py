"""The Bolt app: /crisis, buttons, the start modal. Ack first, then the work.

Each listener parses, acknowledges, calls one core action off the event loop and hands
the outcome to the Publisher. Refusals and failures are answered privately.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import commands
from bot.clocks import parse_next
from bot.closing import check_lesson
from bot.commands import Command
from bot.core import Core, Opening
from bot.drafting import FREE, MAX_REASON
from bot.errors import Refusal
from bot.export import filename as export_filename
from bot.export import to_markdown
from bot.statements import check_text as check_statement
from bot.texts import channel_link
from handlers.slack import drafts, inbound
from handlers.slack.blocks import modal_values, parse_action_id, start_modal, to_blocks
from handlers.slack.publish import LIST_PAGE, PLATFORM, Publisher, slack_error

log = logging.getLogger(__name__)
MAX_NAME_ATTEMPTS = 10
MAX_WHERE, MAX_LINK = 200, 500  # where a statement was published, and its link (as the core keeps them)
MAX_NAMED = 50  # people looked up by name for an export; the rest are shown by id
# conversations.list pages (of 999, Slack's largest) read to find an interrupted start's channel by its name
MAX_LIST_PAGES = 50
EXPORT_LEASE = 300  # seconds an export holds its incident's guard, should its instance die meanwhile
ACTIONS = (r"^(item\.(done|skip|reopen)|role\.(claim|assign)|stmt\.(approve|changes|reject|edit|publish)"
           r"|lesson\.(well|improve|action)|retro\.(export|archive)|repair\.posts)\|")


def make_client(token: str, base_url: str | None = None) -> AsyncWebClient:
    retry = [AsyncConnectionErrorRetryHandler(max_retry_count=2),
             AsyncRateLimitErrorRetryHandler(max_retry_count=2),
             AsyncServerErrorRetryHandler(max_retry_count=2)]
    kwargs = {"base_url": base_url} if base_url else {}
    return AsyncWebClient(token=token, retry_handlers=retry, **kwargs)


class SlackBot:
    def __init__(self, core: Core, token: str, signing_secret: str, base_url: str | None = None):
        self.core = core
        self.client = make_client(token, base_url)
        self.publisher = Publisher(core, self.client)
        self.recovery_interval = 60  # seconds between sweeps for interrupted starts (and at start)
        # Each listener is split: a quick `ack_*` that answers Slack at once, and a lazy `work_*`
        # that Bolt starts after the response is sent. With process_before_response the ack is
        # returned directly, without Bolt's 10 ms polling for it (see docs/speed.md).
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret,
                            process_before_response=True, raise_error_for_unhandled_request=False)
        self.app.use(inbound.edge(core))  # malformed shapes, ids and characters are refused first
        self.app.command("/crisis")(ack=self.ack_command, lazy=[self.work_command])
        self.app.action({"action_id": re.compile(ACTIONS)})(ack=_just_ack, lazy=[self.work_action])
        self.app.view("crisis.start")(ack=self.ack_start_submit, lazy=[self.work_start_submit])
        self.app.event("app_mention")(ack=_just_ack, lazy=[self.on_mention])
        self.app.view(drafts.PICK)(ack=self.ack_pick, lazy=[])
        self.app.view(drafts.FILL)(ack=self.ack_fill, lazy=[self.work_fill])
        self.app.view(drafts.PREVIEW)(ack=_just_ack, lazy=[self.work_preview])
        self.app.view(drafts.REASON)(ack=self.ack_reason, lazy=[self.work_reason])
        self.app.view(drafts.EDIT)(ack=self.ack_edit, lazy=[self.work_edit])
        self.app.view(drafts.PUBLISH)(ack=self.ack_publish, lazy=[self.work_publish])
        self.app.view(drafts.UPDATE)(ack=self.ack_update, lazy=[self.work_update])
        self.app.view(drafts.LESSON)(ack=self.ack_lesson, lazy=[self.work_lesson])
        self.app.error(self.on_error)

    # -- the private answer ----------------------------------------------------------------

    @asynccontextmanager
    async def answering(self, respond, what: str):
        """Refusals become a private answer; anything unexpected is logged and answered politely."""
        try:
            yield
        except Refusal as refusal:
            log.info("refused %s: %s %s", what, refusal.text, refusal.values)
            await self._tell(respond, self.core.explain(refusal))
        except Exception:  # the user gets a sentence, the log gets the traceback
            log.exception("failed: %s", what)
            await self._tell(respond, self.core.say("internal_error"))

    async def _tell(self, respond, text: str) -> None:
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:
            log.error("could not answer privately: %s", slack_error(exc))

    # -- /crisis ---------------------------------------------------------------------------

    def _parse(self, text: str) -> Command | Refusal:
        try:
            return self.core.parse(inbound.from_slack(text))
        except Refusal as refusal:
            return refusal

    async def ack_command(self, ack, body):
        """In-memory checks only: what can be answered without the database is answered here."""
        command = self._parse(body.get("text") or "")
        if isinstance(command, Refusal):
            log.info("refused /crisis %r from %s: %s", body.get("text"), body.get("user_id"), command.text)
            await ack(text=self.core.explain(command))
        elif command.name == "help":
            await ack(text=self.core.help_text())
        elif command.name == "start" and command.title:
            await ack(text=self.core.say("opening", title=command.title))
        else:
            await ack()

    async def work_command(self, body, respond, context):
        await _after_response()
        text = body.get("text") or ""
        command = self._parse(text)
        if isinstance(command, Refusal) or command.name == "help":
            return  # answered in the ack
        if command.name == "start" and not command.title:
            await self.open_start_modal(body, respond)
            return
        workspace, user, channel = _workspace(context, body), body.get("user_id"), body.get("channel_id")
        async with self.answering(respond, f"/crisis {text}"):
            if command.name == "start":
                await self.start(workspace, user, respond, command.title, command.crisis_type,
                                 command.severity, "", request_key=body.get("trigger_id"))
                return
            incident_id = await asyncio.to_thread(self.core.incident_in_channel, workspace, channel)
            if incident_id is None:
                raise Refusal("not_in_incident", command=command.name)
            await self.run(command, incident_id, user, respond, body, workspace)

    async def run(self, command: Command, incident_id: int, user: str, respond, body: dict,
                  workspace: str | None = None) -> None:
        core = self.core
        if command.name == "statements":
            await self._tell(respond, await asyncio.to_thread(core.statement_list, incident_id))
            return
        if command.name == "draft" and not (command.template == FREE and command.text):
            meta = {"incident": incident_id, "channel": body.get("channel_id"),
                    "response_url": body.get("response_url")}
            if command.template:
                form = await asyncio.to_thread(core.draft_form, incident_id, command.template)
                view = drafts.fill_view(core, form, meta)
            else:
                view = drafts.pick_view(core, await asyncio.to_thread(core.templates_for, incident_id), meta)
            await self.client.views_open(trigger_id=body["trigger_id"], view=view)
            return
        if command.name == "update":
            meta = {"incident": incident_id, "ephemeral_in": body.get("channel_id"),
                    "response_url": body.get("response_url")}
            await self.client.views_open(trigger_id=body["trigger_id"], view=drafts.update_view(core, meta))
            return
        if command.name == "status":  # with a Repair button when something did not get through
            message = await asyncio.to_thread(core.status_message, incident_id, "slack")
            await respond(text=message.text, blocks=to_blocks(message, incident_id),
                          response_type="ephemeral", replace_original=False)
            return
        if command.name == "export":
            await self.export(incident_id, body.get("channel_id"), respond, workspace, body.get("trigger_id"))
            return
        if command.name == "show":
            await self.show(incident_id, body)
            return
        if command.name == "roles":
            message = await asyncio.to_thread(core.roster, incident_id)
            await respond(text=message.text, blocks=to_blocks(message, incident_id),
                          response_type="ephemeral", replace_original=False)
            return
        outcome = await asyncio.to_thread(core.run, command, incident_id, user, body.get("trigger_id"))
        if outcome.private:
            await self._tell(respond, outcome.private)
        await self.publisher.apply(outcome, respond, user)

    async def show(self, incident_id: int, body: dict) -> None:
        """/crisis show: each standing message again as it is now, privately, with working buttons."""
        for message in await asyncio.to_thread(self.core.standing_messages, incident_id):
            if message.place == "incident":
                await self.client.chat_postEphemeral(channel=body.get("channel_id"), user=body.get("user_id"),
                                                     text=message.text, blocks=to_blocks(message, incident_id))

    # -- starting an incident ----------------------------------------------------------------

    async def start(self, workspace, user, respond, title, crisis_type, severity, description,
                    request_key) -> None:
        opening = await asyncio.to_thread(
            self.core.start_incident, workspace, user, title, crisis_type=crisis_type, severity=severity,
            description=description, request_key=request_key, platform=PLATFORM)
        opening = await self._await_opening(opening)
        if opening is None:
            return  # the request that held it could not make the channel, and said so
        if opening.state == "wait":
            await self._tell(respond, self.core.say("opening_in_progress", opening.language, ref=opening.ref))
        elif opening.state == "open":  # a retried request: the room exists, send them there
            await self._tell(respond, self.core.say("started_private", opening.language, ref=opening.ref,
                                                    channel=channel_link(opening.channel_id)))
        else:
            await self.complete_opening(opening, respond, create=True)

    async def _await_opening(self, opening: Opening) -> Opening | None:
        """Another request holds this opening (a retry, or a second instance): wait for it, bounded
        by its lease; once the lease runs out (its holder died) this request takes it over."""
        deadline = time.monotonic() + self.core.opening_lease.total_seconds() + 5
        while opening is not None and opening.state == "wait" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            opening = await asyncio.to_thread(self.core.retake_opening, opening.incident_id)
        return opening

    async def complete_opening(self, opening: Opening, respond, *, create: bool) -> str | None:
        """Make (or find) the channel, record it, post into it and end the opening; the channel's id.
        Without `create` an opening whose channel is not found is rolled back instead."""
        channel = (opening.channel_id, opening.recorded_name) if opening.channel_id else None
        if channel is None and opening.state == "recover":
            channel = await self.find_channel(opening)
        if channel is None and not create:
            await asyncio.to_thread(self.core.abandon_start, opening.incident_id, "interrupted before its channel")
            await self._tell(respond, self.core.say("start_rolled_back", opening.language, ref=opening.ref,
                                                    title=opening.title))
            return None
        if channel is None:
            channel = await self.create_channel(opening, respond)
            if channel is None:
                return None
            verdict = await asyncio.to_thread(self.core.may_record_channel, opening.incident_id, channel[0])
            if verdict != "record":  # this request's lease ran out meanwhile; the one that took over answers
                log.warning("%s: lost its opening while making %s (%s)", opening.ref, channel[1], verdict)
                if verdict == "lost":
                    await self._drop_channel(channel[0], opening.ref)
                return None
        outcome = await asyncio.to_thread(self.core.opened, opening.incident_id, channel[0], channel[1])
        async with self._holding_opening(opening.incident_id):
            told = await self.publisher.apply(outcome, actor=opening.reporter)  # failed invites told with the link
        await asyncio.to_thread(self.core.finish_opening, opening.incident_id)
        said = outcome.private if create else self.core.say(
            "start_recovered", opening.language, ref=opening.ref, title=opening.title,
            channel=channel_link(channel[0]))
        await self._tell(respond, "\n".join([said, *told]))
        return channel[0]

    @asynccontextmanager
    async def _holding_opening(self, incident_id: int):
        """Extend the opening's lease every third of it while the work inside runs."""
        async def beat() -> None:
            while True:
                await asyncio.sleep(self.core.opening_lease.total_seconds() / 3)
                await asyncio.to_thread(self.core.extend_opening, incident_id)

        heartbeat = asyncio.ensure_future(beat())
        try:
            yield
        finally:
            heartbeat.cancel()

    async def _drop_channel(self, channel: str, ref: str) -> None:
        """A channel made for an opening that another request completed: archived, so no empty room stays."""
        try:
            await self.client.conversations_archive(channel=channel)
        except Exception as exc:
            log.error("%s: could not archive the spare channel %s: %s", ref, channel, slack_error(exc))

    async def find_channel(self, opening: Opening) -> tuple[str, str] | None:
        """The channel an interrupted start may have made already: one of its names, with the bot in it,
        that no incident has recorded."""
        names = {opening.channel_name(attempt): attempt for attempt in range(1, MAX_NAME_ATTEMPTS + 1)}
        found, cursor = [], None
        try:
            for _ in range(MAX_LIST_PAGES):
                response = await self.client.conversations_list(
                    types="public_channel", exclude_archived=True, limit=LIST_PAGE,
                    **({"cursor": cursor} if cursor else {}))
                found += [c for c in response.get("channels") or [] if c.get("name") in names and c.get("is_member")]
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except Exception as exc:
            log.error("%s: could not look for its channel: %s", opening.ref, slack_error(exc))
            raise
        for channel in sorted(found, key=lambda c: names[c["name"]]):
            if await asyncio.to_thread(self.core.incident_in_channel, opening.workspace, channel["id"]) is None:
                log.info("%s: found its channel %s by name", opening.ref, channel["name"])
                return channel["id"], channel["name"]
        return None

    async def recover_openings(self) -> int:
        """At start and on a timer: finish the starts that were interrupted (their channel found by its
        name) or roll them back (the number given back), and tell the reporter privately."""
        recovered = 0
        try:
            for incident_id in await asyncio.to_thread(self.core.stale_openings, PLATFORM):
                opening = await asyncio.to_thread(self.core.retake_opening, incident_id)
                if opening is None or opening.state != "recover":
                    continue  # finished, or taken by another instance meanwhile
                try:
                    await self.complete_opening(opening, self._direct(opening.reporter), create=False)
                    recovered += 1
                except Exception:  # the lease runs out again and the next sweep retries
                    log.exception("%s: could not recover its interrupted start", opening.ref)
            await asyncio.to_thread(self.core.forget_requests)
        except Exception:
            log.exception("the sweep for interrupted starts failed")
        return recovered

    def _direct(self, user: str):
        """Tell one person privately in a direct message, for work that has no request to answer."""
        async def tell(text: str, **_ignored) -> None:
            await self.client.chat_postMessage(channel=user, text=text)
        return tell

    async def create_channel(self, opening: Opening, respond) -> tuple[str, str] | None:
        """Create the incident channel, or remove the incident so nothing half-made is left."""
        reason = "unknown"
        for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
            name = opening.channel_name(attempt)
            if not await asyncio.to_thread(self.core.hold_opening, opening.incident_id):
                log.warning("%s: its opening was taken over by another request; leaving it to that one", opening.ref)
                return None
            try:
                response = await self.client.conversations_create(name=name, is_private=False)
                return response["channel"]["id"], response["channel"]["name"]
            except SlackApiError as exc:
                reason = slack_error(exc)
                if reason != "name_taken":
                    break
            except Exception as exc:  # a network failure after the retries
                reason = slack_error(exc)
                break
        await asyncio.to_thread(self.core.abandon_start, opening.incident_id, reason)
        await self._tell(respond, self.core.say("channel_failed", reason=reason))
        return None

    async def open_start_modal(self, body, respond) -> None:
        meta = {"channel": body.get("channel_id"), "response_url": body.get("response_url")}
        async with self.answering(respond, "open start modal"):
            await self.client.views_open(trigger_id=body["trigger_id"], view=start_modal(self.core, meta))

    async def ack_start_submit(self, ack, view):
        await _ack_form(ack, self._check_start_fields(modal_values(view)))

    async def work_start_submit(self, body, view, context):
        await _after_response()
        fields = modal_values(view)
        if self._check_start_fields(fields):
            return  # the form showed its errors in the ack
        user = (body.get("user") or {}).get("id")
        workspace = _workspace(context, body)
        meta = _json(view.get("private_metadata"))
        reply = self._private_reply(user, meta)
        async with self.answering(reply, "start modal submit"):
            await self.start(workspace, user, reply, fields["title"], fields["type"],
                             int(fields["severity"]), fields["description"] or "", request_key=view.get("id"))

    def _check_start_fields(self, fields: dict) -> dict[str, str]:
        errors = {}
        checks = {
            "title": lambda: commands.check_title(fields["title"] or ""),
            "type": lambda: commands.parse_type(fields["type"] or "", self.core.playbook),
            "severity": lambda: commands.parse_severity(fields["severity"] or "", self.core.playbook),
            "description": lambda: commands.check_description(fields["description"]),
        }
        for block, check in checks.items():
            try:
                check()
            except Refusal as refusal:
                errors[block] = self.core.explain(refusal)[:150]
        return errors

    def _private_reply(self, user: str, meta: dict):
        """A modal has no response_url of its own: answer where /crisis was typed, else in a DM."""
        client, response_url = self.client, meta.get("response_url")

        async def reply(text: str, **_ignored) -> None:
            if meta.get("ephemeral_in"):
                try:
                    await client.chat_postEphemeral(channel=meta["ephemeral_in"], user=user, text=text)
                    return
                except SlackApiError as exc:
                    log.info("ephemeral answer failed (%s); trying elsewhere", slack_error(exc))
            if response_url:
                result = await AsyncWebhookClient(response_url).send(
                    text=text, response_type="ephemeral", replace_original=False)
                if result.status_code == 200:
                    return
            await client.chat_postMessage(channel=user, text=text)

        return reply

    # -- buttons -----------------------------------------------------------------------------

    async def work_action(self, body, action, respond, context=None):
        await _after_response()
        user = (body.get("user") or {}).get("id")
        async with self.answering(respond, f"action {action.get('action_id')}"):
            parsed = parse_action_id(action.get("action_id", ""))
            if parsed is None or not user:
                raise Refusal("malformed_request")
            name, incident_id, value = parsed
            core = self.core
            if name == "role.claim":
                outcome = await asyncio.to_thread(core.claim_role, incident_id, user, value)
            elif name == "role.assign":
                chosen = action.get("selected_user")
                if not chosen:
                    raise Refusal("malformed_request")
                outcome = await asyncio.to_thread(core.assign_role, incident_id, user, chosen, value)
            elif name.startswith("stmt."):
                outcome = await self.statement_button(name, incident_id, user, value, body)
                if outcome is None:
                    return
            elif name.startswith("lesson."):
                meta = {"incident": incident_id, "ephemeral_in": (body.get("channel") or {}).get("id")}
                view = drafts.lesson_view(core, name.removeprefix("lesson."), meta)
                await self.client.views_open(trigger_id=body["trigger_id"], view=view)
                return
            elif name == "retro.export":
                await self.export(incident_id, (body.get("channel") or {}).get("id"), respond,
                                  _workspace(context, body), body.get("trigger_id"))
                return
            elif name == "retro.archive":
                outcome = await asyncio.to_thread(core.archive, incident_id, user)
            elif name == "repair.posts":
                await self.publisher.repair(incident_id, user, respond)
                return
            else:
                outcome = await asyncio.to_thread(core.set_item, incident_id, user, value, name)
            if outcome.private:
                await self._tell(respond, outcome.private)
            await self.publisher.apply(outcome, respond, user)

    # -- statements ----------------------------------------------------------------------------

    async def statement_button(self, name: str, incident_id: int, user: str, value: str, body: dict):
        """Approve at once; the other buttons open their form (after checking the version is current)."""
        number, version = _statement_ref(value)
        core = self.core
        if name == "stmt.approve":
            return await asyncio.to_thread(core.decide, incident_id, user, number, version, "approve")
        current, text = await asyncio.to_thread(core.statement_text, incident_id, number)
        if current != version:
            raise Refusal("old_version", number=number, version=version, current=current)
        channel = (body.get("channel") or {}).get("id")
        meta = {"incident": incident_id, "value": value, "ephemeral_in": channel}
        if name in ("stmt.changes", "stmt.reject"):
            view = drafts.reason_view(core, name.removeprefix("stmt."), {**meta, "kind": name.removeprefix("stmt.")})
        elif name == "stmt.edit":
            view = drafts.edit_view(core, text, meta)
        else:
            view = drafts.publish_view(core, meta)
        await self.client.views_open(trigger_id=body["trigger_id"], view=view)
        return None

    async def ack_pick(self, ack, view):
        meta = _json(view.get("private_metadata"))
        template = drafts.selected(view, "template")
        try:
            form = await asyncio.to_thread(self.core.draft_form, int(meta["incident"]), template or "")
        except (Refusal, KeyError, ValueError, TypeError) as exc:
            text = self.core.explain(exc) if isinstance(exc, Refusal) else self.core.say("malformed_request")
            await ack(response_action="errors", errors={"template": text[:150]})
            return
        await ack(response_action="update", view=drafts.fill_view(self.core, form, meta))

    def _fill(self, view: dict) -> tuple[dict, dict, str | None, Refusal | None]:
        meta = _json(view.get("private_metadata"))
        values = drafts.field_values(view, "var_")
        try:
            text = self.core.preview(int(meta["incident"]), meta.get("template") or "", values)
        except Refusal as refusal:
            return meta, values, None, refusal
        except (KeyError, ValueError, TypeError):
            return meta, values, None, Refusal("malformed_request")
        return meta, values, text, None

    async def ack_fill(self, ack, view):
        meta, values, text, refusal = await asyncio.to_thread(self._fill, view)
        if refusal is not None:
            await ack(**drafts.form_error(self.core, view, f"var_{refusal.values.get('name')}",
                                          self.core.explain(refusal)))
            return
        preview_meta = {**meta, "values": values}
        if drafts.fits(preview_meta):
            await ack(response_action="update", view=drafts.preview_view(self.core, text, preview_meta))
        else:
            await ack()  # too large to carry to a preview: the posted draft shows the text

    async def work_fill(self, body, view):
        await _after_response()
        meta, values, _text, refusal = await asyncio.to_thread(self._fill, view)
        if refusal is None and not drafts.fits({**meta, "values": values}):
            await self._draft(body, meta, values)

    async def work_preview(self, body, view):
        await _after_response()
        meta = _json(view.get("private_metadata"))
        await self._draft(body, meta, meta.get("values") or {})

    async def _draft(self, body: dict, meta: dict, values: dict) -> None:
        user = (body.get("user") or {}).get("id")
        reply = self._private_reply(user, {**meta, "ephemeral_in": meta.get("channel")})
        async with self.answering(reply, "draft a statement"):
            outcome = await asyncio.to_thread(self.core.draft, int(meta["incident"]), user,
                                              meta.get("template") or "", values, _view_key(body.get("view")))
            if outcome.private:  # a repeated submission: told it was done once
                await reply(outcome.private)
            await self.publisher.apply(outcome, reply, user)

    def _reason_errors(self, view: dict) -> dict[str, str]:
        reason = (drafts.field_values(view).get("reason") or "").strip()
        if not reason:
            return {"reason": self.core.say("reason_missing")}
        if len(reason) > MAX_REASON:
            return {"reason": self.core.explain(Refusal("reason_too_long", length=len(reason), limit=MAX_REASON))}
        return {}

    async def ack_reason(self, ack, view):
        await _ack_form(ack, self._reason_errors(view))

    async def work_reason(self, body, view):
        await _after_response()
        if self._reason_errors(view):
            return  # the form showed the error in the ack
        meta = _json(view.get("private_metadata"))
        await self._statement_form(body, meta, lambda incident, user, number, version: self.core.decide(
            incident, user, number, version, meta.get("kind") or "", drafts.field_values(view).get("reason")))

    def _edit_errors(self, view: dict) -> dict[str, str]:
        try:
            check_statement(drafts.field_values(view).get("text") or "")
        except Refusal as refusal:
            return {"text": self.core.explain(refusal)}
        return {}

    async def ack_edit(self, ack, view):
        await _ack_form(ack, self._edit_errors(view))

    async def work_edit(self, body, view):
        await _after_response()
        if self._edit_errors(view):
            return  # the form showed the error in the ack
        meta = _json(view.get("private_metadata"))
        await self._statement_form(body, meta, lambda incident, user, number, version: self.core.edit(
            incident, user, number, version, drafts.field_values(view).get("text") or ""))

    def _publish_errors(self, view: dict) -> dict[str, str]:
        fields = drafts.field_values(view)
        where, link = (fields.get("where") or "").strip(), (fields.get("link") or "").strip()
        if not where:
            return {"where": self.core.say("published_where_missing")}
        if len(where) > MAX_WHERE:
            return {"where": self.core.say("published_too_long")}
        if len(link) > MAX_LINK:
            return {"link": self.core.say("published_too_long")}
        if link and not link.startswith(("https://", "http://")):
            return {"link": self.core.say("published_link_invalid")}
        return {}

    async def ack_publish(self, ack, view):
        await _ack_form(ack, self._publish_errors(view))

    async def work_publish(self, body, view):
        await _after_response()
        if self._publish_errors(view):
            return  # the form showed the error in the ack
        meta, fields = _json(view.get("private_metadata")), drafts.field_values(view)
        await self._statement_form(body, meta, lambda incident, user, number, version: self.core.publish(
            incident, user, number, version, fields.get("where") or "", fields.get("link")))

    def _update_errors(self, view: dict) -> dict[str, str]:
        fields = drafts.field_values(view)
        if not (fields.get("known") or "").strip() and not (fields.get("doing") or "").strip():
            return {"known": self.core.say("update_empty")[:150]}
        if (fields.get("next") or "").strip():
            try:
                parse_next(fields["next"], self.core.clock())
            except Refusal as refusal:
                return {"next": self.core.explain(refusal)[:150]}
        return {}

    async def ack_update(self, ack, view):
        await _ack_form(ack, self._update_errors(view))

    async def work_update(self, body, view):
        await _after_response()
        if self._update_errors(view):
            return  # the form showed the errors in the ack
        meta, fields = _json(view.get("private_metadata")), drafts.field_values(view)
        user = (body.get("user") or {}).get("id")
        reply = self._private_reply(user, meta)
        async with self.answering(reply, "status update"):
            outcome = await asyncio.to_thread(self.core.status_update, int(meta["incident"]), user,
                                              fields.get("known"), fields.get("doing"), fields.get("next"),
                                              _view_key(view))
            if outcome.private:  # a repeated submission: told it was done once
                await reply(outcome.private)
            await self.publisher.apply(outcome, reply, user)

    async def _statement_form(self, body: dict, meta: dict, action) -> None:
        user = (body.get("user") or {}).get("id")
        reply = self._private_reply(user, meta)
        async with self.answering(reply, "statement form"):
            try:
                incident = int(meta["incident"])
                number, version = _statement_ref(meta.get("value") or "")
            except (KeyError, ValueError, TypeError):
                raise Refusal("malformed_request") from None
            outcome = await asyncio.to_thread(action, incident, user, number, version)
            if outcome.private:
                await reply(outcome.private)
            await self.publisher.apply(outcome, reply, user)

    # -- the end: lessons and the export ----------------------------------------------------

    def _lesson_errors(self, view: dict) -> dict[str, str]:
        kind = _json(view.get("private_metadata")).get("kind") or ""
        try:
            check_lesson(kind, drafts.field_values(view).get("text"), drafts.selected_user(view, "owner"))
        except Refusal as refusal:
            return {"owner" if refusal.text == "lesson_owner_missing" else "text": self.core.explain(refusal)}
        return {}

    async def ack_lesson(self, ack, view):
        await _ack_form(ack, self._lesson_errors(view))

    async def work_lesson(self, body, view):
        await _after_response()
        if self._lesson_errors(view):
            return  # the form showed the errors in the ack
        meta = _json(view.get("private_metadata"))
        user = (body.get("user") or {}).get("id")
        reply = self._private_reply(user, meta)
        async with self.answering(reply, "lesson"):
            try:
                incident = int(meta["incident"])
            except (KeyError, ValueError, TypeError):
                raise Refusal("malformed_request") from None
            outcome = await asyncio.to_thread(
                self.core.add_lesson, incident, user, meta.get("kind") or "",
                drafts.field_values(view).get("text") or "", drafts.selected_user(view, "owner"), _view_key(view))
            if outcome.private:
                await reply(outcome.private)
            await self.publisher.apply(outcome, reply, user)

    async def export(self, incident_id: int, channel: str | None, respond, workspace: str | None = None,
                     request_key: str | None = None) -> None:
        """Upload the retrospective as Markdown where it was asked for, people named as Slack shows them.

        One export of an incident at a time, on any number of instances: the guard is a claim in the
        database, lifted when the upload ends (or its lease runs out, should this instance die)."""
        core, workspace = self.core, workspace or ""
        request = f"export-request:{request_key}" if request_key else None
        if request and (await asyncio.to_thread(core.claim_request, workspace, request)).state != "mine":
            log.info("export of incident %s: request %s was handled already", incident_id, request_key)
            return  # a retried delivery of one click: its first delivery answers
        guard = f"export:{incident_id}"
        claim = await asyncio.to_thread(core.claim_request, workspace, guard, timedelta(seconds=EXPORT_LEASE))
        if claim.state != "mine":  # a double click, here or on another instance: one file is enough
            await self._tell(respond, core.say("export_in_progress"))
            if request:
                await asyncio.to_thread(core.finish_request, workspace, request)
            return
        failure = "unknown"
        try:
            failure = await self._export(incident_id, channel)
        finally:
            await asyncio.to_thread(core.finish_request, workspace, guard, keep=False)
            if request:  # a failed export may be asked for again with the same request
                await asyncio.to_thread(core.finish_request, workspace, request, keep=failure is None)
        if failure:  # told after the guard is lifted, so trying again at once works
            await self._tell(respond, failure)

    async def _export(self, incident_id: int, channel: str | None) -> str | None:
        """Upload the file; what to tell the person if it failed."""
        core = self.core
        retro = await asyncio.to_thread(core.retrospective, incident_id)
        names = await self._names({p.user for p in retro.participants} | {x.owner for x in retro.lessons if x.owner})
        text = await asyncio.to_thread(to_markdown, retro, core.playbook, names)  # ~1 s at 20,000 events
        try:
            await self.client.files_upload_v2(
                channel=channel, content=text.encode(), filename=export_filename(retro, "md"),
                title=_plain_text(core.say("export_title", retro.language, ref=retro.ref, title=retro.title)),
                initial_comment=core.say("export_comment", retro.language, ref=retro.ref))
        except Exception as exc:
            log.error("%s: export upload failed: %s", retro.ref, slack_error(exc))
            return core.say("export_failed", retro.language, reason=slack_error(exc))
        return None

    async def _names(self, users: set[str]) -> dict[str, str]:
        """Display names for the export; a user Slack does not show is named by id."""
        names = {}
        for user in sorted(users)[:MAX_NAMED]:
            try:
                profile = (await self.client.users_info(user=user))["user"]
            except Exception as exc:
                log.info("no name for %s: %s", user, slack_error(exc))
                continue
            shown = ((profile.get("profile") or {}).get("display_name") or profile.get("real_name")
                     or profile.get("name"))
            if shown:
                names[user] = shown
        return names

    # -- events and errors -------------------------------------------------------------------

    async def on_mention(self, body, event, client):
        # Slack delivers an event again (X-Slack-Retry-Num, the same event_id) when the first delivery
        # was not acknowledged in time; it may or may not have been handled. The claim answers it once.
        workspace, key = body.get("team_id") or "", f"event:{body.get('event_id')}"
        if body.get("event_id"):
            claim = await asyncio.to_thread(self.core.claim_request, workspace, key)
            if claim.state != "mine":
                log.info("event %s was answered already (retry %s)", body.get("event_id"), claim.state)
                return
        try:
            await client.chat_postEphemeral(channel=event["channel"], user=event["user"], text=self.core.help_text())
        except Exception as exc:
            log.warning("could not answer a mention: %s", slack_error(exc))
        if body.get("event_id"):
            await asyncio.to_thread(self.core.finish_request, workspace, key)

    async def on_error(self, error, body):
        """Bolt would answer 500; Slack gets a private sentence for a command, else a plain 400."""
        log.error("unhandled error for %s: %r", (body or {}).get("type"), error)
        if isinstance(body, dict) and "command" in body:
            return BoltResponse(status=200, body=json.dumps({"response_type": "ephemeral",
                                                             "text": self.core.say("internal_error")}),
                                headers={"content-type": "application/json;charset=utf-8"})
        return BoltResponse(status=400, body="bad request")


# Set by the HTTP server for each request; Bolt's lazy tasks inherit it from the request's context.
ACK_SENT: ContextVar[asyncio.Event | None] = ContextVar("ack_sent", default=None)


async def _after_response() -> None:
    """Bolt starts lazy work before the ack is written; wait until it is on the wire, so the
    work's database thread does not compete with the ack for the interpreter. (Socket Mode
    sets no event: its ack is already sent over the socket.)"""
    sent = ACK_SENT.get()
    if sent is not None:
        try:
            await asyncio.wait_for(sent.wait(), timeout=3)
        except TimeoutError:
            log.warning("the ack was not confirmed as sent within 3 s; working anyway")


def _view_key(view) -> str | None:
    """The idempotency key of a form submission: the view's id and hash (a new hash after every update
    of the view), the same for a double submit or a retried delivery."""
    if not isinstance(view, dict) or not view.get("id"):
        return None
    return f"view:{view['id']}:{view.get('hash') or ''}"


def _workspace(context, body: dict) -> str | None:
    """The workspace the app is installed in. In a Slack Connect channel the payload's team is the
    person's own workspace; Bolt's authorization (auth.test, or the installation) knows ours."""
    installed = (context or {}).get("authorize_result") or {}
    return (installed.get("team_id") or (context or {}).get("team_id") or body.get("team_id")
            or (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id"))


def _plain_text(text: str) -> str:
    """A text for a field Slack shows as typed (a file's title): no chat escaping."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _statement_ref(value: str) -> tuple[int, int]:
    """Button values name a statement and its version: "3.2" is statement 3, version 2."""
    number, _, version = (value or "").partition(".")
    if not (number.isdigit() and version.isdigit()):
        raise Refusal("malformed_request")
    return int(number), int(version)


async def _ack_form(ack, errors: dict[str, str]) -> None:
    """Close a submitted form, or keep it open with an error under each field that needs one."""
    if errors:
        log.info("form refused: %s", ", ".join(errors))
        await ack(response_action="errors", errors={block: text[:150] for block, text in errors.items()})
    else:
        await ack()


async def _just_ack(ack) -> None:
    await ack()


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
