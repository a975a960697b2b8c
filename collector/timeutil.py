"""Timestamps: one representation (integer microseconds since 1970-01-01 UTC) and its renderings.

Every stage stores times as µs integers so that sorting is exact and no float rounding creeps in;
only writers turn them into text.
"""

from __future__ import annotations

import datetime as _dt

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_US = 1_000_000


def to_datetime(micros: int) -> _dt.datetime:
    """Convert µs since the epoch to an aware UTC datetime (exact, no float)."""
    return EPOCH + _dt.timedelta(microseconds=micros)


def iso_utc(micros: int) -> str:
    """ISO 8601 with microseconds and ``+00:00``, the form Timesketch expects."""
    return to_datetime(micros).isoformat(timespec="microseconds")


def from_datetime(value: _dt.datetime) -> int:
    """µs since the epoch for an aware datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def from_posix(seconds: int | float, nanos: int = 0) -> int:
    """µs for POSIX seconds (int or float) plus an optional nanosecond part."""
    if isinstance(seconds, float):
        return round(seconds * _US)
    return seconds * _US + nanos // 1000


#: 100 ns ticks from 1601-01-01 (the Windows FILETIME epoch) to 1970-01-01.
FILETIME_UNIX_OFFSET = 116_444_736_000_000_000


def from_filetime(value: int | None) -> int | None:
    """µs for a Windows FILETIME; None for 0, negative or the "never" sentinel (not a time)."""
    if not value or value < 0 or value >= 0x7FFFFFFFFFFFFFFF:
        return None
    return (value - FILETIME_UNIX_OFFSET) // 10


def parse_iso(text: str) -> int:
    """µs for an ISO 8601 string as written by :func:`iso_utc`."""
    return from_datetime(_dt.datetime.fromisoformat(text))
