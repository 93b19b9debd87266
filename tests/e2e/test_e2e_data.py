"""Data plane end to end: writes from every lane, BatchGet, statuses, write rules, delete."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dsf_e2e import JSON, Names, SpawnDaemon, ago, embedding_group, iso, scalar_group

from dsfeatures.client import AsyncClient, Client, InvalidRequest, UnknownFeature

pytestmark = pytest.mark.e2e


def _parse(ts: str) -> datetime:
    assert ts.endswith("Z"), ts
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _row(group: str, eid: str, values: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"group": group, "entity_id": eid, "values": values, **kw}


def test_three_lanes_share_one_write_path(client: Client, http: httpx.Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(group, etype))
    event = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    ids = {lane: names.eid(lane) for lane in ("batch", "stream", "sdk")}
    before = datetime.now(UTC) - timedelta(seconds=2)
    for i, (lane, eid) in enumerate(ids.items()):
        # Each lane through raw HTTP, as the batch DAGs and the ingest service do.
        r = http.post(
            "/v1/features/write",
            json={
                "mode": "upsert",
                "lane": lane,
                "writer": f"{lane}-writer",
                "rows": [
                    _row(
                        group, eid, {"trips_7d": i + 1, "avg_fare": 10.5 + i}, event_time=iso(event)
                    )
                ],
            },
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"results": [{"status": "WRITTEN", "revision": 1}]}
    after = datetime.now(UTC) + timedelta(seconds=2)

    resp = client.batch_get(
        {etype: list(ids.values())},
        [f"{group}:trips_7d", f"{group}@1:avg_fare"],
        include_metadata=True,
    )
    assert resp.features == [f"{group}:trips_7d", f"{group}@1:avg_fare"]
    for i, row in enumerate(resp.rows):
        assert row.values == [i + 1, 10.5 + i]
        assert row.statuses == ["PRESENT", "PRESENT"]
        assert row.event_times == [event, event]
        assert row.written_at is not None
        for w in row.written_at:
            assert w is not None
            assert before <= w <= after

    # The raw body carries the metadata as RFC 3339 UTC text with a Z.
    r = http.post(
        "/v1/features/get",
        json={
            "entities": {etype: [ids["stream"]]},
            "features": [f"{group}:trips_7d"],
            "include_metadata": True,
        },
    )
    raw_row = r.json()["rows"][0]
    assert _parse(raw_row["event_times"][0]) == event
    assert before <= _parse(raw_row["written_at"][0]) <= after

    # Without include_metadata the arrays are absent.
    r = http.post(
        "/v1/features/get",
        json={"entities": {etype: [ids["sdk"]]}, "features": [f"{group}:trips_7d"]},
    )
    assert "event_times" not in r.json()["rows"][0]
    assert "written_at" not in r.json()["rows"][0]

    # The same row rewritten by the other lanes goes through the same rules (revisions).
    eid = ids["batch"]
    for rev, lane in enumerate(("stream", "sdk"), start=2):
        res = client.write(
            [
                _row(
                    group,
                    eid,
                    {"trips_7d": 100 + rev},
                    event_time=iso(event + timedelta(seconds=rev)),
                )
            ],
            lane=lane,  # type: ignore[arg-type]
        )
        assert (res[0].status, res[0].revision) == ("WRITTEN", rev)
    # An unknown lane is refused.
    r = http.post(
        "/v1/features/write",
        json={"lane": "kafka", "rows": [_row(group, eid, {"trips_7d": 1})]},
    )
    assert r.status_code == 400
    assert "lane" in r.json()["message"]


def _batch_fixture(client: Client, names: Names) -> dict[str, Any]:
    """Three groups over two entity types, 100 entities, values for some of them."""
    rider, driver = names.etype("rider"), names.etype("driver")
    ga, gb, gc = names.group("ride_a"), names.group("ride_b"), names.group("drive_c")
    client.register_group(
        scalar_group(ga, rider, [{"name": "x", "type": "int64"}, {"name": "s", "type": "string"}])
    )
    client.register_group(
        scalar_group(gb, rider, [{"name": "y", "type": "float64", "default": -1.5}])
    )
    client.register_group(
        scalar_group(
            gc, driver, [{"name": "z", "type": "list<int64>"}, {"name": "ok", "type": "bool"}]
        )
    )
    riders = [names.eid(f"r{i}") for i in range(100)]
    drivers = [names.eid(f"d{i}") for i in range(100)]
    t = ago(120)
    rows = []
    for i in range(100):
        if i % 2 == 0:
            rows.append(_row(ga, riders[i], {"x": i, "s": f"s{i}"}, event_time=t))
        if i % 3 == 0:
            rows.append(_row(gb, riders[i], {"y": i / 4}, event_time=t))
        if i < 90:
            rows.append(_row(gc, drivers[i], {"z": [i, i + 1], "ok": i % 5 == 0}, event_time=t))
    res = client.write(rows, lane="batch")
    assert [r.status for r in res] == ["WRITTEN"] * len(rows)
    return {"rider": rider, "driver": driver, "ga": ga, "gb": gb, "gc": gc}


def _expected_row(i: int, j: int) -> tuple[list[Any], list[str]]:
    values: list[Any] = []
    statuses: list[str] = []
    if i % 2 == 0:
        values += [i, f"s{i}"]
        statuses += ["PRESENT", "PRESENT"]
    else:
        values += [None, None]
        statuses += ["NOT_FOUND", "NOT_FOUND"]
    if i % 3 == 0:
        values.append(i / 4)
        statuses.append("PRESENT")
    else:
        values.append(-1.5)
        statuses.append("DEFAULTED")
    if j < 90:
        values += [[j, j + 1], j % 5 == 0]
        statuses += ["PRESENT", "PRESENT"]
    else:
        values += [None, None]
        statuses += ["NOT_FOUND", "NOT_FOUND"]
    return values, statuses


def test_batch_get_100_entities_3_groups_2_entity_types(
    client: Client, http: httpx.Client, names: Names
) -> None:
    fx = _batch_fixture(client, names)
    rng = random.Random(7)
    order_r = list(range(100))
    order_d = list(range(100))
    rng.shuffle(order_r)
    rng.shuffle(order_d)
    features = [
        f"{fx['ga']}:x",
        f"{fx['ga']}:s",
        f"{fx['gb']}@1:y",
        f"{fx['gc']}:z",
        f"{fx['gc']}:ok",
    ]
    entities = {
        fx["rider"]: [names.eid(f"r{i}") for i in order_r],
        fx["driver"]: [names.eid(f"d{j}") for j in order_d],
    }
    resp = client.batch_get(entities, features)
    assert resp.features == features
    assert len(resp.rows) == 100
    for k, row in enumerate(resp.rows):
        i, j = order_r[k], order_d[k]
        assert row.entity == {fx["rider"]: names.eid(f"r{i}"), fx["driver"]: names.eid(f"d{j}")}
        values, statuses = _expected_row(i, j)
        assert row.values == values, (k, i, j)
        assert row.statuses == statuses, (k, i, j)

    # Raw HTTP answers the same thing (request order, per-value statuses).
    r = http.post("/v1/features/get", json={"entities": entities, "features": features})
    assert r.status_code == 200
    body = r.json()
    assert [row["entity"] for row in body["rows"]] == [row.entity for row in resp.rows]
    assert [row["values"] for row in body["rows"]] == [row.values for row in resp.rows]


async def test_batch_get_async_client(base_url: str, names: Names) -> None:
    with Client(base_url, timeout=10.0) as sync:
        fx = _batch_fixture(sync, names)
    entities = {
        fx["rider"]: [names.eid(f"r{i}") for i in range(99, -1, -1)],
        fx["driver"]: [names.eid(f"d{j}") for j in range(100)],
    }
    features = [
        f"{fx['ga']}:x",
        f"{fx['ga']}:s",
        f"{fx['gb']}:y",
        f"{fx['gc']}:z",
        f"{fx['gc']}:ok",
    ]
    async with AsyncClient(base_url, timeout=10.0) as c:
        resp = await c.batch_get(entities, features, include_metadata=True)
    assert len(resp.rows) == 100
    for k, row in enumerate(resp.rows):
        values, statuses = _expected_row(99 - k, k)
        assert row.values == values
        assert row.statuses == statuses
        assert row.event_times is not None
        assert len(row.event_times) == 5


def test_defaulted_versus_not_found(client: Client, http: httpx.Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(
        scalar_group(
            group,
            etype,
            [
                {"name": "with_default", "type": "int64", "default": 7},
                {"name": "no_default", "type": "float64"},
                {"name": "label", "type": "string", "default": "none"},
            ],
        )
    )
    present, absent = names.eid("present"), names.eid("absent")
    client.write([_row(group, present, {"no_default": 1.25})])
    feats = [f"{group}:with_default", f"{group}:no_default", f"{group}:label"]
    resp = client.batch_get({etype: [present, absent]}, feats)
    # Stored row without those features: defaults apply per feature.
    assert resp.rows[0].values == [7, 1.25, "none"]
    assert resp.rows[0].statuses == ["DEFAULTED", "PRESENT", "DEFAULTED"]
    # No row at all.
    assert resp.rows[1].values == [7, None, "none"]
    assert resp.rows[1].statuses == ["DEFAULTED", "NOT_FOUND", "DEFAULTED"]

    # The single-entity GET endpoint agrees.
    r = http.get(f"/v1/features/{etype}/{absent}", params={"features": ",".join(feats)})
    assert r.status_code == 200
    assert r.json()["rows"][0]["statuses"] == ["DEFAULTED", "NOT_FOUND", "DEFAULTED"]
    # Without features: every feature of the newest active versions of the entity type.
    r = http.get(f"/v1/features/{etype}/{present}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["features"] == [f"{group}@1:{f}" for f in ("with_default", "no_default", "label")]
    assert body["rows"][0]["values"] == [7, 1.25, "none"]


def test_ttl_expiry(client: Client, names: Names) -> None:
    group = names.group("fresh")
    etype = names.etype()
    client.register_group(
        scalar_group(group, etype, [{"name": "n", "type": "int64", "default": 5}], ttl_seconds=60)
    )
    old, new = names.eid("old"), names.eid("new")
    res = client.write(
        [
            _row(group, old, {"n": 1}, event_time=ago(3600)),
            _row(group, new, {"n": 2}, event_time=ago(1)),
        ]
    )
    assert [r.status for r in res] == ["WRITTEN", "WRITTEN"]
    resp = client.batch_get({etype: [old, new]}, [f"{group}:n"])
    assert resp.rows[0].statuses == ["EXPIRED"]
    assert resp.rows[0].values == [None]
    assert resp.rows[1].statuses == ["PRESENT"]
    assert resp.rows[1].values == [2]


def test_stale_write_is_not_applied(client: Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(group, etype))
    eid = names.eid("r")
    newer, older = ago(60), ago(3600)
    first = client.write([_row(group, eid, {"trips_7d": 10, "avg_fare": 2.5}, event_time=newer)])
    assert (first[0].status, first[0].revision) == ("WRITTEN", 1)
    for lane in ("sdk", "stream", "batch"):
        stale = client.write(
            [_row(group, eid, {"trips_7d": 99, "avg_fare": 9.9}, event_time=older)],
            lane=lane,  # type: ignore[arg-type]
        )
        assert (stale[0].status, stale[0].revision) == ("STALE", 1), lane
    # A stale partial update is not applied either.
    stale = client.update([_row(group, eid, {"trips_7d": 98}, event_time=older)])
    assert stale[0].status == "STALE"
    row = client.get(etype, eid, [f"{group}:trips_7d", f"{group}:avg_fare"], include_metadata=True)
    assert row.values == [10, 2.5]
    assert row.event_times is not None
    assert row.event_times[0] == _parse(newer)


def test_conditional_writes(client: Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(group, etype))
    eid, absent = names.eid("r"), names.eid("absent")
    feats = [f"{group}:trips_7d", f"{group}:avg_fare"]

    created = client.create([_row(group, eid, {"trips_7d": 1, "avg_fare": 1.0})])
    assert (created[0].status, created[0].revision) == ("WRITTEN", 1)

    # create on an existing row
    res = client.create([_row(group, eid, {"trips_7d": 2})])
    assert (res[0].status, res[0].revision) == ("CONFLICT", 1)
    # update on an absent row
    res = client.update([_row(group, absent, {"trips_7d": 2})])
    assert (res[0].status, res[0].revision) == ("CONFLICT", 0)
    assert client.get(etype, absent, feats).statuses == ["DEFAULTED", "NOT_FOUND"]
    # if_revision mismatch, in every mode
    for mode in ("upsert", "update"):
        res = client.write([_row(group, eid, {"trips_7d": 3}, if_revision=5)], mode=mode)  # type: ignore[arg-type]
        assert (res[0].status, res[0].revision) == ("CONFLICT", 1), mode
    # if_revision=0 means "only if absent"
    res = client.write([_row(group, eid, {"trips_7d": 3}, if_revision=0)])
    assert res[0].status == "CONFLICT"
    assert client.get(etype, eid, feats).values == [1, 1.0]

    # match: applied with revision + 1
    res = client.write([_row(group, eid, {"trips_7d": 4, "avg_fare": 4.5}, if_revision=1)])
    assert (res[0].status, res[0].revision) == ("WRITTEN", 2)
    res = client.update([_row(group, eid, {"trips_7d": 5}, if_revision=2)])
    assert (res[0].status, res[0].revision) == ("WRITTEN", 3)
    assert client.get(etype, eid, feats).values == [5, 4.5]
    # if_revision=0 on an absent row writes it
    other = names.eid("other")
    res = client.write([_row(group, other, {"trips_7d": 1}, if_revision=0)])
    assert (res[0].status, res[0].revision) == ("WRITTEN", 1)

    # Mixed results come back one per row, in order.
    res = client.create(
        [
            _row(group, names.eid("n1"), {"trips_7d": 1}),
            _row(group, eid, {"trips_7d": 1}),
            _row(group, names.eid("n2"), {"trips_7d": 1}),
        ]
    )
    assert [r.status for r in res] == ["WRITTEN", "CONFLICT", "WRITTEN"]


def test_partial_update_keeps_other_features(client: Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(
        scalar_group(
            group,
            etype,
            [
                {"name": "a", "type": "int64"},
                {"name": "b", "type": "string"},
                {"name": "c", "type": "list<float64>"},
            ],
        )
    )
    eid = names.eid("r")
    feats = [f"{group}:a", f"{group}:b", f"{group}:c"]
    client.write([_row(group, eid, {"a": 1, "b": "x", "c": [1.5, 2.5]})])
    res = client.update([_row(group, eid, {"b": "y"})])
    assert (res[0].status, res[0].revision) == ("WRITTEN", 2)
    assert client.get(etype, eid, feats).values == [1, "y", [1.5, 2.5]]
    # null in an update removes that feature only
    client.update([_row(group, eid, {"a": None})])
    row = client.get(etype, eid, feats)
    assert row.values == [None, "y", [1.5, 2.5]]
    assert row.statuses == ["NOT_FOUND", "PRESENT", "PRESENT"]
    # an upsert replaces the whole row
    client.write([_row(group, eid, {"a": 9})])
    assert client.get(etype, eid, feats).values == [9, None, None]


def test_delete_endpoint(client: Client, http: httpx.Client, names: Names) -> None:
    group = names.group("stats")
    other_group = names.group("kept")
    etype = names.etype()
    client.register_group(scalar_group(group, etype, version=1))
    client.register_group(scalar_group(group, etype, version=2))
    client.register_group(scalar_group(other_group, etype))
    ids = [names.eid(f"r{i}") for i in range(3)]
    for v in (1, 2):
        client.write(
            [_row(group, e, {"trips_7d": 10 * v + i}, version=v) for i, e in enumerate(ids)]
        )
    client.write([_row(other_group, e, {"trips_7d": 1}) for e in ids])
    feats = [f"{group}@1:trips_7d", f"{group}@2:trips_7d", f"{other_group}:trips_7d"]

    # one version only
    assert client.delete(etype, [ids[0]], [f"{group}@1"]) == 1
    row = client.get(etype, ids[0], feats)
    assert row.statuses == ["DEFAULTED", "PRESENT", "PRESENT"]
    assert row.values == [0, 20, 1]

    # every version, two entities (one row of ids[0] is already gone)
    r = http.post(
        "/v1/features/delete",
        json={"entity_type": etype, "entity_ids": ids[:2], "groups": [group]},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": 3}
    resp = client.batch_get({etype: ids}, feats)
    assert [row.statuses for row in resp.rows] == [
        ["DEFAULTED", "DEFAULTED", "PRESENT"],
        ["DEFAULTED", "DEFAULTED", "PRESENT"],
        ["PRESENT", "PRESENT", "PRESENT"],
    ]
    assert resp.rows[2].values == [12, 22, 1]
    # deleting again finds nothing
    assert client.delete(etype, ids[:2], [group]) == 0

    # unknown group: refused, nothing deleted
    r = http.post(
        "/v1/features/delete",
        json={"entity_type": etype, "entity_ids": [ids[2]], "groups": [group, names.group("nope")]},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "UNKNOWN_FEATURE"
    assert "groups[1]" in r.json()["message"]
    assert client.get(etype, ids[2], feats).statuses == ["PRESENT"] * 3
    # a group of another entity type: refused
    with pytest.raises(InvalidRequest):
        client.delete(names.etype("driver"), [ids[2]], [group])


def test_unknown_references_raise(client: Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(group, etype))
    with pytest.raises(UnknownFeature):
        client.get(etype, names.eid("r"), [f"{group}:nope"])
    with pytest.raises(UnknownFeature):
        client.batch_get({etype: [names.eid("r")]}, [f"{names.group('nope')}:x"])
    with pytest.raises(UnknownFeature):
        client.get(etype, names.eid("r"), [f"{group}@3:trips_7d"])


async def test_async_client_main_flows(base_url: str, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    feats = [f"{group}:trips_7d", f"{group}:avg_fare"]
    async with AsyncClient(base_url, timeout=10.0) as c:
        assert (await c.register_group(scalar_group(group, etype))).status == "created"
        a, b = names.eid("a"), names.eid("b")
        res = await c.write(
            [_row(group, a, {"trips_7d": 1, "avg_fare": 2.0}), _row(group, b, {"trips_7d": 3})],
            lane="stream",
            writer="async-test",
        )
        assert [(r.status, r.revision) for r in res] == [("WRITTEN", 1), ("WRITTEN", 1)]
        res = await c.create([_row(group, a, {"trips_7d": 5})])
        assert res[0].status == "CONFLICT"
        res = await c.update([_row(group, b, {"avg_fare": 0.5})])
        assert (res[0].status, res[0].revision) == ("WRITTEN", 2)
        row = await c.get(etype, b, feats, include_metadata=True)
        assert row.values == [3, 0.5]
        assert row.written_at is not None
        assert all(w is not None for w in row.written_at)
        resp = await c.batch_get({etype: [b, a, names.eid("zz")]}, feats)
        assert [r.values for r in resp.rows] == [[3, 0.5], [1, 2.0], [0, None]]
        assert await c.delete(etype, [a], [group]) == 1
        assert (await c.get(etype, a, feats)).statuses == ["DEFAULTED", "NOT_FOUND"]
        erased = await c.delete_entity(etype, b)
        assert (erased.entity_type, erased.entity_id, erased.deleted) == (etype, b, 1)
        assert (await c.get(etype, b, feats)).statuses == ["DEFAULTED", "NOT_FOUND"]
        assert (await c.health())["status"] == "ok"
        assert (await c.ready())["status"] == "ok"


def test_msgpack_sdk_round_trip(base_url: str, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    with Client(base_url, msgpack=True, timeout=10.0) as c:
        c.register_group(
            scalar_group(
                group,
                etype,
                [
                    {"name": "blob", "type": "bytes"},
                    {"name": "at", "type": "timestamp"},
                    {"name": "f", "type": "float64"},
                ],
            )
        )
        at = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
        eid = names.eid("r")
        res = c.write([_row(group, eid, {"blob": b"\x00\xffhi", "at": at, "f": 3})])
        assert res[0].status == "WRITTEN"
        row = c.get(etype, eid, [f"{group}:blob", f"{group}:at", f"{group}:f"])
        assert row.statuses == ["PRESENT"] * 3
        assert row.values[0] == b"\x00\xffhi"
        assert row.values[2] == 3.0
    # JSON readers see the same row (bytes as base64, timestamps as RFC 3339).
    r = httpx.post(
        f"{base_url}/v1/features/get",
        json={"entities": {etype: [eid]}, "features": [f"{group}:blob", f"{group}:at"]},
        headers=JSON,
    )
    assert r.json()["rows"][0]["values"] == ["AP9oaQ==", "2026-01-02T03:04:05.123456Z"]


def test_same_entity_twice_in_one_request(client: Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(group, etype))
    eid, other = names.eid("dup"), names.eid("other")
    t0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
    res = client.write(
        [
            _row(group, eid, {"trips_7d": 1}, event_time=iso(t0)),
            _row(group, eid, {"trips_7d": 2}, event_time=iso(t0 + timedelta(seconds=1))),
            _row(group, eid, {"trips_7d": 3}, event_time=iso(t0 - timedelta(hours=1))),
        ]
    )
    assert [(r.status, r.revision) for r in res] == [("WRITTEN", 1), ("WRITTEN", 2), ("STALE", 2)]
    res = client.create([_row(group, other, {"trips_7d": 1}), _row(group, other, {"trips_7d": 2})])
    assert [(r.status, r.revision) for r in res] == [("WRITTEN", 1), ("CONFLICT", 1)]
    resp = client.batch_get({etype: [eid, other, eid]}, [f"{group}:trips_7d"])
    assert [r.values for r in resp.rows] == [[2], [1], [2]]
    assert [r.entity for r in resp.rows] == [{etype: eid}, {etype: other}, {etype: eid}]


def test_mixed_scalar_and_embedding_rows_keep_their_order(client: Client, names: Names) -> None:
    etype = names.etype()
    stats, emb = names.group("stats"), names.group("emb")
    client.register_group(scalar_group(stats, etype))
    client.register_group(embedding_group(emb, etype, dimension=2, metric="dot"))
    a, b = names.eid("a"), names.eid("b")
    client.write([_row(emb, b, {"vec": [1.0, 1.0]})])
    res = client.create(
        [
            _row(emb, a, {"vec": [1.0, 0.0]}),
            _row(stats, a, {"trips_7d": 1}),
            _row(emb, b, {"vec": [0.0, 1.0]}),  # exists: CONFLICT
            _row(stats, b, {"trips_7d": 2}),
        ]
    )
    assert [(r.status, r.revision) for r in res] == [
        ("WRITTEN", 1),
        ("WRITTEN", 1),
        ("CONFLICT", 1),
        ("WRITTEN", 1),
    ]
    resp = client.batch_get({etype: [a, b]}, [f"{emb}:vec", f"{stats}:trips_7d"])
    assert [r.values for r in resp.rows] == [[[1.0, 0.0], 1], [[1.0, 1.0], 2]]


def test_event_times_are_served_in_utc(client: Client, http: httpx.Client, names: Names) -> None:
    group = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(group, etype))
    eid = names.eid("r")
    r = http.post(
        "/v1/features/write",
        json={
            "rows": [_row(group, eid, {"trips_7d": 1}, event_time="2026-01-01T10:00:00.5+02:00")]
        },
    )
    assert r.status_code == 200, r.text
    r = http.get(f"/v1/features/{etype}/{eid}", params={"include_metadata": "true"})
    assert r.json()["rows"][0]["event_times"] == ["2026-01-01T08:00:00.500000Z"] * 2


def test_timestamp_value_is_the_same_from_cache_and_store(
    spawn_daemon: SpawnDaemon, tmp_path: Path, names: Names
) -> None:
    data = tmp_path / "tsdata"
    group = names.group("ts")
    etype = names.etype()
    eid = names.eid("r")
    feats = [f"{group}:at", f"{group}:ats"]
    first = spawn_daemon(data)
    with Client(first.url, timeout=10.0) as c:
        c.register_group(
            scalar_group(
                group,
                etype,
                [{"name": "at", "type": "timestamp"}, {"name": "ats", "type": "list<timestamp>"}],
            )
        )
        c.write(
            [
                _row(
                    group,
                    eid,
                    {"at": "2026-01-01T10:00:00+02:00", "ats": ["2026-01-01T10:00:00+02:00"]},
                )
            ]
        )
        from_cache = httpx.post(
            f"{first.url}/v1/features/get", json={"entities": {etype: [eid]}, "features": feats}
        ).json()["rows"][0]["values"]
    first.stop()
    second = spawn_daemon(data)
    from_store = httpx.post(
        f"{second.url}/v1/features/get", json={"entities": {etype: [eid]}, "features": feats}
    ).json()["rows"][0]["values"]
    assert from_store == ["2026-01-01T08:00:00Z", ["2026-01-01T08:00:00Z"]]
    assert from_cache == from_store
