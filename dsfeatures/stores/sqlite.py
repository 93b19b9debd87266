"""The embedded persistent store: one SQLite file in WAL mode.

Blocking SQLite calls never run on the event loop: writes go through one
writer thread (one connection, ``BEGIN IMMEDIATE`` transactions, so several
worker processes serialise safely), reads through a small pool of reader
threads with a connection each (WAL lets them read while a write is under way).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import RegisteredGroup
from dsfeatures.stores.ordering import WriteOp, WriteOutcome, decide
from dsfeatures.stores.protocols import AuditEvent, ErasureAudit, StoreResult
from dsfeatures.stores.record import Record, RowKey, decode_record, encode_record

__all__ = ["SqliteAuditLog", "SqliteDatabase", "SqliteRegistryStore", "SqliteRowStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, grp TEXT NOT NULL, version INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (entity_type, entity_id, grp, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vectors (
    entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, grp TEXT NOT NULL, version INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (grp, version, entity_type, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_by_entity ON vectors (entity_type, entity_id);
CREATE TABLE IF NOT EXISTS vector_gen (
    grp TEXT NOT NULL, version INTEGER NOT NULL, gen INTEGER NOT NULL,
    PRIMARY KEY (grp, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registry (
    name TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erasures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, entity_type TEXT NOT NULL, entity_hash TEXT NOT NULL,
    deleted INTEGER NOT NULL, request_id TEXT NOT NULL, actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS erasures_by_entity ON erasures (entity_type, entity_hash);
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
    detail BLOB NOT NULL, request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_by_at ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_events_by_action ON audit_events (action, at);
CREATE INDEX IF NOT EXISTS audit_events_by_actor ON audit_events (actor, at);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

#: Keys per SELECT (4 bound parameters each; SQLite allows 32,766).
_CHUNK = 500


class SqliteDatabase:
    """One SQLite file with a writer thread and reader threads.

    Args:
        path: the database file (its folder is created).
        readers: number of reader threads.
        busy_timeout_ms: how long a writer waits for another process's write lock.
    """

    def __init__(self, path: Path, *, readers: int = 2, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_ms = busy_timeout_ms
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="dsf-sqlite-w")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="dsf-sqlite-r")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._while_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _while_locked(self, step: Callable[[], object]) -> None:
        """Run a set-up step, again while another process holds the lock it needs.

        Several processes opening a new file at once (the workers of one daemon) race
        to switch it to WAL and to create the schema; SQLite answers some of those
        races "database is locked" at once, without waiting out ``busy_timeout``
        (two lock upgrades would deadlock). Retried for up to ``busy_timeout_ms``.
        """
        deadline = time.monotonic() + self._busy_ms / 1000
        pause = 0.005
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    async def open(self) -> None:
        """Create the file and the schema (safe when several processes open it at once)."""
        await asyncio.get_running_loop().run_in_executor(
            self._writer, lambda: self.path.parent.mkdir(parents=True, exist_ok=True)
        )
        await self.write(lambda c: self._while_locked(lambda: c.executescript(_SCHEMA)))

    async def close(self) -> None:
        """Close every connection and stop the threads."""
        loop = asyncio.get_running_loop()

        def close_all() -> None:
            with self._conns_lock:
                for c in self._conns:
                    c.close()
                self._conns.clear()

        def stop_threads() -> None:
            self._writer.shutdown()
            self._readers.shutdown()

        await loop.run_in_executor(None, stop_threads)
        await loop.run_in_executor(None, close_all)

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, lambda: fn(self._connect()))
        except sqlite3.OperationalError as e:
            raise BackendUnavailable(f"embedded store: {e}") from e

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer thread."""
        return await self._run(self._writer, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader thread."""
        return await self._run(self._readers, fn)


def _transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = body()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


class SqliteRowStore:
    """Rows in one table of a :class:`SqliteDatabase` (a RowStore).

    Args:
        db: the database.
        table: ``rows`` (scalar groups, keyed by entity first) or ``vectors``
            (embedding groups, keyed by group first so a group loads in one range).
        track_generations: bump a per-group generation on every change, so that
            in-memory indexes in other processes know to reload.
    """

    def __init__(self, db: SqliteDatabase, table: str = "rows", *, track_generations: bool = False):
        if table not in ("rows", "vectors"):
            raise ValueError(f"unknown table {table!r}")
        self._db = db
        self._t = table
        self._track = track_generations
        # A join against a VALUES list is answered by primary-key lookups; a
        # row-value IN (VALUES ...) would scan the table.
        self._sel = (
            "SELECT r.entity_type, r.entity_id, r.grp, r.version, r.record "
            "FROM (VALUES {}) AS k CROSS JOIN " + table + " AS r "
            "ON r.entity_type = k.column1 AND r.entity_id = k.column2 "
            "AND r.grp = k.column3 AND r.version = k.column4"
        )
        self._one = (
            f"SELECT record FROM {table} "
            "WHERE entity_type = ? AND entity_id = ? AND grp = ? AND version = ?"
        )
        self._put = (
            f"INSERT OR REPLACE INTO {table} (entity_type, entity_id, grp, version, record) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        self._del = (
            f"DELETE FROM {table} "
            "WHERE entity_type = ? AND entity_id = ? AND grp = ? AND version = ?"
        )

    async def open(self) -> None:
        """Nothing to do: the database creates the schema."""

    async def close(self) -> None:
        """Nothing to do: the database owns the connections."""

    async def ping(self) -> None:
        """Run a trivial query."""
        await self._db.read(lambda c: c.execute("SELECT 1").fetchone())

    async def get_many(
        self, keys: Sequence[RowKey], *, consistent: bool = False
    ) -> list[StoreResult]:
        """Records for ``keys`` in order (None where there is no row)."""
        if not keys:
            return []
        return await self._db.read(lambda c: self._get_sync(c, keys))

    def _get_sync(self, conn: sqlite3.Connection, keys: Sequence[RowKey]) -> list[StoreResult]:
        found: dict[tuple[str, str, str, int], bytes] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            sql = self._sel.format(",".join(["(?,?,?,?)"] * len(chunk)))
            params = [p for k in chunk for p in k]
            for et, eid, grp, ver, blob in conn.execute(sql, params):
                found[(et, eid, grp, ver)] = blob
        out: list[StoreResult] = []
        for k in keys:
            blob = found.get(k)
            out.append(None if blob is None else decode_record(blob))
        return out

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Apply ops in one transaction, each decided against the row as stored."""
        outcomes, _ = await self.write_tracked(ops)
        return outcomes

    async def write_tracked(
        self, ops: Sequence[WriteOp]
    ) -> tuple[list[WriteOutcome], dict[tuple[str, int], tuple[int, int]]]:
        """Like :meth:`write`; also returns (before, after) generations of touched groups."""
        return await self._db.write(lambda c: _transaction(c, lambda: self._write_sync(c, ops)))

    def _write_sync(
        self, conn: sqlite3.Connection, ops: Sequence[WriteOp]
    ) -> tuple[list[WriteOutcome], dict[tuple[str, int], tuple[int, int]]]:
        outcomes: list[WriteOutcome] = []
        touched: set[tuple[str, int]] = set()
        for op in ops:
            row = conn.execute(self._one, op.key).fetchone()
            existing = decode_record(row[0]) if row else None
            out = decide(existing, op)
            if out.record is not None:
                conn.execute(self._put, (*op.key, encode_record(out.record)))
                touched.add((op.key.group, op.key.version))
            outcomes.append(out)
        return outcomes, self._bump(conn, touched)

    def _bump(
        self, conn: sqlite3.Connection, groups: set[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        if not self._track:
            return {}
        gens: dict[tuple[str, int], tuple[int, int]] = {}
        for grp, ver in groups:
            row = conn.execute(
                "SELECT gen FROM vector_gen WHERE grp = ? AND version = ?", (grp, ver)
            ).fetchone()
            before = row[0] if row else 0
            conn.execute(
                "INSERT OR REPLACE INTO vector_gen (grp, version, gen) VALUES (?, ?, ?)",
                (grp, ver, before + 1),
            )
            gens[(grp, ver)] = (before, before + 1)
        return gens

    async def generation(self, group: str, version: int) -> int:
        """The change generation of one group (0 when never written)."""

        def q(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT gen FROM vector_gen WHERE grp = ? AND version = ?", (group, version)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._db.read(q)

    async def load_group(self, group: str, version: int) -> tuple[list[tuple[str, Record]], int]:
        """Every row of one group version and its generation, read in one transaction."""

        def q(c: sqlite3.Connection) -> tuple[list[tuple[str, Record]], int]:
            c.execute("BEGIN")
            try:
                rows = [
                    (eid, decode_record(blob))
                    for eid, blob in c.execute(
                        f"SELECT entity_id, record FROM {self._t} WHERE grp = ? AND version = ?",
                        (group, version),
                    )
                ]
                row = c.execute(
                    "SELECT gen FROM vector_gen WHERE grp = ? AND version = ?", (group, version)
                ).fetchone()
            finally:
                c.execute("COMMIT")
            return rows, int(row[0]) if row else 0

        return await self._db.read(q)

    async def delete(self, keys: Sequence[RowKey]) -> list[RowKey]:
        """Delete rows; return the keys that existed."""
        gone, _ = await self.delete_tracked(keys)
        return gone

    async def delete_tracked(
        self, keys: Sequence[RowKey]
    ) -> tuple[list[RowKey], dict[tuple[str, int], tuple[int, int]]]:
        """Like :meth:`delete`; also returns generations of touched groups."""

        def body(
            c: sqlite3.Connection,
        ) -> tuple[list[RowKey], dict[tuple[str, int], tuple[int, int]]]:
            gone = [k for k in keys if c.execute(self._del, k).rowcount]
            return gone, self._bump(c, {(k.group, k.version) for k in gone})

        return await self._db.write(lambda c: _transaction(c, lambda: body(c)))

    async def delete_entity(self, entity_type: str, entity_id: str) -> list[RowKey]:
        """Delete every row of one entity (an index range, never a scan)."""
        gone, _ = await self.delete_entity_tracked(entity_type, entity_id)
        return gone

    async def delete_entity_tracked(
        self, entity_type: str, entity_id: str
    ) -> tuple[list[RowKey], dict[tuple[str, int], tuple[int, int]]]:
        """Like :meth:`delete_entity`; also returns generations of touched groups."""

        def body(
            c: sqlite3.Connection,
        ) -> tuple[list[RowKey], dict[tuple[str, int], tuple[int, int]]]:
            gone = [
                RowKey(entity_type, entity_id, g, v)
                for g, v in c.execute(
                    f"DELETE FROM {self._t} WHERE entity_type = ? AND entity_id = ? "
                    "RETURNING grp, version",
                    (entity_type, entity_id),
                ).fetchall()
            ]
            return gone, self._bump(c, {(k.group, k.version) for k in gone})

        return await self._db.write(lambda c: _transaction(c, lambda: body(c)))


_REG_ENC = msgspec.json.Encoder()
_REG_DEC = msgspec.json.Decoder(RegisteredGroup)
_AUDIT_ENC = msgspec.json.Encoder()
_AUDIT_DETAIL = msgspec.json.Decoder(dict[str, Any])


class SqliteRegistryStore:
    """Registered group versions in the ``registry`` table (a RegistryStore)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def open(self) -> None:
        """Nothing to do: the database creates the schema."""

    async def close(self) -> None:
        """Nothing to do: the database owns the connections."""

    async def load(self) -> tuple[list[RegisteredGroup], int]:
        """Every stored version and the generation, read in one transaction."""

        def q(c: sqlite3.Connection) -> tuple[list[RegisteredGroup], int]:
            c.execute("BEGIN")
            try:
                groups = [_REG_DEC.decode(b) for (b,) in c.execute("SELECT body FROM registry")]
                gen = _gen(c)
            finally:
                c.execute("COMMIT")
            return groups, gen

        return await self._db.read(q)

    async def generation(self) -> int:
        """The registry generation (grows with every change)."""
        return await self._db.read(_gen)

    async def insert(self, group: RegisteredGroup) -> RegisteredGroup | None:
        """Insert unless that name and version exist; then return the stored one."""
        d = group.definition

        def body(c: sqlite3.Connection) -> RegisteredGroup | None:
            row = c.execute(
                "SELECT body FROM registry WHERE name = ? AND version = ?", (d.name, d.version)
            ).fetchone()
            if row:
                return _REG_DEC.decode(row[0])
            c.execute(
                "INSERT INTO registry (name, version, body) VALUES (?, ?, ?)",
                (d.name, d.version, _REG_ENC.encode(group)),
            )
            _bump_gen(c)
            return None

        return await self._db.write(lambda c: _transaction(c, lambda: body(c)))

    async def replace(self, group: RegisteredGroup) -> None:
        """Overwrite a stored version."""
        d = group.definition

        def body(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR REPLACE INTO registry (name, version, body) VALUES (?, ?, ?)",
                (d.name, d.version, _REG_ENC.encode(group)),
            )
            _bump_gen(c)

        await self._db.write(lambda c: _transaction(c, lambda: body(c)))


def _gen(c: sqlite3.Connection) -> int:
    row = c.execute("SELECT v FROM meta WHERE k = 'registry_gen'").fetchone()
    return int(row[0]) if row else 0


def _bump_gen(c: sqlite3.Connection) -> None:
    c.execute(
        "INSERT INTO meta (k, v) VALUES ('registry_gen', 1) ON CONFLICT (k) DO UPDATE SET v = v + 1"
    )


class SqliteAuditLog:
    """Erasure records in the ``erasures`` table and audit events in ``audit_events``
    (an AuditLog). Triggers refuse any UPDATE or DELETE of ``audit_events``."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record_erasure(self, entry: ErasureAudit) -> None:
        """Append one record."""

        def body(c: sqlite3.Connection) -> Any:
            return c.execute(
                "INSERT INTO erasures (at, entity_type, entity_hash, deleted, request_id, actor) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.at,
                    entry.entity_type,
                    entry.entity_hash,
                    entry.deleted,
                    entry.request_id,
                    entry.actor,
                ),
            )

        await self._db.write(body)

    async def erasures(self, entity_type: str, entity_hash: str) -> list[ErasureAudit]:
        """Records of one entity, oldest first."""

        def q(c: sqlite3.Connection) -> list[ErasureAudit]:
            return [
                ErasureAudit(at, et, eh, n, rid, actor)
                for at, et, eh, n, rid, actor in c.execute(
                    "SELECT at, entity_type, entity_hash, deleted, request_id, actor FROM erasures "
                    "WHERE entity_type = ? AND entity_hash = ? ORDER BY id",
                    (entity_type, entity_hash),
                )
            ]

        return await self._db.read(q)

    async def record(self, events: Sequence[AuditEvent]) -> None:
        """Append events in one transaction."""
        if not events:
            return
        rows = [
            (e.at, e.actor, e.action, e.target, _AUDIT_ENC.encode(e.detail), e.request_id)
            for e in events
        ]

        def body(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO audit_events (at, actor, action, target, detail, request_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        await self._db.write(lambda c: _transaction(c, lambda: body(c)))

    async def events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Events newest first, filtered by action, actor and time (index ranges)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("action", action), ("actor", actor)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        sql = "SELECT at, actor, action, target, detail, request_id FROM audit_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at DESC, id DESC LIMIT ?"
        params.append(limit)

        def q(c: sqlite3.Connection) -> list[AuditEvent]:
            return [
                AuditEvent(at, who, what, target, _AUDIT_DETAIL.decode(detail), rid)
                for at, who, what, target, detail, rid in c.execute(sql, params)
            ]

        return await self._db.read(q)
