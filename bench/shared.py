"""What every bench script needs: nearest-rank statistics, and a database of its own."""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.db import Database, normalize_url


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: a value that was really observed, no interpolation."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stats(values: list[float], digits: int = 1) -> dict:
    """Count, p50, p90, p99 and max of the samples."""
    ordered = sorted(values) or [math.nan]
    return {"n": len(values), **{f"p{p}": round(percentile(ordered, p), digits) for p in (50, 90, 99)},
            "max": round(ordered[-1], digits)}


@contextmanager
def bench_database(url: str | None) -> Iterator[tuple[Database, str]]:
    """A migrated database and its backend name: a temporary SQLite file, or a schema of its own in
    the PostgreSQL database at `url` (the tests drop and recreate `public` there), dropped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        url = normalize_url(url or f"sqlite:///{tmp}/bench.db")
        admin = schema = None
        if url.startswith("postgresql"):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(url)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}) \
                .render_as_string(hide_password=False)
        db = Database(url)
        try:
            db.upgrade()
            yield db, url.split(":", 1)[0].split("+")[0]
        finally:
            db.dispose()
            if admin is not None:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
