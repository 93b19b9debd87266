"""The embedded cache: an in-process LRU implementing the write-through protocol.

It holds decoded records (no encoding cost on a hit). It is only correct when
every write to the store goes through this process, so the daemon turns it off
when several worker processes share one embedded store (see docs/architecture.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from dsfeatures.stores.protocols import (
    ABSENT,
    MARKED,
    MISS,
    CacheLookup,
    StoreResult,
    _Sentinel,
)
from dsfeatures.stores.record import Record, RowKey

__all__ = ["MemoryCache"]


class _Mark:
    """Writes are announced or recently finished for a key.

    ``pending`` writes are in flight; ``writers`` counts every writer since the
    mark was set; ``gen`` is the cache generation of the last change.
    """

    __slots__ = ("gen", "pending", "writers")

    def __init__(self, gen: int) -> None:
        self.pending = 1
        self.writers = 1
        self.gen = gen


_Entry = Record | _Sentinel | _Mark


class MemoryCache:
    """An LRU of at most ``max_entries`` rows (a RowCache).

    Fill rule: a row read from the store after a miss is cached only if no
    write to that key started since the reader's ticket; a key with writes in
    flight is never evicted, so that rule cannot be lost.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max(1, max_entries)
        self._d: OrderedDict[RowKey, _Entry] = OrderedDict()
        self._gen = 0
        self._floor = 0  # generation at the last eviction
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Drop every entry."""
        self._d.clear()

    async def ping(self) -> None:
        """Always reachable."""

    async def lookup(self, keys: Sequence[RowKey]) -> tuple[list[CacheLookup], int]:
        """Cached records (or ABSENT), MISS for unknown keys, MARKED for marked ones."""
        d = self._d
        out: list[CacheLookup] = []
        hits = 0
        for k in keys:
            e = d.get(k)
            if e is None:
                out.append(MISS)
            elif type(e) is _Mark:
                out.append(MARKED)
            else:
                d.move_to_end(k)
                out.append(e)  # type: ignore[arg-type]
                hits += 1
        self.hits += hits
        self.misses += len(keys) - hits
        return out, self._gen

    async def fill(self, items: Sequence[tuple[RowKey, Record | None]], ticket: int) -> None:
        """Cache rows read after a miss, unless a write to the key began after ``ticket``."""
        d = self._d
        for k, rec in items:
            e = d.get(k)
            if e is None:
                if ticket < self._floor:
                    continue
            elif type(e) is _Mark:
                if e.pending or e.gen > ticket:
                    continue
            else:
                continue  # already cached by someone newer
            d[k] = ABSENT if rec is None else rec
            d.move_to_end(k)
        self._evict()

    async def mark(self, keys: Sequence[RowKey]) -> None:
        """Announce writes: the keys read as MISS and refuse fills until settled."""
        d = self._d
        for k in keys:
            self._gen += 1
            e = d.get(k)
            if type(e) is _Mark:
                e.pending += 1
                e.writers += 1
                e.gen = self._gen
            else:
                d[k] = _Mark(self._gen)
            d.move_to_end(k)
        self._evict()

    async def settle(self, items: Sequence[tuple[RowKey, StoreResult]]) -> None:
        """Finish announced writes; a lone writer installs its result directly."""
        d = self._d
        for k, result in items:
            self._gen += 1
            e = d.get(k)
            if type(e) is not _Mark:
                continue
            e.pending -= 1
            e.gen = self._gen
            if e.pending == 0 and e.writers == 1 and result is not MISS:
                d[k] = ABSENT if result is None else result

    def _evict(self) -> None:
        d = self._d
        spins = 0
        while len(d) > self._max and spins <= len(d):
            k, e = d.popitem(last=False)
            if type(e) is _Mark and e.pending:
                d[k] = e  # writes in flight: keep the mark
                spins += 1
                continue
            # Whatever was evicted (a settled mark, or a row a writer just
            # installed) may have been newer than a slow reader's fill: refuse
            # fills of absent keys by readers that looked up before now.
            self._floor = self._gen
