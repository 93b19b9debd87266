"""The embedded vector store: exact kNN against an independent brute force, scores, filters.

Scores follow OpenSearch's conventions (documented in
``dsfeatures/stores/vector_index.py``): cosine ``(1 + cos) / 2``, l2
``1 / (1 + d^2)``, dot ``dot + 1`` if ``dot >= 0`` else ``1 / (1 - dot)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from dsfeatures.registry import (
    CompiledGroup,
    Feature,
    FeatureGroup,
    Owner,
    RegisteredGroup,
    fingerprint,
)
from dsfeatures.stores import (
    EmbeddedVectorStore,
    RowKey,
    SqliteDatabase,
    SqliteRowStore,
    VectorStore,
    WriteOp,
)

N, DIM, K = 2000, 16, 10
CITIES = ["sf", "la", "nyc", "sea"]
METRICS = ["cosine", "l2", "dot"]


def compiled(name: str, metric: str, dim: int = DIM, version: int = 1) -> CompiledGroup:
    d = FeatureGroup(
        name=name,
        version=version,
        entity_type="rider",
        kind="embedding",
        features=[
            Feature("vec", "vector", dimension=dim, metric=metric),  # type: ignore[arg-type]
            Feature("city", "string"),
            Feature("tier", "int64"),
        ],
        owner=Owner("perso"),
    )
    return CompiledGroup(
        RegisteredGroup(
            definition=d,
            fingerprint=fingerprint(d),
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
        )
    )


def upsert(g: CompiledGroup, eid: str, values: dict[str, Any], t: int = 1) -> WriteOp:
    return WriteOp(RowKey("rider", eid, g.name, g.version), "upsert", values, t, t, "sdk", "w")


async def open_store(path: Path) -> tuple[SqliteDatabase, EmbeddedVectorStore]:
    db = SqliteDatabase(path)
    await db.open()
    return db, EmbeddedVectorStore(SqliteRowStore(db, "vectors", track_generations=True))


@pytest.fixture
async def db_path(tmp_path: Path) -> Path:
    return tmp_path / "v.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[EmbeddedVectorStore]:
    db, s = await open_store(db_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        await db.close()


@pytest.fixture
async def second_store(db_path: Path) -> AsyncIterator[EmbeddedVectorStore]:
    """Another worker process's view of the same database file."""
    db, s = await open_store(db_path)
    try:
        yield s
    finally:
        await s.close()
        await db.close()


# --- the independent ground truth -----------------------------------------------------


class Data:
    """Random float32 vectors with attributes, and a brute-force kNN in float64."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.vecs: npt.NDArray[np.float32] = rng.normal(size=(N, DIM)).astype(np.float32)
        self.ids = [f"e{i}" for i in range(N)]
        self.city = [CITIES[i % len(CITIES)] for i in range(N)]
        self.tier = [i % 3 for i in range(N)]
        self.queries = rng.normal(size=(5, DIM)).astype(np.float32)

    def ops(self, g: CompiledGroup) -> list[WriteOp]:
        return [
            upsert(g, eid, {"vec": v.tolist(), "city": c, "tier": t})
            for eid, v, c, t in zip(self.ids, self.vecs, self.city, self.tier, strict=True)
        ]

    def truth(
        self,
        metric: str,
        q: npt.NDArray[np.float32],
        k: int,
        keep: npt.NDArray[np.bool_] | None = None,
        min_score: float | None = None,
    ) -> list[tuple[str, float]]:
        x = self.vecs.astype(np.float64)
        qq = q.astype(np.float64)
        if metric == "cosine":
            cos = (x @ qq) / (np.linalg.norm(x, axis=1) * np.linalg.norm(qq))
            scores = (1.0 + cos) / 2.0
        elif metric == "l2":
            scores = 1.0 / (1.0 + ((x - qq) ** 2).sum(axis=1))
        else:
            dot = x @ qq
            scores = np.where(dot >= 0, dot + 1.0, 1.0 / (1.0 - dot))
        ok = np.ones(N, dtype=bool) if keep is None else keep.copy()
        if min_score is not None:
            ok &= scores >= min_score
        order = [i for i in np.argsort(-scores, kind="stable") if ok[i]][:k]
        return [(self.ids[i], float(scores[i])) for i in order]


DATA = Data(seed=20261126)


def assert_same_hits(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [eid for eid, _ in got] == [eid for eid, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-6)
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True)


@pytest.fixture(params=METRICS)
async def loaded(
    request: pytest.FixtureRequest, store: EmbeddedVectorStore
) -> tuple[EmbeddedVectorStore, CompiledGroup]:
    g = compiled(f"emb_{request.param}", request.param)
    await store.ensure_group(g)
    outs = await store.write(DATA.ops(g))
    assert {o.status for o in outs} == {"WRITTEN"}
    return store, g


# --- exact search ---------------------------------------------------------------------


def test_embedded_vector_store_is_a_vector_store(store: EmbeddedVectorStore) -> None:
    assert isinstance(store, VectorStore)


async def test_top_k_equals_brute_force(loaded: tuple[EmbeddedVectorStore, CompiledGroup]) -> None:
    store, g = loaded
    metric = g.vector_feature.feature.metric  # type: ignore[union-attr]
    for q in DATA.queries:
        want = DATA.truth(metric, q, K + 1)
        # The 10th and 11th neighbours are far enough apart for float32 to rank them alike.
        assert want[K - 1][1] - want[K][1] > 1e-5
        got = await store.search(g, q.tolist(), K, None, None)
        recall = len({e for e, _ in got} & {e for e, _ in want[:K]}) / K
        assert recall == 1.0
        assert_same_hits(got, want[:K])


async def test_search_after_a_reload_gives_the_same_answer(
    loaded: tuple[EmbeddedVectorStore, CompiledGroup], db_path: Path
) -> None:
    store, g = loaded
    q = DATA.queries[0].tolist()
    first = await store.search(g, q, K, None, None)
    db, other = await open_store(db_path)  # builds its index from the file alone
    try:
        assert await other.search(g, q, K, None, None) == first
    finally:
        await db.close()


async def test_k_larger_than_the_group(store: EmbeddedVectorStore) -> None:
    g = compiled("small", "l2", dim=2)
    await store.write([upsert(g, "a", {"vec": [0, 0]}), upsert(g, "b", {"vec": [1, 0]})])
    got = await store.search(g, [0.0, 0.0], 50, None, None)
    assert [e for e, _ in got] == ["a", "b"]


async def test_empty_group(store: EmbeddedVectorStore) -> None:
    assert await store.search(compiled("nothing", "dot"), [0.0] * DIM, 5, None, None) == []


# --- scores by hand -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "vectors", "query", "expected"),
    [
        # cosine: (1 + cos) / 2, independent of length
        ("cosine", {"same": [5, 0], "ortho": [0, 2], "opp": [-1, 0]}, [2, 0], [1.0, 0.5, 0.0]),
        # l2: 1 / (1 + squared distance)
        ("l2", {"here": [0, 0], "near": [1, 0], "far": [3, 4]}, [0, 0], [1.0, 0.5, 1 / 26]),
        # dot: dot + 1 when dot >= 0, else 1 / (1 - dot)
        ("dot", {"pos": [1, 1], "zero": [0, 1], "neg": [-1, 0]}, [2, 0], [3.0, 1.0, 1 / 3]),
    ],
)
async def test_scores_follow_opensearch_conventions(
    store: EmbeddedVectorStore,
    metric: str,
    vectors: dict[str, list[float]],
    query: list[float],
    expected: list[float],
) -> None:
    g = compiled(f"hand_{metric}", metric, dim=2)
    await store.write([upsert(g, eid, {"vec": v}) for eid, v in vectors.items()])
    got = await store.search(g, [float(x) for x in query], 3, None, None)
    assert [e for e, _ in got] == list(vectors)
    assert [s for _, s in got] == pytest.approx(expected, rel=1e-6)


# --- filters and thresholds -----------------------------------------------------------


async def test_equality_filter(loaded: tuple[EmbeddedVectorStore, CompiledGroup]) -> None:
    store, g = loaded
    metric = g.vector_feature.feature.metric  # type: ignore[union-attr]
    q = DATA.queries[1]
    keep = np.array([c == "nyc" for c in DATA.city])
    got = await store.search(g, q.tolist(), K, {"city": "nyc"}, None)
    assert_same_hits(got, DATA.truth(metric, q, K, keep))


async def test_any_of_and_combined_filters(
    loaded: tuple[EmbeddedVectorStore, CompiledGroup],
) -> None:
    store, g = loaded
    metric = g.vector_feature.feature.metric  # type: ignore[union-attr]
    q = DATA.queries[2]
    keep = np.array([c in ("sf", "sea") for c in DATA.city])
    got = await store.search(g, q.tolist(), K, {"city": ["sf", "sea"]}, None)
    assert_same_hits(got, DATA.truth(metric, q, K, keep))
    keep2 = keep & np.array([t == 2 for t in DATA.tier])
    got2 = await store.search(g, q.tolist(), K, {"city": ["sf", "sea"], "tier": 2}, None)
    assert_same_hits(got2, DATA.truth(metric, q, K, keep2))


async def test_filter_matching_nothing(loaded: tuple[EmbeddedVectorStore, CompiledGroup]) -> None:
    store, g = loaded
    q = DATA.queries[0].tolist()
    assert await store.search(g, q, K, {"city": "paris"}, None) == []
    assert await store.search(g, q, K, {"city": []}, None) == []


async def test_min_score(loaded: tuple[EmbeddedVectorStore, CompiledGroup]) -> None:
    store, g = loaded
    metric = g.vector_feature.feature.metric  # type: ignore[union-attr]
    q = DATA.queries[3]
    full = DATA.truth(metric, q, 100)
    threshold = (full[4][1] + full[5][1]) / 2  # between the 5th and 6th neighbours
    got = await store.search(g, q.tolist(), K, None, threshold)
    assert_same_hits(got, full[:5])
    assert all(s >= threshold for _, s in got)
    top = full[0][1]
    assert await store.search(g, q.tolist(), K, None, top + 1.0) == []
    keep = np.array([c == "la" for c in DATA.city])
    flt = DATA.truth(metric, q, K, keep, min_score=full[20][1])
    assert_same_hits(await store.search(g, q.tolist(), K, {"city": "la"}, full[20][1]), flt)


# --- changes --------------------------------------------------------------------------


async def test_updates_move_an_entity(loaded: tuple[EmbeddedVectorStore, CompiledGroup]) -> None:
    store, g = loaded
    metric = g.vector_feature.feature.metric  # type: ignore[union-attr]
    q = DATA.queries[4]
    assert "e7" not in [e for e, _ in DATA.truth(metric, q, K)]
    assert DATA.city[7] == "sea"
    # Move e7 onto the query (scaled up for dot, where longer is nearer) and to another city.
    vec = q if metric == "l2" else q * 100
    await store.write([upsert(g, "e7", {"vec": vec.tolist(), "city": "sf"}, t=2)])
    got = await store.search(g, q.tolist(), K, None, None)
    assert got[0][0] == "e7"
    assert (await store.search(g, q.tolist(), K, {"city": "sf"}, None))[0][0] == "e7"
    sea = await store.search(g, q.tolist(), K, {"city": "sea"}, None)
    assert len(sea) == K
    assert "e7" not in [e for e, _ in sea]


async def test_deletes(loaded: tuple[EmbeddedVectorStore, CompiledGroup]) -> None:
    store, g = loaded
    metric = g.vector_feature.feature.metric  # type: ignore[union-attr]
    q = DATA.queries[0]
    before = await store.search(g, q.tolist(), K, None, None)
    victims = [before[0][0], before[3][0], "no_such_entity"]
    gone = await store.delete([RowKey("rider", e, g.name, g.version) for e in victims])
    assert [k.entity_id for k in gone] == victims[:2]
    keep = np.array([eid not in victims for eid in DATA.ids])
    assert_same_hits(
        await store.search(g, q.tolist(), K, None, None), DATA.truth(metric, q, K, keep)
    )
    assert await store.get_many([gone[0]]) == [None]


async def test_delete_entity_removes_it_from_every_group_and_version(
    store: EmbeddedVectorStore,
) -> None:
    groups = [compiled("emb_a", "l2", dim=2), compiled("emb_a", "l2", dim=2, version=2)]
    groups.append(compiled("emb_b", "cosine", dim=2))
    for g in groups:
        await store.write([upsert(g, "r1", {"vec": [1, 1]}), upsert(g, "r2", {"vec": [1, 0.9]})])
        assert [e for e, _ in await store.search(g, [1.0, 1.0], 5, None, None)] == ["r1", "r2"]
    gone = await store.delete_entity("rider", "r1")
    assert sorted((k.group, k.version) for k in gone) == [("emb_a", 1), ("emb_a", 2), ("emb_b", 1)]
    for g in groups:
        assert [e for e, _ in await store.search(g, [1.0, 1.0], 5, None, None)] == ["r2"]


# --- another process ------------------------------------------------------------------


async def test_another_instance_sees_writes_before_its_next_search(
    store: EmbeddedVectorStore, second_store: EmbeddedVectorStore
) -> None:
    g = compiled("shared", "l2", dim=2)
    await store.write([upsert(g, "a", {"vec": [0, 0]}), upsert(g, "b", {"vec": [5, 5]})])
    assert [e for e, _ in await second_store.search(g, [4.0, 4.0], 1, None, None)] == ["b"]
    assert [e for e, _ in await store.search(g, [4.0, 4.0], 1, None, None)] == ["b"]

    # A write by the first instance ...
    await store.write([upsert(g, "c", {"vec": [4, 4]})])
    # ... is seen by the second one, whose index was already loaded.
    assert [e for e, _ in await second_store.search(g, [4.0, 4.0], 1, None, None)] == ["c"]

    # A delete by the first instance, likewise.
    await store.delete([RowKey("rider", "c", g.name, 1)])
    assert [e for e, _ in await second_store.search(g, [4.0, 4.0], 1, None, None)] == ["b"]

    # And the other way round, while both hold loaded indexes.
    await second_store.write([upsert(g, "d", {"vec": [0.1, 0.1]})])
    assert [e for e, _ in await store.search(g, [0.1, 0.1], 1, None, None)] == ["d"]
    await second_store.delete_entity("rider", "d")
    assert [e for e, _ in await store.search(g, [0.1, 0.1], 1, None, None)] == ["a"]

    # Interleaved writes by both, then both agree.
    await store.write([upsert(g, "e", {"vec": [9, 9]})])
    await second_store.write([upsert(g, "f", {"vec": [8, 8]})])
    await store.write([upsert(g, "a", {"vec": [7, 7]}, t=2)])
    want = ["e", "f", "a", "b"]
    assert [e for e, _ in await store.search(g, [10.0, 10.0], 4, None, None)] == want
    assert [e for e, _ in await second_store.search(g, [10.0, 10.0], 4, None, None)] == want
