"""Build the stores named by the configuration: a literal mapping, no import-by-string."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dsfeatures.config import Config, ConfigError
from dsfeatures.stores.memory_cache import MemoryCache
from dsfeatures.stores.protocols import (
    AuditLog,
    RegistryStore,
    RowCache,
    RowStore,
    StatsStore,
    VectorStore,
)
from dsfeatures.stores.sqlite import (
    SqliteAuditLog,
    SqliteDatabase,
    SqliteRegistryStore,
    SqliteRowStore,
)
from dsfeatures.stores.sqlite_stats import SqliteStatsStore
from dsfeatures.stores.valkey import ValkeyCache
from dsfeatures.stores.vector_index import EmbeddedVectorStore

__all__ = ["Stores", "open_stores"]

log = logging.getLogger(__name__)


@dataclass
class Stores:
    """Every store the service uses, opened; :meth:`close` releases them in reverse order."""

    rows: RowStore
    vectors: VectorStore
    registry: RegistryStore
    audit: AuditLog
    cache: RowCache | None
    backend_names: dict[str, str]
    #: Freshness statistics (None: kept in memory only).
    stats: StatsStore | None = None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        """Close every store, newest first."""
        for close in reversed(self._closers):
            await close()
        self._closers.clear()


def _memory_cache(config: Config, workers: int) -> RowCache | None:
    if workers > 1:
        # Each worker would hold its own copy and miss the others' writes.
        log.warning("in-process cache disabled: %d workers share the embedded store", workers)
        return None
    return MemoryCache(config.cache.max_entries)


def _no_cache(config: Config, workers: int) -> RowCache | None:
    return None


def _valkey_cache(config: Config, workers: int) -> RowCache | None:
    c = config.cache
    if not c.valkey_url:
        raise ConfigError("cache.valkey_url: needed when cache.type is 'valkey'")
    return ValkeyCache(
        c.valkey_url,
        cluster=c.valkey_cluster,
        ttl_seconds=c.ttl_seconds,
        marker_ttl_ms=c.marker_ttl_ms,
        settled_ttl_ms=c.settled_ttl_ms,
        fill_window_ms=c.fill_window_ms,
        socket_timeout=c.socket_timeout,
        retry_after_seconds=c.retry_after_seconds,
        key_prefix=c.key_prefix,
    )


_CACHES: dict[str, Callable[[Config, int], RowCache | None]] = {
    "memory": _memory_cache,
    "none": _no_cache,
    "valkey": _valkey_cache,
}


async def open_stores(config: Config, *, workers: int = 1) -> Stores:
    """Open the stores for ``config``.

    Args:
        config: the daemon configuration.
        workers: how many worker processes share the stores.

    Raises:
        ConfigError: a backend is named that this version cannot run, or the DynamoDB
            table does not exist.
        BackendUnavailable: DynamoDB did not answer.
    """
    cache = _CACHES[config.cache.type](config, workers)
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        db = SqliteDatabase(config.data_path / "dsfeatures.db")
        await db.open()
        closers.append(db.close)
        vectors: VectorStore
        if config.opensearch.url:
            vectors = _opensearch_vectors(config)
        else:
            vectors = EmbeddedVectorStore(SqliteRowStore(db, "vectors", track_generations=True))
        await vectors.open()
        closers.append(vectors.close)
        rows: RowStore
        registry: RegistryStore
        audit: AuditLog
        stats: StatsStore
        if config.dynamodb.table:
            rows, registry, audit, stats, table_close = await _open_dynamodb(config)
            closers.append(table_close)
        else:
            rows, registry, audit, stats = (
                SqliteRowStore(db, "rows"),
                SqliteRegistryStore(db),
                SqliteAuditLog(db),
                SqliteStatsStore(db),
            )
        await stats.open()
        closers.append(stats.close)
        if cache is not None:
            await cache.open()
            closers.append(cache.close)
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    stores = Stores(
        rows=rows,
        vectors=vectors,
        registry=registry,
        audit=audit,
        cache=cache,
        stats=stats,
        backend_names={
            "rows": "dynamodb" if config.dynamodb.table else "sqlite",
            "vectors": "opensearch" if config.opensearch.url else "embedded",
            "cache": config.cache.type if cache is not None else "none",
        },
    )
    stores._closers.extend(closers)
    return stores


def _opensearch_vectors(config: Config) -> VectorStore:
    """The OpenSearch vector store (its client connects on first use)."""
    try:
        # Imported here: opensearch-py is needed (and installed) only where OpenSearch is used.
        from dsfeatures.stores.opensearch import OpenSearchVectorStore
    except ImportError as e:
        raise ConfigError(
            f"opensearch.url: the OpenSearch store needs opensearch-py ({e}); "
            "install dsfeatures[opensearch]"
        ) from None
    o = config.opensearch
    return OpenSearchVectorStore(
        o.url,
        index_prefix=o.index_prefix,
        timeout=o.timeout,
        write_timeout=o.write_timeout,
        max_retries=o.max_retries,
        refresh=o.refresh,
        refresh_interval=o.refresh_interval,
        shards=o.shards,
        replicas=o.replicas,
        num_candidates=o.num_candidates,
        hnsw_m=o.hnsw_m,
        hnsw_ef_construction=o.hnsw_ef_construction,
        pool_size=o.pool_size,
    )


async def _open_dynamodb(
    config: Config,
) -> tuple[RowStore, RegistryStore, AuditLog, StatsStore, Callable[[], Awaitable[None]]]:
    """Rows, registry, audit log and statistics on one DynamoDB table, sharing one client."""
    try:
        # Imported here: aioboto3 is needed (and installed) only where DynamoDB is used.
        from dsfeatures.stores.dynamodb import DynamoRowStore, DynamoTable
        from dsfeatures.stores.dynamodb_registry import DynamoAuditLog, DynamoRegistryStore
        from dsfeatures.stores.dynamodb_stats import DynamoStatsStore
    except ImportError as e:
        raise ConfigError(
            f"dynamodb.table: the DynamoDB store needs aioboto3 ({e}); install dsfeatures[dynamodb]"
        ) from None
    table = DynamoTable(config.dynamodb)
    await table.open()
    return (
        DynamoRowStore(table),
        DynamoRegistryStore(table),
        DynamoAuditLog(table),
        DynamoStatsStore(table),
        table.close,
    )
