"""Registry end to end: register (201 / 200 unchanged / 409), read, list, retire."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from dsf_e2e import JSON, Names, ago, scalar_group

from dsfeatures.client import (
    AsyncClient,
    Client,
    Conflict,
    FeatureGroup,
    NotFound,
    UnknownFeature,
)

pytestmark = pytest.mark.e2e


def test_register_created_unchanged_conflict_over_http(http: httpx.Client, names: Names) -> None:
    body = scalar_group(names.group("stats"), names.etype(), ttl_seconds=86400)

    r = http.post("/v1/registry/groups", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "created"
    assert created["group"]["definition"]["name"] == body["name"]
    assert not created["group"].get("retired", False)
    fingerprint = created["group"]["fingerprint"]

    r = http.post("/v1/registry/groups", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "unchanged"
    assert r.json()["group"]["fingerprint"] == fingerprint

    changed = dict(body, ttl_seconds=3600)
    r = http.post("/v1/registry/groups", json=changed)
    assert r.status_code == 409, r.text
    err = r.json()
    assert set(err) == {"code", "message", "request_id"}
    assert err["code"] == "VERSION_CONFLICT"
    assert "ttl_seconds" in err["message"]

    # The stored definition is still the first one.
    r = http.get(f"/v1/registry/groups/{body['name']}/versions/1")
    assert r.status_code == 200
    assert r.json()["definition"]["ttl_seconds"] == 86400
    assert r.json()["fingerprint"] == fingerprint

    # A changed feature type under the same version is refused too.
    feats = [{"name": "trips_7d", "type": "string"}, {"name": "avg_fare", "type": "float64"}]
    r = http.post("/v1/registry/groups", json=dict(body, features=feats))
    assert r.status_code == 409
    assert r.json()["code"] == "VERSION_CONFLICT"

    # The bumped version is accepted.
    r = http.post("/v1/registry/groups", json=dict(changed, version=2))
    assert r.status_code == 201, r.text


def test_register_descriptive_change_is_an_update(http: httpx.Client, names: Names) -> None:
    body = scalar_group(names.group("stats"), names.etype())
    assert http.post("/v1/registry/groups", json=body).status_code == 201
    r = http.post("/v1/registry/groups", json=dict(body, description="new words", tier=1))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "updated"
    got = http.get(f"/v1/registry/groups/{body['name']}/versions/1").json()
    assert got["definition"]["description"] == "new words"


def test_registry_with_sync_client(client: Client, names: Names) -> None:
    name = names.group("stats")
    etype = names.etype()
    resp = client.register_group(scalar_group(name, etype))
    assert resp.status == "created"
    assert client.register_group(scalar_group(name, etype)).status == "unchanged"
    with pytest.raises(Conflict) as exc:
        client.register_group(scalar_group(name, etype, ttl_seconds=5))
    assert exc.value.code == "VERSION_CONFLICT"
    assert exc.value.status == 409

    v2 = client.register_group(msgspec.convert(scalar_group(name, etype, version=2), FeatureGroup))
    assert v2.status == "created"

    versions = client.get_group(name)
    assert versions.name == name
    assert [v.definition.version for v in versions.versions] == [1, 2]
    assert versions.latest_active == 2
    assert client.get_group_version(name, 1).definition.entity_type == etype

    listed = client.list_groups(entity_type=etype)
    assert [g.name for g in listed] == [name]
    assert listed[0].versions == [1, 2]
    assert listed[0].features == ["trips_7d", "avg_fare"]
    assert [g.name for g in client.list_groups(q=names.token)] == [name]

    with pytest.raises(NotFound):
        client.get_group(names.group("nope"))
    with pytest.raises(NotFound):
        client.get_group_version(name, 9)


async def test_registry_with_async_client(base_url: str, names: Names) -> None:
    name = names.group("stats")
    etype = names.etype()
    async with AsyncClient(base_url, timeout=10.0) as c:
        assert (await c.register_group(scalar_group(name, etype))).status == "created"
        assert (await c.register_group(scalar_group(name, etype))).status == "unchanged"
        with pytest.raises(Conflict):
            await c.register_group(scalar_group(name, etype, ttl_seconds=7))
        got = await c.get_group(name)
        assert got.latest_active == 1
        assert (await c.get_group_version(name, 1)).fingerprint == got.versions[0].fingerprint
        assert [g.name for g in await c.list_groups(entity_type=etype)] == [name]
        retired = await c.retire_group_version(name, 1)
        assert retired.retired is True
        assert (await c.get_group(name)).latest_active is None


def test_retire_version(client: Client, http: httpx.Client, names: Names) -> None:
    name = names.group("stats")
    etype = names.etype()
    client.register_group(scalar_group(name, etype, version=1))
    client.register_group(scalar_group(name, etype, version=2))
    eid = names.eid("r1")
    t = ago(60)
    for v, trips in ((1, 11), (2, 22)):
        res = client.write(
            [
                {
                    "group": name,
                    "version": v,
                    "entity_id": eid,
                    "values": {"trips_7d": trips},
                    "event_time": t,
                }
            ]
        )
        assert res[0].status == "WRITTEN"
    row = client.get(etype, eid, [f"{name}:trips_7d", f"{name}@1:trips_7d"])
    assert row.values == [22, 11]

    retired = client.retire_group_version(name, 2)
    assert retired.retired is True
    assert retired.retired_at
    # Idempotent.
    assert client.retire_group_version(name, 2).retired is True

    # The newest active version is now 1; v2 is refused by reads and writes.
    assert client.get_group(name).latest_active == 1
    row = client.get(etype, eid, [f"{name}:trips_7d"])
    assert row.values == [11]
    with pytest.raises(UnknownFeature):
        client.get(etype, eid, [f"{name}@2:trips_7d"])
    r = http.post(
        "/v1/features/write",
        json={"rows": [{"group": name, "version": 2, "entity_id": eid, "values": {"trips_7d": 1}}]},
        headers=JSON,
    )
    assert r.status_code == 400
    assert r.json()["code"] == "UNKNOWN_FEATURE"
    # Still readable through the registry, flagged.
    assert client.get_group_version(name, 2).retired is True

    r = http.post(f"/v1/registry/groups/{name}/versions/7/retire")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"


def test_invalid_definitions_name_the_field(http: httpx.Client, names: Names) -> None:
    etype = names.etype()
    name = names.group("bad")
    vec = {"name": "vec", "type": "vector", "dimension": 4, "metric": "cosine"}
    cases: list[tuple[dict[str, object], str]] = [
        ({"name": "Bad-Name"}, "name"),
        ({"version": 0}, "version"),
        ({"features": []}, "features"),
        (
            {"features": [{"name": "a", "type": "int64"}, {"name": "a", "type": "int64"}]},
            "features[1].name",
        ),
        ({"features": [{"name": "a", "type": "decimal"}]}, "features[0].type"),
        ({"features": [{"name": "a", "type": "int64", "default": "x"}]}, "features[0].default"),
        ({"features": [vec]}, "kind"),
        ({"kind": "embedding", "features": [{"name": "a", "type": "int64"}]}, "features"),
        ({"kind": "embedding", "features": [dict(vec, metric=None)]}, "features[0].metric"),
        ({"features": [{"name": "a", "type": "int64", "metric": "l2"}]}, "features[0]"),
        ({"tier": 9}, "tier"),
        ({"owner": {"contact": "x"}}, "owner"),
    ]
    for change, field in cases:
        body = dict(scalar_group(name, etype), **change)
        r = http.post("/v1/registry/groups", json=body)
        assert r.status_code == 400, (change, r.text)
        err = r.json()
        assert set(err) == {"code", "message", "request_id"}
        assert field in err["message"], (field, err)
    # Nothing was registered.
    assert http.get(f"/v1/registry/groups/{name}").status_code == 404
    assert http.get("/v1/registry/groups", params={"entity_type": etype}).json() == {"groups": []}


def test_join_key_conflicts(client: Client, names: Names) -> None:
    etype = names.etype()
    a, b = names.group("a"), names.group("b")
    client.register_group(scalar_group(a, etype, join_key=f"{names.token}_key"))
    # Another group of the same entity type must use the same join key.
    with pytest.raises(Conflict) as exc:
        client.register_group(scalar_group(b, etype))
    assert exc.value.code == "JOIN_KEY_CONFLICT"
    # And the key cannot name another entity type.
    with pytest.raises(Conflict) as exc:
        client.register_group(scalar_group(b, names.etype("driver"), join_key=f"{names.token}_key"))
    assert exc.value.code == "JOIN_KEY_CONFLICT"
    assert client.register_group(scalar_group(b, etype, join_key=f"{names.token}_key")).status == (
        "created"
    )
