"""BatchGet: resolve feature references, fetch every row once, build the response in one pass.

Scalar groups are read through the cache (one lookup for all keys of the
request), misses from the persistent store in one multi-key call; embedding
groups from the vector store. A store that fails or runs out of time yields
``UNAVAILABLE`` for its values; the rest of the response is still served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.catalog import Catalog, CompiledGroup, FeatureSlot
from dsfeatures.service.clock import from_us, now_us
from dsfeatures.service.metrics import BATCH_ENTITIES, CACHE_LOOKUPS, STORE_LATENCY
from dsfeatures.stores.protocols import (
    ABSENT,
    MISS,
    UNAVAILABLE,
    RowCache,
    RowStore,
    StoreResult,
    VectorStore,
)
from dsfeatures.stores.record import Record, RowKey
from dsfeatures.wire.types import MAX_ENTITY_ID_BYTES, GetRequest, GetResponse, GetRow

__all__ = ["Fetcher", "check_entity_id"]

log = logging.getLogger(__name__)


def check_entity_id(entity_id: str, where: str) -> None:
    """Entity ids are non-empty UTF-8 of at most 1,024 bytes.

    Raises:
        InvalidRequest: naming ``where``.
    """
    if not entity_id:
        raise InvalidRequest(f"{where}: entity id must not be empty")
    if len(entity_id) * 4 > MAX_ENTITY_ID_BYTES or len(entity_id) > 256:
        try:
            n = len(entity_id.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidRequest(f"{where}: entity id is not valid UTF-8") from None
        if n > MAX_ENTITY_ID_BYTES:
            raise InvalidRequest(f"{where}: entity id longer than {MAX_ENTITY_ID_BYTES} bytes")


class Fetcher:
    """Reads rows for the hot path.

    Args:
        rows: the persistent store of scalar groups.
        vectors: the store of embedding groups.
        cache: the write-through cache in front of ``rows`` (or None).
        timeout: seconds a store call may take before its values are UNAVAILABLE.
        max_entities: most entity rows per request.
        max_features: most feature references per request.
    """

    def __init__(
        self,
        rows: RowStore,
        vectors: VectorStore,
        cache: RowCache | None,
        *,
        timeout: float,
        max_entities: int,
        max_features: int,
    ) -> None:
        self._rows = rows
        self._vectors = vectors
        self._cache = cache
        self._timeout = timeout
        self.max_entities = max_entities
        self.max_features = max_features

    async def get(self, catalog: Catalog, req: GetRequest) -> GetResponse:
        """Answer a BatchGet.

        Raises:
            InvalidRequest: unequal entity lists, too many entities or features,
                a bad id, or a feature whose entity type is not in ``entities``.
            UnknownFeature: a reference to an unknown or retired group or feature.
        """
        n = self._check_entities(req.entities)
        if len(req.features) > self.max_features:
            raise InvalidRequest(
                f"features: at most {self.max_features} feature references per request",
                code="BATCH_TOO_LARGE",
            )
        slots: list[tuple[CompiledGroup, FeatureSlot]] = []
        for j, ref in enumerate(req.features):
            cg, slot = catalog.feature(ref, where=f"features[{j}]")
            if cg.entity_type not in req.entities:
                raise InvalidRequest(
                    f"features[{j}]: {ref!r} is keyed by entity type {cg.entity_type!r}, "
                    "which is not in entities"
                )
            slots.append((cg, slot))
        BATCH_ENTITIES.observe(n)
        groups = list(dict.fromkeys(cg for cg, _ in slots))
        records = await self.fetch_groups(groups, req.entities, n)
        return self._build(req, slots, groups, records, n)

    def _check_entities(self, entities: dict[str, list[str]]) -> int:
        n = -1
        for et, ids in entities.items():
            if n == -1:
                n = len(ids)
            elif len(ids) != n:
                raise InvalidRequest(
                    f"entities.{et}: every entity list must have the same length ({n})"
                )
            for i, eid in enumerate(ids):
                if len(eid) > 256 or not eid:
                    check_entity_id(eid, f"entities.{et}[{i}]")
        if n > self.max_entities:
            raise InvalidRequest(
                f"entities: at most {self.max_entities} entity rows per request, got {n}",
                code="BATCH_TOO_LARGE",
            )
        return n

    async def fetch_groups(
        self, groups: Sequence[CompiledGroup], entities: dict[str, list[str]], n: int
    ) -> dict[tuple[str, int], list[StoreResult]]:
        """Rows of every (group, entity index), fetched once per distinct key."""
        scalar: dict[RowKey, int] = {}
        vector: dict[RowKey, int] = {}
        for cg in groups:
            target = vector if cg.is_embedding else scalar
            for eid in entities[cg.entity_type]:
                key = RowKey(cg.entity_type, eid, cg.name, cg.version)
                if key not in target:
                    target[key] = len(target)
        s_keys, v_keys = list(scalar), list(vector)
        s_vals, v_vals = await asyncio.gather(
            self._read_scalar(s_keys), self._read_store(self._vectors, "vectors", v_keys)
        )
        out: dict[tuple[str, int], list[StoreResult]] = {}
        for cg in groups:
            idx, vals = (vector, v_vals) if cg.is_embedding else (scalar, s_vals)
            et, name, ver = cg.entity_type, cg.name, cg.version
            out[(name, ver)] = [vals[idx[RowKey(et, eid, name, ver)]] for eid in entities[et]]
        return out

    async def _read_store(
        self, store: RowStore, label: str, keys: list[RowKey]
    ) -> list[StoreResult]:
        if not keys:
            return []
        t = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self._timeout):
                got = await store.get_many(keys, consistent=True)
        except Exception as e:  # a failing store makes its values UNAVAILABLE, not the request
            log.warning("%s store read failed: %r", label, e)
            return [UNAVAILABLE] * len(keys)
        finally:
            STORE_LATENCY.labels(label, "get").observe(asyncio.get_running_loop().time() - t)
        return got

    async def _read_scalar(self, keys: list[RowKey]) -> list[StoreResult]:
        cache = self._cache
        if not keys:
            return []
        if cache is None:
            return await self._read_store(self._rows, "rows", keys)
        try:
            looked, ticket = await cache.lookup(keys)
        except Exception as e:
            log.warning("cache lookup failed: %r", e)
            return await self._read_store(self._rows, "rows", keys)
        out: list[StoreResult] = []
        miss_pos: list[int] = []
        for i, lk in enumerate(looked):
            if lk is MISS:
                miss_pos.append(i)
                out.append(None)
            else:
                out.append(None if lk is ABSENT else lk)
        CACHE_LOOKUPS.labels("hit").inc(len(keys) - len(miss_pos))
        if not miss_pos:
            return out
        CACHE_LOOKUPS.labels("miss").inc(len(miss_pos))
        miss_keys = [keys[i] for i in miss_pos]
        got = await self._read_store(self._rows, "rows", miss_keys)
        fills: list[tuple[RowKey, Record | None]] = []
        for i, key, v in zip(miss_pos, miss_keys, got, strict=True):
            out[i] = v
            if v is None or type(v) is Record:
                fills.append((key, v))
        if fills:
            try:
                await cache.fill(fills, ticket)
            except Exception as e:
                log.warning("cache fill failed: %r", e)
        return out

    @staticmethod
    def _build(
        req: GetRequest,
        slots: list[tuple[CompiledGroup, FeatureSlot]],
        groups: list[CompiledGroup],
        records: dict[tuple[str, int], list[StoreResult]],
        n: int,
    ) -> GetResponse:
        now = now_us()
        meta = req.include_metadata
        ents = req.entities
        types = list(ents)
        cols = [
            (records[(cg.name, cg.version)], slot.name, slot.default, cg.ttl_us)
            for cg, slot in slots
        ]
        rows: list[GetRow] = []
        for i in range(n):
            values: list[Any] = []
            statuses: list[Any] = []
            ev: list[Any] | None = [] if meta else None
            wr: list[Any] | None = [] if meta else None
            for recs, name, default, ttl in cols:
                rec = recs[i]
                if type(rec) is Record:
                    if ttl and now - rec.event_time > ttl:
                        values.append(None)
                        statuses.append("EXPIRED")
                    else:
                        v = rec.values.get(name)
                        if v is not None:
                            values.append(v)
                            statuses.append("PRESENT")
                        elif default is not None:
                            values.append(default)
                            statuses.append("DEFAULTED")
                        else:
                            values.append(None)
                            statuses.append("NOT_FOUND")
                    if ev is not None and wr is not None:
                        ev.append(from_us(rec.event_time))
                        wr.append(from_us(rec.written_at))
                    continue
                if rec is UNAVAILABLE:
                    values.append(None)
                    statuses.append("UNAVAILABLE")
                elif default is not None:
                    values.append(default)
                    statuses.append("DEFAULTED")
                else:
                    values.append(None)
                    statuses.append("NOT_FOUND")
                if ev is not None and wr is not None:
                    ev.append(None)
                    wr.append(None)
            entity = {et: ents[et][i] for et in types}
            rows.append(GetRow(entity, values, statuses, ev, wr))
        return GetResponse(features=list(req.features), rows=rows)
