"""Freshness statistics kept in this process only (a StatsStore for tests and tools)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from dsfeatures.stores.protocols import LaneDelta, LaneStats

__all__ = ["MemoryStatsStore"]


class MemoryStatsStore:
    """A StatsStore in a dict: lost at exit, not shared between processes.

    Args:
        retention_seconds: buckets older than this are dropped when deltas arrive.
    """

    def __init__(self, *, retention_seconds: int = 2 * 86_400) -> None:
        self._retention = retention_seconds
        self._lanes: dict[tuple[str, int, str], LaneStats] = {}
        self._volume: dict[tuple[str, int], dict[tuple[int, str], int]] = {}

    async def open(self) -> None:
        """Nothing to prepare."""

    async def close(self) -> None:
        """Nothing to release."""

    async def add(self, deltas: Sequence[LaneDelta]) -> None:
        """Merge deltas: the maximum of times, the sum of counts."""
        oldest = int(time.time()) - self._retention
        for d in deltas:
            key = (d.group, d.version, d.lane)
            old = self._lanes.get(key)
            if old is None:
                self._lanes[key] = LaneStats(
                    d.group, d.version, d.lane, d.last_event_us, d.last_written_us, d.rows
                )
            else:
                self._lanes[key] = LaneStats(
                    d.group,
                    d.version,
                    d.lane,
                    max(old.last_event_us, d.last_event_us),
                    max(old.last_written_us, d.last_written_us),
                    old.rows + d.rows,
                )
            vol = self._volume.setdefault((d.group, d.version), {})
            for bucket, n in d.buckets.items():
                if bucket >= oldest:
                    vol[(bucket, d.lane)] = vol.get((bucket, d.lane), 0) + n
            for k in [k for k in vol if k[0] < oldest]:
                del vol[k]

    async def lanes(self, group: str) -> list[LaneStats]:
        """Every version and lane of ``group``, ordered by version then lane."""
        return sorted(
            (s for k, s in self._lanes.items() if k[0] == group), key=lambda s: (s.version, s.lane)
        )

    async def volume(self, group: str, version: int, since: int) -> list[tuple[int, str, int]]:
        """Rows per (bucket, lane) from ``since`` on, in bucket order."""
        vol = self._volume.get((group, version), {})
        return sorted((b, lane, n) for (b, lane), n in vol.items() if b >= since)
