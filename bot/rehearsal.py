"""Asking the core "would this be refused?" before a form asks a person to type anything.

A rehearsal runs the real action against a transaction that is always rolled back, so it
applies exactly the rules the action itself applies (roles, four eyes, the incident's
state) and changes nothing. A refusal comes out as the action's own Refusal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from bot.db import Database

# Stands in for what the form has not asked yet; plain text that passes every length and character check.
PLACEHOLDER = "…"
SOMEONE = "someone.else"


class _RolledBack:
    """A Database whose every transaction is rolled back at its end."""

    def __init__(self, db: Database):
        self._db = db
        self.url = db.url

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        session = self._db._sessions()
        try:
            session.begin()
            yield session
            session.flush()  # what the action would write is checked by the database as well
        finally:
            session.rollback()
            session.close()


def rehearse(core, action: str, /, *args, **kwargs):
    """Run ``core.<action>(*args, **kwargs)`` without keeping anything: raises the Refusal it would give,
    or returns the Outcome it would have (one with only a private answer means "nothing to do")."""
    rehearsal = copy.copy(core)
    rehearsal.db = _RolledBack(core.db)
    return getattr(rehearsal, action)(*args, **kwargs)
