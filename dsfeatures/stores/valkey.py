"""The production cache: ValKey (standalone or cluster), a write-through LRU before the store.

Layout: one key per (entity type, entity id, group, version),
``dsf:{group}:{version}:{entity_type}:{entity_id}``, holding one of

* ``R`` + the revision as 20 digits + the msgpack record blob: a cached row;
* ``A``: the row is known to be absent;
* ``M{pending}:{writers}``: a write marker (see below).

The consistency protocol (docs/consistency.md has the failure cases):

1. A writer runs MARK on its keys *before* the durable write: the key becomes
   a marker counting pending writes and writers (TTL ``marker_ttl_ms``).
2. After the durable write it runs SETTLE: the pending count drops; the last
   pending writer installs its row only if it was the only writer since the
   marker appeared, otherwise it leaves a short-lived settled marker
   (``settled_ttl_ms``) so that the next readers go to the store. If the marker
   vanished (expired, evicted, ValKey restarted), SETTLE installs the row only
   over an older revision, and deletes anything it cannot compare.
3. A reader that meets a marker or nothing reads the store consistently; it
   fills only keys that held nothing, with ``SET NX`` (so never over a marker
   or a newer row), and only within ``fill_window_ms`` of its lookup, which is
   shorter than both marker lifetimes.

If MARK cannot run (ValKey unreachable) the write is refused with a retryable
503 rather than risk a stale cached row later; reads fall back to the store.
A small circuit breaker keeps a dead ValKey from costing a timeout per request
and probes it again after ``retry_after_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from hiredis import pack_command
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.driver_info import DriverInfo
from redis.exceptions import NoScriptError, RedisError

from dsfeatures.errors import BackendUnavailable
from dsfeatures.stores.protocols import ABSENT, MARKED, MISS, CacheLookup, StoreResult
from dsfeatures.stores.record import Record, RowKey, decode_record, encode_record

__all__ = ["ValkeyCache", "cache_key"]

log = logging.getLogger(__name__)

_CACHE_UP = Gauge(
    "dsf_cache_up", "1 when the ValKey cache answers, 0 when it is bypassed", ["cache"]
)
# The series appears only once a ValKey cache exists (so an alert on 0 means something).
CACHE_ERRORS = Counter("dsf_cache_errors_total", "ValKey cache errors by operation", ["op"])

_MARK = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  local p, w = 0, 0
  if v and string.byte(v, 1) == 77 then
    local a, b = string.match(v, '^M(%d+):(%d+)$')
    if a then p, w = tonumber(a), tonumber(b) end
  end
  redis.call('SET', KEYS[i], 'M' .. (p + 1) .. ':' .. (w + 1), 'PX', ttl)
end
return #KEYS
"""

_SETTLE = """
local v = redis.call('GET', KEYS[1])
local kind = ARGV[1]
if v and string.byte(v, 1) == 77 then
  local a, b = string.match(v, '^M(%d+):(%d+)$')
  local p = tonumber(a or '1') - 1
  local w = tonumber(b or '2')
  if p < 0 then p = 0 end
  if p == 0 then
    if w == 1 and kind ~= 'U' then
      redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
      return 1
    end
    redis.call('SET', KEYS[1], 'M0:' .. w, 'PX', ARGV[5])
    return 2
  end
  redis.call('SET', KEYS[1], 'M' .. p .. ':' .. w, 'KEEPTTL')
  return 3
end
if kind == 'R' then
  if v and string.byte(v, 1) == 82 and tonumber(string.sub(v, 2, 21)) >= tonumber(ARGV[3]) then
    return 4
  end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
  return 5
end
redis.call('DEL', KEYS[1])
return 6
"""


def cache_key(key: RowKey, prefix: str = "dsf") -> bytes:
    """The ValKey key of a row (entity id last, so any id is safe)."""
    return f"{prefix}:{key.group}:{key.version}:{key.entity_type}:{key.entity_id}".encode()


def _row_value(rec: Record) -> bytes:
    return b"R" + b"%020d" % rec.revision + encode_record(rec)


class ValkeyCache:
    """A RowCache on ValKey.

    Args:
        url: ``redis://host:port/db``.
        cluster: talk to a ValKey cluster (keys spread over slots; commands
            are grouped per node by the client).
        ttl_seconds: lifetime of cached rows.
        marker_ttl_ms: lifetime of a write marker (longer than any write).
        settled_ttl_ms: lifetime of a settled multi-writer marker.
        fill_window_ms: a reader fills only this soon after its lookup.
        socket_timeout: seconds per ValKey command.
        retry_after_seconds: how long the breaker bypasses ValKey after three failures in a row.
        key_prefix: first part of every key (several deployments can share a ValKey).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        ttl_seconds: int = 86_400,
        marker_ttl_ms: int = 60_000,
        settled_ttl_ms: int = 3_000,
        fill_window_ms: int = 2_000,
        socket_timeout: float = 0.25,
        retry_after_seconds: float = 1.0,
        key_prefix: str = "dsf",
    ) -> None:
        if not settled_ttl_ms > fill_window_ms or not marker_ttl_ms > fill_window_ms:
            raise ValueError("marker lifetimes must exceed the fill window")
        self._url = url
        self._prefix = key_prefix
        self._cluster = cluster
        self._ttl_ms = ttl_seconds * 1000
        self._marker_ms = marker_ttl_ms
        self._settled_ms = settled_ttl_ms
        self._fill_ms = fill_window_ms
        self._timeout = socket_timeout
        self._retry_after = retry_after_seconds
        self._client: Any = None
        # Standalone lookups hold connections of their own pool (idle ones in _held), so
        # writes and fills find the client's pooled connections free as before.
        self._lookup_pool: ConnectionPool | None = None
        self._held: list[AbstractConnection] = []
        self._mark_sha = ""
        self._settle_sha = ""
        self._down_until = 0.0
        self._failures = 0  # consecutive failures; three open the breaker
        self._last_failure = 0.0  # when the last counted failure happened
        self._up = _CACHE_UP.labels("valkey")
        self._heads: dict[tuple[str, int, str], str] = {}
        self._decoded: dict[bytes, Record] = {}
        self._memo_size = 50_000
        self.calls = 0  # round trips issued (read by tests and benchmarks)

    async def open(self) -> None:
        """Create the client; a ValKey that is down now is retried later."""
        opts: dict[str, Any] = {
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
        }
        if self._cluster:
            self._client = RedisCluster.from_url(self._url, **opts)
        else:
            # Resolved once, as the cluster client does: otherwise every new connection
            # reads redis-py's package metadata from disk, a blocking call on the loop.
            opts["driver_info"] = DriverInfo()
            self._client = Redis.from_url(self._url, **opts)
            self._lookup_pool = ConnectionPool.from_url(self._url, **opts)
        try:
            await self._load_scripts()
            self._up.set(1)
        except (RedisError, OSError) as e:
            log.warning("ValKey cache not reachable at start-up (%r); reads use the store", e)
            self._trip("open")

    async def close(self) -> None:
        """Close the connection pool."""
        if self._lookup_pool is not None:
            pool, self._lookup_pool = self._lookup_pool, None
            held, self._held = self._held, []
            for conn in held:
                await pool.release(conn)
            await pool.disconnect()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> None:
        """Raise if ValKey does not answer."""
        self.calls += 1
        await self._client.ping()

    # --- breaker --------------------------------------------------------------------

    def _check(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise BackendUnavailable("ValKey cache is bypassed after a failure")

    def _trip(self, op: str, started: float | None = None) -> None:
        """Count a failed command (``started``: when it was sent, ``time.monotonic()``).

        A command sent before the last counted failure is part of that episode and does
        not count again: one stall that times out every concurrent command at once is
        one failure, while a ValKey that is down fails the commands sent after each
        failure too and opens the breaker after three.
        """
        CACHE_ERRORS.labels(op).inc()
        now = time.monotonic()
        if started is not None and started < self._last_failure:
            return
        self._last_failure = now
        self._failures += 1
        if self._failures < 3 and not self._down_until:
            return  # one slow or failed command is not an outage: only that call fails
        if not self._down_until or time.monotonic() >= self._down_until:
            log.warning("ValKey cache %s failed; bypassing it for %.1fs", op, self._retry_after)
        self._down_until = now + self._retry_after
        self._up.set(0)

    def _ok(self) -> None:
        self._failures = 0
        if self._down_until:
            log.info("ValKey cache answers again")
            self._down_until = 0.0
            self._up.set(1)

    async def _load_scripts(self) -> None:
        self.calls += 1
        self._mark_sha = await self._client.script_load(_MARK)
        self._settle_sha = await self._client.script_load(_SETTLE)

    # --- protocol -------------------------------------------------------------------

    async def lookup(self, keys: Sequence[RowKey]) -> tuple[list[CacheLookup], int]:
        """One MGET (per node in cluster mode) for every key of the request."""
        self._check()
        started = time.monotonic()
        ticket = int(started * 1000)
        ks = self._keys(keys)
        self.calls += 1
        try:
            if self._cluster:
                raw = await self._client.mget_nonatomic(ks)
            else:
                raw = await self._mget(ks)
        except (RedisError, OSError) as e:
            self._trip("lookup", started)
            raise BackendUnavailable(f"ValKey lookup failed: {e}") from e
        if self._down_until or self._failures:
            self._ok()
        out: list[CacheLookup] = []
        memo = self._decoded
        for v in raw:
            if v is None:
                out.append(MISS)
                continue
            tag = v[0]
            if tag == 82:  # R
                # A cached blob is immutable: the same bytes always decode to the same
                # record, so hot rows are decoded once, not on every request.
                rec = memo.get(v)
                if rec is None:
                    rec = decode_record(memoryview(v)[21:])
                    if len(memo) >= self._memo_size:
                        memo.clear()
                    memo[v] = rec
                out.append(rec)
            elif tag == 65:  # A
                out.append(ABSENT)
            else:  # a marker: read the store, never fill
                out.append(MARKED)
        return out, ticket

    async def _mget(self, ks: list[bytes]) -> list[bytes | None]:
        """MGET packed by hiredis and sent on a held connection.

        redis-py's ``execute_command`` costs more than the round trip itself (argument
        packing in Python, a pool checkout and release under a lock, a retry wrapper
        and callbacks; docs/performance.md). Like it (the client is built without
        retries), a failed MGET is not retried: the caller reads the store.
        """
        # hiredis' stub types the command as a one-element tuple and leaves the result untyped.
        packed: bytes = pack_command(("MGET", *ks))  # type: ignore[arg-type]
        held = self._held
        pool = self._lookup_pool
        assert pool is not None, "open() first"
        # redis-py leaves get_connection unannotated.
        conn = held.pop() if held else await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            # The pool's check on checkout: a connection the server closed while it
            # was idle (or that holds unread bytes) is reconnected, not used.
            if conn.is_connected and await conn.can_read():
                await conn.disconnect()
            # Both calls apply the socket timeout and disconnect on any error.
            await conn.send_packed_command(packed, check_health=False)
            raw: list[bytes | None] = await conn.read_response()
        except BaseException:
            # The reply may be half read: this connection never carries another command.
            try:
                await conn.disconnect(nowait=True)
            finally:
                await pool.release(conn)
            raise
        if held is self._held:
            held.append(conn)
        else:  # the cache was closed meanwhile: the connection goes back to its pool
            await pool.release(conn)
        return raw

    def _keys(self, keys: Sequence[RowKey]) -> list[bytes]:
        """ValKey keys, built from a per-group prefix (most requests repeat few groups)."""
        heads = self._heads
        out = []
        for k in keys:
            gk = (k.group, k.version, k.entity_type)
            head = heads.get(gk)
            if head is None:
                if len(heads) > 10_000:
                    heads.clear()
                head = heads[gk] = f"{self._prefix}:{k.group}:{k.version}:{k.entity_type}:"
            out.append((head + k.entity_id).encode())
        return out

    async def fill(self, items: Sequence[tuple[RowKey, Record | None]], ticket: int) -> None:
        """``SET NX`` rows read after a miss, if still within the fill window."""
        if int(time.monotonic() * 1000) - ticket > self._fill_ms or not items:
            return
        self._check()
        pipe = self._client.pipeline(transaction=False)
        for key, rec in items:
            val = b"A" if rec is None else _row_value(rec)
            pipe.set(cache_key(key, self._prefix), val, px=self._ttl_ms, nx=True)
        self.calls += 1
        started = time.monotonic()
        try:
            await pipe.execute()
        except (RedisError, OSError) as e:
            self._trip("fill", started)
            raise BackendUnavailable(f"ValKey fill failed: {e}") from e

    async def mark(self, keys: Sequence[RowKey]) -> None:
        """MARK every key before the durable write (raises if ValKey cannot be marked)."""
        self._check()
        ks = [cache_key(k, self._prefix) for k in keys]
        started = time.monotonic()
        try:
            await self._run_scripts(
                "mark",
                [(self._mark_sha, _MARK, [k], [self._marker_ms]) for k in ks]
                if self._cluster
                else [(self._mark_sha, _MARK, ks, [self._marker_ms])],
            )
        except (RedisError, OSError) as e:
            self._trip("mark", started)
            raise BackendUnavailable(f"ValKey mark failed: {e}") from e
        self._ok()

    async def settle(self, items: Sequence[tuple[RowKey, StoreResult]]) -> None:
        """SETTLE every key after the durable write."""
        calls = []
        for key, result in items:
            if type(result) is Record:
                args: list[Any] = ["R", _row_value(result), result.revision]
            elif result is None:
                args = ["A", b"A", 0]
            else:
                args = ["U", b"", 0]
            args += [self._ttl_ms, self._settled_ms]
            calls.append((self._settle_sha, _SETTLE, [cache_key(key, self._prefix)], args))
        started = time.monotonic()
        try:
            await self._run_scripts("settle", calls)
        except (RedisError, OSError) as e:
            self._trip("settle", started)
            raise BackendUnavailable(f"ValKey settle failed: {e}") from e

    async def _run_scripts(
        self, op: str, calls: list[tuple[str, str, list[bytes], list[Any]]]
    ) -> None:
        for attempt in (0, 1):
            if not self._mark_sha or attempt:
                await self._load_scripts()
                calls = [
                    (self._mark_sha if src is _MARK else self._settle_sha, src, ks, args)
                    for _, src, ks, args in calls
                ]
            pipe = self._client.pipeline(transaction=False)
            for sha, _, ks, args in calls:
                # execute_command: redis-py blocks the evalsha helper in cluster
                # pipelines, but routes a raw EVALSHA by its single key.
                pipe.execute_command("EVALSHA", sha, len(ks), *ks, *args)
            self.calls += 1
            try:
                await pipe.execute()
                return
            except NoScriptError:  # ValKey restarted and lost its script cache
                if attempt:
                    raise
