"""Run by the Feast-client test under .venv-feast: Feast's own FeatureStore, with a remote
online store pointing at dsfeatures, reads features and prints them as JSON.

Usage: python feast_client_probe.py URL REPO_DIR REQUEST_JSON
REQUEST_JSON: {"view": NAME, "entity": JOIN_KEY, "features": {NAME: FEAST_TYPE},
               "refs": [...], "rows": [{JOIN_KEY: ID}, ...], "full_feature_names": bool}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd


def main() -> None:
    url, repo_dir, spec = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    repo_dir.mkdir(parents=True, exist_ok=True)
    (repo_dir / "feature_store.yaml").write_text(
        f"project: dsf_probe\nregistry: {repo_dir}/registry.db\nprovider: local\n"
        f"online_store:\n  type: remote\n  path: {url}\n"
        "entity_key_serialization_version: 3\n"
    )
    pd.DataFrame(
        {spec["entity"]: ["x"], "event_timestamp": [pd.Timestamp("2026-01-01", tz="UTC")]}
    ).to_parquet(repo_dir / "source.parquet")
    fields = ", ".join(
        f'Field(name="{name}", dtype={ftype})' for name, ftype in spec["features"].items()
    )
    (repo_dir / "definitions.py").write_text(
        "from datetime import timedelta\n"
        "from feast import Entity, FeatureView, Field, FileSource, ValueType\n"
        "from feast.types import Array, Bool, Bytes, Float32, Float64, Int64, String, "
        "UnixTimestamp\n"
        f'entity = Entity(name="{spec["entity"]}", join_keys=["{spec["entity"]}"], '
        "value_type=ValueType.STRING)\n"
        f'source = FileSource(path="{repo_dir}/source.parquet", '
        'timestamp_field="event_timestamp")\n'
        f'view = FeatureView(name="{spec["view"]}", entities=[entity], '
        f"ttl=timedelta(days=3650), schema=[{fields}], source=source, online=True)\n"
    )
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    done = subprocess.run([feast, "apply"], cwd=repo_dir, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"feast apply failed:\n{done.stdout}\n{done.stderr}")
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo_dir))
    out = store.get_online_features(
        features=spec["refs"],
        entity_rows=spec["rows"],
        full_feature_names=spec.get("full_feature_names", False),
    ).to_dict()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
