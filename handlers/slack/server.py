"""Serving the Bolt app: HTTP with aiohttp (POST /slack/events, GET /healthz) or Socket Mode."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from handlers.reminders import ReminderRunner
from handlers.slack.app import ACK_SENT, SlackBot

log = logging.getLogger(__name__)


def web_app(bot: SlackBot) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        sent = asyncio.Event()
        ACK_SENT.set(sent)
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


async def _start_reminders(bot: SlackBot) -> None:
    runner = ReminderRunner(bot.core, bot.publisher.deliver_reminder, alert=bot.publisher.post_alerts)
    bot.publisher.after_apply = runner.poke
    bot.reminders = runner
    runner.start()


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
