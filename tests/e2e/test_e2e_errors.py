"""Bad input end to end: a clear 4xx naming the field, ``{code, message, request_id}``, and
nothing half-written (each refusal is followed by a read)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dsf_e2e import JSON, Daemon, Names, ago, scalar_group

from dsfeatures.client import Client, InvalidRequest, PayloadTooLarge

pytestmark = pytest.mark.e2e

LIMITS = {
    "max_body_bytes": 20_000,
    "max_entities": 10,
    "max_features": 3,
    "max_write_rows": 5,
    "max_delete_keys": 4,
}


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Check an error response and return its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"code", "message", "request_id"}, body
    assert body["message"]
    assert body["request_id"]
    assert r.headers.get("X-Request-Id") == body["request_id"]
    if code is not None:
        assert body["code"] == code, body
    return body


class World:
    """One group with two features and helpers to read it back."""

    def __init__(self, http: httpx.Client, names: Names) -> None:
        self.http = http
        self.etype = names.etype()
        self.group = names.group("stats")
        self.names = names
        r = http.post("/v1/registry/groups", json=scalar_group(self.group, self.etype))
        assert r.status_code == 201, r.text
        self.feats = [f"{self.group}:trips_7d", f"{self.group}:avg_fare"]

    def row(self, eid: str, values: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return {
            "group": self.group,
            "entity_id": eid,
            "values": values if values is not None else {"trips_7d": 1, "avg_fare": 1.5},
            **kw,
        }

    def read(self, ids: list[str]) -> list[dict[str, Any]]:
        r = self.http.post(
            "/v1/features/get", json={"entities": {self.etype: ids}, "features": self.feats}
        )
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()["rows"]
        return rows

    def assert_absent(self, ids: list[str]) -> None:
        for row in self.read(ids):
            assert row["statuses"] == ["DEFAULTED", "NOT_FOUND"], row


@pytest.fixture
def world(http: httpx.Client, names: Names) -> World:
    return World(http, names)


def test_malformed_json(http: httpx.Client, world: World) -> None:
    eid = world.names.eid("r")
    good = json.dumps({"rows": [world.row(eid)]}).encode()
    for body in (good[:-5], b"{", b"not json at all", b'{"rows": [', good + b"}", b"\xff\xfe"):
        r = http.post("/v1/features/write", content=body, headers=JSON)
        _error(r, 400, "MALFORMED_BODY")
    _error(http.post("/v1/features/get", content=b"{", headers=JSON), 400, "MALFORMED_BODY")
    _error(http.post("/v1/registry/groups", content=b"{", headers=JSON), 400, "MALFORMED_BODY")
    _error(http.post("/v1/features/write", content=b"", headers=JSON), 400, "MALFORMED_BODY")
    world.assert_absent([eid])


def test_malformed_json_with_an_early_type_error(http: httpx.Client, world: World) -> None:
    eid = world.names.eid("r")
    for body in (b"[1, 2", b'{"rows": 5', b'{"rows": [{"group": 1'):
        r = http.post("/v1/features/write", content=body, headers=JSON)
        _error(r, 400, "MALFORMED_BODY")
    world.assert_absent([eid])


def test_unknown_field_is_named(http: httpx.Client, world: World) -> None:
    eid = world.names.eid("r")
    cases = [
        ("/v1/features/write", {"rows": [world.row(eid, valuez={"trips_7d": 1})]}, "valuez"),
        ("/v1/features/write", {"mod": "upsert", "rows": [world.row(eid)]}, "mod"),
        (
            "/v1/features/get",
            {"entities": {world.etype: [eid]}, "features": world.feats, "include_meta": True},
            "include_meta",
        ),
        (
            "/v1/features/delete",
            {"entity_type": world.etype, "entity_ids": [eid], "groups": [world.group], "all": 1},
            "all",
        ),
        ("/v1/embeddings/search", {"group": world.group, "vector": [1.0], "topk": 3}, "topk"),
        (
            "/v1/registry/groups",
            dict(scalar_group(world.names.group("x"), world.etype), ownr={}),
            "ownr",
        ),
    ]
    for path, body, field in cases:
        err = _error(http.post(path, json=body), 400)
        assert field in err["message"], (path, err)
    world.assert_absent([eid])
    assert http.get(f"/v1/registry/groups/{world.names.group('x')}").status_code == 404


def test_wrong_type_in_row_3_of_5_writes_nothing(http: httpx.Client, world: World) -> None:
    ids = [world.names.eid(f"r{i}") for i in range(5)]
    # Two of the rows already exist: they must keep their values.
    r = http.post(
        "/v1/features/write",
        json={"rows": [world.row(ids[0], {"trips_7d": 100}), world.row(ids[4], {"trips_7d": 104})]},
    )
    assert r.status_code == 200
    rows = [world.row(e, {"trips_7d": i, "avg_fare": 2.5}) for i, e in enumerate(ids)]
    rows[2] = world.row(ids[2], {"trips_7d": "three", "avg_fare": 2.5})
    for mode in ("upsert", "create", "update"):
        err = _error(http.post("/v1/features/write", json={"mode": mode, "rows": rows}), 400)
        assert "rows[2]" in err["message"], err
        assert "trips_7d" in err["message"], err
    got = world.read(ids)
    assert [g["values"] for g in got] == [[100, None], [0, None], [0, None], [0, None], [104, None]]
    assert [g["statuses"][0] for g in got] == [
        "PRESENT",
        "DEFAULTED",
        "DEFAULTED",
        "DEFAULTED",
        "PRESENT",
    ]

    # Other per-row faults name their row too.
    bad_rows: list[tuple[dict[str, Any], str]] = [
        (world.row(ids[2], {"avg_fare": "x"}), "rows[2].values.avg_fare"),
        (world.row(ids[2], {"trips_7d": 1.5}), "rows[2].values.trips_7d"),
        (world.row(ids[2], {"trips_7d": 2**63}), "rows[2].values.trips_7d"),
        (world.row(ids[2], {}), "rows[2].values"),
        (world.row(ids[2], event_time="2026-01-01T00:00:00"), "rows[2].event_time"),
        (world.row(ids[2], event_time="yesterday"), "rows[2].event_time"),
        (world.row("", {"trips_7d": 1}), "rows[2].entity_id"),
        (world.row(ids[2], entity_type="driver"), "rows[2].entity_type"),
        (world.row(ids[2], version=0), "rows[2].version"),
        (world.row(ids[2], if_revision=-1), "rows[2].if_revision"),
    ]
    for bad, where in bad_rows:
        body = {"rows": [*rows[:2], bad, *rows[3:]]}
        body["rows"][1] = world.row(ids[1], {"trips_7d": 1, "avg_fare": 2.5})
        err = _error(http.post("/v1/features/write", json=body), 400)
        assert where in err["message"], (where, err)
    assert [g["values"] for g in world.read(ids)] == [
        [100, None],
        [0, None],
        [0, None],
        [0, None],
        [104, None],
    ]


def test_unknown_group_or_feature(http: httpx.Client, world: World) -> None:
    ids = [world.names.eid(f"r{i}") for i in range(4)]
    rows = [world.row(e) for e in ids]
    cases = [
        (dict(rows[3], group=world.names.group("nope")), "rows[3]"),
        (world.row(ids[3], {"trips_7d": 1, "nope": 2}), "rows[3].values.nope"),
        (dict(rows[3], version=9), "rows[3]"),
    ]
    for bad, where in cases:
        err = _error(
            http.post("/v1/features/write", json={"rows": [*rows[:3], bad]}), 400, "UNKNOWN_FEATURE"
        )
        assert where in err["message"], err
    world.assert_absent(ids)
    for feats, where in (
        ([world.feats[0], f"{world.group}:nope"], "features[1]"),
        ([f"{world.names.group('nope')}:x"], "features[0]"),
        ([f"{world.group}@4:trips_7d"], "features[0]"),
    ):
        r = http.post("/v1/features/get", json={"entities": {world.etype: ids}, "features": feats})
        assert where in _error(r, 400, "UNKNOWN_FEATURE")["message"]
    _error(
        http.get(f"/v1/features/{world.etype}/{ids[0]}", params={"features": f"{world.group}:zz"}),
        400,
        "UNKNOWN_FEATURE",
    )
    # a malformed reference
    r = http.post(
        "/v1/features/get", json={"entities": {world.etype: ids}, "features": ["no-colon"]}
    )
    _error(r, 400)


def test_wrong_content_type(http: httpx.Client, world: World) -> None:
    eid = world.names.eid("r")
    body = json.dumps({"rows": [world.row(eid)]}).encode()
    for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        r = http.post("/v1/features/write", content=body, headers={"Content-Type": ctype})
        _error(r, 415)
    world.assert_absent([eid])
    # JSON with parameters or a +json suffix is accepted.
    for i, ctype in enumerate(("application/json; charset=utf-8", "application/vnd.dsf+json")):
        ok = json.dumps({"rows": [world.row(world.names.eid(f"ok{i}"))]}).encode()
        r = http.post("/v1/features/write", content=ok, headers={"Content-Type": ctype})
        assert r.status_code == 200, (ctype, r.text)


def test_entity_id_limits(http: httpx.Client, client: Client, world: World) -> None:
    ok_ids = ["a" * 1024, "\U0001f600" * 256, "é" * 512]  # exactly 1,024 bytes each
    too_long = ["a" * 1025, "\U0001f600" * 257, "é" * 513]  # 1,025 to 1,028 bytes
    r = http.post("/v1/features/write", json={"rows": [world.row(e) for e in ok_ids]})
    assert r.status_code == 200, r.text
    assert [g["statuses"] for g in world.read(ok_ids)] == [["PRESENT", "PRESENT"]] * 3
    for bad in too_long:
        ids = [world.names.eid("a"), bad]
        err = _error(
            http.post("/v1/features/write", json={"rows": [world.row(e) for e in ids]}), 400
        )
        assert "rows[1].entity_id" in err["message"], err
        world.assert_absent(ids[:1])
        err = _error(
            http.post(
                "/v1/features/get", json={"entities": {world.etype: ids}, "features": world.feats}
            ),
            400,
        )
        assert "entities" in err["message"], err
        assert "[1]" in err["message"], err
        _error(
            http.post(
                "/v1/features/delete",
                json={
                    "entity_type": world.etype,
                    "entity_ids": [ok_ids[0], bad],
                    "groups": [world.group],
                },
            ),
            400,
        )
        _error(http.request("DELETE", f"/v1/entities/{world.etype}/{bad}"), 400)
        _error(
            http.get(f"/v1/features/{world.etype}/{bad}", params={"features": world.feats[0]}), 400
        )
    # the refused delete and erasure removed nothing
    assert [g["statuses"] for g in world.read(ok_ids)] == [["PRESENT", "PRESENT"]] * 3
    # empty ids
    _error(http.post("/v1/features/write", json={"rows": [world.row("")]}), 400)
    _error(
        http.post(
            "/v1/features/get", json={"entities": {world.etype: [""]}, "features": world.feats}
        ),
        400,
    )
    with pytest.raises(InvalidRequest):
        client.get(world.etype, "", world.feats)


def test_unequal_entity_lists(http: httpx.Client, names: Names) -> None:
    rider, driver = names.etype("rider"), names.etype("driver")
    gr, gd = names.group("r"), names.group("d")
    for g, et in ((gr, rider), (gd, driver)):
        assert http.post("/v1/registry/groups", json=scalar_group(g, et)).status_code == 201
    r = http.post(
        "/v1/features/get",
        json={
            "entities": {rider: ["a", "b", "c"], driver: ["x", "y"]},
            "features": [f"{gr}:trips_7d", f"{gd}:trips_7d"],
        },
    )
    err = _error(r, 400)
    assert f"entities.{driver}" in err["message"]
    # features keyed by an entity type that is not in the request
    r = http.post(
        "/v1/features/get", json={"entities": {rider: ["a"]}, "features": [f"{gd}:trips_7d"]}
    )
    assert "features[0]" in _error(r, 400)["message"]
    # empty maps and lists
    _error(
        http.post("/v1/features/get", json={"entities": {}, "features": [f"{gr}:trips_7d"]}), 400
    )
    _error(http.post("/v1/features/get", json={"entities": {rider: ["a"]}, "features": []}), 400)
    _error(http.post("/v1/features/write", json={"rows": []}), 400)


def test_unknown_routes_and_methods_are_json(http: httpx.Client) -> None:
    _error(http.get("/v1/nope"), 404, "NOT_FOUND")
    _error(http.get("/v1/features/write"), 405)
    _error(http.post("/v1/registry/groups/x/versions/abc/retire"), 400)


# --- limits (a daemon with a small config) ---------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("dsf-limits")
    config = root / "dsf.toml"
    lines = [
        "[limits]",
        *(f"{k} = {v}" for k, v in LIMITS.items()),
        "",
        "[server]",
        "request_timeout = 5.0",
    ]
    config.write_text("\n".join(lines) + "\n")
    d = Daemon(root / "data", root / "daemon.log", config=config)
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture
def lhttp(limited: Daemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited.url, timeout=10.0) as c:
        yield c


def test_batch_too_large(lhttp: httpx.Client, names: Names) -> None:
    world = World(lhttp, names)
    ids = [names.eid(f"r{i}") for i in range(11)]
    # write: max_write_rows = 5
    err = _error(
        lhttp.post("/v1/features/write", json={"rows": [world.row(e) for e in ids[:6]]}),
        400,
        "BATCH_TOO_LARGE",
    )
    assert "rows" in err["message"]
    world.assert_absent(ids[:6])
    assert (
        lhttp.post("/v1/features/write", json={"rows": [world.row(e) for e in ids[:5]]}).status_code
        == 200
    )
    # get: max_entities = 10, max_features = 3
    r = lhttp.post(
        "/v1/features/get", json={"entities": {world.etype: ids}, "features": world.feats}
    )
    _error(r, 400, "BATCH_TOO_LARGE")
    r = lhttp.post(
        "/v1/features/get", json={"entities": {world.etype: ids[:10]}, "features": world.feats}
    )
    assert r.status_code == 200
    r = lhttp.post(
        "/v1/features/get", json={"entities": {world.etype: ids[:1]}, "features": world.feats * 2}
    )
    _error(r, 400, "BATCH_TOO_LARGE")
    # delete: max_delete_keys = 4 (entities x group versions); nothing deleted
    r = lhttp.post(
        "/v1/features/delete",
        json={"entity_type": world.etype, "entity_ids": ids[:5], "groups": [world.group]},
    )
    _error(r, 400, "BATCH_TOO_LARGE")
    assert [g["statuses"][0] for g in world.read(ids[:5])] == ["PRESENT"] * 5
    # Feast: max_entities rows too
    r = lhttp.post(
        "/get-online-features",
        json={"features": [world.feats[0]], "entities": {world.etype: ids}},
    )
    _error(r, 400, "BATCH_TOO_LARGE")


def test_payload_too_large(lhttp: httpx.Client, limited: Daemon, names: Names) -> None:
    world = World(lhttp, names)
    world_big = scalar_group(names.group("big"), world.etype, [{"name": "text", "type": "string"}])
    assert lhttp.post("/v1/registry/groups", json=world_big).status_code == 201
    ids = [names.eid(f"r{i}") for i in range(3)]
    rows = [
        {"group": world_big["name"], "entity_id": e, "values": {"text": "x" * 8000}} for e in ids
    ]
    body = json.dumps({"rows": rows}).encode()
    assert len(body) > LIMITS["max_body_bytes"]
    _error(lhttp.post("/v1/features/write", content=body, headers=JSON), 413, "PAYLOAD_TOO_LARGE")
    with Client(limited.url, timeout=10.0) as c, pytest.raises(PayloadTooLarge):
        c.write(rows)
    r = lhttp.post(
        "/v1/features/get",
        json={"entities": {world.etype: ids}, "features": [f"{world_big['name']}:text"]},
    )
    assert [row["statuses"] for row in r.json()["rows"]] == [["NOT_FOUND"]] * 3
    # just under the limit is accepted
    rows = [
        {
            "group": world_big["name"],
            "entity_id": ids[0],
            "values": {"text": "y" * 15_000},
            "event_time": ago(1),
        }
    ]
    assert lhttp.post("/v1/features/write", json={"rows": rows}).status_code == 200
