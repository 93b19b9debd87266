"""The service's write path, BatchGet, erasure and registry rules, on real embedded stores.

Every test runs with blockbuster active, so any blocking call made on the event
loop (rather than in the SQLite threads) fails the test.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from blockbuster import blockbuster_ctx

from dsfeatures.config import DynamoDBConfig, load_config
from dsfeatures.errors import Conflict, InvalidRequest, NotFound, UnknownFeature
from dsfeatures.registry import Feature, FeatureGroup, Lineage, Owner
from dsfeatures.service import Service
from dsfeatures.stores.dynamodb import DynamoTable, create_table
from dsfeatures.wire import (
    DeleteRequest,
    GetRequest,
    GetResponse,
    SearchRequest,
    WriteRequest,
    WriteResult,
    WriteRow,
)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def stats_group(version: int = 1, **changes: Any) -> FeatureGroup:
    g = FeatureGroup(
        name="rider_stats",
        version=version,
        entity_type="rider",
        features=[
            Feature("trips_7d", "int64", default=0, description="rides in 7 days"),
            Feature("avg_fare", "float64"),
            Feature("home_city", "string"),
        ],
        owner=Owner("pricing", "pricing@example.com"),
        tier=2,
        description="Rider ride statistics",
        tags=["rides"],
        lineage=Lineage(sources=["rides"]),
    )
    return msgspec.structs.replace(g, **changes)


EMB = FeatureGroup(
    name="rider_emb",
    version=1,
    entity_type="rider",
    kind="embedding",
    features=[
        Feature("vec", "vector", dimension=4, metric="cosine"),
        Feature("city", "string"),
    ],
    owner=Owner("perso"),
)

DRIVER = FeatureGroup(
    name="driver_stats",
    version=1,
    entity_type="driver",
    features=[Feature("rating", "float64", default=5.0)],
    owner=Owner("ops"),
)


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> dict[str, int]:
    """Limits for the service; parametrise indirectly to change them."""
    return getattr(request, "param", {})


#: Store configurations every service test runs on: the same cases, every backend.
#: name -> (DynamoDB server fixture or None, ValKey fixture or None)
BACKENDS: dict[str, tuple[str | None, str | None]] = {
    "embedded": (None, None),
    "sqlite+valkey": (None, "valkey"),
    "dynalite": ("dynalite", None),
    "moto+valkey": ("moto", "valkey"),
    "dynalite+valkey-cluster": ("dynalite", "valkey_cluster"),
    "dynalite+valkey+opensearch": ("dynalite", "valkey"),
}


@pytest.fixture(
    params=[
        pytest.param(n, marks=pytest.mark.integration) if n != "embedded" else n for n in BACKENDS
    ]
)
async def backend_overrides(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Config sections selecting this test's backends (fresh table, fresh key prefix)."""
    dynamo, cache = BACKENDS[request.param]
    out: dict[str, dict[str, Any]] = {}
    if dynamo is not None:
        endpoint = request.getfixturevalue(dynamo).endpoint
        table = f"svc-{uuid.uuid4().hex[:12]}"
        out["dynamodb"] = {"table": table, "endpoint": endpoint}
        t = DynamoTable(DynamoDBConfig(table=table, endpoint=endpoint))
        await t.open(check=False)
        try:
            await create_table(t.client, table)
        finally:
            await t.close()
    if request.param.endswith("+opensearch"):
        node = request.getfixturevalue("opensearch")
        out["opensearch"] = {
            "url": node.url,
            "index_prefix": f"t{uuid.uuid4().hex[:10]}",
            "replicas": 0,
        }
    if cache is not None:
        server = request.getfixturevalue(cache)
        out["cache"] = {
            "type": "valkey",
            "valkey_url": server.url,
            "valkey_cluster": cache == "valkey_cluster",
            "key_prefix": f"t{uuid.uuid4().hex[:10]}",
        }
    return out


@pytest.fixture
async def svc(
    tmp_path: Path, limits: dict[str, int], backend_overrides: dict[str, dict[str, Any]]
) -> AsyncIterator[Service]:
    config = load_config(
        env={},
        overrides={
            "server": {"data_dir": str(tmp_path / "data")},
            "limits": limits,
            **backend_overrides,
        },
    )
    service = await Service.open(config)
    with blockbuster_ctx():
        try:
            for g in (stats_group(), EMB, DRIVER):
                await service.register(g)
            yield service
        finally:
            await service.close()


def row(
    entity_id: str = "r1",
    group: str = "rider_stats",
    *,
    at: datetime | None = T0,
    version: int | None = None,
    if_revision: int | None = None,
    entity_type: str | None = None,
    **values: Any,
) -> WriteRow:
    return WriteRow(
        group=group,
        entity_id=entity_id,
        values=values,
        version=version,
        event_time=at,
        if_revision=if_revision,
        entity_type=entity_type,
    )


async def write(svc: Service, *rows: WriteRow, mode: str = "upsert") -> list[WriteResult]:
    resp = await svc.write(WriteRequest(rows=list(rows), mode=mode), writer="tests")  # type: ignore[arg-type]
    assert len(resp.results) == len(rows)
    return resp.results


async def get(
    svc: Service, features: list[str], ids: list[str], *, et: str = "rider", meta: bool = False
) -> GetResponse:
    return await svc.get(GetRequest({et: ids}, features, meta))


async def cells(svc: Service, features: list[str], ids: list[str], et: str = "rider"):
    """(value, status) per entity and feature."""
    resp = await get(svc, features, ids, et=et)
    assert resp.features == features
    assert [r.entity for r in resp.rows] == [{et: i} for i in ids]
    return [list(zip(r.values, r.statuses, strict=True)) for r in resp.rows]


def statuses(results: list[WriteResult]) -> list[tuple[str, int]]:
    return [(r.status, r.revision) for r in results]


STATS = ["rider_stats:trips_7d", "rider_stats:avg_fare", "rider_stats:home_city"]
NOTHING = [(0, "DEFAULTED"), (None, "NOT_FOUND"), (None, "NOT_FOUND")]


# --- the happy path -------------------------------------------------------------------


async def test_write_then_read_with_metadata(svc: Service) -> None:
    got = await write(svc, row("r1", trips_7d=3, avg_fare=12.5), row("r2", home_city="sf"))
    assert statuses(got) == [("WRITTEN", 1), ("WRITTEN", 1)]
    resp = await get(svc, [*STATS, "rider_stats@1:avg_fare"], ["r1", "r2", "r3"], meta=True)
    r1, r2, r3 = resp.rows
    assert r1.values == [3, 12.5, None, 12.5]
    assert r1.statuses == ["PRESENT", "PRESENT", "NOT_FOUND", "PRESENT"]
    assert r1.event_times == [T0] * 4
    assert r1.written_at is not None
    assert all(abs(w - datetime.now(UTC)) < timedelta(minutes=1) for w in r1.written_at)
    assert r2.values == [0, None, "sf", None]
    assert r2.statuses == ["DEFAULTED", "NOT_FOUND", "PRESENT", "NOT_FOUND"]
    assert r3.values == [0, None, None, None]
    assert r3.statuses == ["DEFAULTED", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"]
    assert r3.event_times == [None] * 4


async def test_without_metadata_no_times_are_returned(svc: Service) -> None:
    await write(svc, row(trips_7d=1))
    resp = await get(svc, STATS, ["r1"])
    assert resp.rows[0].event_times is None
    assert resp.rows[0].written_at is None


async def test_event_time_defaults_to_the_time_of_the_write(svc: Service) -> None:
    await write(svc, row(at=None, trips_7d=1))
    (r,) = (await get(svc, STATS[:1], ["r1"], meta=True)).rows
    assert r.event_times is not None
    assert r.event_times[0] is not None
    assert abs(r.event_times[0] - datetime.now(UTC)) < timedelta(minutes=1)


async def test_revisions_and_partial_update(svc: Service) -> None:
    assert statuses(await write(svc, row(trips_7d=1, home_city="la"))) == [("WRITTEN", 1)]
    later = T0 + timedelta(hours=1)
    got = await write(svc, row(at=later, avg_fare=9.0, home_city=None), mode="update")
    assert statuses(got) == [("WRITTEN", 2)]
    assert await cells(svc, STATS, ["r1"]) == [
        [(1, "PRESENT"), (9.0, "PRESENT"), (None, "NOT_FOUND")]
    ]
    # upsert replaces the whole row
    assert statuses(await write(svc, row(at=later, avg_fare=1.0))) == [("WRITTEN", 3)]
    assert await cells(svc, STATS, ["r1"]) == [
        [(0, "DEFAULTED"), (1.0, "PRESENT"), (None, "NOT_FOUND")]
    ]


async def test_int_is_accepted_for_float64_and_stored_as_float(svc: Service) -> None:
    await write(svc, row(avg_fare=12))
    (((value, status),),) = await cells(svc, ["rider_stats:avg_fare"], ["r1"])
    assert (value, status) == (12.0, "PRESENT")
    assert type(value) is float


# --- all-or-nothing validation --------------------------------------------------------

BAD_ROWS: list[tuple[WriteRow, type[Exception], str]] = [
    (row("r2", trips_7d="3"), InvalidRequest, "rows[1].values.trips_7d: expected int64"),
    (row("r2", trips_7d=True), InvalidRequest, "rows[1].values.trips_7d: expected int64, got bool"),
    (row("r2", avg_fare=float("nan")), InvalidRequest, "rows[1].values.avg_fare:"),
    (row("r2", nope=1), UnknownFeature, "rows[1].values.nope:"),
    (row("r2"), InvalidRequest, "rows[1].values:"),
    (row("r2", "no_such_group", x=1), UnknownFeature, "rows[1].group: unknown feature group"),
    (
        row("r2", version=9, trips_7d=1),
        UnknownFeature,
        "rows[1].group: group 'rider_stats' has no version",
    ),
    (row("r2", entity_type="driver", trips_7d=1), InvalidRequest, "rows[1].entity_type:"),
    (row("é" * 513, trips_7d=1), InvalidRequest, "rows[1].entity_id:"),
    (
        row("r2", "rider_emb", vec=[1.0, 2.0, 3.0]),
        InvalidRequest,
        "rows[1].values.vec: expected a vector of dimension 4",
    ),
    (row("r2", "rider_emb", vec=[1, 2, 3, "4"]), InvalidRequest, "rows[1].values.vec:"),
    (
        row("r2", "rider_emb", city="sf"),
        InvalidRequest,
        "rows[1].values.vec: an embedding row needs",
    ),
]


@pytest.mark.parametrize(("bad", "error", "message"), BAD_ROWS, ids=[m for *_, m in BAD_ROWS])
async def test_one_bad_row_refuses_the_whole_batch(
    svc: Service, bad: WriteRow, error: type[Exception], message: str
) -> None:
    good = [row("r1", trips_7d=5), bad, row("r3", "rider_emb", vec=[1, 0, 0, 0], city="sf")]
    with pytest.raises(error) as info:
        await write(svc, *good)
    assert isinstance(info.value, InvalidRequest)
    assert info.value.status == 400
    assert str(info.value).startswith(message)
    # Nothing of the request was written, in either store.
    assert await cells(svc, STATS, ["r1"]) == [NOTHING]
    assert await cells(svc, ["rider_emb:vec"], ["r3"]) == [[(None, "NOT_FOUND")]]
    hits = await svc.search(SearchRequest("rider_emb", [1.0, 0.0, 0.0, 0.0]))
    assert hits.results == []


async def test_entity_id_of_1024_bytes_is_accepted(svc: Service) -> None:
    eid = "é" * 512  # 1,024 bytes of UTF-8
    assert statuses(await write(svc, row(eid, trips_7d=1))) == [("WRITTEN", 1)]
    assert await cells(svc, STATS[:1], [eid]) == [[(1, "PRESENT")]]


async def test_matching_entity_type_is_accepted(svc: Service) -> None:
    assert statuses(await write(svc, row(entity_type="rider", trips_7d=1))) == [("WRITTEN", 1)]


async def test_embedding_rows_are_readable_by_key(svc: Service) -> None:
    await write(svc, row("r1", "rider_emb", vec=[1, 2, 3, 4], city="sf"))
    assert await cells(svc, ["rider_emb:vec", "rider_emb:city"], ["r1", "r2"]) == [
        [([1.0, 2.0, 3.0, 4.0], "PRESENT"), ("sf", "PRESENT")],
        [(None, "NOT_FOUND"), (None, "NOT_FOUND")],
    ]


async def test_search_vector_dimension_mismatch(svc: Service) -> None:
    with pytest.raises(InvalidRequest, match=r"^vector: expected a vector of dimension 4"):
        await svc.search(SearchRequest("rider_emb", [1.0, 2.0]))


# --- per-row outcomes -----------------------------------------------------------------


async def test_stale_write_is_reported_per_row_and_the_newer_value_kept(svc: Service) -> None:
    await write(svc, row("r1", trips_7d=10))
    got = await write(
        svc,
        row("r1", at=T0 - timedelta(seconds=1), trips_7d=1),
        row("r2", at=T0 - timedelta(days=1), trips_7d=2),
        row("r1", at=T0, trips_7d=11),
    )
    assert [(r.status, r.revision) for r in got] == [("STALE", 1), ("WRITTEN", 1), ("WRITTEN", 2)]
    assert got[0].message
    resp = await get(svc, STATS[:1], ["r1", "r2"], meta=True)
    assert [r.values for r in resp.rows] == [[11], [2]]
    assert resp.rows[0].event_times == [T0]


async def test_stale_embedding_write_keeps_the_newer_vector(svc: Service) -> None:
    await write(svc, row("r1", "rider_emb", vec=[1, 0, 0, 0]))
    got = await write(svc, row("r1", "rider_emb", at=T0 - timedelta(hours=1), vec=[0, 1, 0, 0]))
    assert statuses(got) == [("STALE", 1)]
    hits = await svc.search(SearchRequest("rider_emb", [1.0, 0.0, 0.0, 0.0], k=1))
    assert [(h.entity_id, round(h.score, 6)) for h in hits.results] == [("r1", 1.0)]


async def test_conditional_writes_conflict_per_row(svc: Service) -> None:
    await write(svc, row("r1", trips_7d=1))
    got = await write(svc, row("r1", trips_7d=2), row("r2", trips_7d=2), mode="create")
    assert statuses(got) == [("CONFLICT", 1), ("WRITTEN", 1)]
    got = await write(svc, row("r3", trips_7d=3), mode="update")
    assert statuses(got) == [("CONFLICT", 0)]
    got = await write(
        svc, row("r1", trips_7d=4, if_revision=2), row("r2", trips_7d=4, if_revision=1)
    )
    assert statuses(got) == [("CONFLICT", 1), ("WRITTEN", 2)]
    got = await write(svc, row("r4", trips_7d=4, if_revision=0))
    assert statuses(got) == [("WRITTEN", 1)]
    assert await cells(svc, STATS[:1], ["r1", "r2", "r3", "r4"]) == [
        [(1, "PRESENT")],
        [(4, "PRESENT")],
        [(0, "DEFAULTED")],
        [(4, "PRESENT")],
    ]


async def test_mixed_scalar_and_embedding_results_keep_request_order(svc: Service) -> None:
    await write(svc, row("r2", trips_7d=1))
    got = await write(
        svc,
        row("r1", "rider_emb", vec=[1, 0, 0, 0]),
        row("r2", trips_7d=2),
        row("r1", "rider_emb", vec=[0, 1, 0, 0]),
        row("r9", trips_7d=2),
    )
    assert statuses(got) == [("WRITTEN", 1), ("WRITTEN", 2), ("WRITTEN", 2), ("WRITTEN", 1)]


# --- reads: expiry, defaults ----------------------------------------------------------


async def test_ttl_expiry(svc: Service) -> None:
    await svc.register(stats_group(name="fresh_stats", ttl_seconds=1))
    now = datetime.now(UTC)
    await write(
        svc,
        row("old", "fresh_stats", at=now - timedelta(hours=1), trips_7d=7),
        row("new", "fresh_stats", at=now + timedelta(minutes=5), trips_7d=8),
    )
    resp = await get(
        svc, ["fresh_stats:trips_7d", "rider_stats:trips_7d"], ["old", "new"], meta=True
    )
    old, new = resp.rows
    # An expired value is not replaced by the default.
    assert list(zip(old.values, old.statuses, strict=True)) == [(None, "EXPIRED"), (0, "DEFAULTED")]
    assert old.event_times is not None
    assert old.event_times[0] is not None
    assert list(zip(new.values, new.statuses, strict=True)) == [(8, "PRESENT"), (0, "DEFAULTED")]


async def test_defaulted_versus_not_found(svc: Service) -> None:
    await write(svc, row("partial", home_city="sf"))
    assert await cells(svc, STATS, ["absent", "partial"]) == [
        NOTHING,
        [(0, "DEFAULTED"), (None, "NOT_FOUND"), ("sf", "PRESENT")],
    ]
    assert await cells(svc, ["driver_stats:rating"], ["d1"], et="driver") == [[(5.0, "DEFAULTED")]]


async def test_reads_across_entity_types(svc: Service) -> None:
    await write(svc, row("r1", trips_7d=4), row("d1", "driver_stats", rating=4.5))
    resp = await svc.get(
        GetRequest(
            {"rider": ["r1", "r2"], "driver": ["d2", "d1"]},
            ["rider_stats:trips_7d", "driver_stats:rating"],
        )
    )
    assert [r.entity for r in resp.rows] == [
        {"rider": "r1", "driver": "d2"},
        {"rider": "r2", "driver": "d1"},
    ]
    assert [r.values for r in resp.rows] == [[4, 5.0], [0, 4.5]]
    assert [r.statuses for r in resp.rows] == [["PRESENT", "DEFAULTED"], ["DEFAULTED", "PRESENT"]]


@pytest.mark.parametrize(
    ("req", "error", "message"),
    [
        (
            GetRequest({"rider": ["r1"], "driver": ["a", "b"]}, STATS[:1]),
            InvalidRequest,
            "entities.driver:",
        ),
        (GetRequest({"driver": ["d1"]}, STATS[:1]), InvalidRequest, "features[0]:"),
        (GetRequest({"rider": ["r1", "é" * 513]}, STATS[:1]), InvalidRequest, "entities.rider[1]:"),
        (
            GetRequest({"rider": ["r1"]}, ["rider_stats:trips_7d", "rider_stats:nope"]),
            UnknownFeature,
            "features[1]:",
        ),
        (GetRequest({"rider": ["r1"]}, ["rider_stats@2:trips_7d"]), UnknownFeature, "features[0]:"),
        (GetRequest({"rider": ["r1"]}, ["nope:x"]), UnknownFeature, "features[0]:"),
        (GetRequest({"rider": ["r1"]}, ["rider_stats"]), InvalidRequest, "features[0]:"),
    ],
)
async def test_bad_reads_name_the_field(
    svc: Service, req: GetRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        await svc.get(req)
    assert str(info.value).startswith(message)


# --- limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [{"max_write_rows": 3}], indirect=True)
async def test_write_batch_size_limit(svc: Service) -> None:
    assert len(await write(svc, *[row(f"r{i}", trips_7d=i) for i in range(3)])) == 3
    with pytest.raises(InvalidRequest) as info:
        await write(svc, *[row(f"x{i}", trips_7d=i) for i in range(4)])
    assert info.value.code == "BATCH_TOO_LARGE"
    assert info.value.status == 400
    assert str(info.value).startswith("rows:")
    assert await cells(svc, STATS[:1], ["x0"]) == [[(0, "DEFAULTED")]]


@pytest.mark.parametrize("limits", [{"max_entities": 2, "max_features": 2}], indirect=True)
async def test_read_batch_size_limits(svc: Service) -> None:
    await get(svc, STATS[:2], ["a", "b"])
    with pytest.raises(InvalidRequest) as info:
        await get(svc, STATS[:1], ["a", "b", "c"])
    assert info.value.code == "BATCH_TOO_LARGE"
    assert str(info.value).startswith("entities:")
    with pytest.raises(InvalidRequest) as info:
        await get(svc, STATS, ["a"])
    assert info.value.code == "BATCH_TOO_LARGE"
    assert str(info.value).startswith("features:")


@pytest.mark.parametrize("limits", [{"max_delete_keys": 2}], indirect=True)
async def test_delete_batch_size_limit(svc: Service) -> None:
    await write(svc, row("a", trips_7d=1), row("b", trips_7d=1))
    resp = await svc.delete(DeleteRequest("rider", ["a", "b"], ["rider_stats"]))
    assert resp.deleted == 2
    with pytest.raises(InvalidRequest) as info:
        await svc.delete(DeleteRequest("rider", ["a", "b", "c"], ["rider_stats"]))
    assert info.value.code == "BATCH_TOO_LARGE"


# --- delete and erase -----------------------------------------------------------------


async def test_delete_rows_of_named_groups(svc: Service) -> None:
    await svc.register(stats_group(version=2))
    await write(
        svc,
        row("r1", version=1, trips_7d=1),
        row("r1", version=2, trips_7d=2),
        row("r1", "rider_emb", vec=[1, 0, 0, 0]),
        row("r2", version=1, trips_7d=3),
    )
    resp = await svc.delete(
        DeleteRequest("rider", ["r1", "nobody"], ["rider_stats@1", "rider_emb"])
    )
    assert resp.deleted == 2
    assert await cells(
        svc, ["rider_stats@1:trips_7d", "rider_stats@2:trips_7d", "rider_emb:vec"], ["r1", "r2"]
    ) == [
        [(0, "DEFAULTED"), (2, "PRESENT"), (None, "NOT_FOUND")],
        [(3, "PRESENT"), (0, "DEFAULTED"), (None, "NOT_FOUND")],
    ]
    with pytest.raises(InvalidRequest, match=r"^groups\[0\]:"):
        await svc.delete(DeleteRequest("rider", ["r1"], ["driver_stats"]))
    with pytest.raises(UnknownFeature, match=r"^groups\[1\]:"):
        await svc.delete(DeleteRequest("rider", ["r1"], ["rider_stats", "nope"]))


async def test_erase_removes_one_entity_everywhere_and_is_audited(svc: Service) -> None:
    await svc.register(stats_group(version=2))
    await write(
        svc,
        row("r1", version=1, trips_7d=1),
        row("r1", version=2, trips_7d=2),
        row("r1", "rider_emb", vec=[1, 0, 0, 0], city="sf"),
        row("r2", version=1, trips_7d=3),
        row("r2", "rider_emb", vec=[0.9, 0.1, 0, 0], city="sf"),
        row("r1", "driver_stats", rating=4.0),  # same id, another entity type
    )
    features = ["rider_stats@1:trips_7d", "rider_stats@2:trips_7d", "rider_emb:city"]
    before = await cells(svc, features, ["r1", "r2"])  # also fills the cache
    assert before[0] == [(1, "PRESENT"), (2, "PRESENT"), ("sf", "PRESENT")]

    resp = await svc.erase("rider", "r1", request_id="req-1", actor="dpo")
    assert (resp.entity_type, resp.entity_id, resp.deleted) == ("rider", "r1", 3)

    after = await cells(svc, features, ["r1", "r2"])
    assert after[0] == [(0, "DEFAULTED"), (0, "DEFAULTED"), (None, "NOT_FOUND")]
    assert after[1] == before[1]
    assert await cells(svc, ["driver_stats:rating"], ["r1"], et="driver") == [[(4.0, "PRESENT")]]
    hits = await svc.search(SearchRequest("rider_emb", [1.0, 0.0, 0.0, 0.0]))
    assert [h.entity_id for h in hits.results] == ["r2"]

    (audit,) = await svc.erasures("rider", "r1")
    digest = hashlib.sha256(b"rider\0r1").hexdigest()
    assert (audit.entity_type, audit.entity_hash, audit.deleted) == ("rider", digest, 3)
    assert (audit.request_id, audit.actor) == ("req-1", "dpo")
    assert datetime.fromisoformat(audit.at) > datetime.now(UTC) - timedelta(minutes=1)
    assert b'"r1"' not in msgspec.json.encode(audit)  # the id itself is not kept
    assert await svc.erasures("rider", "r2") == []

    again = await svc.erase("rider", "r1")
    assert again.deleted == 0
    assert [a.deleted for a in await svc.erasures("rider", "r1")] == [3, 0]


async def test_erase_refuses_a_bad_entity_id(svc: Service) -> None:
    with pytest.raises(InvalidRequest, match=r"^entity_id:"):
        await svc.erase("rider", "")


# --- registry -------------------------------------------------------------------------


async def test_register_identical_descriptive_and_behavioural(svc: Service) -> None:
    resp, created = await svc.register(stats_group())
    assert (resp.status, created) == ("unchanged", False)

    changed = stats_group(description="Rides, per rider", tags=["rides", "gold"], tier=1)
    resp, created = await svc.register(changed)
    assert (resp.status, created) == ("updated", False)
    stored = await svc.group_version("rider_stats", 1)
    assert stored.definition == changed
    assert stored.fingerprint == resp.group.fingerprint
    assert stored.updated_at >= stored.created_at

    with pytest.raises(Conflict) as info:
        await svc.register(stats_group(ttl_seconds=60))
    assert info.value.code == "VERSION_CONFLICT"
    assert info.value.status == 409
    assert "new version" in info.value.message
    assert "ttl_seconds" in info.value.message
    assert (await svc.group_version("rider_stats", 1)).definition == changed

    resp, created = await svc.register(stats_group(version=2, ttl_seconds=60))
    assert (resp.status, created) == ("created", True)
    versions = await svc.group_versions("rider_stats")
    assert [v.definition.version for v in versions.versions] == [1, 2]
    assert versions.latest_active == 2


async def test_register_refuses_an_invalid_definition(svc: Service) -> None:
    bad = stats_group(name="bad_stats", features=[Feature("a", "int64"), Feature("a", "bool")])
    with pytest.raises(InvalidRequest, match=r"^features\[1\]\.name:"):
        await svc.register(bad)
    with pytest.raises(NotFound):
        await svc.group_versions("bad_stats")


async def test_retire_falls_back_to_the_previous_version(svc: Service) -> None:
    await svc.register(stats_group(version=2))
    await write(svc, row("r1", version=1, trips_7d=1), row("r1", version=2, trips_7d=2))
    assert await cells(svc, ["rider_stats:trips_7d"], ["r1"]) == [[(2, "PRESENT")]]

    retired = await svc.retire("rider_stats", 2)
    assert retired.retired
    assert retired.retired_at is not None

    assert await cells(svc, ["rider_stats:trips_7d"], ["r1"]) == [[(1, "PRESENT")]]
    with pytest.raises(UnknownFeature, match="retired"):
        await get(svc, ["rider_stats@2:trips_7d"], ["r1"])
    with pytest.raises(UnknownFeature, match=r"^rows\[0\]\.group:.*retired"):
        await write(svc, row("r1", version=2, trips_7d=3))
    # A write without a version goes to the newest active one.
    assert statuses(await write(svc, row("r1", at=T0 + timedelta(1), trips_7d=5))) == [
        ("WRITTEN", 2)
    ]
    assert await cells(svc, ["rider_stats@1:trips_7d"], ["r1"]) == [[(5, "PRESENT")]]
    assert (await svc.group_versions("rider_stats")).latest_active == 1

    again = await svc.retire("rider_stats", 2)  # idempotent
    assert again.retired_at == retired.retired_at
    with pytest.raises(NotFound):
        await svc.retire("rider_stats", 9)


async def test_registry_and_rows_survive_a_restart(tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"server": {"data_dir": str(tmp_path / "data")}})
    first = await Service.open(config)
    with blockbuster_ctx():
        try:
            await first.register(stats_group())
            await first.register(stats_group(version=2))
            await first.retire("rider_stats", 2)
            await write(first, row("r1", trips_7d=4))
        finally:
            await first.close()
    second = await Service.open(config)
    with blockbuster_ctx():
        try:
            assert await cells(second, ["rider_stats:trips_7d"], ["r1"]) == [[(4, "PRESENT")]]
            assert (await second.group_versions("rider_stats")).latest_active == 1
            resp, created = await second.register(stats_group())
            assert (resp.status, created) == ("unchanged", False)
        finally:
            await second.close()


# --- blocking calls -------------------------------------------------------------------


async def test_opening_the_service_does_not_block_the_event_loop(tmp_path: Path) -> None:
    config = load_config(env={}, overrides={"server": {"data_dir": str(tmp_path / "fresh")}})
    with blockbuster_ctx():
        service = await Service.open(config)
        await service.close()
