"""The row-store contract: the semantics every persistent backend must share.

Each backend is a :class:`Backend` in ``BACKENDS``; the ``row_store`` fixture runs
every test against each one. A new backend (DynamoDB, ...) joins the suite by
adding one entry that knows how to start it, restart it on the same durable
storage (to prove persistence) and stop it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from dsfeatures.config import DynamoDBConfig
from dsfeatures.stores import (
    EmbeddedVectorStore,
    Record,
    RowKey,
    RowStore,
    SqliteDatabase,
    SqliteRowStore,
    WriteOp,
    decide,
)
from dsfeatures.stores.dynamodb import DynamoRowStore, DynamoTable, create_table

# --- backends -------------------------------------------------------------------------


class Backend(Protocol):
    """How the suite drives one backend."""

    store: RowStore

    async def start(self) -> None:
        """Open the store (creating its storage if needed) and set ``store``."""

    async def restart(self) -> None:
        """Release everything, then open a new store on the same durable storage."""

    async def stop(self) -> None:
        """Release everything."""


class SqliteBackend:
    """A SQLite file; ``table`` rows or vectors; optionally behind the embedded vector store."""

    def __init__(self, path: Path, table: str, *, vector_index: bool = False) -> None:
        self._path = path
        self._table = table
        self._vector_index = vector_index
        self._db: SqliteDatabase | None = None
        self.store: RowStore

    async def start(self) -> None:
        db = SqliteDatabase(self._path)
        await db.open()
        self._db = db
        if self._vector_index:
            self.store = EmbeddedVectorStore(
                SqliteRowStore(db, self._table, track_generations=True)
            )
        else:
            self.store = SqliteRowStore(db, self._table)
        await self.store.open()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        if self._db is not None:
            await self.store.close()
            await self._db.close()
            self._db = None


class DynamoBackend:
    """A fresh table on a DynamoDB-API server (dynalite or moto)."""

    def __init__(self, endpoint: str, table: str) -> None:
        self._config = DynamoDBConfig(table=table, endpoint=endpoint)
        self._table: DynamoTable | None = None
        self.store: RowStore

    async def start(self) -> None:
        table = DynamoTable(self._config)
        await table.open(check=False)
        await create_table(table.client, self._config.table)
        self._table = table
        self.store = DynamoRowStore(table)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        if self._table is not None:
            await self._table.close()
            self._table = None


def _dynamo(server: str) -> Callable[[Path, pytest.FixtureRequest], Backend]:
    def make(tmp: Path, request: pytest.FixtureRequest) -> Backend:
        endpoint = request.getfixturevalue(server).endpoint
        return DynamoBackend(endpoint, f"contract-{uuid.uuid4().hex[:12]}")

    return make


#: Backend name -> how to build it in a test's temporary folder.
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Backend]] = {
    "sqlite": lambda tmp, _: SqliteBackend(tmp / "x.db", "rows"),
    "sqlite-vectors": lambda tmp, _: SqliteBackend(tmp / "x.db", "vectors"),
    "embedded-vectors": lambda tmp, _: SqliteBackend(tmp / "x.db", "vectors", vector_index=True),
    "dynalite": _dynamo("dynalite"),
    "moto": _dynamo("moto"),
}
#: Backends that need a real server started by the test session.
_SERVERS = {"dynalite", "moto"}


@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.integration) if name in _SERVERS else name
        for name in BACKENDS
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    b = BACKENDS[request.param](tmp_path, request)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@pytest.fixture
def row_store(backend: Backend) -> RowStore:
    return backend.store


# --- helpers --------------------------------------------------------------------------


def key(eid: str = "r1", group: str = "rider_stats", version: int = 1, et: str = "rider") -> RowKey:
    return RowKey(et, eid, group, version)


def op(
    k: RowKey,
    values: dict[str, Any],
    *,
    mode: str = "upsert",
    t: int = 1_000,
    if_revision: int | None = None,
    written_at: int = 5_000,
    lane: str = "sdk",
) -> WriteOp:
    return WriteOp(k, mode, values, t, written_at, lane, "tester", if_revision)  # type: ignore[arg-type]


async def get1(store: RowStore, k: RowKey) -> Any:
    (got,) = await store.get_many([k])
    return got


# --- protocol and reads ---------------------------------------------------------------


async def test_implements_the_protocol(row_store: RowStore) -> None:
    assert isinstance(row_store, RowStore)
    await row_store.ping()


async def test_get_many_of_nothing(row_store: RowStore) -> None:
    assert await row_store.get_many([]) == []


async def test_get_many_keeps_request_order_with_none_for_absent(row_store: RowStore) -> None:
    present = [key("a"), key("c"), key("a", version=2)]
    outs = await row_store.write([op(k, {"n": i}) for i, k in enumerate(present)])
    assert [o.status for o in outs] == ["WRITTEN"] * 3
    asked = [key("c"), key("b"), key("a"), key("a", version=2), key("a", version=3), key("c")]
    got = await row_store.get_many(asked)
    assert [None if g is None else g.values["n"] for g in got] == [1, None, 0, 2, None, 1]
    assert await row_store.get_many(asked, consistent=True) == got


async def test_get_many_across_many_keys(row_store: RowStore) -> None:
    # More keys than one backend round trip usually carries (SQLite 500, DynamoDB 100).
    written = [key(f"e{i}") for i in range(0, 1300, 2)]
    await row_store.write([op(k, {"i": int(k.entity_id[1:])}) for k in written])
    asked = [key(f"e{i}") for i in reversed(range(1300))]
    got = await row_store.get_many(asked)
    expected = [int(k.entity_id[1:]) if int(k.entity_id[1:]) % 2 == 0 else None for k in asked]
    assert [None if g is None else g.values["i"] for g in got] == expected


async def test_every_value_type_and_the_metadata_round_trip(row_store: RowStore) -> None:
    values = {
        "b": True,
        "i": -(2**63),
        "j": 2**63 - 1,
        "f": 0.1,
        "s": "héllo \u2603 \x00",
        "y": b"\x00\xff",
        "t": datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
        "l": [1, 2, 3],
        "ls": ["a", ""],
        "v": [0.5, -1.25, 3.0],
        "e": [],
    }
    k = key("ü/ñ:\u2603 " + "x" * 1000)  # odd characters and a long id
    (out,) = await row_store.write([op(k, values, t=123, written_at=456, lane="batch")])
    assert out.status == "WRITTEN"
    got = await get1(row_store, k)
    assert got == Record(values, 123, 456, "batch", "tester", 1)
    assert got == out.record


async def test_keys_differ_by_every_component(row_store: RowStore) -> None:
    keys = [key(), key("r2"), key(group="other"), key(version=2), key(et="driver")]
    await row_store.write([op(k, {"n": i}) for i, k in enumerate(keys)])
    got = await row_store.get_many(keys)
    assert [g.values["n"] for g in got] == [0, 1, 2, 3, 4]


# --- write outcomes -------------------------------------------------------------------


async def test_write_outcomes_follow_the_write_rules(row_store: RowStore) -> None:
    k = key()
    cases: list[tuple[WriteOp, str, int]] = [
        (op(k, {"a": 1}, mode="update"), "CONFLICT", 0),  # update of an absent row
        (op(k, {"a": 1}, if_revision=3), "CONFLICT", 0),
        (op(k, {"a": 1, "b": 2}, mode="create", t=100, if_revision=0), "WRITTEN", 1),
        (op(k, {"a": 9}, mode="create", t=500), "CONFLICT", 1),
        (op(k, {"a": 9}, t=99), "STALE", 1),
        (op(k, {"a": 9}, t=200, if_revision=0), "CONFLICT", 1),
        (op(k, {"a": 2}, mode="update", t=100), "WRITTEN", 2),  # equal event time applies
        (op(k, {"a": 3}, t=300, if_revision=2), "WRITTEN", 3),
        (op(k, {"c": 4}, mode="update", t=300), "WRITTEN", 4),
        (op(k, {"a": None}, mode="update", t=301, if_revision=4), "WRITTEN", 5),
    ]
    stored: Record | None = None
    for o, status, revision in cases:
        (out,) = await row_store.write([o])
        assert (out.status, out.revision) == (status, revision), o
        assert out == decide(stored, o)  # every backend decides exactly like the rules
        got = await get1(row_store, k)
        if status == "WRITTEN":
            assert got == out.record
            stored = got
        else:
            assert out.record is None
            assert got == stored  # nothing changed
    assert stored is not None
    assert stored.values == {"c": 4}
    assert stored.event_time == 301


async def test_stale_write_keeps_the_newer_value(row_store: RowStore) -> None:
    k = key()
    await row_store.write([op(k, {"a": "new"}, t=2_000)])
    (out,) = await row_store.write([op(k, {"a": "old"}, t=1_000)])
    assert (out.status, out.revision) == ("STALE", 1)
    got = await get1(row_store, k)
    assert got.values == {"a": "new"}
    assert got.event_time == 2_000


async def test_results_in_order_for_independent_rows(row_store: RowStore) -> None:
    await row_store.write([op(key("b"), {"x": 1})])
    outs = await row_store.write(
        [
            op(key("a"), {"x": 1}, mode="create"),
            op(key("b"), {"x": 2}, mode="create"),
            op(key("c"), {"x": 3}, mode="update"),
            op(key("b"), {"x": 4}, mode="update", t=2_000),
        ]
    )
    assert [(o.status, o.revision) for o in outs] == [
        ("WRITTEN", 1),
        ("CONFLICT", 1),
        ("CONFLICT", 0),
        ("WRITTEN", 2),
    ]


async def test_duplicate_keys_in_one_batch_apply_in_order(row_store: RowStore) -> None:
    k = key()
    outs = await row_store.write(
        [
            op(k, {"a": 1}, mode="create", t=10),
            op(k, {"b": 2}, mode="update", t=20),
            op(k, {"a": 0}, t=5),  # stale against the second write
            op(k, {"c": 3}, mode="create", t=30),  # the row exists by now
            op(k, {"a": 7}, mode="update", t=20, if_revision=2),
        ]
    )
    assert [(o.status, o.revision) for o in outs] == [
        ("WRITTEN", 1),
        ("WRITTEN", 2),
        ("STALE", 2),
        ("CONFLICT", 2),
        ("WRITTEN", 3),
    ]
    got = await get1(row_store, k)
    assert got.values == {"a": 7, "b": 2}
    assert got.revision == 3


async def test_a_large_batch(row_store: RowStore) -> None:
    outs = await row_store.write([op(key(f"e{i}"), {"i": i}) for i in range(700)])
    assert {(o.status, o.revision) for o in outs} == {("WRITTEN", 1)}
    got = await row_store.get_many([key("e0"), key("e699")])
    assert [g.values["i"] for g in got] == [0, 699]


# --- deletes --------------------------------------------------------------------------


async def test_delete_returns_the_keys_that_existed(row_store: RowStore) -> None:
    await row_store.write([op(key("a"), {"x": 1}), op(key("c"), {"x": 1})])
    gone = await row_store.delete([key("a"), key("b"), key("c"), key("a", version=2)])
    assert gone == [key("a"), key("c")]
    assert await row_store.get_many([key("a"), key("c")]) == [None, None]
    assert await row_store.delete([key("a")]) == []


async def test_a_deleted_row_starts_again_at_revision_1(row_store: RowStore) -> None:
    k = key()
    await row_store.write([op(k, {"x": 1}, t=10), op(k, {"x": 2}, t=20)])
    await row_store.delete([k])
    (out,) = await row_store.write([op(k, {"x": 3}, mode="create", t=1)])
    assert (out.status, out.revision) == ("WRITTEN", 1)


async def test_delete_entity_removes_exactly_that_entity(row_store: RowStore) -> None:
    mine = [
        key("r1", "rider_stats", 1),
        key("r1", "rider_stats", 2),
        key("r1", "rider_prefs", 1),
        key("r1", "rider_prefs", 7),
    ]
    others = [
        key("r2", "rider_stats", 1),
        key("r1", "rider_stats", 1, et="driver"),  # same id, other entity type
        key("r10", "rider_stats", 1),  # an id that starts with "r1"
        key("r", "rider_stats", 1),
        key("R1", "rider_stats", 1),
    ]
    await row_store.write([op(k, {"x": 1}) for k in mine + others])
    gone = await row_store.delete_entity("rider", "r1")
    assert sorted(gone) == sorted(mine)
    assert await row_store.get_many(mine) == [None] * len(mine)
    still = await row_store.get_many(others)
    assert all(isinstance(r, Record) for r in still)
    assert await row_store.delete_entity("rider", "r1") == []


async def test_delete_entity_of_an_unknown_entity(row_store: RowStore) -> None:
    await row_store.write([op(key("r1"), {"x": 1})])
    assert await row_store.delete_entity("rider", "nobody") == []
    assert await row_store.delete_entity("nobody", "r1") == []
    assert isinstance(await get1(row_store, key("r1")), Record)


# --- durability -----------------------------------------------------------------------


async def test_rows_persist_across_a_restart(backend: Backend) -> None:
    k, gone = key("kept"), key("gone")
    await backend.store.write([op(k, {"a": 1}, t=10), op(gone, {"a": 1})])
    (before,) = await backend.store.write([op(k, {"b": 2}, mode="update", t=20)])
    await backend.store.delete([gone])
    await backend.restart()
    store = backend.store
    assert await store.get_many([k, gone]) == [before.record, None]
    # The ordering rules still hold against what was stored before the restart.
    (stale,) = await store.write([op(k, {"a": 0}, t=15)])
    assert (stale.status, stale.revision) == ("STALE", 2)
    (nxt,) = await store.write([op(k, {"a": 3}, mode="update", t=30)])
    assert (nxt.status, nxt.revision) == ("WRITTEN", 3)
    assert (await get1(store, k)).values == {"a": 3, "b": 2}
