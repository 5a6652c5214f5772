"""Durations as a playbook writes them: ``90s``, ``15m``, ``2h``, ``3d``."""

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=3660)  # ten years: longer is a typo, and would overflow a date


class DurationTooLong(ValueError):
    """A duration longer than any deadline or reminder could mean (and than a date can hold)."""


def parse_duration(text: str) -> timedelta:
    """Parse one duration; raises ValueError with a message fit for a playbook author."""
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; write a whole number and a unit, like 90s, 15m, 2h or 3d")
    amount, unit = match.groups()
    if len(amount) > 12 or int(amount) * _SECONDS[unit] > MAX_DURATION.total_seconds():
        raise DurationTooLong(f"{text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(**{_UNITS[unit]: int(amount)})


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling, so a parsed value prints as the author wrote it."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
