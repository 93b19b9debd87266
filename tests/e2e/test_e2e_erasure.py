"""GDPR erasure end to end: every group, every version, embeddings too, and an audit record."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from dsf_e2e import Names, ago, embedding_group, scalar_group

from dsfeatures.client import AsyncClient, Client

pytestmark = pytest.mark.e2e


def _vec(seed: int) -> list[float]:
    return [float((seed * 7 + i * 3) % 11) - 5.0 + 0.25 * i for i in range(4)]


def _setup(client: Client, names: Names) -> dict[str, Any]:
    etype = names.etype()
    stats, prefs, emb = names.group("stats"), names.group("prefs"), names.group("emb")
    for v in (1, 2):
        client.register_group(scalar_group(stats, etype, version=v))
    client.register_group(scalar_group(prefs, etype, [{"name": "lang", "type": "string"}]))
    for v in (1, 2):
        client.register_group(embedding_group(emb, etype, dimension=4, metric="l2", version=v))
    victim, bystander = names.eid("victim"), names.eid("bystander")
    t = ago(30)
    rows = []
    for eid in (victim, bystander):
        for v in (1, 2):
            rows.append(
                {
                    "group": stats,
                    "version": v,
                    "entity_id": eid,
                    "values": {"trips_7d": v},
                    "event_time": t,
                }
            )
            seed = v if eid == victim else v + 10
            rows.append(
                {
                    "group": emb,
                    "version": v,
                    "entity_id": eid,
                    "values": {"vec": _vec(seed)},
                    "event_time": t,
                }
            )
        rows.append({"group": prefs, "entity_id": eid, "values": {"lang": "en"}, "event_time": t})
    res = client.write(rows)
    assert [r.status for r in res] == ["WRITTEN"] * len(rows)
    feats = [
        f"{stats}@1:trips_7d",
        f"{stats}@2:trips_7d",
        f"{prefs}:lang",
        f"{emb}@1:vec",
        f"{emb}@2:vec",
    ]
    return {
        "etype": etype,
        "stats": stats,
        "prefs": prefs,
        "emb": emb,
        "victim": victim,
        "bystander": bystander,
        "feats": feats,
    }


def _search_ids(client: Client, emb: str, version: int, seed: int) -> list[str]:
    return [h.entity_id for h in client.search(f"{emb}@{version}", _vec(seed), k=10)]


def test_erasure_removes_everything_of_one_entity(
    client: Client, http: httpx.Client, names: Names
) -> None:
    fx = _setup(client, names)
    etype, victim, bystander, feats = fx["etype"], fx["victim"], fx["bystander"], fx["feats"]
    # Before: everything readable, and the victim is its own nearest neighbour in both versions.
    resp = client.batch_get({etype: [victim, bystander]}, feats)
    assert [r.statuses for r in resp.rows] == [["PRESENT"] * 5] * 2
    assert resp.rows[0].values[3] == _vec(1)
    for v in (1, 2):
        assert _search_ids(client, fx["emb"], v, v)[0] == victim
    # Read through the cache first, so the erasure must also clear cached rows.
    client.get(etype, victim, feats)

    r = http.delete(f"/v1/entities/{etype}/{victim}")
    assert r.status_code == 200, r.text
    assert r.json() == {"entity_type": etype, "entity_id": victim, "deleted": 5}

    resp = client.batch_get({etype: [victim, bystander]}, feats)
    assert resp.rows[0].statuses == [
        "DEFAULTED",
        "DEFAULTED",
        "NOT_FOUND",
        "NOT_FOUND",
        "NOT_FOUND",
    ]
    assert resp.rows[0].values == [0, 0, None, None, None]
    # Nothing of the other entity went.
    assert resp.rows[1].statuses == ["PRESENT"] * 5
    assert resp.rows[1].values[:3] == [1, 2, "en"]
    for v in (1, 2):
        ids = _search_ids(client, fx["emb"], v, v)
        assert victim not in ids
        assert ids == [bystander]

    # Audit: a record with a hash of the entity, not the id.
    r = http.get(f"/v1/entities/{etype}/{victim}/erasures")
    assert r.status_code == 200
    records = r.json()["erasures"]
    assert len(records) == 1
    rec = records[0]
    assert rec["entity_type"] == etype
    assert rec["deleted"] == 5
    assert rec["request_id"]
    assert rec["at"].endswith("Z")
    assert victim not in r.text
    assert rec["entity_hash"] == hashlib.sha256(f"{etype}\0{victim}".encode()).hexdigest()
    # The bystander has no erasure record.
    assert http.get(f"/v1/entities/{etype}/{bystander}/erasures").json() == {"erasures": []}

    # Erasing again is harmless and audited again.
    again = client.delete_entity(etype, victim)
    assert again.deleted == 0
    assert len(http.get(f"/v1/entities/{etype}/{victim}/erasures").json()["erasures"]) == 2


def test_erasure_request_id_is_audited(http: httpx.Client, client: Client, names: Names) -> None:
    etype = names.etype()
    group = names.group("stats")
    client.register_group(scalar_group(group, etype))
    eid = names.eid("r")
    client.write([{"group": group, "entity_id": eid, "values": {"trips_7d": 1}}])
    r = http.delete(f"/v1/entities/{etype}/{eid}", headers={"X-Request-Id": "gdpr-ticket-42"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == "gdpr-ticket-42"
    records = http.get(f"/v1/entities/{etype}/{eid}/erasures").json()["erasures"]
    assert [x["request_id"] for x in records] == ["gdpr-ticket-42"]


def test_erasure_of_an_id_with_reserved_characters(client: Client, names: Names) -> None:
    etype = names.etype()
    group = names.group("stats")
    client.register_group(scalar_group(group, etype))
    odd = names.eid("a/b c?d%e#f")
    plain = names.eid("a")
    client.write(
        [
            {"group": group, "entity_id": odd, "values": {"trips_7d": 4}},
            {"group": group, "entity_id": plain, "values": {"trips_7d": 5}},
        ]
    )
    assert client.get(etype, odd, [f"{group}:trips_7d"]).values == [4]
    erased = client.delete_entity(etype, odd)
    assert (erased.entity_id, erased.deleted) == (odd, 1)
    resp = client.batch_get({etype: [odd, plain]}, [f"{group}:trips_7d"])
    assert [r.statuses for r in resp.rows] == [["DEFAULTED"], ["PRESENT"]]


async def test_erasure_with_async_client(base_url: str, names: Names) -> None:
    with Client(base_url, timeout=10.0) as sync:
        fx = _setup(sync, names)
    async with AsyncClient(base_url, timeout=10.0) as c:
        assert (await c.search(f"{fx['emb']}@2", _vec(2), k=1))[0].entity_id == fx["victim"]
        erased = await c.delete_entity(fx["etype"], fx["victim"])
        assert erased.deleted == 5
        hits = await c.search(f"{fx['emb']}@2", _vec(2), k=10)
        assert [h.entity_id for h in hits] == [fx["bystander"]]
        resp = await c.batch_get({fx["etype"]: [fx["victim"], fx["bystander"]]}, fx["feats"])
        assert resp.rows[0].statuses[2:] == ["NOT_FOUND"] * 3
        assert resp.rows[1].statuses == ["PRESENT"] * 5


def test_erasure_is_scoped_to_the_entity_type(client: Client, names: Names) -> None:
    rider, driver = names.etype("rider"), names.etype("driver")
    gr, gd = names.group("r"), names.group("d")
    client.register_group(scalar_group(gr, rider))
    client.register_group(scalar_group(gd, driver))
    same = names.eid("same-id")
    client.write([{"group": gr, "entity_id": same, "values": {"trips_7d": 1}}])
    client.write([{"group": gd, "entity_id": same, "values": {"trips_7d": 2}}])
    assert client.delete_entity(rider, same).deleted == 1
    assert client.get(rider, same, [f"{gr}:trips_7d"]).statuses == ["DEFAULTED"]
    row = client.get(driver, same, [f"{gd}:trips_7d"])
    assert (row.values, row.statuses) == ([2], ["PRESENT"])
