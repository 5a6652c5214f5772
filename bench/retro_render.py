"""How long the retrospective takes to load, build and render for an incident with thousands of events.

    python bench/retro_render.py [--sizes 1000,5000,20000] [--samples 40] [--warmup 3]
        [--database-url URL] [--json PATH] [--profile] [--quick]

Setup (untimed), per size: one incident, opened and worked through the real Core (roles, a
severity change, statements drafted, sent back, edited, approved, rejected and published, the
checklist ticked and skipped, status updates, role handovers), then TimelineEvent rows
bulk-inserted up to the size (status updates, checklist toggles, role changes, statement drafts,
approvals and publishes, deadline events), resolved and closed through the Core, lessons added
through the Core and the rest bulk-inserted (Lesson rows with their `lesson.added` events).

Measured, interleaved (one sample of each series per round, the order rotating) so that machine
noise hits them alike:

  summary   core.standing_messages(id) filtered to the retrospective messages: what the Slack
            handler runs before every edit of the summary (load, build, render); the issue's
            "renders in under a second" figure
  export    core.retrospective(id) + to_markdown: the /crisis export file
  build     core.retrospective(id) alone: load and build, no rendering
  baseline  core.timeline(id): loading the incident's timeline rows, the least any summary must do

Also checks that every summary message fits Slack (sections at most 3000 characters, contexts
at most 2000 as the Slack adapter cuts them, at most 50 blocks) and prints the export's size.
Exits 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from bench.shared import bench_database, stats
from bot import playbook as playbooks
from bot.core import Core
from bot.export import to_json, to_markdown
from bot.messages import Context, Message, Section
from bot.models import Lesson, TimelineEvent

WS, LEAD, COMMS, LEGAL, SOCIAL, SERVICE = "T1", "U1", "U2", "U3", "U4", "U5"
PEOPLE = [f"U{n}" for n in range(1, 31)]
TARGET_MS = 1000.0
SECTION_LIMIT, CONTEXT_LIMIT, BLOCK_LIMIT = 3000, 2000, 50  # Slack; handlers/slack/blocks.py cuts at these
SERIES = ("summary", "export", "build", "baseline")
BEGIN = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class StepClock:
    """The Core's clock: moves only when the bench moves it, so the incident spans days, not seconds."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 30) -> None:
        self.now += timedelta(seconds=seconds)


def words(rng: random.Random, count: int) -> str:
    vocabulary = ("customers", "report", "the", "batch", "recall", "store", "posts", "press", "we", "are",
                  "checking", "shipment", "refund", "statement", "update", "hotline", "social", "reach",
                  "sentiment", "legal", "supplier", "lab", "results", "expected", "tonight", "affected")
    return " ".join(rng.choice(vocabulary) for _ in range(count)).capitalize() + "."


# -- setup -------------------------------------------------------------------------------------------------

def work_through_core(core: Core, clock: StepClock, size: int, rng: random.Random) -> int:
    """Open the incident and do what a team does, through the Core; returns the incident id."""
    opening = core.start_incident(WS, LEAD, f"Contaminated batch, {size} events", severity=2,
                                  crisis_type="defective-product", description=words(rng, 40))
    iid = opening.incident_id
    core.opened(iid, f"C{size}", opening.channel_name())
    for user, role in ((COMMS, "comms"), (LEGAL, "legal"), (SOCIAL, "social"), (SERVICE, "service")):
        clock.tick(60)
        core.assign_role(iid, LEAD, user, role)
    clock.tick(300)
    core.set_severity(iid, LEAD, 1)
    # Free statements (the strict policy: legal, then comms, then the lead), by the social role.
    for number in range(1, max(3, size // 500) + 1):
        clock.tick(120)
        core.draft(iid, SOCIAL, "free", {"text": words(rng, 90)})
        version = 1
        if number % 5 == 2:
            clock.tick(60)
            core.decide(iid, COMMS, number, version, "changes", "Say when the hotline opens.")
            clock.tick(60)
            version = 2
            core.edit(iid, SOCIAL, number, 1, words(rng, 100))
        if number % 7 == 4:
            clock.tick(60)
            core.decide(iid, LEGAL, number, version, "reject", "Admits liability.")
            continue
        for approver in (LEGAL, COMMS, LEAD):
            clock.tick(45)
            core.decide(iid, approver, number, version, "approve")
        if number % 4 != 3:
            clock.tick(30)
            core.publish(iid, SOCIAL, number, version, "website and social", "https://example.com/statement")
    with core.db.transaction() as s:
        items = [(i.key, n) for n, i in enumerate(core._load(s, iid).items)]
    for key, n in items:
        clock.tick(40)
        core.set_item(iid, LEAD, key, "item.skip" if n % 6 == 5 else "item.done")
    for key, _ in items[:6]:  # second thoughts
        clock.tick(20)
        core.set_item(iid, LEAD, key, "item.reopen")
        clock.tick(20)
        core.set_item(iid, LEAD, key, "item.done")
    for _ in range(10):
        clock.tick(900)
        core.status_update(iid, COMMS, words(rng, 30), words(rng, 20), None)
    roles = ("social", "service", "marketing", "comms")
    for n in range(size // 250):  # handovers: shifts change over days
        clock.tick(600)
        core.assign_role(iid, LEAD, PEOPLE[6 + n % 24], roles[n % len(roles)])
    return iid


def bulk_events(core: Core, clock: StepClock, iid: int, count: int, rng: random.Random) -> None:
    """`count` timeline rows of the kinds a long incident piles up, a few seconds to minutes apart."""
    with core.db.transaction() as s:
        incident = core._load(s, iid)
        items = [(i.key, i.title) for i in incident.items]
        statements = [st.number for st in incident.statements]
    texts = [words(rng, 90) for _ in range(20)]
    kinds = (("status.update", 35), ("item.done", 10), ("item.reopened", 8), ("item.skipped", 7),
             ("role.assigned", 8), ("statement.drafted", 4), ("statement.edited", 3), ("statement.approved", 10),
             ("statement.changes_requested", 3), ("statement.published", 4), ("deadline.met", 5),
             ("deadline.missed", 3))
    names, weights = zip(*kinds, strict=True)
    rows = []
    for _ in range(count):
        clock.tick(rng.uniform(2, 30))
        kind = rng.choices(names, weights)[0]
        actor = rng.choice(PEOPLE[:12])
        if kind == "status.update":
            data = {"known": words(rng, 30), "doing": words(rng, 20), "next_due": None}
        elif kind.startswith("item."):
            key, title = rng.choice(items)
            data = {"item": key, "title": title, "previous": rng.choice(("open", "done", "skipped"))}
        elif kind == "role.assigned":
            data = {"role": rng.choice(("social", "service", "marketing", "comms")), "user": rng.choice(PEOPLE),
                    "previous": rng.choice(PEOPLE)}
        elif kind.startswith("statement."):
            data = {"statement": rng.choice(statements), "version": rng.randint(1, 3), "text": rng.choice(texts)}
            if kind in ("statement.approved", "statement.changes_requested"):
                data |= {"step": rng.randint(0, 2), "role": rng.choice(("legal", "comms", "lead")),
                         "reason": None if kind == "statement.approved" else "Name the batch numbers."}
            if kind == "statement.published":
                data |= {"where": "website", "link": None}
        else:
            data = {"kind": "update", "due": clock.now.isoformat(), "by": "status.update",
                    "early_by_seconds": rng.randint(0, 3000)} if kind == "deadline.met" else {"kind": "update"}
            if kind == "deadline.missed":
                actor = "crisisbot"
        rows.append({"incident_id": iid, "at": clock.now, "actor_id": actor, "kind": kind, "data": data})
    with core.db.transaction() as s:
        for start in range(0, len(rows), 5000):
            s.execute(insert(TimelineEvent), rows[start:start + 5000])


def bulk_lessons(core: Core, clock: StepClock, iid: int, count: int, rng: random.Random) -> None:
    """Lesson rows and their `lesson.added` events, as add_lesson makes them."""
    if count < 1:
        return
    lessons, events = [], []
    for n in range(count):
        clock.tick(rng.uniform(30, 600))
        kind, author = ("well", "improve", "action")[n % 3], rng.choice(PEOPLE[:12])
        owner = rng.choice(PEOPLE[:12]) if kind == "action" else None
        text_ = words(rng, rng.randint(8, 40))
        lessons.append({"incident_id": iid, "kind": kind, "text": text_, "owner_id": owner, "author_id": author,
                        "created_at": clock.now})
        events.append({"incident_id": iid, "at": clock.now, "actor_id": author, "kind": "lesson.added",
                       "data": {"lesson": kind, "text": text_, "owner": owner}})
    with core.db.transaction() as s:
        s.execute(insert(Lesson), lessons)
        s.execute(insert(TimelineEvent), events)


def event_count(core: Core, iid: int) -> int:
    with core.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(TimelineEvent).where(TimelineEvent.incident_id == iid))


def build_incident(core: Core, clock: StepClock, size: int, seed: int) -> int:
    rng = random.Random(seed)
    iid = work_through_core(core, clock, size, rng)
    core_lessons, lessons = 6, max(0, size // 100 - 6)
    later = 2 + 1 + core_lessons + lessons  # resolved, closed + review met, the lessons
    bulk_events(core, clock, iid, max(0, size - event_count(core, iid) - later), rng)
    clock.tick(600)
    core.resolve(iid, LEAD)
    clock.tick(3600)
    core.close(iid, LEAD)
    for n in range(core_lessons):
        clock.tick(300)
        kind = ("well", "improve", "action")[n % 3]
        core.add_lesson(iid, PEOPLE[n], kind, words(rng, 25), owner=COMMS if kind == "action" else None)
    bulk_lessons(core, clock, iid, lessons, rng)
    return iid


# -- measuring ---------------------------------------------------------------------------------------------

def series_for(core: Core, iid: int) -> dict:
    return {
        "summary": lambda: [m for m in core.standing_messages(iid) if m.key.startswith("retrospective")],
        "export": lambda: to_markdown(core.retrospective(iid), core.playbook),
        "build": lambda: core.retrospective(iid),
        "baseline": lambda: core.timeline(iid),
    }


def measure(calls: dict, samples: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(samples):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            began = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - began) * 1000)
    return times


def slack_fit(messages: list[Message]) -> dict:
    """The longest section and context, the most blocks, and whether every message fits Slack."""
    sections = [len(b.text) for m in messages for b in m.blocks if isinstance(b, Section)]
    contexts = [len(b.text) for m in messages for b in m.blocks if isinstance(b, Context)]
    blocks = [len(m.blocks) for m in messages]
    fits = (max(sections, default=0) <= SECTION_LIMIT and max(contexts, default=0) <= CONTEXT_LIMIT
            and max(blocks, default=0) <= BLOCK_LIMIT)
    return {"messages": [m.key for m in messages], "max_section_chars": max(sections, default=0),
            "max_context_chars": max(contexts, default=0), "max_blocks": max(blocks, default=0),
            "sections_cut": sum(1 for m in messages for b in m.blocks
                                if isinstance(b, Section) and b.text.endswith("…") and len(b.text) >= 2899),
            "max_fallback_chars": max((len(m.text) for m in messages), default=0), "fits": fits}


def profile(calls: dict, repeat: int = 3) -> str:
    out = io.StringIO()
    for name in ("summary", "export"):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            calls[name]()
        profiler.disable()
        out.write(f"\n--- cProfile of {name}, {repeat} calls, by own time ---\n")
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(12)
        out.write(f"--- cProfile of {name}, by cumulative time (bot/, templates) ---\n")
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"bot/|\.j2|jinja2/environment", 14)
    return out.getvalue()


def run_size(core: Core, clock: StepClock, size: int, args) -> tuple[dict, str]:
    began = time.monotonic()
    iid = build_incident(core, clock, size, seed=size)
    setup_s = time.monotonic() - began
    events = event_count(core, iid)
    calls = series_for(core, iid)
    summary = calls["summary"]()
    retro = core.retrospective(iid)
    markdown, as_json = to_markdown(retro, core.playbook), to_json(retro)
    gc.collect()
    times = measure(calls, args.samples, args.warmup)
    figures = {name: stats(times[name], digits=2) for name in SERIES}
    base = figures["baseline"]
    ratios = {name: {q: round(figures[name][q] / base[q], 2) for q in ("p50", "p99")} for name in SERIES}
    report = {"size": size, "events": events, "lessons": len(retro.lessons), "statements": len(retro.statements),
              "key_moments": len(retro.moments), "setup_s": round(setup_s, 1), "ms": figures,
              "ratio_to_baseline": ratios, "slack": slack_fit(summary),
              "markdown": {"chars": len(markdown), "bytes": len(markdown.encode()), "lines": markdown.count("\n")},
              "json_bytes": len(as_json.encode()),
              "summary_under_1s": figures["summary"]["p99"] <= TARGET_MS}
    return report, profile(calls) if args.profile else ""


def print_report(reports: list[dict], args, backend: str) -> None:
    worst = args.samples - math.ceil(0.99 * args.samples) + 1
    print(f"\nretrospective render times in ms, {backend}, {os.cpu_count()} CPUs, "
          f"{args.samples} interleaved samples per series (p99 is the "
          f"{'worst sample' if worst == 1 else f'worst but {worst - 1}'})")
    print(f"{'events':>7}  {'series':<9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}   "
          f"{'x base p50':>10}{'x base p99':>11}")
    for r in reports:
        for name in SERIES:
            s, ratio = r["ms"][name], r["ratio_to_baseline"][name]
            print(f"{r['events']:>7}  {name:<9}" + "".join(f"{s[q]:>9.1f}" for q in ("p50", "p90", "p99", "max"))
                  + f"   {ratio['p50']:>9.2f}x{ratio['p99']:>10.2f}x")
    print(f"\n{'events':>7}{'moments':>9}{'lessons':>9}{'sect max':>10}{'ctx max':>9}{'blocks':>8}{'cut':>5}"
          f"{'fits':>6}{'md KB':>8}{'md lines':>10}{'json KB':>9}{'setup s':>9}")
    for r in reports:
        sl, mdx = r["slack"], r["markdown"]
        print(f"{r['events']:>7}{r['key_moments']:>9}{r['lessons']:>9}{sl['max_section_chars']:>10}"
              f"{sl['max_context_chars']:>9}{sl['max_blocks']:>8}{sl['sections_cut']:>5}"
              f"{'yes' if sl['fits'] else 'NO':>6}{mdx['bytes'] / 1024:>8.0f}{mdx['lines']:>10}"
              f"{r['json_bytes'] / 1024:>9.0f}{r['setup_s']:>9.1f}")
    print(f"\nlimits: section <= {SECTION_LIMIT} chars, context <= {CONTEXT_LIMIT}, blocks <= {BLOCK_LIMIT} "
          f"(messages: {', '.join(reports[0]['slack']['messages'])})")
    for r in reports:
        verdict = "MET" if r["summary_under_1s"] and r["slack"]["fits"] else "NOT met"
        print(f"target at {r['events']} events (summary fits Slack, p99 under {TARGET_MS:g} ms): {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help="timeline events per incident, comma-separated")
    parser.add_argument("--samples", type=int, default=40, help="measured rounds per size")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds per size")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", action="store_true", help="also cProfile summary and export at each size")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 and 1,000 events, 8 samples")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.samples, args.warmup = "200,1000", 8, 1
    sizes = [int(n) for n in args.sizes.split(",")]
    if args.samples < 1 or any(n < 100 for n in sizes):
        parser.error("need at least one sample and sizes of at least 100 events")

    reports, profiles = [], []
    with bench_database(args.database_url) as (db, backend):
        clock = StepClock(BEGIN)
        core = Core(db, playbooks.load(), clock=clock)
        for size in sizes:
            clock.now = max(clock.now, BEGIN) + timedelta(days=7)  # each incident its own week
            gc.collect()
            gc.freeze()  # as `crisisbot slack` does after start-up; the setup's objects are not measured
            report, prof = run_size(core, clock, size, args)
            reports.append(report)
            profiles.append(prof)
            print(f"measured {report['events']} events", file=sys.stderr)

    print_report(reports, args, backend)
    for prof in profiles:
        print(prof, end="")
    if args.json:
        args.json.write_text(json.dumps({"database": backend, **vars(args) | {"json": str(args.json)},
                                         "results": reports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
