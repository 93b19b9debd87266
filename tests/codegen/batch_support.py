"""Helpers of the batch-lane tests: paths, days, independent oracles, the daemon's records.

The oracles recompute the example features in plain Python from the generated sample
rows, so the Spark, DuckDB and daemon answers are checked against something that shares
no code with them.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from dsfeatures.stores.record import Record, decode_record

REPO = Path(__file__).resolve().parents[2]
FEATURES = REPO / "features"
GOLDEN = Path(__file__).resolve().parent / "golden"


def today() -> date:
    """Today in UTC."""
    return datetime.now(UTC).date()


def ago(days: int) -> date:
    """The UTC day ``days`` before today."""
    return today() - timedelta(days=days)


def copy_features(dest: Path) -> Path:
    """A private copy of the repository's features folder (tests edit it)."""
    shutil.copytree(FEATURES, dest)
    return dest


def day_end(ds: date) -> datetime:
    """Midnight UTC after ``ds``."""
    return datetime(ds.year, ds.month, ds.day, tzinfo=UTC) + timedelta(days=1)


def rider_stats(rows: list[dict[str, Any]], ds: date) -> dict[str, dict[str, Any]]:
    """rider_ride_stats for ``ds``, computed in Python (7 days ending on ds)."""
    first = ds - timedelta(days=6)
    by_rider: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if first <= r["ds"] <= ds:
            by_rider[r["rider_id"]].append(r)
    out = {}
    for rider, rs in by_rider.items():
        done = [r for r in rs if r["status"] == "completed"]
        fares = [r["fare"] for r in done]
        out[rider] = {
            "trips_7d": len(done),
            "cancel_rate_7d": sum(r["status"] == "cancelled" for r in rs) / len(rs),
            "avg_fare_7d": sum(fares) / len(fares) if fares else None,
            "spend_7d": sum(fares) if fares else 0.0,
            "last_ride_at": max((r["ended_at"] for r in done), default=None),
        }
    return out


def driver_day(rows: list[dict[str, Any]], ds: date) -> dict[str, dict[str, Any]]:
    """driver_daily_stats computed for ``ds`` alone (hourly rollup, no carryover)."""
    hours: dict[str, dict[datetime, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["ds"] == ds and r["status"] == "completed":
            h = r["requested_at"].replace(minute=0, second=0, microsecond=0)
            hours[r["driver_id"]][h].append(r)
    out = {}
    for driver, by_hour in hours.items():
        means = []
        for rs in by_hour.values():
            rated = [r["rating"] for r in rs if r["rating"] is not None]
            if rated:
                means.append(sum(rated) / len(rated))
        out[driver] = {
            "trips_day": sum(len(rs) for rs in by_hour.values()),
            "peak_hour_trips": max(len(rs) for rs in by_hour.values()),
            "earnings_day": sum(r["fare"] for rs in by_hour.values() for r in rs),
            "distance_km_day": sum(r["distance_km"] for rs in by_hour.values() for r in rs),
            "rating_day": sum(means) / len(means) if means else None,
            "hour_start": max(by_hour),
            "computed_ds": ds,
        }
    return out


def driver_with_carryover(
    rows: list[dict[str, Any]], days: list[date], max_days: int
) -> dict[str, dict[str, Any]]:
    """driver_daily_stats of the last of ``days`` after running each day in order."""
    partition: dict[str, dict[str, Any]] = {}
    for ds in days:
        fresh = driver_day(rows, ds)
        carried = {
            d: v
            for d, v in partition.items()
            if d not in fresh and (ds - v["computed_ds"]).days <= max_days
        }
        partition = {**carried, **fresh}
    return partition


def stored_records(data_dir: Path, group: str, version: int) -> dict[str, Record]:
    """The daemon's stored rows of one group version (read-only, from its SQLite file).

    The write path's metadata (lane, writer) is not on the read API; the store holds it.
    """
    con = sqlite3.connect(f"file:{data_dir / 'dsfeatures.db'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT entity_id, record FROM rows WHERE grp = ? AND version = ?", (group, version)
        ).fetchall()
    finally:
        con.close()
    return {entity_id: decode_record(blob) for entity_id, blob in rows}
