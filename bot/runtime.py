"""Putting the core together from settings: playbook, database, schema."""

from __future__ import annotations

from bot import playbook as playbooks
from bot.clock import Clock, system_clock
from bot.config import Settings
from bot.core import Core
from bot.db import Database


def build_core(settings: Settings, clock: Clock = system_clock, upgrade: bool = True) -> Core:
    """Raises PlaybookError for a bad playbook; callers turn it into a one-paragraph message."""
    playbook = playbooks.load(settings.playbook)
    db = Database(settings.database_url)
    if upgrade:
        db.upgrade()
    return Core(db, playbook, language=settings.language, clock=clock)
