"""Prometheus metrics of the service layer (the API layer adds request metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "BATCH_ENTITIES",
    "CACHE_LOOKUPS",
    "STORE_LATENCY",
    "WRITE_ROWS",
]

_LAT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

STORE_LATENCY = Histogram(
    "dsf_store_seconds",
    "Latency of store calls",
    ["store", "op"],
    buckets=_LAT_BUCKETS,
)
CACHE_LOOKUPS = Counter("dsf_cache_lookups_total", "Cache lookups by result", ["result"])
BATCH_ENTITIES = Histogram(
    "dsf_batch_entities",
    "Entity rows per BatchGet",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)

WRITE_ROWS = Counter("dsf_write_rows_total", "Rows written by lane and outcome", ["lane", "status"])
