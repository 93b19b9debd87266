"""Time helpers: the service measures time in microseconds since the Unix epoch (UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "from_us", "now_us", "rfc3339", "to_us"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    """The current time in microseconds."""
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    """An aware datetime in microseconds."""
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """Microseconds to an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def rfc3339(us: int | None = None) -> str:
    """RFC 3339 text (UTC, ``Z``) of ``us`` or of now."""
    dt = from_us(now_us() if us is None else us)
    return dt.isoformat().replace("+00:00", "Z")
