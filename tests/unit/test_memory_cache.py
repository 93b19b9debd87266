"""The in-process cache's write-through protocol: lookup, fill tickets, mark and settle, LRU."""

from __future__ import annotations

import pytest

from dsfeatures.stores import ABSENT, MARKED, MISS, MemoryCache, Record, RowCache, RowKey


def key(i: int | str) -> RowKey:
    return RowKey("rider", f"r{i}", "rider_stats", 1)


def rec(value: int, revision: int = 1) -> Record:
    return Record({"a": value}, 100 + revision, 200 + revision, "sdk", "w", revision)


K = key(1)


async def lookup1(cache: MemoryCache, k: RowKey = K):
    got, ticket = await cache.lookup([k])
    return got[0], ticket


async def filled(cache: MemoryCache, k: RowKey, r: Record | None) -> None:
    """A reader's miss-then-fill cycle with a fresh ticket."""
    _, ticket = await cache.lookup([k])
    await cache.fill([(k, r)], ticket)


async def evicted(cache: MemoryCache, k: RowKey, others: list[RowKey]) -> bool:
    """Whether ``k`` left a cache of ``len(others)`` entries, all of them ``others``."""
    got, _ = await cache.lookup(others)
    return len(cache) == len(others) and all(g is not MISS for g in got) and k not in others


def test_memory_cache_is_a_row_cache() -> None:
    assert isinstance(MemoryCache(), RowCache)


async def test_unknown_key_is_a_miss() -> None:
    cache = MemoryCache()
    got, _ = await cache.lookup([K, key(2)])
    assert got == [MISS, MISS]
    assert cache.misses == 2
    assert cache.hits == 0


async def test_fill_then_hit_and_absent() -> None:
    cache = MemoryCache()
    _, ticket = await cache.lookup([K, key(2)])
    await cache.fill([(K, rec(1)), (key(2), None)], ticket)
    got, _ = await cache.lookup([key(2), K, key(3)])
    assert got[0] is ABSENT
    assert got[1] == rec(1)
    assert got[2] is MISS
    assert cache.hits == 2
    assert cache.misses == 3


async def test_fill_does_not_replace_a_cached_record() -> None:
    cache = MemoryCache()
    await filled(cache, K, rec(1, 2))
    await filled(cache, K, rec(0, 1))
    got, _ = await lookup1(cache)
    assert got == rec(1, 2)


async def test_fill_refused_while_a_write_is_pending() -> None:
    cache = MemoryCache()
    await cache.mark([K])
    got, ticket = await lookup1(cache)  # a ticket taken after the mark does not help
    assert got is MARKED
    await cache.fill([(K, rec(0))], ticket)
    got, _ = await lookup1(cache)
    assert got is MARKED


async def test_fill_refused_when_a_write_began_after_the_ticket() -> None:
    cache = MemoryCache()
    _, old_ticket = await lookup1(cache)
    await cache.mark([K])
    await cache.settle([(K, MISS)])  # outcome unknown: the mark stays, not pending
    await cache.fill([(K, rec(0))], old_ticket)
    got, new_ticket = await lookup1(cache)
    assert got is MARKED
    # A reader that looked up after the write finished may fill.
    await cache.fill([(K, rec(1, 2))], new_ticket)
    got, _ = await lookup1(cache)
    assert got == rec(1, 2)


async def test_fill_accepted_when_no_write_intervened() -> None:
    cache = MemoryCache()
    _, ticket = await lookup1(cache)
    await cache.mark([key(2)])  # a write to another key does not matter
    await cache.fill([(K, rec(1))], ticket)
    got, _ = await lookup1(cache)
    assert got == rec(1)


async def test_mark_hides_a_cached_record() -> None:
    cache = MemoryCache()
    await filled(cache, K, rec(1))
    await cache.mark([K])
    got, _ = await lookup1(cache)
    assert got is MARKED


@pytest.mark.parametrize("old", [None, rec(0)], ids=["absent-before", "cached-before"])
async def test_lone_writer_settle_installs_the_record(old: Record | None) -> None:
    cache = MemoryCache()
    if old is not None:
        await filled(cache, K, old)
    await cache.mark([K])
    await cache.settle([(K, rec(1, 2))])
    got, _ = await lookup1(cache)
    assert got == rec(1, 2)


async def test_lone_writer_settle_with_none_installs_absent() -> None:
    cache = MemoryCache()
    await filled(cache, K, rec(1))
    await cache.mark([K])
    await cache.settle([(K, None)])
    got, _ = await lookup1(cache)
    assert got is ABSENT


async def test_settle_with_miss_leaves_the_key_to_be_refilled() -> None:
    cache = MemoryCache()
    await filled(cache, K, rec(1))
    await cache.mark([K])
    await cache.settle([(K, MISS)])
    got, ticket = await lookup1(cache)
    assert got is MARKED
    await cache.fill([(K, rec(1))], ticket)
    got, _ = await lookup1(cache)
    assert got == rec(1)


async def test_settle_without_a_mark_is_ignored() -> None:
    cache = MemoryCache()
    await cache.settle([(K, rec(1))])
    got, _ = await lookup1(cache)
    assert got is MISS


async def test_two_concurrent_writers_leave_a_mark_that_forces_a_refill() -> None:
    cache = MemoryCache()
    _, before = await lookup1(cache)
    await cache.mark([K])
    await cache.mark([K])
    # Their durable writes may have committed in either order: neither result is trusted.
    await cache.settle([(K, rec(2, 2))])
    got, _ = await lookup1(cache)
    assert got is MARKED
    await cache.settle([(K, rec(1, 1))])
    got, after = await lookup1(cache)
    assert got is MARKED
    # A reader from before the writes cannot fill; one from after can.
    await cache.fill([(K, rec(0))], before)
    got, _ = await lookup1(cache)
    assert got is MARKED
    await cache.fill([(K, rec(2, 2))], after)
    got, _ = await lookup1(cache)
    assert got == rec(2, 2)


async def test_sequential_writers_each_install_their_record() -> None:
    cache = MemoryCache()
    for revision in (1, 2, 3):
        await cache.mark([K])
        await cache.settle([(K, rec(revision, revision))])
    got, _ = await lookup1(cache)
    assert got == rec(3, 3)


async def test_lru_eviction_keeps_at_most_max_entries_and_drops_the_least_recent() -> None:
    cache = MemoryCache(max_entries=3)
    for i in range(3):
        await filled(cache, key(i), rec(i))
    await lookup1(cache, key(0))  # key 0 becomes the most recently used
    await filled(cache, key(3), rec(3))
    assert len(cache) == 3
    got, _ = await cache.lookup([key(0), key(1), key(2), key(3)])
    assert got == [rec(0), MISS, rec(2), rec(3)]
    for i in range(4, 50):
        await filled(cache, key(i), rec(i))
        assert len(cache) <= 3


async def test_pending_marks_are_never_evicted() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.mark([K])
    for i in range(10, 20):
        await filled(cache, key(i), rec(i))
    # The mark is still there and pending: a fill with a fresh ticket is refused ...
    await filled(cache, K, rec(0))
    got, _ = await lookup1(cache)
    assert got is MARKED
    # ... and the writer's settle still finds it.
    await cache.settle([(K, rec(1, 5))])
    got, _ = await lookup1(cache)
    assert got == rec(1, 5)


async def test_only_pending_marks_left_may_exceed_the_bound_without_looping() -> None:
    cache = MemoryCache(max_entries=1)
    await cache.mark([key(1), key(2), key(3)])
    assert len(cache) == 3
    got, _ = await cache.lookup([key(1), key(2), key(3)])
    assert got == [MARKED, MARKED, MARKED]


async def test_fill_with_a_ticket_older_than_an_evicted_mark_is_refused() -> None:
    cache = MemoryCache(max_entries=2)
    _, old_ticket = await lookup1(cache)
    await cache.mark([K])
    await cache.settle([(K, MISS)])  # settled, not pending: evictable
    await filled(cache, key(2), rec(2))
    await filled(cache, key(3), rec(3))
    assert await evicted(cache, K, others=[key(2), key(3)])
    await cache.fill([(K, rec(0))], old_ticket)
    got, new_ticket = await lookup1(cache)
    assert got is MISS
    await cache.fill([(K, rec(1, 2))], new_ticket)
    got, _ = await lookup1(cache)
    assert got == rec(1, 2)


@pytest.mark.parametrize("written", [rec(1, 2), None], ids=["update", "delete"])
async def test_fill_with_a_ticket_older_than_an_evicted_settled_write_is_refused(
    written: Record | None,
) -> None:
    cache = MemoryCache(max_entries=2)
    _, old_ticket = await lookup1(cache)  # reader misses, then reads the old row from the store
    await cache.mark([K])  # a writer updates (or erases) the row ...
    await cache.settle([(K, written)])  # ... and installs the result
    await filled(cache, key(2), rec(2))  # other traffic evicts the installed entry
    await filled(cache, key(3), rec(3))
    assert await evicted(cache, K, others=[key(2), key(3)])
    await cache.fill([(K, rec(0, 1))], old_ticket)  # the slow reader offers the old row
    got, new_ticket = await lookup1(cache)
    assert got is MISS, "the cache must not serve a row older than an acknowledged write"
    await cache.fill([(K, written)], new_ticket)
    got, _ = await lookup1(cache)
    assert got == (ABSENT if written is None else written)


async def test_close_drops_every_entry() -> None:
    cache = MemoryCache()
    await cache.open()
    await cache.ping()
    await filled(cache, K, rec(1))
    assert len(cache) == 1
    await cache.close()
    assert len(cache) == 0
