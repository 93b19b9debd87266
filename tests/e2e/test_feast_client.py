"""The Feast-compatible endpoint driven by Feast's own client (FeatureStore with a remote
online store pointing at dsfeatures), installed in .venv-feast by scripts/feast/setup.sh."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dsf_e2e import Names

from dsfeatures.client import Client
from tests.servers.plugin import unavailable

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FEAST_PYTHON = REPO / ".venv-feast" / "bin" / "python"
PROBE = Path(__file__).with_name("feast_client_probe.py")


def _feast_python() -> Path:
    if not FEAST_PYTHON.exists():
        unavailable(".venv-feast is missing: run scripts/feast/setup.sh")
    return FEAST_PYTHON


def test_feast_client_reads_through_the_remote_online_store(
    base_url: str, client: Client, names: Names, tmp_path: Path
) -> None:
    python = _feast_python()
    etype = names.etype()
    view = names.group("fstats")
    client.register_group(
        {
            "name": view,
            "version": 1,
            "entity_type": etype,
            "features": [
                {"name": "trips_7d", "type": "int64", "default": 0},
                {"name": "avg_fare", "type": "float64"},
                {"name": "city", "type": "string"},
                {"name": "premium", "type": "bool"},
                {"name": "tags", "type": "list<string>"},
            ],
            "owner": {"team": "t"},
        }
    )
    client.write(
        [
            {
                "group": view,
                "entity_id": "a1",
                "values": {
                    "trips_7d": 9,
                    "avg_fare": 3.0,
                    "city": "sf",
                    "premium": True,
                    "tags": ["x", "y"],
                },
            },
            {"group": view, "entity_id": "a2", "values": {"trips_7d": 4, "avg_fare": 12.5}},
        ]
    )
    spec = {
        "view": view,
        "entity": etype,
        "features": {
            "trips_7d": "Int64",
            "avg_fare": "Float64",
            "city": "String",
            "premium": "Bool",
            "tags": "Array(String)",
        },
        "refs": [f"{view}:{f}" for f in ("trips_7d", "avg_fare", "city", "premium", "tags")],
        "rows": [{etype: "a1"}, {etype: "a2"}, {etype: "nobody"}],
    }
    done = subprocess.run(
        [str(python), str(PROBE), base_url, str(tmp_path / "repo"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got[etype] == ["a1", "a2", "nobody"]
    assert got["trips_7d"] == [9, 4, 0]  # the default for a missing entity
    assert got["avg_fare"] == [3.0, 12.5, None]
    assert got["city"] == ["sf", None, None]
    assert got["premium"] == [True, None, None]
    assert got["tags"] == [["x", "y"], None, None]
    # full feature names, through the same client
    spec["full_feature_names"] = True
    spec["rows"] = [{etype: "a2"}]
    done = subprocess.run(
        [str(python), str(PROBE), base_url, str(tmp_path / "repo2"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got[f"{view}__trips_7d"] == [4]
    assert got[f"{view}__avg_fare"] == [12.5]
