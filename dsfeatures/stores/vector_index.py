"""The embedded vector store: embedding rows in SQLite, searched exactly in memory with numpy.

Search is exact (brute force over a float32 matrix), so it returns the true
nearest neighbours; at embedded sizes (up to a few hundred thousand vectors of
modest dimension) that is fast enough and needs no approximate index. Scores
follow OpenSearch's conventions so that both backends rank and threshold alike:
cosine ``(1 + cos) / 2``, l2 ``1 / (1 + d^2)``, dot ``dot + 1`` if ``dot >= 0``
else ``1 / (1 - dot)``.

Each process keeps its own index per group version and knows the group's change
generation; a change made by another process is noticed before the next search
and the group is reloaded from SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dsfeatures.registry.catalog import CompiledGroup
from dsfeatures.stores.ordering import WriteOp, WriteOutcome
from dsfeatures.stores.protocols import StoreResult
from dsfeatures.stores.record import Record, RowKey
from dsfeatures.stores.sqlite import SqliteRowStore

__all__ = ["EmbeddedVectorStore", "score"]

F32 = npt.NDArray[np.float32]


def score(metric: str, raw: F32) -> F32:
    """Turn raw similarities (cosine, dot) or squared distances (l2) into scores."""
    if metric == "cosine":
        return (1.0 + raw) / 2.0
    if metric == "l2":
        return 1.0 / (1.0 + raw)
    return np.where(raw >= 0, raw + 1.0, 1.0 / (1.0 - raw)).astype(np.float32)


class _Index:
    """Vectors of one group version: a growable matrix with swap-remove deletes."""

    def __init__(self, dim: int, metric: str, feature: str) -> None:
        self.dim = dim
        self.metric = metric
        self.feature = feature
        self.ids: list[str] = []
        self.attrs: list[dict[str, Any]] = []
        self.pos: dict[str, int] = {}
        self.mat: F32 = np.zeros((16, dim), dtype=np.float32)

    def upsert(self, entity_id: str, values: dict[str, Any]) -> None:
        vec = values.get(self.feature)
        if vec is None:
            self.remove(entity_id)
            return
        v = np.asarray(vec, dtype=np.float32)
        if self.metric == "cosine":
            n = float(np.linalg.norm(v))
            if n > 0:
                v = v / n
        i = self.pos.get(entity_id)
        if i is None:
            i = len(self.ids)
            if i >= self.mat.shape[0]:
                grown = np.zeros((self.mat.shape[0] * 2, self.dim), dtype=np.float32)
                grown[:i] = self.mat[:i]
                self.mat = grown
            self.ids.append(entity_id)
            self.attrs.append({})
            self.pos[entity_id] = i
        self.mat[i] = v
        self.attrs[i] = {k: x for k, x in values.items() if k != self.feature}

    def remove(self, entity_id: str) -> None:
        i = self.pos.pop(entity_id, None)
        if i is None:
            return
        last = len(self.ids) - 1
        if i != last:
            moved = self.ids[last]
            self.ids[i] = moved
            self.attrs[i] = self.attrs[last]
            self.mat[i] = self.mat[last]
            self.pos[moved] = i
        self.ids.pop()
        self.attrs.pop()

    def search(
        self, q: F32, k: int, filters: dict[str, Any] | None, min_score: float | None
    ) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0:
            return []
        m = self.mat[:n]
        if self.metric == "cosine":
            qn = float(np.linalg.norm(q))
            raw = m @ (q / qn if qn > 0 else q)
        elif self.metric == "l2":
            diff = m - q
            raw = np.einsum("ij,ij->i", diff, diff)
        else:
            raw = m @ q
        s = score(self.metric, raw.astype(np.float32))
        if filters:
            keep = np.fromiter((_matches(a, filters) for a in self.attrs), dtype=bool, count=n)
            s = np.where(keep, s, -np.inf).astype(np.float32)
        if min_score is not None:
            s = np.where(s >= min_score, s, -np.inf).astype(np.float32)
        k = min(k, n)
        top = np.argpartition(-s, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-s[top], kind="stable")]
        return [(self.ids[i], float(s[i])) for i in top if s[i] != -np.inf]


def _matches(attrs: dict[str, Any], filters: dict[str, Any]) -> bool:
    for name, want in filters.items():
        have = attrs.get(name)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


class EmbeddedVectorStore:
    """Embedding rows in the ``vectors`` table plus per-process exact indexes (a VectorStore)."""

    def __init__(self, rows: SqliteRowStore) -> None:
        self._rows = rows
        self._indexes: dict[tuple[str, int], _Index] = {}
        self._known: dict[tuple[str, int], int] = {}
        self._specs: dict[tuple[str, int], tuple[int, str, str]] = {}
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Indexes load lazily, on first search of each group."""

    async def close(self) -> None:
        """Drop the in-memory indexes."""
        self._indexes.clear()
        self._known.clear()

    async def ping(self) -> None:
        """The SQLite file answers."""
        await self._rows.ping()

    async def ensure_group(self, group: CompiledGroup) -> None:
        """Remember the vector shape of a group version."""
        self._spec(group)

    def _spec(self, group: CompiledGroup) -> tuple[int, str, str]:
        key = (group.name, group.version)
        spec = self._specs.get(key)
        if spec is None:
            slot = group.vector_feature
            if slot is None or slot.feature.metric is None:
                raise ValueError(f"group {group.label} has no vector feature")
            spec = (slot.ftype.dimension, slot.feature.metric, slot.name)
            self._specs[key] = spec
        return spec

    async def get_many(
        self, keys: Sequence[RowKey], *, consistent: bool = False
    ) -> list[StoreResult]:
        """Rows by key, from SQLite."""
        return await self._rows.get_many(keys, consistent=consistent)

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Write rows durably, then update this process's indexes."""
        outcomes, gens = await self._rows.write_tracked(ops)
        changes: list[tuple[RowKey, Record | None]] = [
            (op.key, out.record) for op, out in zip(ops, outcomes, strict=True) if out.record
        ]
        self._apply(changes, gens)
        return outcomes

    async def delete(self, keys: Sequence[RowKey]) -> list[RowKey]:
        """Delete rows durably and from the indexes."""
        gone, gens = await self._rows.delete_tracked(keys)
        self._apply([(k, None) for k in gone], gens)
        return gone

    async def delete_entity(self, entity_type: str, entity_id: str) -> list[RowKey]:
        """Delete every embedding row of one entity (an index range)."""
        gone, gens = await self._rows.delete_entity_tracked(entity_type, entity_id)
        self._apply([(k, None) for k in gone], gens)
        return gone

    def _apply(
        self,
        changes: list[tuple[RowKey, Record | None]],
        gens: dict[tuple[str, int], tuple[int, int]],
    ) -> None:
        for gkey, (before, after) in gens.items():
            if gkey in self._indexes and self._known.get(gkey) == before:
                self._known[gkey] = after
            else:  # another process changed it in between: reload before the next search
                self._indexes.pop(gkey, None)
                self._known.pop(gkey, None)
        for key, rec in changes:
            idx = self._indexes.get((key.group, key.version))
            if idx is None:
                continue
            if rec is None:
                idx.remove(key.entity_id)
            else:
                idx.upsert(key.entity_id, rec.values)

    async def _index(self, group: CompiledGroup) -> _Index:
        gkey = (group.name, group.version)
        current = await self._rows.generation(group.name, group.version)
        idx = self._indexes.get(gkey)
        if idx is not None and self._known.get(gkey) == current:
            return idx
        async with self._lock:
            dim, metric, feature = self._spec(group)
            rows, gen = await self._rows.load_group(group.name, group.version)
            idx = _Index(dim, metric, feature)
            for eid, rec in rows:
                idx.upsert(eid, rec.values)
            self._indexes[gkey] = idx
            self._known[gkey] = gen
            return idx

    async def search(
        self,
        group: CompiledGroup,
        vector: list[float],
        k: int,
        filters: dict[str, Any] | None,
        min_score: float | None,
    ) -> list[tuple[str, float]]:
        """Exact k nearest neighbours within one group version."""
        idx = await self._index(group)
        q = np.asarray(vector, dtype=np.float32)
        return idx.search(q, k, filters, min_score)
