"""Import weight: what the daemon's environment and the scheduler's parse loop load.

The package's top level and the CLI must import without Airflow, Spark, DuckDB, pyarrow
or databuilder (so ``.venv`` can validate and generate), and ``codegen.steps``, imported
by every generated DAG file on every scheduler parse, must not load Spark or databuilder.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from batch_support import REPO

HEAVY = ("airflow", "pyspark", "py4j", "duckdb", "pyarrow", "databuilder", "pandas")


def _loaded_after(module: str) -> set[str]:
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", ["codegen", "codegen.cli", "codegen.validate", "codegen.sync"])
def test_light_modules_load_no_toolchain(module: str) -> None:
    loaded = _loaded_after(module)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "aiohttp" not in loaded  # the SDK, not the daemon's server


def test_dag_steps_load_no_spark_or_databuilder() -> None:
    loaded = _loaded_after("codegen.steps")
    assert not loaded & {"pyspark", "py4j", "databuilder", "duckdb", "pandas"}
