"""Embedding groups in OpenSearch k-NN (a VectorStore), through opensearch-py's async client.

One index per embedding group version, ``{prefix}-{group}-v{version}``, created from the
registry definition: the vector as a ``knn_vector`` with the HNSW method of the **Lucene**
engine named explicitly (``cosinesimil``, ``l2`` or ``innerproduct``), the entity id and
type as keywords, the group's filterable scalar features under ``f`` (typed), and the
row's stored form ``r`` (the msgpack :class:`~dsfeatures.stores.record.Record` blob,
binary, not indexed) with its revision ``rev`` and event time ``et``. Reads by key decode
``r``, so a row reads back exactly as every other store returns it.

A document's ``_id`` is the sha256 hex of ``{entity_type}#{entity_id}``: entity ids may
be up to 1,024 bytes, OpenSearch ids at most 512. The raw id is kept in ``entity_id``.

Writes apply :func:`~dsfeatures.stores.ordering.decide` per row with optimistic
concurrency: read the current document (a realtime ``mget``, which gives ``_seq_no`` and
``_primary_term``), decide, then write with ``if_seq_no``/``if_primary_term`` (or
``create`` when absent) in one ``_bulk``; a row that lost a race (409) is read and decided
again. Writes and deletes use ``refresh=wait_for`` by default: once acknowledged they are
visible to search; reads by key are realtime whatever the policy.

Scores are OpenSearch's own, which the embedded store copies: cosine ``(1 + cos) / 2``,
l2 ``1 / (1 + d^2)``, dot ``dot + 1`` if ``dot >= 0`` else ``1 / (1 - dot)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    ConnectionError as OSConnectionError,
)
from opensearchpy.exceptions import (
    ConnectionTimeout,
    RequestError,
    SerializationError,
    TransportError,
)
from opensearchpy.serializer import JSONSerializer

from dsfeatures.errors import BackendUnavailable, Conflict, DSFError, InvalidRequest
from dsfeatures.registry.catalog import CompiledGroup
from dsfeatures.stores.ordering import WriteOp, WriteOutcome, decide
from dsfeatures.stores.protocols import StoreResult
from dsfeatures.stores.record import Record, RowKey, decode_record, encode_record

__all__ = ["OpenSearchVectorStore", "RefreshPolicy", "doc_id", "index_name"]

log = logging.getLogger(__name__)

#: ``refresh`` of writes and deletes: ``wait_for`` (acknowledged means searchable),
#: ``true`` (force a refresh per request: visible sooner, costly under load) or
#: ``false`` (visible to search within the index's refresh interval).
RefreshPolicy = Literal["wait_for", "true", "false"]

#: Registry metric -> OpenSearch space type.
_SPACE: Final = {"cosine": "cosinesimil", "l2": "l2", "dot": "innerproduct"}
#: Feature type -> mapping of its filter field (types absent here are not indexed).
_FIELD: Final[dict[str, dict[str, Any]]] = {
    "bool": {"type": "boolean"},
    "int64": {"type": "long"},
    "float64": {"type": "double"},
    # Keyword terms are limited to 32,766 bytes: longer strings are kept, not indexed.
    "string": {"type": "keyword", "ignore_above": 8191},
    "timestamp": {"type": "long"},  # microseconds since the epoch: exact, any year
}
_VECTOR_FIELD: Final = "v"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
#: Most attempts at one row that keeps losing races to other writers.
_MAX_ATTEMPTS: Final = 8
#: Bulk bodies are sent in pieces of at most this size (bytes), this many at a time.
_BULK_BYTES: Final = 1_000_000
_BULK_CONCURRENCY: Final = 4
#: Keys per mget.
_MGET_KEYS: Final = 1000

_ENC = msgspec.json.Encoder()


def index_name(prefix: str, group: str, version: int) -> str:
    """The index of one group version: ``{prefix}-{group}-v{version}``."""
    return f"{prefix}-{group}-v{version}"


def doc_id(entity_type: str, entity_id: str) -> str:
    """The document id of an entity: sha256 hex of ``{entity_type}#{entity_id}``."""
    return hashlib.sha256(f"{entity_type}#{entity_id}".encode()).hexdigest()


class _Serializer(JSONSerializer):
    """msgspec for request and response bodies; pre-encoded bodies pass through."""

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str | bytes):
            return data
        try:
            return _ENC.encode(data)
        except (TypeError, OverflowError) as e:
            raise SerializationError(data, e) from e

    def loads(self, s: str) -> Any:
        try:
            return msgspec.json.decode(s)
        except msgspec.DecodeError as e:
            raise SerializationError(s, e) from e


class _Spec:
    """What the store needs to know of one embedding group version."""

    __slots__ = ("dimension", "entity_type", "feature", "fields", "index", "metric")

    def __init__(self, group: CompiledGroup, prefix: str) -> None:
        slot = group.vector_feature
        if slot is None or slot.feature.metric is None:
            raise ValueError(f"group {group.label} has no vector feature")
        self.index = index_name(prefix, group.name, group.version)
        self.entity_type = group.entity_type
        self.feature = slot.name
        self.dimension = slot.ftype.dimension
        self.metric = slot.feature.metric
        self.fields = {
            name: s.ftype.name
            for name, s in group.features.items()
            if not s.ftype.is_vector and s.ftype.name in _FIELD
        }


def _field_value(ftype: str, value: Any) -> Any:
    """The indexed form of a feature value (timestamps as epoch microseconds)."""
    if ftype == "timestamp":
        return (value - _EPOCH) // _MICROSECOND
    return value


class OpenSearchVectorStore:
    """Embedding rows and kNN search in OpenSearch (a VectorStore).

    Args:
        url: ``http://host:port`` of the cluster (several, comma-separated).
        index_prefix: first part of every index name.
        timeout: seconds one read, search or index creation may take.
        write_timeout: seconds one bulk write or delete may take (bulk indexing builds
            the HNSW graph and, with ``wait_for``, waits for a refresh).
        max_retries: retries of a request that failed to connect (not of HTTP errors).
        refresh: refresh policy of writes and deletes (see :data:`RefreshPolicy`).
        refresh_interval: ``index.refresh_interval`` of new indexes (``1s``).
        shards: primary shards of each new index.
        replicas: replicas of each new index.
        num_candidates: neighbours the HNSW search collects per shard before the best
            ``k`` are kept (at least ``k``); more is slower and recalls better.
        hnsw_m: HNSW graph degree of new indexes.
        hnsw_ef_construction: HNSW build-time candidate list of new indexes.
        pool_size: most open HTTP connections per process.
    """

    def __init__(
        self,
        url: str,
        *,
        index_prefix: str = "dsf",
        timeout: float = 2.0,
        write_timeout: float = 30.0,
        max_retries: int = 1,
        refresh: RefreshPolicy = "wait_for",
        refresh_interval: str = "1s",
        shards: int = 1,
        replicas: int = 1,
        num_candidates: int = 100,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 128,
        pool_size: int = 32,
    ) -> None:
        if refresh == "wait_for" and refresh_interval.strip() == "-1":
            raise ValueError("refresh 'wait_for' needs a refresh_interval other than -1")
        self._hosts = [h.strip() for h in url.split(",") if h.strip()]
        if not self._hosts:
            raise ValueError("OpenSearch url is empty")
        self._prefix = index_prefix
        self._timeout = timeout
        self._write_timeout = write_timeout
        self._max_retries = max_retries
        self._refresh = refresh
        self._refresh_interval = refresh_interval
        self._shards = shards
        self._replicas = replicas
        self._num_candidates = num_candidates
        self._m = hnsw_m
        self._ef_construction = hnsw_ef_construction
        self._pool_size = pool_size
        self._client: AsyncOpenSearch | None = None
        self._specs: dict[tuple[str, int], _Spec] = {}
        # entity type -> its embedding group versions: what an erasure visits.
        self._by_entity_type: dict[str, dict[tuple[str, int], str]] = {}
        self._ready: set[str] = set()  # indexes known to exist, with our mapping
        self._create_lock = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Build the client (it connects on first use: a cluster that is down at start-up
        makes embedding values UNAVAILABLE, not the daemon fail)."""
        if self._client is not None:
            return
        self._client = AsyncOpenSearch(
            hosts=self._hosts,
            timeout=self._timeout,
            max_retries=self._max_retries,
            retry_on_timeout=False,
            serializer=_Serializer(),
            pool_maxsize=self._pool_size,
        )

    async def close(self) -> None:
        """Close the client's connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def client(self) -> AsyncOpenSearch:
        """The opened client."""
        if self._client is None:
            raise RuntimeError("OpenSearchVectorStore is not open")
        return self._client

    async def ping(self) -> None:
        """Raise BackendUnavailable unless the cluster answers (readiness)."""
        try:
            await self.client.cluster.health()
        except TransportError as e:
            raise _unavailable("ping", e) from e

    # --- indexes ------------------------------------------------------------------------

    async def ensure_group(self, group: CompiledGroup) -> None:
        """Remember a group version and create its index if needed.

        Never raises for the index: this runs on every registry load, which one bad index
        must not stop. A cluster that does not answer, an index OpenSearch refuses or one
        that exists with another vector is logged here, and the same error is raised by
        the first write to that group (which tries again).
        """
        spec = self._remember(group)
        if spec.index in self._ready:
            return
        try:
            await self._create_index(spec)
        except BackendUnavailable as e:
            log.warning("index %s not created yet (created on first write): %s", spec.index, e)
        except DSFError as e:
            log.error("index %s cannot be used: %s", spec.index, e)

    def _remember(self, group: CompiledGroup) -> _Spec:
        key = (group.name, group.version)
        spec = self._specs.get(key)
        if spec is None:
            spec = _Spec(group, self._prefix)
            self._specs[key] = spec
            self._by_entity_type.setdefault(group.entity_type, {})[key] = spec.index
        return spec

    def _mapping(self, spec: _Spec) -> dict[str, Any]:
        return {
            "settings": {
                "index": {
                    "knn": True,
                    "number_of_shards": self._shards,
                    "number_of_replicas": self._replicas,
                    "refresh_interval": self._refresh_interval,
                }
            },
            "mappings": {
                "dynamic": "strict",
                # The vector is in the record blob already; keep it out of _source.
                "_source": {"excludes": [_VECTOR_FIELD]},
                "properties": {
                    _VECTOR_FIELD: {
                        "type": "knn_vector",
                        "dimension": spec.dimension,
                        "method": {
                            "name": "hnsw",
                            "engine": "lucene",
                            "space_type": _SPACE[spec.metric],
                            "parameters": {"m": self._m, "ef_construction": self._ef_construction},
                        },
                    },
                    "entity_type": {"type": "keyword"},
                    "entity_id": {"type": "keyword"},
                    "f": {
                        "type": "object",
                        "dynamic": "strict",
                        "properties": {name: _FIELD[t] for name, t in spec.fields.items()},
                    },
                    "r": {"type": "binary"},
                    "rev": {"type": "long", "index": False},
                    "et": {"type": "long", "index": False},
                },
            },
        }

    async def _create_index(self, spec: _Spec) -> None:
        async with self._create_lock:
            if spec.index in self._ready:
                return
            try:
                await self.client.indices.create(index=spec.index, body=self._mapping(spec))
            except RequestError as e:
                if _error_type(e) != "resource_already_exists_exception":
                    raise InvalidRequest(f"index {spec.index}: {_reason(e)}") from e
                await self._check_existing(spec)
            except TransportError as e:
                raise _unavailable(f"create index {spec.index}", e) from e
            self._ready.add(spec.index)

    async def _check_existing(self, spec: _Spec) -> None:
        try:
            got = await self.client.indices.get_mapping(index=spec.index)
        except TransportError as e:
            raise _unavailable(f"mapping of {spec.index}", e) from e
        props = got.get(spec.index, {}).get("mappings", {}).get("properties", {})
        vec = props.get(_VECTOR_FIELD, {})
        method = vec.get("method", {})
        want = (spec.dimension, _SPACE[spec.metric], "lucene")
        have = (vec.get("dimension"), method.get("space_type"), method.get("engine"))
        if have != want:
            raise Conflict(
                f"index {spec.index} exists with vector (dimension, space, engine) {have}, "
                f"expected {want}"
            )

    def _spec_for(self, key: RowKey) -> _Spec:
        spec = self._specs.get((key.group, key.version))
        if spec is None:
            raise RuntimeError(f"embedding group {key.group}@{key.version} was not prepared")
        return spec

    def _index(self, key: RowKey) -> str:
        return index_name(self._prefix, key.group, key.version)

    # --- reads --------------------------------------------------------------------------

    async def get_many(
        self, keys: Sequence[RowKey], *, consistent: bool = False
    ) -> list[StoreResult]:
        """Records for ``keys`` in order (None where there is no row); realtime reads.

        Raises:
            BackendUnavailable: the cluster did not answer.
        """
        if not keys:
            return []
        found = await self._mget(keys)
        return [rec for rec, _, _ in found]

    async def _mget(self, keys: Sequence[RowKey]) -> list[tuple[Record | None, int, int]]:
        """(record, seq_no, primary_term) per key; (None, -1, -1) where absent."""
        chunks = [keys[i : i + _MGET_KEYS] for i in range(0, len(keys), _MGET_KEYS)]
        parts = await asyncio.gather(*(self._mget_chunk(c) for c in chunks))
        return [x for part in parts for x in part]

    async def _mget_chunk(self, keys: Sequence[RowKey]) -> list[tuple[Record | None, int, int]]:
        docs = [{"_index": self._index(k), "_id": doc_id(k.entity_type, k.entity_id)} for k in keys]
        try:
            resp = await self.client.mget(
                body={"docs": docs}, params={"_source_includes": "r", "realtime": "true"}
            )
        except TransportError as e:
            raise _unavailable("mget", e) from e
        out: list[tuple[Record | None, int, int]] = []
        for doc in resp["docs"]:
            err = doc.get("error")
            if err is not None:
                if isinstance(err, dict) and err.get("type") == "index_not_found_exception":
                    out.append((None, -1, -1))
                    continue
                raise BackendUnavailable(f"OpenSearch mget of {doc.get('_index')}: {err}")
            if not doc.get("found"):
                out.append((None, -1, -1))
                continue
            blob = base64.b64decode(doc["_source"]["r"])
            out.append((decode_record(blob), doc["_seq_no"], doc["_primary_term"]))
        return out

    # --- writes -------------------------------------------------------------------------

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Apply each op with :func:`decide` under optimistic concurrency; one outcome per op.

        Ops on the same row apply in order. A row written concurrently by another process
        is read and decided again (up to a few times).

        Raises:
            InvalidRequest: a vector OpenSearch cannot index (a zero vector with cosine);
                nothing was written. Or the group's index cannot be created.
            Conflict: the group's index exists with another vector mapping.
            BackendUnavailable: the cluster failed or the rows kept conflicting; some rows
                may have been written.
        """
        if not ops:
            return []
        by_key: dict[RowKey, list[int]] = {}
        for i, op in enumerate(ops):
            spec = self._spec_for(op.key)
            self._check_vector(spec, op)
            by_key.setdefault(op.key, []).append(i)
        for spec in {self._spec_for(k).index: self._spec_for(k) for k in by_key}.values():
            if spec.index not in self._ready:
                await self._create_index(spec)
        outcomes: list[WriteOutcome | None] = [None] * len(ops)
        pending = list(by_key)
        for _ in range(_MAX_ATTEMPTS):
            current = await self._mget(pending)
            actions: list[tuple[bytes, ...]] = []
            planned: list[RowKey] = []
            for key, (rec, seq, term) in zip(pending, current, strict=True):
                state = rec
                for i in by_key[key]:
                    out = decide(state, ops[i])
                    outcomes[i] = out
                    if out.record is not None:
                        state = out.record
                if state is rec or state is None:
                    continue  # nothing applied: the outcomes stand
                meta: dict[str, Any] = {"_index": self._index(key), "_id": _id(key)}
                if rec is None:
                    action = _ENC.encode({"create": meta})
                else:
                    meta["if_seq_no"] = seq
                    meta["if_primary_term"] = term
                    action = _ENC.encode({"index": meta})
                doc = _ENC.encode(self._document(self._spec_for(key), key, state))
                actions.append((action, doc))
                planned.append(key)
            if not planned:
                break
            results = await self._bulk(actions, "bulk")
            pending = []
            for key, result in zip(planned, results, strict=True):
                status = int(result.get("status", 500))
                if status == 409:
                    pending.append(key)  # lost a race: read again and decide again
                elif status >= 300:
                    raise _item_error(key, status, result.get("error"))
            if not pending:
                break
        else:
            raise BackendUnavailable(
                f"{len(pending)} embedding rows kept conflicting with concurrent writes; retry"
            )
        return [o for o in outcomes if o is not None]

    @staticmethod
    def _check_vector(spec: _Spec, op: WriteOp) -> None:
        vec = op.values.get(spec.feature)
        if spec.metric == "cosine" and vec is not None and not any(vec):
            raise InvalidRequest(
                f"values.{spec.feature}: a zero vector has no cosine similarity "
                f"(entity {op.key.entity_id!r})"
            )

    def _document(self, spec: _Spec, key: RowKey, rec: Record) -> dict[str, Any]:
        values = rec.values
        doc: dict[str, Any] = {
            "entity_type": key.entity_type,
            "entity_id": key.entity_id,
            "f": {
                name: _field_value(t, values[name])
                for name, t in spec.fields.items()
                if values.get(name) is not None
            },
            "r": encode_record(rec),  # msgspec writes bytes as base64
            "rev": rec.revision,
            "et": rec.event_time,
        }
        vec = values.get(spec.feature)
        if vec is not None:
            doc[_VECTOR_FIELD] = vec
        return doc

    async def _bulk(self, actions: Sequence[tuple[bytes, ...]], what: str) -> list[dict[str, Any]]:
        """Send bulk actions (each its encoded lines); each action's result, in order.

        Bodies are cut below 1 MiB (aiohttp warns that larger raw bodies may stall the
        loop) and the pieces sent together, so that they wait for one refresh, not one each.
        """
        pieces: list[list[bytes]] = [[]]
        size = 0
        for lines in actions:
            n = sum(len(line) + 1 for line in lines)
            if size and size + n > _BULK_BYTES:
                pieces.append([])
                size = 0
            pieces[-1].extend(lines)
            size += n
        sem = asyncio.Semaphore(_BULK_CONCURRENCY)

        async def send(piece: list[bytes]) -> list[dict[str, Any]]:
            async with sem:
                try:
                    resp = await self.client.bulk(
                        body=b"\n".join(piece) + b"\n",
                        params={"refresh": self._refresh, "request_timeout": self._write_timeout},
                    )
                except TransportError as e:
                    raise _unavailable(what, e) from e
                return [next(iter(item.values())) for item in resp["items"]]

        parts = await asyncio.gather(*(send(p) for p in pieces))
        return [x for part in parts for x in part]

    # --- deletes ------------------------------------------------------------------------

    async def delete(self, keys: Sequence[RowKey]) -> list[RowKey]:
        """Delete rows by key; return the keys that existed.

        Raises:
            BackendUnavailable: the cluster failed.
        """
        return await self._delete(list(dict.fromkeys(keys)))

    async def delete_entity(self, entity_type: str, entity_id: str) -> list[RowKey]:
        """Delete one entity from every embedding group version of its type.

        One bulk delete by document id per call, over the indexes of the group versions
        given to :meth:`ensure_group` (every registered one): no query over all indexes.

        Raises:
            BackendUnavailable: the cluster failed.
        """
        groups = self._by_entity_type.get(entity_type, {})
        keys = [RowKey(entity_type, entity_id, g, v) for g, v in groups]
        return await self._delete(keys)

    async def _delete(self, keys: list[RowKey]) -> list[RowKey]:
        if not keys:
            return []
        actions = [
            (_ENC.encode({"delete": {"_index": self._index(k), "_id": _id(k)}}),) for k in keys
        ]
        results = await self._bulk(actions, "bulk delete")
        gone: list[RowKey] = []
        for key, result in zip(keys, results, strict=True):
            status = int(result.get("status", 500))
            if status < 300 and result.get("result") == "deleted":
                gone.append(key)
            elif status == 404:
                continue  # no such row, or no such index (never written)
            elif status >= 300:
                raise _item_error(key, status, result.get("error"))
        return gone

    # --- search -------------------------------------------------------------------------

    async def search(
        self,
        group: CompiledGroup,
        vector: list[float],
        k: int,
        filters: dict[str, Any] | None,
        min_score: float | None,
    ) -> list[tuple[str, float]]:
        """Approximate k nearest neighbours (Lucene HNSW) within one group version.

        Filters apply inside the k-NN query (Lucene's efficient filtering: the ``k``
        results all match); ``min_score`` drops weaker hits.

        Raises:
            InvalidRequest: a filter on a feature OpenSearch does not index (bytes, lists,
                undeclared), or a zero vector with cosine.
            BackendUnavailable: the cluster failed.
        """
        spec = self._remember(group)  # an index not created yet is an empty group
        if spec.metric == "cosine" and not any(vector):
            raise InvalidRequest("vector: a zero vector has no cosine similarity")
        clauses: list[dict[str, Any]] = []
        for name, want in (filters or {}).items():
            ftype = spec.fields.get(name)
            if ftype is None:
                raise InvalidRequest(f"filter.{name}: this feature cannot be filtered on")
            if isinstance(want, list):
                if not want:
                    return []
                terms = [_field_value(ftype, w) for w in want]
                clauses.append({"terms": {f"f.{name}": terms}})
            else:
                clauses.append({"term": {f"f.{name}": _field_value(ftype, want)}})
        knn: dict[str, Any] = {"vector": vector, "k": max(k, self._num_candidates)}
        if clauses:
            knn["filter"] = {"bool": {"filter": clauses}}
        body: dict[str, Any] = {
            "size": k,
            "_source": ["entity_id"],
            "track_total_hits": False,
            "query": {"knn": {_VECTOR_FIELD: knn}},
        }
        if min_score is not None:
            body["min_score"] = min_score
        try:
            resp = await self.client.search(index=spec.index, body=body)
        except RequestError as e:
            raise InvalidRequest(f"search: {_reason(e)}") from e
        except TransportError as e:
            if e.status_code == 404 and _error_type(e) == "index_not_found_exception":
                return []
            raise _unavailable("search", e) from e
        return [(h["_source"]["entity_id"], float(h["_score"])) for h in resp["hits"]["hits"]]


def _id(key: RowKey) -> str:
    return doc_id(key.entity_type, key.entity_id)


def _error_type(e: TransportError) -> str:
    info = e.info
    if isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            return str(err.get("type", ""))
    return str(e.error)


def _reason(e: TransportError) -> str:
    info = e.info
    if isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            root = err.get("root_cause") or [err]
            return str(root[0].get("reason", err.get("reason", "")))
    return str(e.error)


def _unavailable(what: str, e: TransportError) -> BackendUnavailable:
    if isinstance(e, ConnectionTimeout):
        return BackendUnavailable(f"OpenSearch {what}: timed out ({e.error})")
    if isinstance(e, OSConnectionError):
        return BackendUnavailable(f"OpenSearch {what}: cannot connect ({e.error})")
    return BackendUnavailable(f"OpenSearch {what}: HTTP {e.status_code} {_reason(e)}")


def _item_error(key: RowKey, status: int, err: Any) -> Exception:
    reason = err.get("reason", err) if isinstance(err, dict) else err
    what = f"OpenSearch write of {key.group}@{key.version} {key.entity_id!r}: {status} {reason}"
    if status == 400:
        return InvalidRequest(what)
    return BackendUnavailable(what)
