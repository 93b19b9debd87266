"""What the catalog page tests put in the daemon: 2,000 generated groups and a few
hand-made ones whose pages the tests read (shared by conftest.py and the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.dsf_e2e import Daemon

REPO = Path(__file__).resolve().parents[2]
#: Screenshots and other files a person may want to look at after a run (gitignored).
ARTIFACTS = REPO / "test-artifacts"

GENERATED = 2000
GROUP = "ui_rider_stats"
UPSTREAM = "ui_rider_profile"
DOWNSTREAM = "ui_rider_trip_stats"
SAME_SQL = "ui_city_same_sql"
ENTITY = "ui_rider"
BATCH_ROWS = 40
STREAM_ROWS = 15

_ENTITY_TYPES = [
    "rider",
    "driver",
    "ride",
    "city",
    "merchant",
    "courier",
    "vehicle",
    "route",
    "region",
    "device",
    "account",
    "order",
    "restaurant",
    "scooter",
    "station",
    "trip_request",
    "payment",
    "promotion",
    "session",
    "venue",
]
_TEAMS = [f"team_{w}" for w in ("pricing", "eta", "fraud", "growth", "maps", "safety")] + [
    f"team_{i:02d}" for i in range(24)
]
_TOPICS = [
    "activity",
    "spend",
    "eta",
    "quality",
    "demand",
    "supply",
    "risk",
    "ratings",
    "cancels",
    "tips",
]
_FEATURES = [
    "count",
    "sum_amount",
    "mean_duration",
    "max_distance",
    "min_wait",
    "ratio_accepted",
    "last_seen",
    "score",
]
_WINDOWS = ["1h", "24h", "7d", "30d"]


def generated_group(i: int) -> dict[str, Any]:
    """The ``i``-th generated group: varied names, owners, tags and features."""
    et = _ENTITY_TYPES[i % len(_ENTITY_TYPES)]
    topic = _TOPICS[(i // len(_ENTITY_TYPES)) % len(_TOPICS)]
    win = _WINDOWS[i % len(_WINDOWS)]
    n = 4 + i % 5
    feats = [
        {
            "name": f"{_FEATURES[(i + j) % len(_FEATURES)]}_{win}_{j}",
            "type": "float64" if j % 2 else "int64",
            "description": f"{topic} signal {j} of {et} over {win}",
        }
        for j in range(n)
    ]
    return {
        "name": f"{et}_{topic}_{i:04d}",
        "version": 1,
        "entity_type": et,
        "features": feats,
        "owner": {"team": _TEAMS[i % len(_TEAMS)], "contact": f"oncall{i % 7}@example.com"},
        "tier": 1 + i % 4,
        "ttl_seconds": 86_400 * (1 + i % 3),
        "description": f"Generated {topic} features of each {et} (group {i}).",
        "tags": [topic, f"wave{i % 5}"],
        "lineage": {"sources": [f"hive.{et}_events", f"hive.{topic}_daily"]},
    }


def special_groups() -> list[dict[str, Any]]:
    """The groups the tests look at, in registration order (upstream first)."""
    owner = {"team": "pricing", "contact": "pricing@example.com"}
    v1 = {
        "name": GROUP,
        "version": 1,
        "entity_type": ENTITY,
        "features": [
            {"name": "trips_7d", "type": "int64", "default": 0, "description": "rides in 7 days"},
            {"name": "avg_fare", "type": "float64", "description": "mean fare in USD"},
        ],
        "owner": owner,
        "tier": 2,
        "ttl_seconds": 86_400,
        "description": "Rider ride statistics for pricing",
        "tags": ["rides", "pricing"],
        "lineage": {
            "sources": ["hive.rides", "hive.payments"],
            "upstream_groups": [UPSTREAM],
            "sql_fingerprint": "sqlfp_ui_rider_stats_v1",
        },
    }
    v2 = {
        **v1,
        "version": 2,
        "features": [
            *v1["features"],
            {"name": "home_city", "type": "string", "default": "", "description": "most used city"},
        ],
        "carryover": {"max_days": 3},
        "rollup": {
            "source_period": "hour",
            "target_period": "day",
            "aggregations": {"trips_7d": "sum"},
        },
        "lineage": {**v1["lineage"], "sql_fingerprint": "sqlfp_ui_rider_stats_v2"},
    }
    upstream = {
        "name": UPSTREAM,
        "version": 1,
        "entity_type": ENTITY,
        "features": [{"name": "signup_days", "type": "int64"}],
        "owner": {"team": "growth"},
        "description": "Rider profile basics",
        "lineage": {"sources": ["hive.riders"]},
    }
    downstream = {
        "name": DOWNSTREAM,
        "version": 1,
        "entity_type": ENTITY,
        "features": [
            {"name": "trip_count_7d", "type": "int64"},
            {"name": "mean_fare", "type": "float64"},
            {"name": "home_city", "type": "string"},
        ],
        "owner": {"team": "marketplace"},
        "description": "Another team's rider trip statistics",
        "lineage": {"sources": ["hive.rides"], "upstream_groups": [GROUP]},
    }
    same_sql = {
        "name": SAME_SQL,
        "version": 1,
        "entity_type": "ui_city",
        "features": [{"name": "rides_per_hour", "type": "float64"}],
        "owner": {"team": "maps"},
        "lineage": {"sql_fingerprint": "sqlfp_ui_rider_stats_v2"},
    }
    return [upstream, v1, v2, downstream, same_sql]


@dataclass
class Catalog:
    """The catalog daemon and what was put in it."""

    daemon: Daemon
    url: str
    groups: int
    register_seconds: float
    #: Response bodies of the special registrations, by ``name@version``.
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Rows written to GROUP v2, per lane.
    rows: dict[str, int] = field(default_factory=dict)
