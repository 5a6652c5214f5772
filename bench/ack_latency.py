"""Ack latency of our Slack app against a bare Bolt app, in one run, on loopback.

    python bench/ack_latency.py [--requests N] [--database-url URL] [--json PATH]

Slack gives an app 3 seconds to answer a slash command or a button click; what counts is the
time from sending the signed request until the HTTP response arrives. We compare, per request:

  bare /crisis, bare button  a Bolt AsyncApp whose listeners only `await ack()` (the floor);
  ours /crisis start         `/crisis start sev2 Title N`: acks, then opens a channel and posts;
  ours button click          item.done / item.reopen on the lead's `gather-facts` item.

Both apps use the same signing secret, the same fake Slack Web API (tests/fakes), the same
aiohttp routing and the same Bolt mode (process_before_response: the ack is returned before
the work starts), so the difference is what our listeners do around the ack. With
--stock-baseline the bare app runs in Bolt's default mode instead, which polls for the ack
every 10 ms. The requests are sent and timed by a separate client process.
This is a measurement, not a test: it exits 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes is not installed

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bench.shared import stats as figures
from bot import playbook as playbooks
from bot.core import Core
from bot.db import Database
from handlers.slack.app import SlackBot
from handlers.slack.server import web_app
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SECRET, ServedApp, SlackSender

TOKEN, LEAD, ITEM, WARMUP, TARGET = "xoxb-test", "U1", "gather-facts", 20, 1.25
SERIES = ("bare /crisis", "ours /crisis start", "bare button", "ours button click")
RATIOS = {"start": ("ours /crisis start", "bare /crisis"),
          "click": ("ours button click", "bare button")}


class HarnessError(Exception):
    """The bench could not measure (a wrong status, work that never finished): exit 1."""


def bare_web_app(fake_url: str, stock: bool = False) -> web.Application:
    """The baseline: the same Bolt setup and routing as ours, with listeners that only ack.

    Ours answers before running its work (process_before_response); so does the strict
    baseline. `stock` gives Bolt's default instead, which polls for the ack every 10 ms.
    """
    bolt = AsyncApp(client=AsyncWebClient(token=TOKEN, base_url=fake_url), signing_secret=SECRET,
                    process_before_response=not stock)

    @bolt.command("/crisis")
    async def command(ack):
        await ack()

    @bolt.action(re.compile(".*"))
    async def click(ack):
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.add_routes([web.post("/slack/events", events)])
    return app


# The timing client runs in a process of its own: in ours, the work after an ack runs in a
# worker thread, and a client sharing that interpreter would wait for its lock (up to the 5 ms
# switch interval) before it could read a response that had long arrived. Slack is remote, too.
CLIENT = r"""
import http.client, json, sys, time
conns = {}
for line in sys.stdin:
    job = json.loads(line)
    conn = conns.get(job["port"]) or conns.setdefault(
        job["port"], http.client.HTTPConnection("127.0.0.1", job["port"], timeout=30))
    began = time.perf_counter()
    conn.request("POST", "/slack/events", body=job["body"].encode(), headers=job["headers"])
    response = conn.getresponse()
    payload = response.read()
    ms = (time.perf_counter() - began) * 1000
    print(json.dumps({"ms": ms, "status": response.status, "payload": payload[:200].decode()}), flush=True)
"""


class TimingClient:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", CLIENT], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def post(self, port: int, body: str, headers: dict) -> tuple[float, int, str]:
        self.process.stdin.write(json.dumps({"port": port, "body": body, "headers": headers}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer["ms"], answer["status"], answer["payload"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


class Connection:
    """One keep-alive connection to an app (held by the client process), so TCP setup is never
    part of a sample."""

    def __init__(self, served: ServedApp, response_url, client: TimingClient):
        self.sender = SlackSender(served.url, response_url)
        self.port = served.port
        self.client = client

    def post(self, body: str) -> float:
        """Milliseconds from sending the signed request until its whole response has been read."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self.sender.sign(body)}
        elapsed, status, payload = self.client.post(self.port, body, headers)
        if status != 200:
            raise HarnessError(f"HTTP {status}: {payload!r}")
        return elapsed


def listener_running(served: ServedApp) -> bool:
    """Does a Bolt listener still run on the app's loop? Bolt runs the work after an ack either
    as run_ack_function_asynchronously or, for lazy listeners, as to_runnable_function;
    open_click_incident checks that we can still see one of them."""
    names = ("run_ack_function", "to_runnable_function")

    async def busy() -> bool:
        return any(name in getattr(t.get_coro(), "__qualname__", "")
                   for t in asyncio.all_tasks() for name in names)

    return asyncio.run_coroutine_threadsafe(busy(), served.loop).result(30)


def settle(served: ServedApp, timeout: float = 30.0) -> None:
    """Wait (untimed) until no Bolt listener task runs on the app's loop any more.

    Our listeners keep working after the ack (DB writes, Slack calls, record_post). Waiting
    for them keeps that work from piling up into the next samples; what overlaps with the
    ack of the *same* request is part of what we measure.
    """
    deadline = time.monotonic() + timeout
    while listener_running(served):
        if time.monotonic() > deadline:
            raise HarnessError(f"listener work still running after {timeout:.0f}s")
        time.sleep(0.002)


def find_button(blocks: list[dict], prefix: str) -> str | None:
    for block in blocks or []:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            action = element.get("action_id", "")
            if action.startswith(prefix + "|") and action.endswith("|" + ITEM):
                return action
    return None


class Bench:
    def __init__(self, core: Core, fake: FakeSlack, stock_baseline: bool = False):
        self.fake = fake
        self.general = fake.add_channel("general", members=[LEAD])
        self.ours = ServedApp(web_app(SlackBot(core, TOKEN, SECRET, base_url=fake.url))).start()
        self.bare = ServedApp(bare_web_app(fake.url, stock_baseline)).start()
        # The client keeps one warm socket per app.
        self.client = TimingClient()
        self.conns = {name: Connection(self.bare if name.startswith("bare") else self.ours,
                                       fake.response_url, self.client) for name in SERIES}
        self.starts = 0
        self.channel, self.ts, self.action = self.open_click_incident()

    def command(self, series: str) -> tuple[float, str]:
        self.starts += 1
        body, name = self.conns[series].sender.command_body(
            f"start sev2 Title {self.starts}", user=LEAD, channel=self.general)
        return self.conns[series].post(body), name

    def click(self, series: str, action: str) -> float:
        sender = self.conns[series].sender
        payload, _ = sender.click_payload(action, LEAD, self.channel, message_ts=self.ts)
        return self.conns[series].post(sender.interaction_body(payload))

    def open_click_incident(self) -> tuple[str, str, str]:
        """Start the incident whose checklist we click, and find the gather-facts button in it."""
        self.fake.clear_calls()
        _, name = self.command("ours /crisis start")
        # A start works for ~100 ms after its ack: if we can't see that, settle() can't either.
        if not listener_running(self.ours):
            raise HarnessError("cannot see Bolt's listener tasks; settle() would not wait")
        self.fake.wait_for("response_url", predicate=lambda c: c.url_name == name, timeout=30)
        settle(self.ours)
        for call in self.fake.calls_to("chat.postMessage"):
            action = find_button(call.params.get("blocks"), "item.done")
            if action:
                return call.response["channel"], call.response["ts"], action
        raise HarnessError(f"no item.done button for {ITEM} in the posted checklist")

    def round(self) -> dict[str, float]:
        """One sample of each series, in a fixed interleaved order, each starting from quiet."""
        self.fake.clear_calls()  # keeps wait_for's scans short over thousands of calls
        out = {"bare /crisis": self.command("bare /crisis")[0]}
        settle(self.bare)

        out["ours /crisis start"], name = self.command("ours /crisis start")
        # The private "CRISIS-n is open" answer is the last thing a start sends.
        self.fake.wait_for("response_url", predicate=lambda c: c.url_name == name, timeout=30)
        settle(self.ours)

        out["bare button"] = self.click("bare button", self.action)
        settle(self.bare)

        out["ours button click"] = self.click("ours button click", self.action)
        # The click must change the checklist (done <-> open); the next click uses the new button.
        update = self.fake.wait_for(
            "chat.update", predicate=lambda c: c.params.get("ts") == self.ts, timeout=30)[-1]
        blocks = update.response["message"]["blocks"]
        self.action = find_button(blocks, "item.done") or find_button(blocks, "item.reopen")
        if self.action is None:
            raise HarnessError("the updated checklist has neither a done nor a reopen button")
        settle(self.ours)
        return out

    def stop(self) -> None:
        self.client.close()
        self.ours.stop()
        self.bare.stop()


def summarize(samples: dict[str, list[float]]) -> dict:
    stats = {}
    for name, values in samples.items():
        stats[name] = figures(values, digits=3)
    ratios = {what: {q: round(stats[ours][q] / stats[bare][q], 3) for q in ("p50", "p99")}
              for what, (ours, bare) in RATIOS.items()}
    met = all(r["p99"] <= TARGET for r in ratios.values())
    return {"latency_ms": stats, "ratios": ratios, "target_p99_ratio": TARGET, "target_met": met}


def print_report(report: dict, backend: str) -> None:
    stats = report["latency_ms"]
    print(f"\nack latency in ms, {backend}, {os.cpu_count()} CPUs, "
          f"{WARMUP} warm-up rounds not counted")
    print(f"{'target':<20}{'n':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    for name, s in stats.items():
        figures = "".join(f"{s[q]:>8.2f}" for q in ("p50", "p90", "p99", "max"))
        print(f"{name:<20}{s['n']:>6}{figures}")
    print(f"\n{'ours / bare':<20}{'p50':>8}{'p99':>8}")
    for what, r in report["ratios"].items():
        print(f"{what:<20}{r['p50']:>7.2f}x{r['p99']:>7.2f}x")
    verdict = "MET" if report["target_met"] else "NOT met"
    print(f"\ntarget (ours within {TARGET}x of bare at p99, start and click): {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per series")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--stock-baseline", action="store_true",
                        help="compare with a bare app in Bolt's default mode (acks after 10 ms polls)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        db = Database(url)
        db.upgrade()
        fake = FakeSlack().start()
        fake.add_user(LEAD)
        bench = None
        try:
            bench = Bench(Core(db, playbooks.load()), fake, args.stock_baseline)
            for _ in range(WARMUP):  # lazy imports, auth.test, SQLAlchemy statement caches
                bench.round()
            # As `crisisbot slack` does after start-up: long-lived objects leave the GC's scans.
            gc.collect()
            gc.freeze()
            samples = {name: [] for name in SERIES}
            for i in range(args.requests):
                for name, ms in bench.round().items():
                    samples[name].append(ms)
                if (i + 1) % 100 == 0:
                    print(f"  {i + 1}/{args.requests} rounds", file=sys.stderr)
        except (HarnessError, AssertionError, OSError, http.client.HTTPException) as exc:
            print(f"harness broke: {exc}", file=sys.stderr)
            return 1
        finally:
            if bench:
                bench.stop()
            fake.stop()
            db.dispose()

    backend = url.split(":", 1)[0]
    report = summarize(samples)
    print_report(report, backend)
    if args.json:
        figures = {"requests": args.requests, "database": backend, **report}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
