"""The vector store contract over the embedded index and a real OpenSearch (k-NN, Lucene).

The same cases run against both backends: recall@10 against a numpy brute force on a few
thousand random vectors for each metric (the embedded index is exact: 1.0; OpenSearch's
Lucene HNSW is approximate and must stay above 0.95), score conventions, filters,
``min_score``, read-your-write visibility, event-time and revision rules, deletes,
erasure, and group versions kept apart. Then the service with OpenSearch for embeddings:
one BatchGet over scalar and embedding groups, an OpenSearch outage (through a
``FaultProxy``) that makes embedding values UNAVAILABLE while scalar values are served,
and the search validation.

The OpenSearch node is the session fixture ``opensearch`` of ``tests.servers.opensearch``.
Each test uses indexes of its own (a random ``index_prefix``), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from dsfeatures.config import load_config
from dsfeatures.errors import BackendUnavailable, Conflict, DeadlineExceeded, InvalidRequest
from dsfeatures.registry import (
    CompiledGroup,
    Feature,
    FeatureGroup,
    Owner,
    RegisteredGroup,
    fingerprint,
)
from dsfeatures.service.core import Service
from dsfeatures.stores import (
    EmbeddedVectorStore,
    Record,
    RowKey,
    SqliteAuditLog,
    SqliteDatabase,
    SqliteRegistryStore,
    SqliteRowStore,
    Stores,
    VectorStore,
    WriteOp,
)
from dsfeatures.stores.opensearch import OpenSearchVectorStore
from dsfeatures.wire.types import GetRequest, SearchRequest, WriteRequest, WriteRow
from tests.servers.faultproxy import FaultProxy
from tests.servers.opensearch import OpenSearchServer

pytestmark = pytest.mark.integration

BACKENDS = ["embedded", "opensearch"]
METRICS = ["cosine", "l2", "dot"]
N, DIM, K, QUERIES = 3000, 32, 10, 25
CITIES = ["sf", "la", "nyc", "sea"]
#: OpenSearch's HNSW (Lucene) must find at least this share of the true 10 nearest.
MIN_RECALL = 0.95
#: Lucene computes scores in float32.
RTOL, ATOL = 1e-4, 1e-6

# --- groups and data ------------------------------------------------------------------


def compiled(
    name: str,
    metric: str,
    dim: int = DIM,
    version: int = 1,
    entity_type: str = "rider",
    extra: list[Feature] | None = None,
) -> CompiledGroup:
    features = [
        Feature("vec", "vector", dimension=dim, metric=metric),  # type: ignore[arg-type]
        Feature("city", "string"),
        Feature("tier", "int64"),
        *(extra or []),
    ]
    d = FeatureGroup(
        name=name,
        version=version,
        entity_type=entity_type,
        kind="embedding",
        features=features,
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


def op(
    g: CompiledGroup,
    eid: str,
    values: dict[str, Any],
    t: int = 1,
    mode: str = "upsert",
    if_revision: int | None = None,
) -> WriteOp:
    key = RowKey(g.entity_type, eid, g.name, g.version)
    return WriteOp(key, mode, values, t, t, "sdk", "w", if_revision)  # type: ignore[arg-type]


def key(g: CompiledGroup, eid: str) -> RowKey:
    return RowKey(g.entity_type, eid, g.name, g.version)


class Data:
    """Random float32 vectors with attributes, and a brute-force kNN in float64."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.vecs: npt.NDArray[np.float32] = rng.normal(size=(N, DIM)).astype(np.float32)
        self.ids = [f"e{i}" for i in range(N)]
        self.pos = {eid: i for i, eid in enumerate(self.ids)}
        self.city = [CITIES[i % len(CITIES)] for i in range(N)]
        self.tier = [i % 3 for i in range(N)]
        self.queries = rng.normal(size=(QUERIES, DIM)).astype(np.float32)

    def ops(self, g: CompiledGroup) -> list[WriteOp]:
        return [
            op(g, eid, {"vec": v.tolist(), "city": c, "tier": t})
            for eid, v, c, t in zip(self.ids, self.vecs, self.city, self.tier, strict=True)
        ]

    def scores(self, metric: str, q: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """OpenSearch-convention scores of every vector for ``q``."""
        x = self.vecs.astype(np.float64)
        qq = q.astype(np.float64)
        if metric == "cosine":
            cos = (x @ qq) / (np.linalg.norm(x, axis=1) * np.linalg.norm(qq))
            return (1.0 + cos) / 2.0
        if metric == "l2":
            return 1.0 / (1.0 + ((x - qq) ** 2).sum(axis=1))
        dot = x @ qq
        return np.where(dot >= 0, dot + 1.0, 1.0 / (1.0 - dot))

    def truth(
        self,
        metric: str,
        q: npt.NDArray[np.float32],
        k: int,
        keep: npt.NDArray[np.bool_] | None = None,
        min_score: float | None = None,
    ) -> list[tuple[str, float]]:
        scores = self.scores(metric, q)
        ok = np.ones(N, dtype=bool) if keep is None else keep.copy()
        if min_score is not None:
            ok &= scores >= min_score
        order = [i for i in np.argsort(-scores, kind="stable") if ok[i]][:k]
        return [(self.ids[i], float(scores[i])) for i in order]


DATA = Data(seed=20261126)


def recall(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> float:
    if not want:
        return 1.0 if not got else 0.0
    return len({e for e, _ in got} & {e for e, _ in want}) / len(want)


def check_scores(metric: str, q: npt.NDArray[np.float32], got: list[tuple[str, float]]) -> None:
    """Each hit's score is the brute-force score of that entity; best first."""
    scores = DATA.scores(metric, q)
    want = [scores[DATA.pos[e]] for e, _ in got]
    np.testing.assert_allclose([s for _, s in got], want, rtol=RTOL, atol=ATOL)
    got_scores = [s for _, s in got]
    assert got_scores == sorted(got_scores, reverse=True)


# --- backends -------------------------------------------------------------------------


@dataclass
class Backend:
    """How to open (another) store instance over one backend's data."""

    name: str
    open: Callable[[], Awaitable[tuple[VectorStore, Callable[[], Awaitable[None]]]]]

    @property
    def exact(self) -> bool:
        return self.name == "embedded"

    @contextlib.asynccontextmanager
    async def store(self, *groups: CompiledGroup) -> AsyncIterator[VectorStore]:
        s, close = await self.open()
        try:
            for g in groups:
                await s.ensure_group(g)
            yield s
        finally:
            await close()


def embedded_backend(path: Path) -> Backend:
    async def open_() -> tuple[VectorStore, Callable[[], Awaitable[None]]]:
        db = SqliteDatabase(path)
        await db.open()
        s = EmbeddedVectorStore(SqliteRowStore(db, "vectors", track_generations=True))
        await s.open()

        async def close() -> None:
            await s.close()
            await db.close()

        return s, close

    return Backend("embedded", open_)


def opensearch_backend(url: str, prefix: str) -> Backend:
    async def open_() -> tuple[VectorStore, Callable[[], Awaitable[None]]]:
        # A shorter refresh interval than the default 1 s only makes writes (which wait
        # for the refresh that makes them searchable) return sooner.
        s = OpenSearchVectorStore(
            url, index_prefix=prefix, replicas=0, timeout=10.0, refresh_interval="200ms"
        )
        await s.open()
        return s, s.close

    return Backend("opensearch", open_)


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn, over fresh storage."""
    if request.param == "embedded":
        yield embedded_backend(tmp_path / "v.db")
        return
    server: OpenSearchServer = request.getfixturevalue("opensearch")
    prefix = new_prefix()
    try:
        yield opensearch_backend(server.url, prefix)
    finally:
        server.delete_indexes(f"{prefix}-*")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[VectorStore]:
    async with backend.store() as s:
        yield s


# The large data set is written once per backend and module; each test opens its own
# store instance over it (a new client, or a new index built from the SQLite file).


def _load(b: Backend) -> None:
    async def load() -> None:
        async with b.store() as s:
            for metric in METRICS:
                g = compiled(f"big_{metric}", metric)
                await s.ensure_group(g)
                outs = await s.write(DATA.ops(g))
                assert {o.status for o in outs} == {"WRITTEN"}

    # On a thread of its own: this runs during fixture setup, beside the tests' loops.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, load()).result()


@pytest.fixture(scope="module")
def embedded_data(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    b = embedded_backend(tmp_path_factory.mktemp("embedded") / "v.db")
    _load(b)
    return b


@pytest.fixture(scope="module")
def opensearch_data(opensearch: OpenSearchServer) -> Iterator[Backend]:
    prefix = new_prefix()
    b = opensearch_backend(opensearch.url, prefix)
    try:
        _load(b)
        yield b
    finally:
        opensearch.delete_indexes(f"{prefix}-*")


@dataclass
class Loaded:
    backend: Backend
    store: VectorStore
    group: CompiledGroup
    metric: str


@pytest.fixture(params=[(b, m) for b in BACKENDS for m in METRICS], ids=lambda p: f"{p[0]}-{p[1]}")
def data_backend(request: pytest.FixtureRequest) -> tuple[Backend, str]:
    """(backend holding the large data set, metric); sync: loading runs outside the loop."""
    name, metric = request.param
    b: Backend = request.getfixturevalue(f"{name}_data")
    return b, metric


@pytest.fixture
async def loaded(data_backend: tuple[Backend, str]) -> AsyncIterator[Loaded]:
    b, metric = data_backend
    g = compiled(f"big_{metric}", metric)
    async with b.store(g) as s:
        yield Loaded(b, s, g, metric)


# --- recall and scores ----------------------------------------------------------------


async def test_recall_at_10_against_brute_force(
    loaded: Loaded, capsys: pytest.CaptureFixture[str]
) -> None:
    rs = []
    for q in DATA.queries:
        want = DATA.truth(loaded.metric, q, K)
        got = await loaded.store.search(loaded.group, q.tolist(), K, None, None)
        assert len(got) == K
        check_scores(loaded.metric, q, got)
        rs.append(recall(got, want))
        if loaded.backend.exact:
            assert [e for e, _ in got] == [e for e, _ in want]
    mean = float(np.mean(rs))
    with capsys.disabled():  # the figure is worth seeing in every run
        print(f" recall@{K} {loaded.backend.name}/{loaded.metric}: {mean:.4f} ", end="")
    assert mean >= (1.0 if loaded.backend.exact else MIN_RECALL), f"recall@{K} {mean:.4f}"


@pytest.mark.parametrize("metric", METRICS)
async def test_both_backends_score_alike(
    metric: str, embedded_data: Backend, opensearch_data: Backend
) -> None:
    g = compiled(f"big_{metric}", metric)
    async with embedded_data.store(g) as exact, opensearch_data.store(g) as approx:
        for q in DATA.queries[:10]:
            a = dict(await exact.search(g, q.tolist(), 50, None, None))
            b = dict(await approx.search(g, q.tolist(), 50, None, None))
            common = sorted(set(a) & set(b))
            assert len(common) >= 45
            np.testing.assert_allclose(
                [b[e] for e in common], [a[e] for e in common], rtol=RTOL, atol=ATOL
            )
            assert max(a, key=a.__getitem__) == max(b, key=b.__getitem__)


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
    backend: Backend,
    metric: str,
    vectors: dict[str, list[float]],
    query: list[float],
    expected: list[float],
) -> None:
    g = compiled(f"hand_{metric}", metric, dim=2)
    async with backend.store(g) as s:
        await s.write([op(g, eid, {"vec": v}) for eid, v in vectors.items()])
        got = await s.search(g, [float(x) for x in query], 3, None, None)
    assert [e for e, _ in got] == list(vectors)
    assert [sc for _, sc in got] == pytest.approx(expected, rel=1e-6)


async def test_k_larger_than_the_group_and_empty_group(store: VectorStore) -> None:
    g = compiled("small", "l2", dim=2)
    empty = compiled("nothing", "dot", dim=2)
    await store.ensure_group(g)
    await store.ensure_group(empty)
    await store.write([op(g, "a", {"vec": [0, 0]}), op(g, "b", {"vec": [1, 0]})])
    got = await store.search(g, [0.0, 0.0], 50, None, None)
    assert [e for e, _ in got] == ["a", "b"]
    assert await store.search(empty, [0.0, 1.0], 5, None, None) == []


# --- filters and thresholds -----------------------------------------------------------


async def test_filters(loaded: Loaded) -> None:
    s, g, metric = loaded.store, loaded.group, loaded.metric
    city = np.array(DATA.city)
    tier = np.array(DATA.tier)
    cases: list[tuple[dict[str, Any], npt.NDArray[np.bool_]]] = [
        ({"city": "nyc"}, city == "nyc"),
        ({"city": ["sf", "sea"]}, np.isin(city, ["sf", "sea"])),
        ({"city": ["sf", "sea"], "tier": 2}, np.isin(city, ["sf", "sea"]) & (tier == 2)),
        ({"tier": [0]}, tier == 0),
    ]
    for filters, keep in cases:
        rs = []
        for q in DATA.queries[:10]:
            want = DATA.truth(metric, q, K, keep)
            got = await s.search(g, q.tolist(), K, filters, None)
            assert len(got) == K, filters
            assert all(keep[DATA.pos[e]] for e, _ in got), filters
            check_scores(metric, q, got)
            rs.append(recall(got, want))
        assert float(np.mean(rs)) >= (1.0 if loaded.backend.exact else MIN_RECALL), filters
    q = DATA.queries[0].tolist()
    assert await s.search(g, q, K, {"city": "paris"}, None) == []
    assert await s.search(g, q, K, {"city": []}, None) == []


async def test_min_score(loaded: Loaded) -> None:
    s, g, metric = loaded.store, loaded.group, loaded.metric
    for q in DATA.queries[:5]:
        full = DATA.truth(metric, q, 100)
        threshold = (full[4][1] + full[5][1]) / 2  # between the 5th and 6th neighbours
        got = await s.search(g, q.tolist(), K, None, threshold)
        assert all(sc >= threshold for _, sc in got)
        check_scores(metric, q, got)
        assert {e for e, _ in got} <= {e for e, _ in full[:5]}
        assert recall(got, full[:5]) >= (1.0 if loaded.backend.exact else 0.8)
        assert await s.search(g, q.tolist(), K, None, full[0][1] + 1.0) == []
        keep = np.array([c == "la" for c in DATA.city])
        low = (full[20][1] + full[21][1]) / 2
        flt = DATA.truth(metric, q, K, keep, min_score=low)
        both = await s.search(g, q.tolist(), K, {"city": "la"}, low)
        assert all(sc >= low and DATA.city[DATA.pos[e]] == "la" for e, sc in both)
        assert recall(both, flt) >= (1.0 if loaded.backend.exact else 0.8)


async def test_typed_filters(store: VectorStore) -> None:
    extra = [Feature("ts", "timestamp"), Feature("flag", "bool"), Feature("w", "float64")]
    g = compiled("typed", "l2", dim=2, extra=extra)
    await store.ensure_group(g)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        op(g, f"x{i}", {"vec": [float(i), 0.0], "ts": t0 + timedelta(microseconds=i),
                        "flag": i % 2 == 0, "w": i / 4, "city": "sf"})
        for i in range(8)
    ]  # fmt: skip
    assert {o.status for o in await store.write(rows)} == {"WRITTEN"}
    q = [0.0, 0.0]

    async def ids(filters: dict[str, Any]) -> list[str]:
        return [e for e, _ in await store.search(g, q, 10, filters, None)]

    assert await ids({"ts": t0 + timedelta(microseconds=3)}) == ["x3"]
    assert await ids({"flag": True}) == ["x0", "x2", "x4", "x6"]
    assert await ids({"w": 1.25}) == ["x5"]
    assert await ids({"w": [0.0, 1.75], "flag": True}) == ["x0"]


# --- writes: visibility, ordering, conditions -----------------------------------------


async def test_upsert_then_search_sees_it_at_once(store: VectorStore) -> None:
    g = compiled("fresh", "cosine", dim=3)
    await store.ensure_group(g)
    others = [op(g, f"o{i}", {"vec": [1.0, float(i), 0.5], "city": "la"}) for i in range(20)]
    await store.write(others)
    (out,) = await store.write([op(g, "me", {"vec": [0.0, 0.0, 1.0], "city": "sf"}, t=10)])
    assert (out.status, out.revision) == ("WRITTEN", 1)
    # Acknowledged means searchable (refresh=wait_for) and readable by key.
    assert (await store.search(g, [0.0, 0.0, 1.0], 1, None, None))[0][0] == "me"
    (rec,) = await store.get_many([key(g, "me")])
    assert isinstance(rec, Record)
    assert rec.values == {"vec": [0.0, 0.0, 1.0], "city": "sf"}
    assert (rec.event_time, rec.revision, rec.lane, rec.writer) == (10, 1, "sdk", "w")
    # Moved elsewhere, with another city: the next search sees the new vector and city.
    await store.write([op(g, "me", {"vec": [0.0, 1.0, 0.0], "city": "nyc"}, t=11)])
    assert (await store.search(g, [0.0, 1.0, 0.0], 1, None, None))[0][0] == "me"
    assert [e for e, _ in await store.search(g, [0.0, 0.0, 1.0], 5, {"city": "sf"}, None)] == []
    assert [e for e, _ in await store.search(g, [0.0, 0.0, 1.0], 5, {"city": "nyc"}, None)] == [
        "me"
    ]


async def test_stale_write_is_not_applied(store: VectorStore) -> None:
    g = compiled("stale", "l2", dim=2)
    await store.ensure_group(g)
    await store.write([op(g, "a", {"vec": [1.0, 1.0], "city": "sf"}, t=50)])
    (out,) = await store.write([op(g, "a", {"vec": [9.0, 9.0], "city": "la"}, t=40)])
    assert (out.status, out.revision) == ("STALE", 1)
    (rec,) = await store.get_many([key(g, "a")])
    assert isinstance(rec, Record)
    assert (rec.values["vec"], rec.event_time, rec.revision) == ([1.0, 1.0], 50, 1)
    assert await store.search(g, [9.0, 9.0], 1, {"city": "la"}, None) == []
    # The same event time is applied (later write wins on a tie).
    (tie,) = await store.write([op(g, "a", {"vec": [2.0, 2.0]}, t=50)])
    assert (tie.status, tie.revision) == ("WRITTEN", 2)


async def test_conditional_writes(store: VectorStore) -> None:
    g = compiled("cond", "l2", dim=2)
    await store.ensure_group(g)
    v = {"vec": [1.0, 0.0], "city": "sf"}
    outs = await store.write(
        [
            op(g, "a", v, mode="create"),
            op(g, "b", v, mode="update"),  # update needs an existing row
            op(g, "c", v, if_revision=0),  # only if absent: it is
            op(g, "d", v, if_revision=3),  # expects revision 3 of an absent row
        ]
    )
    assert [(o.status, o.revision) for o in outs] == [
        ("WRITTEN", 1),
        ("CONFLICT", 0),
        ("WRITTEN", 1),
        ("CONFLICT", 0),
    ]
    outs = await store.write(
        [
            op(g, "a", v, t=2, mode="create"),
            op(g, "c", v, t=2, if_revision=0),
            op(g, "a", v, t=2, if_revision=7),
        ]
    )
    assert [(o.status, o.revision) for o in outs] == [
        ("CONFLICT", 1),
        ("CONFLICT", 1),
        ("CONFLICT", 1),
    ]
    # A partial update keeps the vector and changes the city; if_revision that matches.
    (upd,) = await store.write([op(g, "a", {"city": "la"}, t=3, mode="update", if_revision=1)])
    assert (upd.status, upd.revision) == ("WRITTEN", 2)
    (rec,) = await store.get_many([key(g, "a")])
    assert isinstance(rec, Record)
    assert rec.values == {"vec": [1.0, 0.0], "city": "la"}
    assert [e for e, _ in await store.search(g, [1.0, 0.0], 5, {"city": "la"}, None)] == ["a"]
    assert (await store.get_many([key(g, "b"), key(g, "d")])) == [None, None]


async def test_several_writes_of_one_row_in_one_call_apply_in_order(store: VectorStore) -> None:
    g = compiled("twice", "l2", dim=2)
    await store.ensure_group(g)
    outs = await store.write(
        [
            op(g, "a", {"vec": [1.0, 0.0]}, t=1),
            op(g, "a", {"vec": [2.0, 0.0]}, t=3),
            op(g, "a", {"vec": [3.0, 0.0]}, t=2),  # older than the one before: stale
            op(g, "a", {"city": "sf"}, t=4, mode="update", if_revision=2),
        ]
    )
    assert [(o.status, o.revision) for o in outs] == [
        ("WRITTEN", 1),
        ("WRITTEN", 2),
        ("STALE", 2),
        ("WRITTEN", 3),
    ]
    (rec,) = await store.get_many([key(g, "a")])
    assert isinstance(rec, Record)
    assert (rec.values, rec.revision, rec.event_time) == ({"vec": [2.0, 0.0], "city": "sf"}, 3, 4)


async def test_concurrent_writers_of_one_row(backend: Backend) -> None:
    """Two store instances (two processes) race on one row: nothing applied is lost."""
    g = compiled("race", "l2", dim=2)
    async with backend.store(g) as s1, backend.store(g) as s2:
        times = list(range(1, 41))
        np.random.default_rng(7).shuffle(times)

        async def one(s: VectorStore, t: int) -> str:
            (out,) = await s.write([op(g, "hot", {"vec": [float(t), 0.0]}, t=t)])
            return out.status

        statuses = await asyncio.gather(*(one(s1 if i % 2 else s2, t) for i, t in enumerate(times)))
        written = statuses.count("WRITTEN")
        assert written + statuses.count("STALE") == len(times)
        (rec,) = await s1.get_many([key(g, "hot")])
        assert isinstance(rec, Record)
        # Every applied write raised the revision by one; the newest event time won.
        assert (rec.revision, rec.event_time, rec.values["vec"]) == (written, 40, [40.0, 0.0])
        assert (await s2.search(g, [40.0, 0.0], 1, None, None))[0] == ("hot", 1.0)


async def test_long_entity_ids(store: VectorStore) -> None:
    """Ids up to 1,024 bytes (OpenSearch ids stop at 512): stored under their hash."""
    g = compiled("longid", "cosine", dim=2)
    await store.ensure_group(g)
    long_id = "é" * 512  # 1,024 bytes of UTF-8
    other = long_id[:-1] + "e"
    await store.write([op(g, long_id, {"vec": [1.0, 0.0]}), op(g, other, {"vec": [0.0, 1.0]})])
    assert [e for e, _ in await store.search(g, [1.0, 0.1], 2, None, None)] == [long_id, other]
    (rec,) = await store.get_many([key(g, long_id)])
    assert isinstance(rec, Record)
    assert rec.values["vec"] == [1.0, 0.0]
    gone = await store.delete_entity("rider", long_id)
    assert gone == [key(g, long_id)]
    assert [e for e, _ in await store.search(g, [1.0, 0.1], 2, None, None)] == [other]


# --- deletes and erasure --------------------------------------------------------------


async def test_delete(store: VectorStore) -> None:
    g = compiled("del", "l2", dim=2)
    await store.ensure_group(g)
    await store.write([op(g, f"d{i}", {"vec": [float(i), 0.0]}) for i in range(10)])
    gone = await store.delete([key(g, "d0"), key(g, "d3"), key(g, "nobody")])
    assert gone == [key(g, "d0"), key(g, "d3")]
    got = await store.search(g, [0.0, 0.0], 3, None, None)
    assert [e for e, _ in got] == ["d1", "d2", "d4"]
    none, present = await store.get_many([key(g, "d0"), key(g, "d1")])
    assert none is None
    assert isinstance(present, Record)
    assert await store.delete([key(g, "d0")]) == []
    # A deleted row can be created again, from revision 1.
    (out,) = await store.write([op(g, "d0", {"vec": [0.0, 0.0]}, mode="create")])
    assert (out.status, out.revision) == ("WRITTEN", 1)


async def test_erasure_removes_the_entity_from_every_group_and_version(store: VectorStore) -> None:
    groups = [
        compiled("emb_a", "l2", dim=2),
        compiled("emb_a", "l2", dim=2, version=2),
        compiled("emb_b", "cosine", dim=2),
    ]
    driver = compiled("emb_d", "l2", dim=2, entity_type="driver")
    for g in [*groups, driver]:
        await store.ensure_group(g)
        await store.write([op(g, "r1", {"vec": [1.0, 1.0]}), op(g, "r2", {"vec": [1.0, 0.9]})])
        assert [e for e, _ in await store.search(g, [1.0, 1.0], 5, None, None)] == ["r1", "r2"]
    gone = await store.delete_entity("rider", "r1")
    assert sorted((k.group, k.version) for k in gone) == [("emb_a", 1), ("emb_a", 2), ("emb_b", 1)]
    for g in groups:
        assert [e for e, _ in await store.search(g, [1.0, 1.0], 5, None, None)] == ["r2"]
        assert await store.get_many([key(g, "r1")]) == [None]
    # Another entity type's r1 is another entity.
    assert [e for e, _ in await store.search(driver, [1.0, 1.0], 5, None, None)] == ["r1", "r2"]
    assert await store.delete_entity("rider", "r1") == []


# --- group versions -------------------------------------------------------------------


async def test_a_new_version_does_not_disturb_the_old_one(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    v1 = compiled("versioned", "cosine", dim=8)
    v2 = compiled("versioned", "l2", dim=4, version=2)
    await store.ensure_group(v1)
    old = rng.normal(size=(300, 8)).astype(np.float32)
    await store.write(
        [op(v1, f"u{i}", {"vec": v.tolist(), "city": "sf"}) for i, v in enumerate(old)]
    )
    queries = [q.tolist() for q in rng.normal(size=(5, 8)).astype(np.float32)]
    before = [await store.search(v1, q, 10, None, None) for q in queries]
    keys = [key(v1, f"u{i}") for i in range(300)]
    rows_before = await store.get_many(keys)

    # Re-index: register version 2 and fill it while version 1 is being read.
    await store.ensure_group(v2)
    new = rng.normal(size=(1000, 4)).astype(np.float32)
    batches = [
        [op(v2, f"u{i}", {"vec": new[i].tolist(), "city": "la"}, t=2) for i in range(j, j + 250)]
        for j in range(0, 1000, 250)
    ]
    writing = asyncio.gather(*(store.write(b) for b in batches))
    during = []
    while not writing.done():
        during.append([await store.search(v1, q, 10, None, None) for q in queries])
        await asyncio.sleep(0)
    await writing
    assert during
    assert all(d == before for d in during)
    assert [await store.search(v1, q, 10, None, None) for q in queries] == before
    assert await store.get_many(keys) == rows_before
    # Version 2 is its own index: its own dimension, metric and rows.
    got = await store.search(v2, new[7].tolist(), 1, None, None)
    assert got == [("u7", 1.0)]
    (rec,) = await store.get_many([key(v2, "u7")])
    assert isinstance(rec, Record)
    assert rec.values["city"] == "la"
    assert [e for e, _ in await store.search(v1, queries[0], 3, {"city": "la"}, None)] == []


# --- OpenSearch specifics -------------------------------------------------------------


async def test_opensearch_mapping_names_the_lucene_engine(opensearch: OpenSearchServer) -> None:
    prefix = new_prefix()
    s = OpenSearchVectorStore(opensearch.url, index_prefix=prefix, replicas=0)
    await s.open()
    try:
        g = compiled("mapped", "dot", dim=5, extra=[Feature("raw", "bytes")])
        await s.ensure_group(g)
        await s.ensure_group(g)  # idempotent
        # Another store finds the index there and checks it has the same vector.
        s2 = OpenSearchVectorStore(opensearch.url, index_prefix=prefix, replicas=0)
        await s2.open()
        try:
            await s2.ensure_group(g)
        finally:
            await s2.close()
        mapping = opensearch.request("GET", f"/{prefix}-mapped-v1/_mapping")
        props = mapping[f"{prefix}-mapped-v1"]["mappings"]["properties"]
        assert props["v"]["type"] == "knn_vector"
        assert props["v"]["dimension"] == 5
        assert props["v"]["method"]["engine"] == "lucene"
        assert props["v"]["method"]["space_type"] == "innerproduct"
        assert props["f"]["properties"] == {
            "city": {"type": "keyword", "ignore_above": 8191},
            "tier": {"type": "long"},
        }
        with pytest.raises(InvalidRequest, match="cannot be filtered"):
            await s.search(g, [1.0] * 5, 3, {"raw": b"x"}, None)
        # The same index name with another vector (a registry that lost track): the
        # registry load goes on, the first write says why.
        s3 = OpenSearchVectorStore(opensearch.url, index_prefix=prefix, replicas=0)
        await s3.open()
        try:
            other = compiled("mapped", "dot", dim=6)
            await s3.ensure_group(other)
            with pytest.raises(Conflict, match="exists with vector"):
                await s3.write([op(other, "a", {"vec": [1.0] * 6})])
        finally:
            await s3.close()
    finally:
        await s.close()
        opensearch.delete_indexes(f"{prefix}-*")


async def test_opensearch_refuses_zero_vectors_with_cosine(opensearch: OpenSearchServer) -> None:
    prefix = new_prefix()
    s = OpenSearchVectorStore(opensearch.url, index_prefix=prefix, replicas=0)
    await s.open()
    try:
        g = compiled("zero", "cosine", dim=2)
        await s.ensure_group(g)
        with pytest.raises(InvalidRequest, match="zero vector"):
            await s.write([op(g, "ok", {"vec": [1.0, 0.0]}), op(g, "bad", {"vec": [0.0, 0.0]})])
        assert await s.get_many([key(g, "ok")]) == [None]  # nothing of it was written
        with pytest.raises(InvalidRequest, match="zero vector"):
            await s.search(g, [0.0, 0.0], 3, None, None)
    finally:
        await s.close()
        opensearch.delete_indexes(f"{prefix}-*")


async def test_opensearch_down_raises_backend_unavailable() -> None:
    s = OpenSearchVectorStore("http://127.0.0.1:1", index_prefix="dead", timeout=1.0)
    await s.open()
    try:
        g = compiled("dead", "l2", dim=2)
        await s.ensure_group(g)  # logged, not raised: created on first write
        for call in (
            s.ping(),
            s.get_many([key(g, "a")]),
            s.write([op(g, "a", {"vec": [1.0, 0.0]})]),
            s.search(g, [1.0, 0.0], 3, None, None),
            s.delete([key(g, "a")]),
            s.delete_entity("rider", "a"),
        ):
            with pytest.raises(BackendUnavailable):
                await call
    finally:
        await s.close()


# --- the service over OpenSearch ------------------------------------------------------


SCALAR = FeatureGroup(
    name="rider_stats",
    version=1,
    entity_type="rider",
    features=[Feature("trips_7d", "int64", default=0), Feature("avg_fare", "float64")],
    owner=Owner("pricing"),
)
EMBED = FeatureGroup(
    name="rider_emb",
    version=1,
    entity_type="rider",
    kind="embedding",
    features=[
        Feature("vec", "vector", dimension=4, metric="cosine"),
        Feature("segment", "string"),
    ],
    owner=Owner("ml"),
)


@contextlib.asynccontextmanager
async def service(tmp_path: Path, vectors: VectorStore | None) -> AsyncIterator[Service]:
    """A Service on SQLite rows and ``vectors`` (None: the embedded default)."""
    config = load_config(
        env={}, overrides={"server": {"data_dir": str(tmp_path), "request_timeout": 1.0}}
    )
    db = SqliteDatabase(tmp_path / "dsfeatures.db")
    await db.open()
    if vectors is None:
        vectors = EmbeddedVectorStore(SqliteRowStore(db, "vectors", track_generations=True))
    await vectors.open()
    stores = Stores(
        rows=SqliteRowStore(db, "rows"),
        vectors=vectors,
        registry=SqliteRegistryStore(db),
        audit=SqliteAuditLog(db),
        cache=None,
        backend_names={"rows": "sqlite", "vectors": "test", "cache": "none"},
    )
    stores._closers.extend([db.close, vectors.close])
    svc = Service(config, stores)
    try:
        await svc.registry.load()
        yield svc
    finally:
        await svc.close()


def mixed_get(*ids: str) -> GetRequest:
    return GetRequest(
        entities={"rider": list(ids)},
        features=["rider_stats:trips_7d", "rider_emb:vec", "rider_emb:segment"],
    )


async def fill(svc: Service) -> None:
    await svc.register(SCALAR)
    await svc.register(EMBED)
    t = datetime(2026, 11, 26, 10, tzinfo=UTC)
    resp = await svc.write(
        WriteRequest(
            rows=[
                WriteRow("rider_stats", "r1", {"trips_7d": 3, "avg_fare": 12.5}, event_time=t),
                WriteRow("rider_emb", "r1", {"vec": [1, 0, 0, 0], "segment": "a"}, event_time=t),
                WriteRow("rider_emb", "r2", {"vec": [0, 1, 0, 0], "segment": "b"}, event_time=t),
                WriteRow("rider_stats", "r2", {"trips_7d": 9}, event_time=t),
            ]
        )
    )
    assert [r.status for r in resp.results] == ["WRITTEN"] * 4


async def test_service_mixes_scalar_and_embedding_groups_and_survives_an_outage(
    tmp_path: Path, opensearch: OpenSearchServer
) -> None:
    prefix = new_prefix()
    try:
        async with FaultProxy("127.0.0.1", opensearch.port) as proxy:
            url = f"http://127.0.0.1:{proxy.port}"
            vectors = OpenSearchVectorStore(url, index_prefix=prefix, replicas=0, max_retries=0)
            async with service(tmp_path, vectors) as svc:
                await fill(svc)
                count = opensearch.request("GET", f"/{prefix}-rider_emb-v1/_count")
                assert count["count"] == 2  # the embedding rows, and only them, went there
                got = await svc.get(mixed_get("r1", "r2", "r3"))
                assert [row.values for row in got.rows] == [
                    [3, [1.0, 0.0, 0.0, 0.0], "a"],
                    [9, [0.0, 1.0, 0.0, 0.0], "b"],
                    [0, None, None],
                ]
                assert [row.statuses for row in got.rows] == [
                    ["PRESENT", "PRESENT", "PRESENT"],
                    ["PRESENT", "PRESENT", "PRESENT"],
                    ["DEFAULTED", "NOT_FOUND", "NOT_FOUND"],
                ]
                hits = await svc.search(SearchRequest("rider_emb", [0.9, 0.1, 0, 0], k=2))
                assert [h.entity_id for h in hits.results] == ["r1", "r2"]
                assert await svc.readiness() == (True, {"rows": "ok", "vectors": "ok"})

                for outage in (proxy.refuse, proxy.drop):  # refused, then no answer at all
                    outage()
                    got = await svc.get(mixed_get("r1", "r2"))
                    assert [row.statuses for row in got.rows] == [
                        ["PRESENT", "UNAVAILABLE", "UNAVAILABLE"]
                    ] * 2
                    assert [row.values[0] for row in got.rows] == [3, 9]
                    with pytest.raises((BackendUnavailable, DeadlineExceeded)):
                        await svc.search(SearchRequest("rider_emb", [1, 0, 0, 0]))
                    with pytest.raises(BackendUnavailable):
                        await svc.write(
                            WriteRequest(rows=[WriteRow("rider_emb", "r3", {"vec": [1, 1, 1, 1]})])
                        )
                    # Scalar writes go on.
                    w = await svc.write(
                        WriteRequest(rows=[WriteRow("rider_stats", "r3", {"trips_7d": 1})])
                    )
                    assert w.results[0].status == "WRITTEN"
                    # Still ready: without OpenSearch only embedding values are missing.
                    ready, states = await svc.readiness()
                    assert ready
                    assert states["vectors"].startswith("error")
                    proxy.pass_through()

                got = await svc.get(mixed_get("r1"))
                assert got.rows[0].statuses == ["PRESENT", "PRESENT", "PRESENT"]
                # GDPR erasure reaches the embedding index too.
                erased = await svc.erase("rider", "r1")
                assert erased.deleted == 2
                got = await svc.get(mixed_get("r1"))
                assert got.rows[0].statuses == ["DEFAULTED", "NOT_FOUND", "NOT_FOUND"]
                hits = await svc.search(SearchRequest("rider_emb", [1, 0, 0, 0], k=5))
                assert [h.entity_id for h in hits.results] == ["r2"]
    finally:
        opensearch.delete_indexes(f"{prefix}-*")


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_service_search_semantics(
    tmp_path: Path, backend_name: str, request: pytest.FixtureRequest
) -> None:
    """POST /v1/embeddings/search answers alike from both backends, and validates alike."""
    vectors: VectorStore | None = None
    prefix = new_prefix()
    server: OpenSearchServer | None = None
    if backend_name == "opensearch":
        server = request.getfixturevalue("opensearch")
        vectors = OpenSearchVectorStore(server.url, index_prefix=prefix, replicas=0)
    try:
        async with service(tmp_path, vectors) as svc:
            await fill(svc)
            hits = await svc.search(
                SearchRequest("rider_emb", [1, 1, 0, 0], k=5, filter={"segment": ["b"]})
            )
            assert [(h.entity_id, round(h.score, 6)) for h in hits.results] == [
                ("r2", round((1 + 2**-0.5) / 2, 6))
            ]
            hits = await svc.search(SearchRequest("rider_emb@1", [1, 0, 0, 0], min_score=0.75))
            assert [h.entity_id for h in hits.results] == ["r1"]
            with pytest.raises(InvalidRequest, match="dimension"):
                await svc.search(SearchRequest("rider_emb", [1.0, 0.0, 0.0]))
            with pytest.raises(InvalidRequest, match=r"filter\.nope"):
                await svc.search(SearchRequest("rider_emb", [1, 0, 0, 0], filter={"nope": 1}))
            with pytest.raises(InvalidRequest, match="not an embedding group"):
                await svc.search(SearchRequest("rider_stats", [1, 0, 0, 0]))
    finally:
        if server is not None:
            server.delete_indexes(f"{prefix}-*")
