"""BatchGet: resolve feature references, fetch every row once, build the response in one pass.

Scalar groups are read through the cache (one lookup for all keys of the
request), misses from the persistent store in one multi-key call; embedding
groups from the vector store. A store that fails or runs out of time yields
``UNAVAILABLE`` for its values; the rest of the response is still served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.catalog import Catalog, CompiledGroup, FeatureSlot
from dsfeatures.service.breaker import Breakers, new_breakers
from dsfeatures.service.clock import from_us, now_us
from dsfeatures.service.metrics import BATCH_ENTITIES, CACHE_LOOKUPS, STORE_LATENCY
from dsfeatures.stores.protocols import (
    ABSENT,
    MARKED,
    MISS,
    UNAVAILABLE,
    CacheLookup,
    RowCache,
    RowStore,
    StoreResult,
    VectorStore,
)
from dsfeatures.stores.record import Record, RowKey
from dsfeatures.wire.types import MAX_ENTITY_ID_BYTES, GetRequest, GetResponse, GetRow, Status

__all__ = ["Fetcher", "check_entity_id"]

_HITS = CACHE_LOOKUPS.labels("hit")
_MISSES = CACHE_LOOKUPS.labels("miss")

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
        breakers: Breakers | None = None,
    ) -> None:
        self._rows = rows
        self._vectors = vectors
        self._cache = cache
        # Store reads in flight for keys the cache did not know, shared by
        # concurrent requests for the same keys (one store call, not one each).
        self._inflight: dict[RowKey, asyncio.Future[StoreResult]] = {}
        self._breakers = breakers if breakers is not None else new_breakers()
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
        positions: list[tuple[CompiledGroup, list[int]]] = []
        for cg in groups:
            target = vector if cg.is_embedding else scalar
            et, name, ver = cg.entity_type, cg.name, cg.version
            idxs: list[int] = []
            for eid in entities[et]:
                key = RowKey(et, eid, name, ver)
                i = target.get(key)
                if i is None:
                    i = target[key] = len(target)
                idxs.append(i)
            positions.append((cg, idxs))
        s_vals: list[StoreResult] = []
        v_vals: list[StoreResult] = []
        if scalar and vector:
            s_vals, v_vals = await asyncio.gather(
                self._read_scalar(list(scalar)),
                self._read_store(self._vectors, "vectors", list(vector)),
            )
        elif scalar:
            s_vals = await self._read_scalar(list(scalar))
        elif vector:
            v_vals = await self._read_store(self._vectors, "vectors", list(vector))
        out: dict[tuple[str, int], list[StoreResult]] = {}
        for cg, idxs in positions:
            vals = v_vals if cg.is_embedding else s_vals
            out[(cg.name, cg.version)] = [vals[i] for i in idxs]
        return out

    async def _read_store(
        self, store: RowStore, label: str, keys: list[RowKey]
    ) -> list[StoreResult]:
        if not keys:
            return []
        breaker = self._breakers[label]
        if not breaker.allow():  # failing lately: answer at once rather than wait
            return [UNAVAILABLE] * len(keys)
        t = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                got = await store.get_many(keys, consistent=True)
        except Exception as e:  # a failing store makes its values UNAVAILABLE, not the request
            log.warning("%s store read failed: %r", label, e)
            breaker.failure(t)
            return [UNAVAILABLE] * len(keys)
        finally:
            STORE_LATENCY.labels(label, "get").observe(time.monotonic() - t)
        breaker.success()
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
            if lk is MISS or lk is MARKED:
                miss_pos.append(i)
                out.append(None)
            else:
                out.append(None if lk is ABSENT else lk)
        _HITS.inc(len(keys) - len(miss_pos))
        if not miss_pos:
            return out
        _MISSES.inc(len(miss_pos))
        # Keys the cache knows nothing about may share a store read another request
        # has in flight (it began after any write this reader must see: such a write
        # would have left a marker or its row). Marked keys are always read afresh.
        inflight = self._inflight
        own: list[int] = []
        joined: list[tuple[int, asyncio.Future[StoreResult]]] = []
        for i in miss_pos:
            fut = inflight.get(keys[i]) if looked[i] is MISS else None
            if fut is None:
                own.append(i)
            else:
                joined.append((i, fut))
        if own:
            await self._read_own(keys, own, looked, out, ticket)
        for i, fut in joined:
            out[i] = await fut
        return out

    async def _read_own(
        self,
        keys: list[RowKey],
        own: list[int],
        looked: list[CacheLookup],
        out: list[StoreResult],
        ticket: int,
    ) -> None:
        """Read ``own`` positions from the store (announcing them to other readers) and fill."""
        assert self._cache is not None
        inflight = self._inflight
        loop = asyncio.get_running_loop()
        mine: dict[RowKey, asyncio.Future[StoreResult]] = {}
        for i in own:
            k = keys[i]
            if looked[i] is MISS and k not in inflight and k not in mine:
                mine[k] = inflight[k] = loop.create_future()
        own_keys = [keys[i] for i in own]
        got: list[StoreResult] | None = None
        try:
            got = await self._read_store(self._rows, "rows", own_keys)
        finally:
            results = dict(zip(own_keys, got, strict=True)) if got is not None else {}
            for k, fut in mine.items():
                if inflight.get(k) is fut:
                    del inflight[k]
                fut.set_result(results.get(k, UNAVAILABLE))
        fills: list[tuple[RowKey, Record | None]] = []
        for i, key, v in zip(own, own_keys, got, strict=True):
            out[i] = v
            if v is None or type(v) is Record:  # the cache refuses fills over newer writes
                fills.append((key, v))
        if fills:
            try:
                await self._cache.fill(fills, ticket)
            except Exception as e:
                log.warning("cache fill failed: %r", e)

    @staticmethod
    def _build(
        req: GetRequest,
        slots: list[tuple[CompiledGroup, FeatureSlot]],
        groups: list[CompiledGroup],
        records: dict[tuple[str, int], list[StoreResult]],
        n: int,
    ) -> GetResponse:
        """Build the response: row by row when every feature is of one group (one C call
        per row), otherwise column by column (list comprehensions and C-level
        transposition instead of a Python loop per value)."""
        now = now_us()
        if len(groups) == 1:
            cg = groups[0]
            value_rows, status_rows = _rows_one_group(
                cg, [slot for _, slot in slots], records[(cg.name, cg.version)], now
            )
        else:
            value_rows, status_rows = _rows_by_column(slots, groups, records, n, now)
        ents = req.entities
        if len(ents) == 1:
            ((et, ids),) = ents.items()
            entities = [{et: eid} for eid in ids]
        else:
            types = list(ents)
            entities = [{et: ents[et][i] for et in types} for i in range(n)]
        if not req.include_metadata:
            rows = list(map(GetRow, entities, value_rows, status_rows))
        else:
            ev, wr, rev, lanes, writers = _metadata(slots, records, n)
            rows = list(map(GetRow, entities, value_rows, status_rows, ev, wr, rev, lanes, writers))
        return GetResponse(features=list(req.features), rows=rows)


_EMPTY: dict[str, Any] = {}
_PRESENT: list[Status] = ["PRESENT"]


def _rows_by_column(
    slots: list[tuple[CompiledGroup, FeatureSlot]],
    groups: list[CompiledGroup],
    records: dict[tuple[str, int], list[StoreResult]],
    n: int,
    now: int,
) -> tuple[list[list[Any]], list[list[Status]]]:
    """Values and statuses per row, built column by column (features of several groups)."""
    # Per group: each row's values (an empty dict when there is no live row)
    # and, where the whole row has one status, that status.
    per_group: dict[tuple[str, int], tuple[list[dict[str, Any]], list[Status | None] | None]] = {}
    for cg in groups:
        recs = records[(cg.name, cg.version)]
        ttl = cg.ttl_us
        live: list[dict[str, Any]] = []
        dead: list[Status | None] | None = None
        for i, rec in enumerate(recs):
            if type(rec) is Record and not (ttl and now - rec.event_time > ttl):
                live.append(rec.values)
                continue
            live.append(_EMPTY)
            if dead is None:
                dead = [None] * n
            if type(rec) is Record:
                dead[i] = "EXPIRED"
            elif rec is UNAVAILABLE:
                dead[i] = "UNAVAILABLE"
        per_group[(cg.name, cg.version)] = (live, dead)
    value_cols: list[list[Any]] = []
    status_cols: list[list[Status]] = []
    for cg, slot in slots:
        live, dead = per_group[(cg.name, cg.version)]
        name = slot.name
        col = [d.get(name) for d in live]
        if dead is None and None not in col:
            status_cols.append(_PRESENT * n)
        else:
            statuses: list[Status] = []
            default = slot.default
            for i, v in enumerate(col):
                if v is not None:
                    statuses.append("PRESENT")
                    continue
                why = dead[i] if dead is not None else None
                if why is not None:
                    statuses.append(why)
                elif default is not None:
                    col[i] = default
                    statuses.append("DEFAULTED")
                else:
                    statuses.append("NOT_FOUND")
            status_cols.append(statuses)
        value_cols.append(col)
    value_rows = list(map(list, zip(*value_cols, strict=True)))
    status_rows = list(map(list, zip(*status_cols, strict=True)))
    return value_rows, status_rows


def _rows_one_group(
    cg: CompiledGroup, feats: list[FeatureSlot], recs: list[StoreResult], now: int
) -> tuple[list[list[Any]], list[list[Status]]]:
    """Values and statuses per row when every feature is of ``cg``: a live row holding
    every requested value is one ``itemgetter`` call; any other row is built value by
    value with the same rules as :func:`_rows_by_column`."""
    m = len(feats)
    get = itemgetter(*[f.name for f in feats])
    one = m == 1  # itemgetter of one name returns the value, not a tuple
    present = _PRESENT * m
    ttl = cg.ttl_us
    value_rows: list[list[Any]] = []
    status_rows: list[list[Status]] = []
    for rec in recs:
        why: Status | None = None
        if type(rec) is Record:
            if not (ttl and now - rec.event_time > ttl):
                d = rec.values
                try:
                    row = [get(d)] if one else list(get(d))
                except KeyError:
                    pass
                else:
                    # all(): truthiness is a C slot, several times cheaper than the
                    # comparisons of `in`; only rows holding a zero or an empty value pay both.
                    if all(row) or None not in row:
                        value_rows.append(row)
                        status_rows.append(present.copy())
                        continue
            else:
                d = _EMPTY
                why = "EXPIRED"
        else:
            d = _EMPTY
            if rec is UNAVAILABLE:
                why = "UNAVAILABLE"
        values: list[Any] = []
        statuses: list[Status] = []
        for f in feats:
            v = d.get(f.name)
            if v is not None:
                statuses.append("PRESENT")
            elif why is not None:
                statuses.append(why)
            elif f.default is not None:
                v = f.default
                statuses.append("DEFAULTED")
            else:
                statuses.append("NOT_FOUND")
            values.append(v)
        value_rows.append(values)
        status_rows.append(statuses)
    return value_rows, status_rows


def _metadata(
    slots: list[tuple[CompiledGroup, FeatureSlot]],
    records: dict[tuple[str, int], list[StoreResult]],
    n: int,
) -> list[list[list[Any]]]:
    """Per row and feature: event time, written-at, revision, lane, writer (when asked for).

    Every feature of one group shares its row's metadata, so each field is computed once
    per (group, row) and repeated across that group's features; a time becomes a datetime
    once per distinct value (batch loads share them) rather than once per value.
    """
    order: dict[tuple[str, int], int] = {}
    slot_group = [order.setdefault((cg.name, cg.version), len(order)) for cg, _ in slots]
    if len(order) == 1:
        (key,) = order
        return _metadata_one_group(records[key], len(slots))
    per_group: list[list[list[Any]]] = []
    fmt = _format_time
    for key in order:
        ev: list[Any] = []
        wr: list[Any] = []
        rev: list[Any] = []
        lane: list[Any] = []
        who: list[Any] = []
        for rec in records[key]:
            if type(rec) is Record:
                ev.append(fmt(rec.event_time))
                wr.append(fmt(rec.written_at))
                rev.append(rec.revision)
                lane.append(rec.lane)
                who.append(rec.writer)
            else:
                ev.append(None)
                wr.append(None)
                rev.append(None)
                lane.append(None)
                who.append(None)
        per_group.append([ev, wr, rev, lane, who])
    out: list[list[list[Any]]] = []
    for field in range(5):
        cols = [g[field] for g in per_group]
        out.append([[cols[g][i] for g in slot_group] for i in range(n)])
    return out


def _metadata_one_group(recs: list[StoreResult], m: int) -> list[list[list[Any]]]:
    """:func:`_metadata` when every feature is of one group: each row repeats its values
    across the ``m`` features, and rows with equal values (a batch load shares times,
    lane and writer) share one list object, looked up by the stored value itself."""
    ev: list[list[Any]] = []
    wr: list[list[Any]] = []
    rev: list[list[Any]] = []
    lane: list[list[Any]] = []
    who: list[list[Any]] = []
    ev_rep: dict[int, list[Any]] = {}
    wr_rep: dict[int, list[Any]] = {}
    rev_rep: dict[int, list[Any]] = {}
    lane_rep: dict[str, list[Any]] = {}
    who_rep: dict[str, list[Any]] = {}
    nones: list[list[Any]] | None = None
    fmt = _format_time
    for rec in recs:
        if type(rec) is not Record:
            if nones is None:
                nones = [[None] * m for _ in range(5)]
            ev.append(nones[0])
            wr.append(nones[1])
            rev.append(nones[2])
            lane.append(nones[3])
            who.append(nones[4])
            continue
        x = ev_rep.get(rec.event_time)
        if x is None:
            x = ev_rep[rec.event_time] = [fmt(rec.event_time)] * m
        ev.append(x)
        x = wr_rep.get(rec.written_at)
        if x is None:
            x = wr_rep[rec.written_at] = [fmt(rec.written_at)] * m
        wr.append(x)
        x = rev_rep.get(rec.revision)
        if x is None:
            x = rev_rep[rec.revision] = [rec.revision] * m
        rev.append(x)
        x = lane_rep.get(rec.lane)
        if x is None:
            x = lane_rep[rec.lane] = [rec.lane] * m
        lane.append(x)
        x = who_rep.get(rec.writer)
        if x is None:
            x = who_rep[rec.writer] = [rec.writer] * m
        who.append(x)
    return [ev, wr, rev, lane, who]


_TIMES: dict[int, datetime] = {}


def _format_time(us: int) -> datetime:
    """The datetime of a time in microseconds, memoised (times repeat across rows)."""
    dt = _TIMES.get(us)
    if dt is None:
        if len(_TIMES) >= 100_000:
            _TIMES.clear()
        dt = _TIMES[us] = from_us(us)
    return dt
