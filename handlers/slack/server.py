"""Serving the Bolt app: HTTP with aiohttp (POST /slack/events, GET /healthz) or Socket Mode."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from handlers.reminders import ReminderRunner
from handlers.slack.app import ACK_SENT, SlackBot

log = logging.getLogger(__name__)


def web_app(bot: SlackBot) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        sent = asyncio.Event()
        ACK_SENT.set(sent)
        if not _timestamp_readable(request):  # Bolt's verifier would fail on int() and answer 500
            sent.set()
            return web.Response(status=401, text="invalid request")
        try:
            bolt_request = await to_bolt_request(request)
            response = await to_aiohttp_response(await bot.app.async_dispatch(bolt_request))
        except Exception:  # Slack gets a plain 400, never a 500 with a traceback
            log.exception("could not handle a request to /slack/events")
            response = web.Response(status=400, text="bad request")
        try:
            # Send the ack now, then let the work that waits for it begin.
            await response.prepare(request)
            await response.write_eof()
        finally:
            sent.set()
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=1024 * 1024)
    app.add_routes([web.post("/slack/events", events), web.get("/healthz", healthz)])
    app.on_startup.append(lambda _app: _start_reminders(bot))
    app.on_cleanup.append(lambda _app: _stop_reminders(bot))
    return app


def _timestamp_readable(request: web.Request) -> bool:
    """A signed request carries its time as whole seconds; anything else cannot be verified."""
    stamp = request.headers.get("X-Slack-Request-Timestamp", "")
    return 0 < len(stamp) <= 12 and stamp.isascii() and stamp.isdigit()


async def _start_reminders(bot: SlackBot) -> None:
    runner = ReminderRunner(bot.core, bot.publisher.deliver_reminder, alert=bot.publisher.post_alerts)
    bot.publisher.after_apply = runner.poke
    bot.reminders = runner
    runner.start()
    # Starts interrupted by a crash are finished or rolled back now, and then on a timer.
    runner.scheduler.add_job(bot.recover_openings, "interval", seconds=bot.recovery_interval, id="openings",
                             next_run_time=datetime.now(UTC), coalesce=True, max_instances=1)


async def _stop_reminders(bot: SlackBot) -> None:
    if getattr(bot, "reminders", None):
        bot.reminders.stop()
        await bot.reminders.drain()


def serve_http(bot: SlackBot, port: int, host: str = "0.0.0.0") -> None:
    log.info("serving Slack on http://%s:%s/slack/events", host, port)
    web.run_app(web_app(bot), host=host, port=port, print=None)


async def serve_socket_mode(bot: SlackBot, app_token: str) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    await _start_reminders(bot)
    await AsyncSocketModeHandler(bot.app, app_token).start_async()
