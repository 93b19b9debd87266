"""A small demo dataset: three groups and a few hundred rows, loaded with ``serve --demo``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from importlib import resources

import msgspec

from dsfeatures.registry.models import FeatureGroup
from dsfeatures.service.core import Service
from dsfeatures.wire.types import WriteRequest, WriteRow

__all__ = ["demo_groups", "load_demo"]

_CITIES = ["sf", "nyc", "la", "sea", "chi"]


def demo_groups() -> list[FeatureGroup]:
    """The demo group definitions shipped in the package."""
    pkg = resources.files(__package__)
    return [
        msgspec.json.decode(pkg.joinpath(f"{name}.json").read_bytes(), type=FeatureGroup)
        for name in ("rider_stats", "driver_stats", "rider_emb")
    ]


async def load_demo(svc: Service, riders: int = 100, drivers: int = 50) -> int:
    """Register the demo groups and write rows for ``r1..rN`` and ``d1..dM`` (idempotent).

    Returns:
        How many rows were written.
    """
    for g in demo_groups():
        await svc.register(g)
    rnd = random.Random(7)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    for i in range(1, riders + 1):
        city = rnd.choice(_CITIES)
        rows.append(
            WriteRow(
                group="rider_stats",
                entity_id=f"r{i}",
                values={
                    "trips_7d": rnd.randint(0, 40),
                    "avg_fare": round(rnd.uniform(6, 60), 2),
                    "home_city": city,
                    "is_premium": rnd.random() < 0.2,
                },
                event_time=at,
            )
        )
        rows.append(
            WriteRow(
                group="rider_emb",
                entity_id=f"r{i}",
                values={"vec": [round(rnd.gauss(0, 1), 4) for _ in range(8)], "home_city": city},
                event_time=at,
            )
        )
    for i in range(1, drivers + 1):
        rows.append(
            WriteRow(
                group="driver_stats",
                entity_id=f"d{i}",
                values={
                    "acceptance_rate": round(rnd.uniform(0.5, 1.0), 3),
                    "rating": round(rnd.uniform(4.0, 5.0), 2),
                    "last_trip_at": (at - timedelta(minutes=rnd.randint(1, 5000))).isoformat(),
                },
                event_time=at,
            )
        )
    resp = await svc.write(WriteRequest(rows=rows, mode="upsert", lane="batch", writer="demo"))
    return sum(1 for r in resp.results if r.status == "WRITTEN")
