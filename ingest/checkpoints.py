"""Durable Kinesis checkpoints in a small SQLite file.

One row per (stream, consumer, shard): the sequence number of the last acknowledged
record, and whether the shard was read to its end (a closed parent after a reshard: its
children may then start). Written only after the daemon acknowledged the writes, in
WAL mode with ``synchronous=FULL``, so a restart resumes where the last acknowledged
write ended. Calls run on a worker thread: SQLite never blocks the event loop.

The consumer name is the ``group_id`` setting: two services with different group ids
read the same stream independently. One service per (stream, group id) at a time: the
file is not a lease table.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkpoint", "CheckpointStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    stream     TEXT NOT NULL,
    consumer   TEXT NOT NULL,
    shard_id   TEXT NOT NULL,
    sequence   TEXT NOT NULL DEFAULT '',
    finished   INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (stream, consumer, shard_id)
)
"""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where reading a shard resumes.

    Attributes:
        sequence: the last acknowledged sequence number ('' when none yet).
        finished: the shard is closed and every record of it was acknowledged.
    """

    sequence: str
    finished: bool


class CheckpointStore:
    """Checkpoints of one stream for one consumer.

    Args:
        path: the SQLite file (its folder is created).
        stream: the stream name.
        consumer: the consumer name (``group_id``).
    """

    def __init__(self, path: str | Path, stream: str, consumer: str) -> None:
        self.path = Path(path)
        self.stream = stream
        self.consumer = consumer
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Create the file and table if needed."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(_SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("CheckpointStore used before open()")
        return self._conn

    async def load(self) -> dict[str, Checkpoint]:
        """Every shard's checkpoint."""

        def q() -> dict[str, Checkpoint]:
            with self._lock:
                rows = (
                    self._db()
                    .execute(
                        "SELECT shard_id, sequence, finished FROM checkpoints "
                        "WHERE stream = ? AND consumer = ?",
                        (self.stream, self.consumer),
                    )
                    .fetchall()
                )
            return {r[0]: Checkpoint(r[1], bool(r[2])) for r in rows}

        return await asyncio.to_thread(q)

    async def save(self, sequences: dict[str, str], finished: set[str] | None = None) -> None:
        """Store acknowledged sequence numbers (shard id -> sequence) in one transaction,
        and mark ``finished`` shards as read to their end."""
        done = finished or set()
        if not sequences and not done:
            return
        now = time.time()

        def tx() -> None:
            with self._lock:
                db = self._db()
                db.execute("BEGIN IMMEDIATE")
                try:
                    for shard, seq in sequences.items():
                        db.execute(
                            "INSERT INTO checkpoints (stream, consumer, shard_id, sequence, "
                            "finished, updated_at) VALUES (?, ?, ?, ?, 0, ?) "
                            "ON CONFLICT (stream, consumer, shard_id) DO UPDATE SET "
                            "sequence = excluded.sequence, updated_at = excluded.updated_at",
                            (self.stream, self.consumer, shard, seq, now),
                        )
                    for shard in done:
                        db.execute(
                            "INSERT INTO checkpoints (stream, consumer, shard_id, sequence, "
                            "finished, updated_at) VALUES (?, ?, ?, '', 1, ?) "
                            "ON CONFLICT (stream, consumer, shard_id) DO UPDATE SET "
                            "finished = 1, updated_at = excluded.updated_at",
                            (self.stream, self.consumer, shard, now),
                        )
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")

        await asyncio.to_thread(tx)
