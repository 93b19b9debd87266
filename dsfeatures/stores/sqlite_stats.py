"""Freshness statistics in the embedded SQLite file (a StatsStore).

Two tables beside the rows: ``freshness`` (one row per group, version and lane:
the latest event and written-at times and the rows written) and ``write_volume``
(rows written per time bucket and lane). Deltas are merged with upserts that
take the maximum of times and add counts, so every worker process can flush its
own deltas in any order. Buckets older than the retention are pruned now and
then, through an index on the bucket (no scan of the whole table).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from dsfeatures.stores.protocols import LaneDelta, LaneStats
from dsfeatures.stores.sqlite import SqliteDatabase, _transaction

__all__ = ["SqliteStatsStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS freshness (
    grp TEXT NOT NULL, version INTEGER NOT NULL, lane TEXT NOT NULL,
    last_event_us INTEGER NOT NULL, last_written_us INTEGER NOT NULL, rows INTEGER NOT NULL,
    PRIMARY KEY (grp, version, lane)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS write_volume (
    grp TEXT NOT NULL, version INTEGER NOT NULL, bucket INTEGER NOT NULL, lane TEXT NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (grp, version, bucket, lane)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS write_volume_by_bucket ON write_volume (bucket);
"""

_UPSERT_LANE = """
INSERT INTO freshness (grp, version, lane, last_event_us, last_written_us, rows)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (grp, version, lane) DO UPDATE SET
    last_event_us = max(last_event_us, excluded.last_event_us),
    last_written_us = max(last_written_us, excluded.last_written_us),
    rows = rows + excluded.rows
"""

_UPSERT_BUCKET = """
INSERT INTO write_volume (grp, version, bucket, lane, rows) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (grp, version, bucket, lane) DO UPDATE SET rows = rows + excluded.rows
"""

#: Seconds between two prunings of old buckets.
_PRUNE_EVERY = 600


class SqliteStatsStore:
    """Statistics in two tables of a :class:`~dsfeatures.stores.sqlite.SqliteDatabase`.

    Args:
        db: the database (opened by its owner).
        retention_seconds: buckets older than this are deleted.
    """

    def __init__(self, db: SqliteDatabase, *, retention_seconds: int = 2 * 86_400) -> None:
        self._db = db
        self._retention = retention_seconds
        self._pruned_at = 0.0

    async def open(self) -> None:
        """Create the tables (idempotent)."""
        await self._db.write(lambda c: c.executescript(_SCHEMA))

    async def close(self) -> None:
        """Nothing to do: the database owns the connections."""

    async def add(self, deltas: Sequence[LaneDelta]) -> None:
        """Merge deltas in one transaction."""
        if not deltas:
            return
        now = time.time()
        oldest = int(now) - self._retention
        prune = now - self._pruned_at >= _PRUNE_EVERY
        if prune:
            self._pruned_at = now

        def body(c: sqlite3.Connection) -> None:
            c.executemany(
                _UPSERT_LANE,
                [
                    (d.group, d.version, d.lane, d.last_event_us, d.last_written_us, d.rows)
                    for d in deltas
                ],
            )
            c.executemany(
                _UPSERT_BUCKET,
                [
                    (d.group, d.version, b, d.lane, n)
                    for d in deltas
                    for b, n in d.buckets.items()
                    if b >= oldest
                ],
            )
            if prune:
                c.execute("DELETE FROM write_volume WHERE bucket < ?", (oldest,))

        await self._db.write(lambda c: _transaction(c, lambda: body(c)))

    async def lanes(self, group: str) -> list[LaneStats]:
        """Every version and lane of ``group`` (a primary-key range)."""

        def q(c: sqlite3.Connection) -> list[LaneStats]:
            return [
                LaneStats(group, v, lane, ev, wa, n)
                for v, lane, ev, wa, n in c.execute(
                    "SELECT version, lane, last_event_us, last_written_us, rows FROM freshness "
                    "WHERE grp = ? ORDER BY version, lane",
                    (group,),
                )
            ]

        return await self._db.read(q)

    async def volume(self, group: str, version: int, since: int) -> list[tuple[int, str, int]]:
        """Rows per (bucket, lane) from ``since`` on (a primary-key range)."""

        def q(c: sqlite3.Connection) -> list[tuple[int, str, int]]:
            return [
                (int(b), str(lane), int(n))
                for b, lane, n in c.execute(
                    "SELECT bucket, lane, rows FROM write_volume "
                    "WHERE grp = ? AND version = ? AND bucket >= ? ORDER BY bucket, lane",
                    (group, version, since),
                )
            ]

        return await self._db.read(q)
