"""Fixtures of the batch-lane tests: one temp root, one SparkSession, one daemon per run.

Everything lives under one temporary folder made at start-up: the Airflow home (SQLite
metadata and a DAGs folder), Spark's warehouse and Derby metastore, Amundsen's output,
the loader's checkpoints, the sample data and the daemon's data. Airflow reads its
settings when first imported, so they are set in ``pytest_configure``, before any test
module is imported.

Nothing here skips: a missing Java, PySpark or Airflow fails the run (locally and in CI
alike), with the setup command to fix it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from batch_support import ago, copy_features

from codegen.localrun import configure_airflow
from codegen.samples import rides_between, write_parquet
from codegen.settings import ENV_PREFIX, BatchSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tests.e2e.dsf_e2e import Daemon

_SETUP_HINT = "run scripts/batch/setup.sh and use .venv-batch/bin/python -m pytest tests/codegen"
_ROOT_KEY = pytest.StashKey[Path]()
#: The sample data covers these days (UTC), ending yesterday.
SAMPLE_DAYS = 14


def pytest_configure(config: pytest.Config) -> None:
    root = Path(tempfile.mkdtemp(prefix="dsf-batch-tests-"))
    config.stash[_ROOT_KEY] = root
    configure_airflow(root / "airflow")
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    for name, sub in (
        ("WAREHOUSE_DIR", "warehouse"),
        ("METASTORE_DIR", "metastore"),
        ("AMUNDSEN_DIR", "amundsen"),
        ("STATE_DIR", "state"),
    ):
        os.environ[ENV_PREFIX + name] = str(root / sub)
    os.environ[ENV_PREFIX + "SPARK_MASTER"] = "local[2]"


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_ROOT_KEY, None)
    if root is not None and not os.environ.get("DSF_KEEP_TEST_ROOT"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def batch_root(pytestconfig: pytest.Config) -> Path:
    """The run's temporary root folder."""
    return pytestconfig.stash[_ROOT_KEY]


@pytest.fixture(scope="session")
def airflow_home(batch_root: Path) -> Path:
    """The local Airflow home (already configured)."""
    return batch_root / "airflow"


@pytest.fixture(scope="session")
def sample_rows() -> list[dict[str, Any]]:
    """The generated core.rides rows (the last SAMPLE_DAYS days, ending yesterday)."""
    return rides_between(ago(SAMPLE_DAYS), ago(1))


@pytest.fixture(scope="session")
def sample_data(batch_root: Path, sample_rows: list[dict[str, Any]]) -> Path:
    """The sample rows as Hive-layout Parquet."""
    out = batch_root / "data"
    write_parquet(sample_rows, out)
    return out


@pytest.fixture
def features(tmp_path: Path) -> Path:
    """A private copy of the repository's features folder."""
    return copy_features(tmp_path / "features")


def _java_ok() -> str:
    java = shutil.which("java")
    if java is None:
        return "java is not installed (Spark 4 needs Java 17+)"
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"java -version failed: {proc.stderr.strip()}"
    return ""


@pytest.fixture(scope="session")
def spark(sample_data: Path) -> Iterator[SparkSession]:
    """The run's one SparkSession (Hive support, temp warehouse and Derby metastore),
    with the sample data declared as the source tables."""
    problem = _java_ok()
    if problem:
        pytest.fail(f"{problem}; {_SETUP_HINT}", pytrace=False)
    from batch_support import FEATURES

    from codegen.config import load_catalog
    from codegen.spark import build_session, register_sources

    session = build_session(BatchSettings.from_env(), app_name="dsfeatures-batch-tests")
    try:
        register_sources(session, load_catalog(FEATURES / "sources.json"), sample_data)
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def daemon(batch_root: Path) -> Iterator[Daemon]:
    """One ``dsfeatures serve`` process for the run; the DAG steps write to it."""
    from tests.e2e.dsf_e2e import Daemon

    d = Daemon(batch_root / "dsf-data", batch_root / "daemon.log")
    with pytest.MonkeyPatch.context() as mp:
        try:
            d.start()
            mp.setenv(ENV_PREFIX + "DAEMON_URL", d.url)
            yield d
        finally:
            d.stop()


@pytest.fixture
def base_url(daemon: Daemon) -> str:
    """The daemon's URL; fails fast if the process died."""
    return daemon.live_url()


@pytest.fixture(scope="session")
def days() -> dict[str, Any]:
    """Days the end-to-end tests compute (recent, so the groups' TTLs keep them live)."""
    return {"single": ago(2), "dq": ago(1), "backfill": [ago(3), ago(2), ago(1)]}
