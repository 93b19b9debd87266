"""A small, deterministic sample of the source tables, for local runs and tests.

``core.rides`` (see ``features/sources.json``): ride requests of a few dozen riders and
a dozen drivers, about 160 a day, some cancelled, some without a rating. Each day is
generated from its own seed, so a day's rows do not depend on which range was asked for.
:func:`write_parquet` lays the rows out as Hive-partitioned Parquet
(``<dir>/core/rides/ds=<day>/part-00000.parquet``), which the DuckDB preview reads
directly and :func:`codegen.spark.register_sources` declares as Hive tables.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

__all__ = ["RIDES_TABLE", "generate_rides", "rides_between", "write_parquet"]

RIDES_TABLE: Final = "core.rides"
#: Columns of ``core.rides`` stored in the files (``ds`` is the partition folder).
_FILE_COLUMNS: Final = (
    "ride_id",
    "rider_id",
    "driver_id",
    "status",
    "requested_at",
    "ended_at",
    "fare",
    "distance_km",
    "rating",
)


def generate_rides(
    day: date, *, riders: int = 40, drivers: int = 12, per_day: int = 160, seed: int = 7
) -> list[dict[str, Any]]:
    """The ride requests of one day (UTC), as rows with the catalog's columns.

    Args:
        day: the day (``ds``).
        riders: riders ``r1``..``rN``.
        drivers: drivers ``d1``..``dN``.
        per_day: about how many requests (varies by up to 20 % a day).
        seed: changes every value.
    """
    rnd = random.Random(f"{seed}:{day.isoformat()}")
    count = max(1, round(per_day * rnd.uniform(0.8, 1.2)))
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    # Some drivers take the day off: their rows are carried over by driver_daily_stats.
    on_duty = [d for d in range(1, drivers + 1) if rnd.random() < 0.8] or [1]
    # A few riders ride often, many rarely: some riders have no ride in a whole week.
    weights = [1.0 / k for k in range(1, riders + 1)]
    rows: list[dict[str, Any]] = []
    for i in range(count):
        requested = midnight + timedelta(seconds=rnd.randrange(0, 86_400 - 3_600))
        distance = round(rnd.uniform(0.5, 25.0), 2)
        cancelled = rnd.random() < 0.12
        rider = rnd.choices(range(1, riders + 1), weights)[0]
        rows.append(
            {
                "ride_id": f"{day:%Y%m%d}-{i:05d}",
                "rider_id": f"r{rider}",
                "driver_id": f"d{rnd.choice(on_duty)}",
                "status": "cancelled" if cancelled else "completed",
                "requested_at": requested,
                "ended_at": None
                if cancelled
                else requested + timedelta(seconds=rnd.randrange(300, 3_000)),
                "fare": None if cancelled else round(2.5 + distance * 1.35 + rnd.uniform(0, 4), 2),
                "distance_km": None if cancelled else distance,
                "rating": None if cancelled or rnd.random() < 0.2 else rnd.randint(1, 5),
                "ds": day,
            }
        )
    return rows


def rides_between(start: date, end: date, **kwargs: Any) -> list[dict[str, Any]]:
    """Rows of every day from ``start`` to ``end`` inclusive (see :func:`generate_rides`)."""
    out: list[dict[str, Any]] = []
    day = start
    while day <= end:
        out += generate_rides(day, **kwargs)
        day += timedelta(days=1)
    return out


def write_parquet(rows: Iterable[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write ``core.rides`` rows as Hive-partitioned Parquet under ``out_dir`` (needs pyarrow).

    A day's file is replaced whole; other days are left alone.

    Returns:
        The files written, sorted.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("ride_id", pa.string()),
            ("rider_id", pa.string()),
            ("driver_id", pa.string()),
            ("status", pa.string()),
            ("requested_at", pa.timestamp("us", tz="UTC")),
            ("ended_at", pa.timestamp("us", tz="UTC")),
            ("fare", pa.float64()),
            ("distance_km", pa.float64()),
            ("rating", pa.int32()),
        ]
    )
    by_day: dict[date, list[dict[str, Any]]] = {}
    for r in rows:
        by_day.setdefault(r["ds"], []).append(r)
    db, table = RIDES_TABLE.split(".")
    written = []
    for day, day_rows in sorted(by_day.items()):
        folder = out_dir / db / table / f"ds={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        columns = {c: [r[c] for r in day_rows] for c in _FILE_COLUMNS}
        path = folder / "part-00000.parquet"
        tmp = folder / ".part-00000.parquet.tmp"
        pq.write_table(pa.table(columns, schema=schema), tmp)
        tmp.replace(path)
        written.append(path)
    return written
