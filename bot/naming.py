"""Channel names from date, number and title, valid on Slack (lowercase, a-z 0-9 - _, ≤ 80)."""

from __future__ import annotations

from datetime import date

from slugify import slugify

MAX_NAME = 80
# German first: python-slugify alone turns "ä" into "a", where German readers expect "ae".
_GERMAN = [["Ä", "Ae"], ["Ö", "Oe"], ["Ü", "Ue"], ["ä", "ae"], ["ö", "oe"], ["ü", "ue"], ["ß", "ss"]]


def channel_name(day: date, number: int, title: str, attempt: int = 1) -> str:
    """``2026-11-22-crisis-7-defekte-ladegeraete``; attempt 2, 3 … add ``-2``, ``-3`` for name_taken."""
    prefix = f"{day:%Y-%m-%d}-crisis-{number}"
    suffix = f"-{attempt}" if attempt > 1 else ""
    room = MAX_NAME - len(prefix) - len(suffix) - 1
    slug = slugify(title, replacements=_GERMAN, max_length=room, word_boundary=True, save_order=True)
    return f"{prefix}-{slug}{suffix}" if slug else f"{prefix}{suffix}"
