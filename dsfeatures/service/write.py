"""The one write path of every lane (batch, stream, SDK), plus deletes and GDPR erasure.

Validation is all-or-nothing: every row is checked against the registry before
anything is written, and one bad row refuses the whole request naming the
field. Then each row is applied atomically by its store with the same rules
(conditions, then event-time order) and stamped with uniform metadata.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from dsfeatures.errors import BackendUnavailable, DeadlineExceeded, InvalidRequest, UnknownFeature
from dsfeatures.registry.catalog import Catalog, CompiledGroup, parse_group_ref
from dsfeatures.registry.types import InvalidValue
from dsfeatures.service.breaker import Breakers, counts_as_failure, new_breakers
from dsfeatures.service.clock import now_us, rfc3339, to_us
from dsfeatures.service.fetch import check_entity_id
from dsfeatures.service.freshness import FreshnessRecorder
from dsfeatures.service.metrics import STORE_LATENCY, WRITE_ROWS
from dsfeatures.stores.ordering import WriteOp, WriteOutcome
from dsfeatures.stores.protocols import (
    MISS,
    AuditLog,
    ErasureAudit,
    RowCache,
    RowStore,
    StoreResult,
    VectorStore,
)
from dsfeatures.stores.record import RowKey
from dsfeatures.wire.types import DeleteRequest, WriteRequest, WriteResponse, WriteResult

__all__ = ["Writer", "entity_hash"]

T = TypeVar("T")

log = logging.getLogger(__name__)


def entity_hash(entity_type: str, entity_id: str) -> str:
    """The id an erasure audit keeps instead of the entity id (sha256 hex)."""
    return hashlib.sha256(f"{entity_type}\0{entity_id}".encode()).hexdigest()


class Writer:
    """Validates and applies writes, deletes and erasures.

    Args:
        rows: persistent store of scalar groups.
        vectors: store of embedding groups.
        cache: write-through cache in front of ``rows`` (or None).
        audit: where erasures are recorded.
        timeout: seconds a store call may take (then 503, retryable).
        max_rows: most rows per write request.
        max_delete_keys: most entity x group-version keys per delete.
        freshness: told about every row written (in memory; flushed elsewhere).
    """

    def __init__(
        self,
        rows: RowStore,
        vectors: VectorStore,
        cache: RowCache | None,
        audit: AuditLog,
        *,
        timeout: float,
        max_rows: int,
        max_delete_keys: int,
        freshness: FreshnessRecorder | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self._rows = rows
        self._vectors = vectors
        self._cache = cache
        self._audit = audit
        self._timeout = timeout
        self.max_rows = max_rows
        self.max_delete_keys = max_delete_keys
        self._freshness = freshness
        self._breakers = breakers if breakers is not None else new_breakers()

    # --- write ------------------------------------------------------------------------

    def validate(
        self, catalog: Catalog, req: WriteRequest, writer: str
    ) -> list[tuple[WriteOp, bool]]:
        """Check every row and build the store ops (op, is_embedding), in request order.

        Raises:
            InvalidRequest: naming ``rows[i]`` and the field.
            UnknownFeature: unknown or retired group, version or feature.
        """
        if len(req.rows) > self.max_rows:
            raise InvalidRequest(
                f"rows: at most {self.max_rows} rows per write, got {len(req.rows)}",
                code="BATCH_TOO_LARGE",
            )
        now = now_us()
        mode = req.mode
        ops: list[tuple[WriteOp, bool]] = []
        for i, row in enumerate(req.rows):
            where = f"rows[{i}]"
            cg = catalog.group(row.group, row.version, where=f"{where}.group")
            if row.entity_type is not None and row.entity_type != cg.entity_type:
                raise InvalidRequest(
                    f"{where}.entity_type: group {cg.label} is keyed by {cg.entity_type!r}, "
                    f"not {row.entity_type!r}"
                )
            check_entity_id(row.entity_id, f"{where}.entity_id")
            values = self._check_values(cg, row.values, mode, where)
            event_time = now if row.event_time is None else to_us(row.event_time)
            key = RowKey(cg.entity_type, row.entity_id, cg.name, cg.version)
            op = WriteOp(
                key,
                mode,
                values,
                event_time,
                now,
                req.lane,
                writer,
                row.if_revision,
                cg.definition.ttl_seconds,
            )
            ops.append((op, cg.is_embedding))
        return ops

    @staticmethod
    def _check_values(
        cg: CompiledGroup, values: dict[str, Any], mode: str, where: str
    ) -> dict[str, Any]:
        if not values:
            raise InvalidRequest(f"{where}.values: at least one feature value is needed")
        out: dict[str, Any] = {}
        for name, v in values.items():
            slot = cg.features.get(name)
            if slot is None:
                raise UnknownFeature(f"{where}.values.{name}: group {cg.label} has no such feature")
            if v is None:
                out[name] = None
                continue
            try:
                out[name] = slot.ftype.check(v)
            except InvalidValue as e:
                raise InvalidRequest(f"{where}.values.{name}: {e}") from None
        vec = cg.vector_feature
        if vec is not None and mode != "update" and out.get(vec.name) is None:
            raise InvalidRequest(f"{where}.values.{vec.name}: an embedding row needs its vector")
        return out

    async def write(self, catalog: Catalog, req: WriteRequest, writer: str) -> WriteResponse:
        """Validate then apply a write request; one result per row, in order.

        Raises:
            InvalidRequest, UnknownFeature: nothing was written.
            BackendUnavailable: a store failed or ran out of time (retryable);
                rows may or may not have been applied.
        """
        ops = self.validate(catalog, req, writer)
        scalar = [(i, op) for i, (op, emb) in enumerate(ops) if not emb]
        vector = [(i, op) for i, (op, emb) in enumerate(ops) if emb]
        results: list[WriteResult | None] = [None] * len(ops)
        outs = await asyncio.gather(
            self._apply_scalar([op for _, op in scalar]),
            self._apply(self._vectors, "vectors", [op for _, op in vector]),
        )
        for part, got in zip((scalar, vector), outs, strict=True):
            for (i, _), out in zip(part, got, strict=True):
                results[i] = WriteResult(out.status, out.revision, out.message)
                WRITE_ROWS.labels(req.lane, out.status).inc()
        if self._freshness is not None:
            written = [r is not None and r.status == "WRITTEN" for r in results]
            self._freshness.record([op for (op, _), w in zip(ops, written, strict=True) if w])
        return WriteResponse([r for r in results if r is not None])

    async def _apply(self, store: RowStore, label: str, ops: list[WriteOp]) -> list[WriteOutcome]:
        if not ops:
            return []
        breaker = self._breakers[label]
        if not breaker.allow():
            raise BackendUnavailable(f"{label} store is failing; nothing written, retry shortly")
        t = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                out = await store.write(ops)
            breaker.success()
            return out
        except TimeoutError:
            breaker.failure(t)
            raise BackendUnavailable(
                f"{label} store did not answer within {self._timeout}s; "
                "the write may be partly applied"
            ) from None
        except BaseException as e:
            if counts_as_failure(e):
                breaker.failure(t)
            raise
        finally:
            STORE_LATENCY.labels(label, "write").observe(time.monotonic() - t)

    async def _apply_scalar(self, ops: list[WriteOp]) -> list[WriteOutcome]:
        if not ops:
            return []
        cache = self._cache
        if cache is None:
            return await self._apply(self._rows, "rows", ops)
        keys = [op.key for op in ops]
        await self._mark(cache, keys)
        outcomes: list[WriteOutcome] | None = None
        try:
            outcomes = await self._apply(self._rows, "rows", ops)
        finally:
            settled: list[tuple[RowKey, StoreResult]]
            if outcomes is None:
                settled = [(k, MISS) for k in keys]
            else:
                settled = [
                    (op.key, out.record if out.record is not None else MISS)
                    for op, out in zip(ops, outcomes, strict=True)
                ]
            await self._settle(cache, settled)
        return outcomes

    @staticmethod
    async def _mark(cache: RowCache, keys: Sequence[RowKey]) -> None:
        try:
            await cache.mark(keys)
        except Exception as e:
            # Without the mark a reader could cache an old row during the write.
            raise BackendUnavailable(f"cache unavailable, write not applied: {e}") from e

    @staticmethod
    async def _settle(cache: RowCache, items: Sequence[tuple[RowKey, StoreResult]]) -> None:
        try:
            await cache.settle(items)
        except Exception as e:  # the marks stay: readers go to the store
            log.warning("cache settle failed: %r", e)

    # --- delete and erase -------------------------------------------------------------

    async def delete(self, catalog: Catalog, req: DeleteRequest) -> int:
        """Delete rows of the named groups (every version, or ``name@v``) for some entities.

        Raises:
            InvalidRequest, UnknownFeature: nothing was deleted.
        """
        targets: list[CompiledGroup] = []
        for j, ref in enumerate(req.groups):
            name, version = parse_group_ref(ref, f"groups[{j}]")
            found = catalog.versions(name) if version is None else [catalog.find(name, version)]
            found_groups = [g for g in found if g is not None]
            if not found_groups:
                raise UnknownFeature(f"groups[{j}]: unknown feature group or version {ref!r}")
            for cg in found_groups:
                if cg.entity_type != req.entity_type:
                    raise InvalidRequest(
                        f"groups[{j}]: group {cg.label} is keyed by {cg.entity_type!r}, "
                        f"not {req.entity_type!r}"
                    )
            targets.extend(found_groups)
        for i, eid in enumerate(req.entity_ids):
            check_entity_id(eid, f"entity_ids[{i}]")
        n = len(targets) * len(req.entity_ids)
        if n > self.max_delete_keys:
            raise InvalidRequest(
                f"at most {self.max_delete_keys} entity x group-version keys per delete, got {n}",
                code="BATCH_TOO_LARGE",
            )
        keys_s: list[RowKey] = []
        keys_v: list[RowKey] = []
        for cg in dict.fromkeys(targets):
            for eid in dict.fromkeys(req.entity_ids):
                key = RowKey(cg.entity_type, eid, cg.name, cg.version)
                (keys_v if cg.is_embedding else keys_s).append(key)
        gone = await asyncio.gather(self._delete_scalar(keys_s), self._delete_vectors(keys_v))
        return sum(gone)

    async def _delete_vectors(self, keys: list[RowKey]) -> int:
        if not keys:
            return 0
        return len(await self._bounded(self._vectors.delete(keys), "vectors"))

    async def _delete_scalar(self, keys: list[RowKey]) -> int:
        if not keys:
            return 0
        cache = self._cache
        if cache is not None:
            await self._mark(cache, keys)
        ok = False
        try:
            gone = await self._bounded(self._rows.delete(keys), "rows")
            ok = True
        finally:
            if cache is not None:
                await self._settle(cache, [(k, None if ok else MISS) for k in keys])
        return len(gone)

    async def _bounded(self, aw: Coroutine[Any, Any, T], label: str) -> T:
        breaker = self._breakers[label]
        if not breaker.allow():
            aw.close()
            raise BackendUnavailable(f"{label} store is failing; nothing deleted, retry shortly")
        t = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                out = await aw
        except TimeoutError:
            breaker.failure(t)
            raise DeadlineExceeded(
                f"{label} store did not answer within {self._timeout}s"
            ) from None
        except BaseException as e:
            if counts_as_failure(e):
                breaker.failure(t)
            raise
        breaker.success()
        return out

    async def erase(
        self, catalog: Catalog, entity_type: str, entity_id: str, *, request_id: str, actor: str
    ) -> int:
        """GDPR erasure: every row of one entity in every group, version and store.

        The cost is bounded by the entity's own rows (index ranges, no scan).
        An audit record (with a hash, not the id) is written after the rows are gone.
        """
        check_entity_id(entity_id, "entity_id")
        cache = self._cache
        keys = [
            RowKey(entity_type, entity_id, cg.name, cg.version)
            for cg in catalog.for_entity_type(entity_type)
            if not cg.is_embedding
        ]
        if cache is not None and keys:
            await self._mark(cache, keys)
        ok = False
        try:
            rows_gone, vec_gone = await asyncio.gather(
                self._bounded(self._rows.delete_entity(entity_type, entity_id), "rows"),
                self._bounded(self._vectors.delete_entity(entity_type, entity_id), "vectors"),
            )
            ok = True
        finally:
            if cache is not None and keys:
                await self._settle(cache, [(k, None if ok else MISS) for k in keys])
        deleted = len(rows_gone) + len(vec_gone)
        await self._audit.record_erasure(
            ErasureAudit(
                at=rfc3339(),
                entity_type=entity_type,
                entity_hash=entity_hash(entity_type, entity_id),
                deleted=deleted,
                request_id=request_id,
                actor=actor,
            )
        )
        log.info("erased entity type=%s deleted=%d request_id=%s", entity_type, deleted, request_id)
        return deleted
