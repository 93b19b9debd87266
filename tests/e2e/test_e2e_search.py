"""kNN search end to end: the daemon's answer equals a brute-force answer computed here."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from dsf_e2e import Names, ago, embedding_group, scalar_group

from dsfeatures.client import AsyncClient, Client, InvalidRequest, UnknownFeature

pytestmark = pytest.mark.e2e

N = 300
DIM = 16
K = 5
CITIES = ("sf", "nyc", "la")

F64 = npt.NDArray[np.float64]


def _data(seed: int) -> tuple[F64, list[str]]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(N, DIM))
    return vecs, [CITIES[i % 3] for i in range(N)]


def _scores(metric: str, vecs: F64, q: F64) -> F64:
    """OpenSearch-convention scores, computed in float64: higher is nearer."""
    if metric == "cosine":
        cos = (vecs @ q) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(q))
        return (1.0 + cos) / 2.0
    d2 = ((vecs - q) ** 2).sum(axis=1)
    return 1.0 / (1.0 + d2)


def _top(scores: F64, keep: npt.NDArray[np.bool_] | None, k: int) -> list[int]:
    s = scores if keep is None else np.where(keep, scores, -np.inf)
    order = np.argsort(-s, kind="stable")
    return [int(i) for i in order[:k] if s[i] != -np.inf]


def _queries(metric: str, vecs: F64, rng: np.random.Generator, count: int = 4) -> list[F64]:
    """Random queries whose 5th and 6th neighbours are clearly apart (no float32 ties)."""
    out: list[F64] = []
    while len(out) < count:
        q = rng.normal(size=DIM)
        s = np.sort(_scores(metric, vecs, q))[::-1]
        if s[K - 1] - s[K] > 1e-4:
            out.append(q)
    return out


def _load(client: Client, names: Names, metric: str, seed: int) -> dict[str, Any]:
    etype = names.etype()
    group = names.group(f"emb_{metric}")
    client.register_group(
        embedding_group(
            group,
            etype,
            dimension=DIM,
            metric=metric,
            extra_features=[{"name": "city", "type": "string"}],
        )
    )
    vecs, cities = _data(seed)
    ids = [names.eid(f"e{i:03d}") for i in range(N)]
    t = ago(10)
    rows = [
        {
            "group": group,
            "entity_id": ids[i],
            "values": {"vec": [float(x) for x in vecs[i]], "city": cities[i]},
            "event_time": t,
        }
        for i in range(N)
    ]
    res = client.write(rows, lane="batch")
    assert all(r.status == "WRITTEN" for r in res)
    return {"etype": etype, "group": group, "vecs": vecs, "cities": np.array(cities), "ids": ids}


def _check_knn(hits: list[Any], fx: dict[str, Any], metric: str, q: F64, want: list[int]) -> None:
    assert [h.entity_id for h in hits] == [fx["ids"][i] for i in want]
    expected = _scores(metric, fx["vecs"], q)
    for h, i in zip(hits, want, strict=True):
        assert h.score == pytest.approx(float(expected[i]), rel=1e-4, abs=1e-6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_knn_cosine_exact_with_filter_and_min_score(client: Client, names: Names) -> None:
    fx = _load(client, names, "cosine", seed=11)
    rng = np.random.default_rng(12)
    for q in _queries("cosine", fx["vecs"], rng):
        scores = _scores("cosine", fx["vecs"], q)
        hits = client.search(fx["group"], q.tolist(), k=K)
        _check_knn(hits, fx, "cosine", q, _top(scores, None, K))

        # filter: one value, then a list of values
        keep = fx["cities"] == "sf"
        hits = client.search(fx["group"], q.tolist(), k=K, filter={"city": "sf"})
        _check_knn(hits, fx, "cosine", q, _top(scores, keep, K))
        keep = np.isin(fx["cities"], ["la", "nyc"])
        hits = client.search(
            fx["group"], q.tolist(), k=K, feature="vec", filter={"city": ["la", "nyc"]}
        )
        _check_knn(hits, fx, "cosine", q, _top(scores, keep, K))

        # min_score halfway between the 3rd and 4th best: exactly three hits
        top = _top(scores, None, K)
        cut = float((scores[top[2]] + scores[top[3]]) / 2)
        hits = client.search(fx["group"], q.tolist(), k=K, min_score=cut)
        _check_knn(hits, fx, "cosine", q, top[:3])
        assert all(h.score >= cut for h in hits)


async def test_knn_l2_exact_async(base_url: str, names: Names) -> None:
    with Client(base_url, timeout=10.0) as sync:
        fx = _load(sync, names, "l2", seed=21)
    rng = np.random.default_rng(22)
    async with AsyncClient(base_url, timeout=10.0) as c:
        for q in _queries("l2", fx["vecs"], rng):
            scores = _scores("l2", fx["vecs"], q)
            hits = await c.search(fx["group"], q, k=K)  # a numpy array is accepted
            _check_knn(hits, fx, "l2", q, _top(scores, None, K))
            keep = fx["cities"] == "nyc"
            hits = await c.search(f"{fx['group']}@1", q.tolist(), k=K, filter={"city": "nyc"})
            _check_knn(hits, fx, "l2", q, _top(scores, keep, K))
            top = _top(scores, None, K)
            cut = float((scores[top[1]] + scores[top[2]]) / 2)
            hits = await c.search(fx["group"], q.tolist(), k=K, min_score=cut)
            _check_knn(hits, fx, "l2", q, top[:2])
        # k larger than the group: everything, best first
        q = rng.normal(size=DIM)
        hits = await c.search(fx["group"], q.tolist(), k=1000)
        assert len(hits) == N
        assert {h.entity_id for h in hits} == set(fx["ids"])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_follows_writes_and_deletes(
    client: Client, http: httpx.Client, names: Names
) -> None:
    fx = _load(client, names, "l2", seed=31)
    q = np.full(DIM, 40.0)  # far from every random vector
    before = client.search(fx["group"], q.tolist(), k=1)[0]
    mover = fx["ids"][0] if before.entity_id != fx["ids"][0] else fx["ids"][1]
    # Move one entity right onto the query: it becomes the nearest, score 1.
    res = client.write(
        [{"group": fx["group"], "entity_id": mover, "values": {"vec": q.tolist(), "city": "sf"}}]
    )
    assert res[0].status == "WRITTEN"
    hits = client.search(fx["group"], q.tolist(), k=2)
    assert hits[0].entity_id == mover
    assert hits[0].score == pytest.approx(1.0)
    assert hits[1].entity_id == before.entity_id
    # The embedding is readable by key through the get endpoint.
    row = client.get(fx["etype"], mover, [f"{fx['group']}:vec", f"{fx['group']}:city"])
    assert row.statuses == ["PRESENT", "PRESENT"]
    assert row.values[0] == pytest.approx(q.tolist())
    assert row.values[1] == "sf"
    # Delete it: gone from the search and from reads.
    r = http.post(
        "/v1/features/delete",
        json={"entity_type": fx["etype"], "entity_ids": [mover], "groups": [fx["group"]]},
    )
    assert r.json() == {"deleted": 1}
    assert client.search(fx["group"], q.tolist(), k=1)[0].entity_id == before.entity_id
    assert client.get(fx["etype"], mover, [f"{fx['group']}:vec"]).statuses == ["NOT_FOUND"]


def test_search_bad_requests(client: Client, http: httpx.Client, names: Names) -> None:
    fx = _load(client, names, "cosine", seed=41)
    scalar = names.group("plain")
    client.register_group(scalar_group(scalar, fx["etype"]))
    with pytest.raises(InvalidRequest) as exc:
        client.search(fx["group"], [1.0] * (DIM - 1))
    assert "vector" in exc.value.message
    with pytest.raises(InvalidRequest):
        client.search(scalar, [1.0] * DIM)
    with pytest.raises(UnknownFeature):
        client.search(names.group("nope"), [1.0] * DIM)
    with pytest.raises(InvalidRequest) as exc:
        client.search(fx["group"], [1.0] * DIM, filter={"nope": 1})
    assert "filter.nope" in exc.value.message
    with pytest.raises(InvalidRequest):
        client.search(fx["group"], [1.0] * DIM, feature="city")
    r = http.post(
        "/v1/embeddings/search", json={"group": fx["group"], "vector": [1.0] * DIM, "k": 0}
    )
    assert r.status_code == 400
    assert set(r.json()) == {"code", "message", "request_id"}
    assert "k" in r.json()["message"]
    # An embedding row without its vector is refused and nothing is written.
    r = http.post(
        "/v1/features/write",
        json={
            "rows": [
                {"group": fx["group"], "entity_id": names.eid("novec"), "values": {"city": "sf"}}
            ]
        },
    )
    assert r.status_code == 400
    assert "rows[0].values.vec" in r.json()["message"]
    r = http.post(
        "/v1/features/write",
        json={
            "rows": [
                {
                    "group": fx["group"],
                    "entity_id": names.eid("short"),
                    "values": {"vec": [1.0, 2.0]},
                }
            ]
        },
    )
    assert r.status_code == 400
    assert "dimension" in r.json()["message"]
    resp = client.batch_get(
        {fx["etype"]: [names.eid("novec"), names.eid("short")]}, [f"{fx['group']}:vec"]
    )
    assert [row.statuses for row in resp.rows] == [["NOT_FOUND"], ["NOT_FOUND"]]
