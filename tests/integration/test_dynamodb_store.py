"""The DynamoDB stores against two independent DynamoDB-API servers: dynalite and moto.

Each test gets a fresh table on the session's servers (fixtures ``dynalite`` and ``moto``
of ``tests.servers.plugin``). Calls are counted or refused by wrapping the client's
methods; the only fake is the throttling stub of ``test_unprocessed_keys_at_the_deadline_
are_unavailable``, which simulates what neither server can produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from click.testing import CliRunner

from dsfeatures.cli import main
from dsfeatures.config import ConfigError, DynamoDBConfig, load_config
from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import Feature, FeatureGroup, Owner, RegisteredGroup
from dsfeatures.service.core import Service
from dsfeatures.stores import UNAVAILABLE, ErasureAudit, Record, RowKey, WriteOp
from dsfeatures.stores.dynamodb import DynamoRowStore, DynamoTable, create_table
from dsfeatures.stores.dynamodb_registry import DynamoAuditLog, DynamoRegistryStore
from dsfeatures.wire.types import GetRequest, WriteRequest, WriteRow

pytestmark = pytest.mark.integration

SERVERS = ["dynalite", "moto"]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(params=SERVERS)
def endpoint(request: pytest.FixtureRequest) -> str:
    """The endpoint of each DynamoDB-API server in turn."""
    return str(request.getfixturevalue(request.param).endpoint)


def table_name() -> str:
    return f"dsf_{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def fresh_table(endpoint: str, **config: Any) -> AsyncIterator[DynamoTable]:
    """A new table on ``endpoint``, dropped afterwards (the servers live for the session)."""
    name = table_name()
    table = DynamoTable(DynamoDBConfig(table=name, endpoint=endpoint, **config))
    await table.open(check=False)
    try:
        await create_table(table.client, name)
        yield table
    finally:
        with contextlib.suppress(Exception):
            await table.client.delete_table(TableName=name)
        await table.close()


@pytest.fixture
async def table(endpoint: str) -> AsyncIterator[DynamoTable]:
    async with fresh_table(endpoint) as t:
        yield t


@pytest.fixture
def rows(table: DynamoTable) -> DynamoRowStore:
    return DynamoRowStore(table)


Spy = Callable[..., Counter[str]]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """``spy(client, "query", "scan", refuse=("scan",))``: count calls, fail on refused ones."""
    counts: Counter[str] = Counter()

    def install(client: Any, *names: str, refuse: tuple[str, ...] = ()) -> Counter[str]:
        for name in (*names, *refuse):
            real = getattr(client, name)

            def wrapper(
                _name: str = name, _real: Callable[..., Awaitable[Any]] = real, **kw: Any
            ) -> Awaitable[Any]:
                counts[_name] += 1
                if _name in refuse:
                    raise AssertionError(f"{_name} must never be called")
                return _real(**kw)

            monkeypatch.setattr(client, name, wrapper)
        return counts

    return install


# --- helpers --------------------------------------------------------------------------


def key(eid: str = "r1", group: str = "rider_stats", version: int = 1, et: str = "rider") -> RowKey:
    return RowKey(et, eid, group, version)


def op(
    k: RowKey,
    values: dict[str, Any],
    *,
    mode: str = "upsert",
    t: int = 1_000_000,
    if_revision: int | None = None,
    ttl: int = 0,
) -> WriteOp:
    return WriteOp(k, mode, values, t, t + 5, "sdk", "tester", if_revision, ttl)  # type: ignore[arg-type]


async def get1(store: DynamoRowStore, k: RowKey) -> Any:
    (got,) = await store.get_many([k], consistent=True)
    return got


def statuses(outcomes: list[Any]) -> list[tuple[str, int]]:
    return [(o.status, o.revision) for o in outcomes]


# --- batch get ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [100, 250])
async def test_batch_get_sends_at_most_100_keys_per_call(
    rows: DynamoRowStore, table: DynamoTable, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    keys = [key(f"e{i}") for i in range(n)]
    present = keys[::2]
    assert all(
        o.status == "WRITTEN"
        for o in await rows.write([op(k, {"i": k.entity_id}) for k in present])
    )
    calls: list[dict[str, Any]] = []
    real: Any = table.client.batch_get_item

    async def counting(**kw: Any) -> Any:
        calls.append(kw["RequestItems"][table.name])
        return await real(**kw)

    monkeypatch.setattr(table.client, "batch_get_item", counting)
    asked = [*keys, *keys[:7]]  # duplicates are fetched once
    got = await rows.get_many(asked, consistent=True)

    assert len(calls) == math.ceil(n / 100)
    assert all(len(c["Keys"]) <= 100 for c in calls)
    assert sum(len(c["Keys"]) for c in calls) == n
    assert {c["ProjectionExpression"] for c in calls} == {"#pk, #sk, #r"}
    assert all(c["ConsistentRead"] is True for c in calls)
    assert len(got) == len(asked)
    for k, rec in zip(asked, got, strict=True):
        if int(k.entity_id[1:]) % 2 == 0:
            assert isinstance(rec, Record)
            assert rec.values == {"i": k.entity_id}
        else:
            assert rec is None
    print(f"\nget_many of {n} keys: {len(calls)} BatchGetItem calls")


async def test_get_many_of_nothing_makes_no_call(rows: DynamoRowStore) -> None:
    assert await rows.get_many([]) == []


async def test_unprocessed_keys_of_a_large_response_are_retried(
    dynalite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dynalite answers at most ~1.4 MB per BatchGetItem (1 MB + the 400 KB item limit) and
    # returns the rest as UnprocessedKeys; 100 keys of 20 KB (2 MB) exceed that.
    n, size = 300, 20_000
    async with fresh_table(dynalite.endpoint) as table:
        store = DynamoRowStore(table, retry_deadline=30.0)
        blobs = {f"e{i}": os.urandom(size) for i in range(n)}
        outs = await store.write([op(key(e), {"blob": b}) for e, b in blobs.items()])
        assert all(o.status == "WRITTEN" for o in outs)
        calls = 0
        real: Any = table.client.batch_get_item

        async def counting(**kw: Any) -> Any:
            nonlocal calls
            calls += 1
            return await real(**kw)

        monkeypatch.setattr(table.client, "batch_get_item", counting)
        got = await store.get_many([key(e) for e in blobs], consistent=True)
        assert [g.values["blob"] if isinstance(g, Record) else g for g in got] == list(
            blobs.values()
        )
        assert calls > math.ceil(n / 100)
        print(f"\nget_many of {n} keys of {size} bytes on dynalite: {calls} BatchGetItem calls")


async def test_unprocessed_keys_at_the_deadline_are_unavailable(
    rows: DynamoRowStore, table: DynamoTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [key(f"e{i}") for i in range(150)]
    await rows.write([op(k, {"x": 1}) for k in keys[:100]])
    real: Any = table.client.batch_get_item
    calls = 0

    async def throttled(**kw: Any) -> Any:
        # A stand-in for throttling: only e0 is ever processed, every other key comes
        # back unprocessed, on every call.
        nonlocal calls
        calls += 1
        req = kw["RequestItems"][table.name]
        first = [k for k in req["Keys"] if k["pk"]["S"] == "rider#e0"]
        rest = [k for k in req["Keys"] if k["pk"]["S"] != "rider#e0"]
        resp = await real(RequestItems={table.name: {**req, "Keys": first}}) if first else {}
        return {
            "Responses": resp.get("Responses", {table.name: []}),
            "UnprocessedKeys": {table.name: {**req, "Keys": rest}} if rest else {},
        }

    monkeypatch.setattr(table.client, "batch_get_item", throttled)
    store = DynamoRowStore(table, retry_deadline=0.2)
    t0 = time.monotonic()
    got = await store.get_many(keys, consistent=True)
    elapsed = time.monotonic() - t0

    assert isinstance(got[0], Record)
    assert all(g is UNAVAILABLE for g in got[1:])  # never None: the store does not know
    assert calls > 2  # both batches were retried
    assert elapsed < 2.0


# --- writes ---------------------------------------------------------------------------


async def test_conditional_writes(rows: DynamoRowStore) -> None:
    k = key()
    assert statuses(await rows.write([op(k, {"a": 1}, mode="update")])) == [("CONFLICT", 0)]
    assert statuses(await rows.write([op(k, {"a": 1}, if_revision=3)])) == [("CONFLICT", 0)]
    assert statuses(await rows.write([op(k, {"a": 1}, mode="create")])) == [("WRITTEN", 1)]
    assert statuses(await rows.write([op(k, {"a": 2}, mode="create")])) == [("CONFLICT", 1)]
    assert statuses(await rows.write([op(k, {"a": 2}, if_revision=0)])) == [("CONFLICT", 1)]
    assert statuses(await rows.write([op(k, {"a": 2}, if_revision=5)])) == [("CONFLICT", 1)]
    assert statuses(await rows.write([op(k, {"a": 2, "b": 1}, if_revision=1)])) == [("WRITTEN", 2)]
    assert statuses(await rows.write([op(k, {"b": None, "c": 3}, mode="update")])) == [
        ("WRITTEN", 3)
    ]
    rec = await get1(rows, k)
    assert rec.values == {"a": 2, "c": 3}
    assert rec.revision == 3
    assert (rec.lane, rec.writer, rec.written_at) == ("sdk", "tester", 1_000_005)


async def test_stale_writes_do_not_overwrite(rows: DynamoRowStore) -> None:
    k = key()
    await rows.write([op(k, {"a": 1}, t=2_000_000)])
    (out,) = await rows.write([op(k, {"a": 0}, t=1_000_000)])
    assert (out.status, out.revision, out.record) == ("STALE", 1, None)
    (same,) = await rows.write([op(k, {"a": 2}, t=2_000_000)])  # equal time is applied
    assert (same.status, same.revision) == ("WRITTEN", 2)
    assert (await get1(rows, k)).values == {"a": 2}


async def test_concurrent_writers_with_if_revision(rows: DynamoRowStore) -> None:
    k = key("hot")
    await rows.write([op(k, {"n": 0}, mode="create")])

    async def increment() -> str:
        rec = await get1(rows, k)
        (out,) = await rows.write([op(k, {"n": rec.values["n"] + 1}, if_revision=rec.revision)])
        return out.status

    results = await asyncio.gather(*(increment() for _ in range(20)))
    written = results.count("WRITTEN")
    assert written >= 1
    assert set(results) <= {"WRITTEN", "CONFLICT"}
    final = await get1(rows, k)
    assert final.revision == 1 + written
    assert final.values["n"] == written  # no increment was lost or applied twice


async def test_concurrent_upserts_lose_no_update(rows: DynamoRowStore) -> None:
    # Five writers on one key: each round one wins, so five attempts always suffice.
    k = key("hot")
    outs = await asyncio.gather(*(rows.write([op(k, {"w": i})]) for i in range(5)))
    assert sorted(o.revision for (o,) in outs) == [1, 2, 3, 4, 5]
    assert (await get1(rows, k)).revision == 5


async def test_ops_of_one_key_in_one_call_apply_in_order(rows: DynamoRowStore) -> None:
    k, other = key("a"), key("b")
    outs = await rows.write(
        [
            op(k, {"x": 1}, mode="create"),
            op(other, {"y": 1}),
            op(k, {"x": 2, "z": 1}, t=2_000_000),
            op(k, {"x": 0}, t=1_500_000),  # stale against the previous op of this call
            op(k, {"z": None}, mode="update", t=2_000_000),
            op(k, {"x": 9}, mode="create"),
            op(k, {"x": 3}, if_revision=3, t=3_000_000),
        ]
    )
    assert statuses(outs) == [
        ("WRITTEN", 1),
        ("WRITTEN", 1),
        ("WRITTEN", 2),
        ("STALE", 2),
        ("WRITTEN", 3),
        ("CONFLICT", 3),
        ("WRITTEN", 4),
    ]
    rec = await get1(rows, k)
    assert (rec.values, rec.revision, rec.event_time) == ({"x": 3}, 4, 3_000_000)


async def test_ttl_attribute_only_when_the_group_has_a_ttl(
    rows: DynamoRowStore, table: DynamoTable
) -> None:
    t = 1_700_000_000_123_456
    await rows.write([op(key("a"), {"x": 1}, t=t, ttl=3600), op(key("b"), {"x": 1}, t=t)])

    async def item(eid: str) -> dict[str, Any]:
        resp = await table.client.get_item(
            TableName=table.name,
            Key={"pk": {"S": f"rider#{eid}"}, "sk": {"S": "rider_stats#1"}},
            ConsistentRead=True,
        )
        return dict(resp["Item"])

    a, b = await item("a"), await item("b")
    assert a["ttl"] == {"N": str(1_700_000_001 + 3600)}  # event seconds rounded up
    assert "ttl" not in b
    assert a["rev"] == {"N": "1"}
    assert a["et"] == {"N": str(t)}
    assert set(a) == {"pk", "sk", "r", "rev", "et", "ttl"}


async def test_values_round_trip(rows: DynamoRowStore) -> None:
    values = {
        "i_max": 2**63 - 1,
        "i_min": -(2**63),
        "f": 0.1 + 0.2,
        "tiny": 5e-324,
        "big": 1.7976931348623157e308,
        "bytes": b"\x00a\x00\xff\x00",
        "empty": b"",
        "s": "zürich \u2603 \x00",
        "list": [1, 2.5, "x", b"\x00", True],
        "vec": [0.1, -0.2, 0.3],
        "flag": False,
    }
    k = key("id#with#hashes \u00e9" + "x" * 900)
    await rows.write([op(k, values)])
    rec = await get1(rows, k)
    assert rec.values == values
    assert rec.values["f"] == 0.30000000000000004
    assert type(rec.values["bytes"]) is bytes


def failing(real: Any, errors: list[Exception]) -> tuple[Callable[..., Any], list[int]]:
    """A client method that raises ``errors`` one per call first, then calls ``real``."""
    calls = [0]

    async def method(**kw: Any) -> Any:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return await real(**kw)

    return method, calls


def throttled(op_name: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
        op_name,
    )


async def test_throttled_writes_and_reads_are_repeated(
    rows: DynamoRowStore, table: DynamoTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    put, put_calls = failing(table.client.put_item, [throttled("PutItem")] * 2)
    get, get_calls = failing(
        table.client.batch_get_item,
        [throttled("BatchGetItem"), EndpointConnectionError(endpoint_url="x")],
    )
    monkeypatch.setattr(table.client, "put_item", put)
    monkeypatch.setattr(table.client, "batch_get_item", get)
    assert statuses(await rows.write([op(key(), {"a": 1})])) == [("WRITTEN", 1)]
    assert put_calls == [3]
    assert get_calls == [3]  # the write's prefetch: throttled, then a connection error


async def test_a_put_that_failed_in_flight_is_not_repeated(
    rows: DynamoRowStore, table: DynamoTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It may have been applied: repeating it could apply the op twice.
    put, put_calls = failing(table.client.put_item, [EndpointConnectionError(endpoint_url="x")])
    monkeypatch.setattr(table.client, "put_item", put)
    with pytest.raises(BackendUnavailable, match="PutItem"):
        await rows.write([op(key(), {"a": 1})])
    assert put_calls == [1]


# --- deletes --------------------------------------------------------------------------


async def test_delete_returns_the_keys_that_existed(rows: DynamoRowStore) -> None:
    a, b, c = key("a"), key("b"), key("c")
    await rows.write([op(a, {"x": 1}), op(c, {"x": 1})])
    assert await rows.delete([a, b, c, a]) == [a, c]
    assert await rows.get_many([a, b, c], consistent=True) == [None, None, None]
    assert await rows.delete([a]) == []


async def test_delete_entity_queries_one_partition_and_never_scans(
    rows: DynamoRowStore, table: DynamoTable, spy: Spy
) -> None:
    mine = [key("r1", f"g{i}", v) for i in range(15) for v in (1, 2)]  # 30 rows, 2 batches
    others = [
        key("r10"),
        key("r1#x"),  # an id that starts like r1's
        key("r1", et="driver"),
        key("x", et="r1"),
    ]
    await rows.write([op(k, {"x": 1}) for k in [*mine, *others]])
    calls = spy(table.client, "query", "batch_write_item", refuse=("scan",))

    gone = await rows.delete_entity("rider", "r1")

    assert sorted(gone) == sorted(mine)
    assert calls["query"] >= 1
    assert calls["batch_write_item"] >= 2
    assert calls["scan"] == 0
    assert await rows.get_many(mine, consistent=True) == [None] * len(mine)
    assert all(isinstance(r, Record) for r in await rows.get_many(others, consistent=True))
    assert await rows.delete_entity("rider", "r1") == []


async def test_delete_entity_refuses_a_type_that_would_reach_another_entity(
    rows: DynamoRowStore,
) -> None:
    victim = key("x#y")  # pk "rider#x#y", also what ("rider#x", "y") would address
    await rows.write([op(victim, {"x": 1})])
    assert await rows.delete_entity("rider#x", "y") == []
    assert isinstance(await get1(rows, victim), Record)


# --- table, ping, registry, audit ------------------------------------------------------


async def test_open_checks_the_table(endpoint: str, table: DynamoTable) -> None:
    await DynamoRowStore(table).ping()
    missing = DynamoTable(DynamoDBConfig(table=table_name(), endpoint=endpoint))
    with pytest.raises(ConfigError, match="create-table"):
        await missing.open()
    await missing.close()
    again = await create_table(table.client, table.name)
    assert not again.created


def group(name: str = "rider_stats", version: int = 1, desc: str = "") -> RegisteredGroup:
    d = FeatureGroup(
        name=name,
        version=version,
        entity_type="rider",
        features=[Feature(name="trips", type="int64")],
        owner=Owner(team="t"),
        description=desc,
    )
    return RegisteredGroup(d, "fp", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")


async def test_registry_store(table: DynamoTable) -> None:
    reg = DynamoRegistryStore(table)
    await reg.open()
    assert await reg.load() == ([], 0)
    assert await reg.generation() == 0
    assert await reg.insert(group("a", 1)) is None
    gen1 = await reg.generation()
    assert gen1 > 0
    assert await reg.insert(group("a", 1, desc="other")) == group("a", 1)  # returns existing
    assert await reg.generation() == gen1  # nothing stored, nothing changed
    assert await reg.insert(group("a", 2)) is None
    assert await reg.insert(group("b", 10)) is None
    await reg.replace(group("a", 1, desc="new"))
    groups, gen = await reg.load()
    assert gen > gen1
    assert gen == await reg.generation()
    assert sorted((g.definition.name, g.definition.version) for g in groups) == [
        ("a", 1),
        ("a", 2),
        ("b", 10),
    ]
    assert next(g for g in groups if g.definition.version == 1).definition.description == "new"
    await reg.close()


async def test_audit_log(table: DynamoTable) -> None:
    audit = DynamoAuditLog(table)
    first = ErasureAudit("2026-01-01T00:00:00Z", "rider", "h1", 3, "req1", "ops")
    second = ErasureAudit("2026-01-01T00:00:01Z", "rider", "h1", 0, "req2")
    await audit.record_erasure(first)
    await audit.record_erasure(ErasureAudit("2026-01-01T00:00:00Z", "driver", "h1", 1))
    await audit.record_erasure(second)
    assert await audit.erasures("rider", "h1") == [first, second]
    assert await audit.erasures("rider", "h2") == []
    assert len(await audit.erasures("driver", "h1")) == 1


# --- the daemon's service and the command line ------------------------------------------


async def test_service_runs_on_dynamodb(endpoint: str, tmp_path: Path) -> None:
    async with fresh_table(endpoint) as table:
        env = {"DSF_DYNAMODB_TABLE": table.name, "DSF_DYNAMODB_ENDPOINT": endpoint}
        config = load_config(env=env, overrides={"server": {"data_dir": str(tmp_path / "a")}})
        svc = await Service.open(config)
        try:
            assert svc.stores.backend_names["rows"] == "dynamodb"
            ready, checks = await svc.readiness()
            assert ready
            assert checks["rows"] == "ok"
            fg = FeatureGroup(
                name="rider_stats",
                version=1,
                entity_type="rider",
                features=[
                    Feature(name="trips", type="int64", default=0),
                    Feature(name="fare", type="float64"),
                    Feature(name="raw", type="bytes"),
                ],
                owner=Owner(team="pricing"),
            )
            resp, created = await svc.register(fg)
            assert created
            assert resp.status == "created"
            w = await svc.write(
                WriteRequest(
                    rows=[
                        WriteRow("rider_stats", "r1", {"trips": 3, "fare": 12.5}),
                        WriteRow("rider_stats", "r2", {"trips": 2**63 - 1, "raw": "AAEA"}),
                    ]
                )
            )
            assert [(r.status, r.revision) for r in w.results] == [("WRITTEN", 1)] * 2
            req = GetRequest(
                entities={"rider": ["r1", "r2", "r3"]},
                features=["rider_stats:trips", "rider_stats:fare", "rider_stats:raw"],
            )
            got = await svc.get(req)
            assert [r.values for r in got.rows] == [
                [3, 12.5, None],
                [2**63 - 1, None, b"\x00\x01\x00"],
                [0, None, None],
            ]
            assert got.rows[2].statuses == ["DEFAULTED", "NOT_FOUND", "NOT_FOUND"]
        finally:
            await svc.close()

        # Another daemon (its own data_dir) sees the same registry and rows.
        other = load_config(env=env, overrides={"server": {"data_dir": str(tmp_path / "b")}})
        svc = await Service.open(other)
        try:
            assert (await svc.get(req)).rows[0].values == [3, 12.5, None]
            erased = await svc.erase("rider", "r1", request_id="req-1", actor="ops")
            assert erased.deleted == 1
            after = await svc.get(req)
            assert after.rows[0].statuses == ["DEFAULTED", "NOT_FOUND", "NOT_FOUND"]
            assert after.rows[1].statuses[0] == "PRESENT"
            (audit,) = await svc.erasures("rider", "r1")
            assert (audit.deleted, audit.request_id, audit.actor) == (1, "req-1", "ops")
        finally:
            await svc.close()


def test_cli_create_table_is_idempotent(endpoint: str) -> None:
    name = table_name()
    env = {"DSF_DYNAMODB_TABLE": name, "DSF_DYNAMODB_ENDPOINT": endpoint}
    runner = CliRunner()
    first = runner.invoke(main, ["dynamodb", "create-table"], env=env)
    assert first.exit_code == 0, first.output
    assert f"table {name}: created" in first.output
    second = runner.invoke(main, ["dynamodb", "create-table"], env=env)
    assert second.exit_code == 0, second.output
    assert f"table {name}: already exists" in second.output
    none = runner.invoke(main, ["dynamodb", "create-table"], env={"DSF_DYNAMODB_TABLE": ""})
    assert none.exit_code != 0
    assert "no table named" in none.output
