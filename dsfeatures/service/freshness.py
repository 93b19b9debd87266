"""Freshness of feature groups: when each lane last wrote, and how much, over time.

The write path must not pay for this, so each process only aggregates in memory,
per (group, version, lane): the latest event time, the latest written-at time,
the rows written and rows per time bucket (a minute by default). A background
task flushes these deltas to the :class:`~dsfeatures.stores.protocols.StatsStore`
every few seconds and once more at shutdown; the store merges the deltas of every
process (maximum of times, sum of counts). A failed flush keeps its deltas for the
next one. Reads merge the store with what this process has not flushed yet, so the
catalog page of a single-process daemon is up to date at once; other processes'
writes appear within one flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final

from msgspec import Struct
from prometheus_client import Counter

from dsfeatures.errors import InvalidRequest
from dsfeatures.service.clock import now_us, rfc3339
from dsfeatures.stores.ordering import WriteOp
from dsfeatures.stores.protocols import LaneDelta, LaneStats, StatsStore

__all__ = [
    "WINDOWS",
    "FreshnessRecorder",
    "GroupFreshness",
    "LaneFreshness",
    "VolumeSeries",
]

log = logging.getLogger(__name__)

#: The chart windows the catalog offers (seconds): 1 hour, 6 hours, 1 day, 2 days.
WINDOWS: Final = (3_600, 21_600, 86_400, 172_800)
#: Points of a volume chart.
_POINTS: Final = 60
#: Most (group, version, lane) keys kept while the stats store is unreachable.
_MAX_PENDING: Final = 100_000

FLUSHES = Counter(
    "dsf_stats_flushes", "Flushes of freshness statistics to the stats store", ["result"]
)


class LaneFreshness(Struct, omit_defaults=True):
    """Freshness of one lane of one group version.

    ``rows`` counts rows written (``WRITTEN``) since statistics began; times are
    RFC 3339 (UTC); ``age_seconds`` is how long ago the lane last wrote.
    """

    lane: str
    rows: int
    latest_event_time: str | None = None
    latest_written_at: str | None = None
    age_seconds: float | None = None


class VolumeSeries(Struct):
    """Rows written by one lane in each step of a window, oldest first."""

    lane: str
    rows: list[int]


class GroupFreshness(Struct):
    """Freshness of one group version: per lane, and write volume over a window.

    ``volume`` holds one series per lane of ``window_seconds / step_seconds``
    points; point ``i`` covers ``[start + i * step, start + (i + 1) * step)``.
    """

    version: int
    lanes: list[LaneFreshness]
    window_seconds: int
    step_seconds: int
    start: str
    volume: list[VolumeSeries]


class _Acc:
    """The running delta of one (group, version, lane)."""

    __slots__ = ("buckets", "ev", "n", "wa")

    def __init__(self) -> None:
        self.ev = 0
        self.wa = 0
        self.n = 0
        self.buckets: dict[int, int] = {}


def _merge(into: dict[tuple[str, int, str], _Acc], d: LaneDelta) -> None:
    key = (d.group, d.version, d.lane)
    acc = into.get(key)
    if acc is None:
        acc = into[key] = _Acc()
    acc.ev = max(acc.ev, d.last_event_us)
    acc.wa = max(acc.wa, d.last_written_us)
    acc.n += d.rows
    for b, n in d.buckets.items():
        acc.buckets[b] = acc.buckets.get(b, 0) + n


class FreshnessRecorder:
    """Aggregates written rows in memory and flushes them to a stats store.

    Args:
        store: where deltas are merged (shared by every process).
        bucket_seconds: width of a write-volume bucket.
        flush_seconds: interval of :meth:`flush_forever`.
    """

    def __init__(
        self, store: StatsStore, *, bucket_seconds: int = 60, flush_seconds: float = 5.0
    ) -> None:
        self.store = store
        self.bucket_seconds = bucket_seconds
        self.flush_seconds = flush_seconds
        self._bucket_us = bucket_seconds * 1_000_000
        self._pending: dict[tuple[str, int, str], _Acc] = {}
        self._inflight: list[LaneDelta] = []
        self._lock = asyncio.Lock()

    # --- the write path ---------------------------------------------------------------

    def record(self, ops: Sequence[WriteOp]) -> None:
        """Count rows that were written (called by the write path; no I/O).

        Rows of one request usually share group and lane, so the accumulator is
        looked up once per run of equal keys.
        """
        pending = self._pending
        bucket_us = self._bucket_us
        last: tuple[str, int, str] | None = None
        acc = _Acc()
        for op in ops:
            key = (op.key.group, op.key.version, op.lane)
            if key != last:
                found = pending.get(key)
                if found is None:
                    found = pending[key] = _Acc()
                acc, last = found, key
            if op.event_time > acc.ev:
                acc.ev = op.event_time
            if op.written_at > acc.wa:
                acc.wa = op.written_at
            acc.n += 1
            b = op.written_at // bucket_us * self.bucket_seconds
            acc.buckets[b] = acc.buckets.get(b, 0) + 1

    # --- flushing ---------------------------------------------------------------------

    @staticmethod
    def _deltas(accs: dict[tuple[str, int, str], _Acc]) -> list[LaneDelta]:
        return [
            LaneDelta(g, v, lane, a.ev, a.wa, a.n, a.buckets) for (g, v, lane), a in accs.items()
        ]

    async def flush(self) -> int:
        """Send this process's deltas to the store; return how many were sent.

        Raises:
            BackendUnavailable: the store failed; the deltas are kept for the next flush.
        """
        async with self._lock:
            if not self._pending:
                return 0
            deltas = self._deltas(self._pending)
            self._pending = {}
            self._inflight = deltas
            try:
                await self.store.add(deltas)
            except BaseException:
                FLUSHES.labels("failed").inc()
                if len(self._pending) < _MAX_PENDING:
                    for d in deltas:
                        _merge(self._pending, d)
                raise
            finally:
                self._inflight = []
            FLUSHES.labels("ok").inc()
            return len(deltas)

    async def flush_forever(self) -> None:
        """Flush every ``flush_seconds`` until cancelled (failures are logged)."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as e:
                log.warning("freshness statistics not flushed (kept for the next try): %r", e)

    async def close(self) -> None:
        """The last flush, at shutdown (a failure is logged, not raised)."""
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.flush()
            except Exception as e:
                log.warning("freshness statistics lost at shutdown: %r", e)

    # --- reads ------------------------------------------------------------------------

    def _unflushed(self, group: str) -> list[LaneDelta]:
        accs = {k: a for k, a in self._pending.items() if k[0] == group}
        return [d for d in self._inflight if d.group == group] + self._deltas(accs)

    async def lanes(self, group: str) -> list[LaneStats]:
        """Stored statistics of every version and lane of ``group``, plus unflushed ones."""
        merged: dict[tuple[str, int, str], _Acc] = {}
        for s in await self.store.lanes(group):
            _merge(
                merged,
                LaneDelta(
                    s.group, s.version, s.lane, s.last_event_us, s.last_written_us, s.rows, {}
                ),
            )
        for d in self._unflushed(group):
            _merge(
                merged,
                LaneDelta(
                    d.group, d.version, d.lane, d.last_event_us, d.last_written_us, d.rows, {}
                ),
            )
        return sorted(
            (LaneStats(g, v, lane, a.ev, a.wa, a.n) for (g, v, lane), a in merged.items()),
            key=lambda s: (s.version, s.lane),
        )

    async def group_freshness(
        self,
        group: str,
        version: int,
        window_seconds: int = WINDOWS[0],
        *,
        lanes: Sequence[LaneStats] | None = None,
    ) -> GroupFreshness:
        """Freshness of one group version with its write volume over a window.

        Args:
            group: group name.
            version: the version.
            window_seconds: one of :data:`WINDOWS`.
            lanes: the result of :meth:`lanes` if the caller has it already.

        Raises:
            InvalidRequest: an unsupported window.
        """
        if window_seconds not in WINDOWS:
            raise InvalidRequest(
                f"window: one of {', '.join(str(w) for w in WINDOWS)} seconds, got {window_seconds}"
            )
        bucket = self.bucket_seconds
        step = max(bucket, -(-window_seconds // _POINTS // bucket) * bucket)
        now = now_us()
        end = (now // 1_000_000 // step + 1) * step  # the step holding now is the last
        start = end - window_seconds
        points = window_seconds // step
        if lanes is None:
            lanes = await self.lanes(group)
        series: dict[str, list[int]] = {}
        rows = await self.store.volume(group, version, start)
        unflushed = [
            (b, d.lane, n)
            for d in self._unflushed(group)
            if d.version == version
            for b, n in d.buckets.items()
            if b >= start
        ]
        for b, lane, n in (*rows, *unflushed):
            i = (b - start) // step
            if 0 <= i < points:
                series.setdefault(lane, [0] * points)[i] += n
        out_lanes = []
        for s in lanes:
            if s.version != version:
                continue
            out_lanes.append(
                LaneFreshness(
                    lane=s.lane,
                    rows=s.rows,
                    latest_event_time=rfc3339(s.last_event_us) if s.last_event_us else None,
                    latest_written_at=rfc3339(s.last_written_us) if s.last_written_us else None,
                    age_seconds=round((now - s.last_written_us) / 1e6, 3)
                    if s.last_written_us
                    else None,
                )
            )
            series.setdefault(s.lane, [0] * points)
        return GroupFreshness(
            version=version,
            lanes=out_lanes,
            window_seconds=window_seconds,
            step_seconds=step,
            start=rfc3339(start * 1_000_000),
            volume=[VolumeSeries(lane, series[lane]) for lane in sorted(series)],
        )
