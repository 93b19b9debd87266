"""The comparison's data set and request bodies: one entity, 10 features, 100,000 rows.

The same rows (same seed) go to every target: Feast (materialized from a parquet file
into its Redis layout), dsfeatures (written through ``POST /v1/features/write``) and the
bare reference server (one msgpack blob per entity). Request bodies are made here too, so
that every target is asked for the same entities in the same order.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ENTITY_TYPE",
    "EVENT_TIME",
    "FEATURES",
    "GROUP",
    "JOIN_KEY",
    "Row",
    "bare_body",
    "dsf_body",
    "dsf_group",
    "dsf_write_bodies",
    "entity_id",
    "feast_body",
    "make_rows",
    "request_id_lists",
    "write_csv",
]

ENTITY_TYPE = "rider"
JOIN_KEY = "rider_id"
GROUP = "rider_stats"
#: RFC 3339 event time of every row (inside Feast's materialization window).
EVENT_TIME = "2026-11-01T00:00:00Z"
#: (name, type): five int64 and five float64 features.
FEATURES: tuple[tuple[str, str], ...] = (
    ("trips_7d", "int64"),
    ("trips_30d", "int64"),
    ("cancels_30d", "int64"),
    ("rides_total", "int64"),
    ("days_active", "int64"),
    ("avg_fare", "float64"),
    ("avg_rating", "float64"),
    ("p90_wait_s", "float64"),
    ("spend_30d", "float64"),
    ("tip_rate", "float64"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(n for n, _ in FEATURES)

#: One row: the entity id and the 10 values in ``FEATURES`` order.
Row = tuple[str, list[int | float]]


def entity_id(i: int) -> str:
    """The id of entity number ``i`` (``r0`` ... ``r99999``)."""
    return f"r{i}"


def make_rows(count: int, seed: int = 42) -> list[Row]:
    """``count`` deterministic rows; floats have 3 decimals, so JSON round-trips them exactly."""
    rnd = random.Random(seed)
    rows: list[Row] = []
    for i in range(count):
        values: list[int | float] = [
            rnd.randint(0, 40),
            rnd.randint(0, 160),
            rnd.randint(0, 5),
            rnd.randint(0, 5000),
            rnd.randint(0, 3650),
            round(rnd.uniform(6, 60), 3),
            round(rnd.uniform(4, 5), 3),
            round(rnd.uniform(60, 900), 3),
            round(rnd.uniform(0, 2000), 3),
            round(rnd.uniform(0, 0.3), 3),
        ]
        rows.append((entity_id(i), values))
    return rows


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """The rows as CSV (``rider_id``, ``event_timestamp``, features), for Feast's parquet."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([JOIN_KEY, "event_timestamp", *FEATURE_NAMES])
        for eid, values in rows:
            w.writerow([eid, EVENT_TIME, *values])


def dsf_group() -> dict[str, Any]:
    """The dsfeatures group with the same 10 features as Feast's feature view."""
    return {
        "name": GROUP,
        "version": 1,
        "entity_type": ENTITY_TYPE,
        "kind": "scalar",
        "features": [{"name": n, "type": t} for n, t in FEATURES],
        "owner": {"team": "bench", "contact": "bench@example.com"},
        "description": "Feast comparison: 10 rider features",
        "tags": ["bench"],
    }


def dsf_write_bodies(rows: Sequence[Row], chunk: int = 1000) -> Iterator[bytes]:
    """``POST /v1/features/write`` bodies of ``chunk`` rows each (lane batch)."""
    for start in range(0, len(rows), chunk):
        body = {
            "mode": "upsert",
            "lane": "batch",
            "writer": "bench",
            "rows": [
                {
                    "group": GROUP,
                    "entity_id": eid,
                    "values": dict(zip(FEATURE_NAMES, values, strict=True)),
                    "event_time": EVENT_TIME,
                }
                for eid, values in rows[start : start + chunk]
            ],
        }
        yield json.dumps(body, separators=(",", ":")).encode()


def request_id_lists(size: int, entities: int, count: int, seed: int) -> list[list[str]]:
    """``count`` lists of ``size`` distinct random entity ids out of ``entities``."""
    rnd = random.Random(seed)
    return [[entity_id(i) for i in rnd.sample(range(entities), size)] for _ in range(count)]


def dsf_body(ids: Sequence[str], metadata: bool) -> bytes:
    """dsfeatures ``POST /v1/features/get`` body for ``ids`` x the 10 features."""
    body = {
        "entities": {ENTITY_TYPE: list(ids)},
        "features": [f"{GROUP}:{n}" for n in FEATURE_NAMES],
        "include_metadata": metadata,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def feast_body(ids: Sequence[str]) -> bytes:
    """Feast ``POST /get-online-features`` body for ``ids`` x the 10 features."""
    body = {"features": [f"{GROUP}:{n}" for n in FEATURE_NAMES], "entities": {JOIN_KEY: list(ids)}}
    return json.dumps(body, separators=(",", ":")).encode()


def bare_body(ids: Sequence[str], metadata: bool) -> bytes:
    """The bare reference server's ``POST /get`` body."""
    return json.dumps({"ids": list(ids), "include_metadata": metadata}).encode()
