"""Running a generated DAG locally for a day, or a range of days (Airflow's ``dag.test``).

``dag.test`` runs every task in this process, in order, against a local Airflow metadata
database (SQLite), with no scheduler; a run whose SparkSession already exists reuses it.
Airflow reads its configuration when first imported, so :func:`configure_airflow` must
run before anything imports ``airflow``; the CLI does it first thing. The local Airflow
home holds ``airflow.db`` and a ``dags`` folder holding only the DAG being run (dag.test
re-parses the whole folder on each call).

A backfill is a loop of ``dag.test`` over the days in order (``airflow backfill`` needs
a running scheduler). Local runs do not retry tasks: a failure shows at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from codegen.errors import CodegenError
from codegen.render import TASK_IDS

__all__ = ["RunResult", "backfill", "configure_airflow", "migrate", "run_dag"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """One local DAG run.

    Attributes:
        dag_id: the DAG.
        ds: the day computed.
        state: the run's final state (``success``, ``failed``).
        tasks: task id to final state, in DAG order.
        seconds: wall time.
        durations: task id to seconds, for the tasks that ran.
    """

    dag_id: str
    ds: date
    state: str
    tasks: dict[str, str]
    seconds: float
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.state == "success"


def configure_airflow(home: Path) -> Path:
    """Point Airflow at a local home (SQLite metadata, a private DAGs folder).

    Must run before ``airflow`` is imported in this process. Calling it again with the
    same home is harmless.

    Returns:
        The DAGs folder.

    Raises:
        CodegenError: Airflow was already imported with another home.
    """
    home = home.resolve()
    dags = home / "dags"
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != str(home):
        raise CodegenError(
            f"Airflow is already loaded with AIRFLOW_HOME={os.environ.get('AIRFLOW_HOME')}; "
            f"cannot switch to {home} in this process"
        )
    dags.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    return dags


def migrate(home: Path) -> None:
    """Create or upgrade the local metadata database (once per home and Airflow version).

    Raises:
        CodegenError: ``airflow db migrate`` failed (its output is in the message).
    """
    from importlib.metadata import version

    stamp = home / ".dsf-migrated"
    want = version("apache-airflow")
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CodegenError(f"airflow db migrate failed:\n{proc.stdout}\n{proc.stderr}")
    stamp.write_text(want + "\n")


def _logical_date(ds: date) -> datetime:
    # The run whose feature day is ds starts on the next day (codegen.spec.feature_day).
    nxt = ds + timedelta(days=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


def run_dag(dag_file: Path, ds: date, home: Path) -> RunResult:
    """Run a generated DAG for one day with ``dag.test``, in this process.

    Args:
        dag_file: the generated DAG file.
        ds: the day to compute.
        home: the local Airflow home (see :func:`configure_airflow`).

    Returns:
        The run's state and each task's.

    Raises:
        CodegenError: the DAG file does not import, or holds no single DAG.
    """
    dags = configure_airflow(home)
    migrate(home.resolve())
    target = dags / dag_file.name
    for old in dags.glob("*.py"):
        if old != target:
            old.unlink()
    if dag_file.resolve() != target.resolve():
        shutil.copyfile(dag_file, target)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(target))
    if bag.import_errors:
        errors = "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items())
        raise CodegenError(f"{dag_file} does not import:\n{errors}")
    if len(bag.dags) != 1:
        raise CodegenError(f"{dag_file} defines {len(bag.dags)} DAGs, expected 1")
    dag = next(iter(bag.dags.values()))
    for task in dag.tasks:
        task.retries = 0
    started = time.monotonic()
    dr = dag.test(logical_date=_logical_date(ds))
    tis = list(dr.get_task_instances())
    states = {ti.task_id: str(ti.state) for ti in tis}
    durations = {
        ti.task_id: (ti.end_date - ti.start_date).total_seconds()
        for ti in tis
        if ti.start_date is not None and ti.end_date is not None
    }
    order = [t for t in TASK_IDS if t in states] + sorted(set(states) - set(TASK_IDS))
    tasks = {t: states[t] for t in order}
    return RunResult(dag.dag_id, ds, str(dr.state), tasks, time.monotonic() - started, durations)


def backfill(
    dag_file: Path,
    start: date,
    end: date,
    home: Path,
    on_run: Callable[[RunResult], None] | None = None,
    keep_going: bool = False,
) -> list[RunResult]:
    """Run a DAG for every day from ``start`` to ``end`` inclusive, oldest first.

    Args:
        dag_file: the generated DAG file.
        start: first day.
        end: last day.
        home: the local Airflow home.
        on_run: called after each day.
        keep_going: go on after a failed day (by default the backfill stops there, as
            later days' checks compare with earlier partitions).

    Returns:
        One result per day run.
    """
    if end < start:
        raise CodegenError(f"the range ends ({end}) before it starts ({start})")
    results = []
    day = start
    while day <= end:
        result = run_dag(dag_file, day, home)
        results.append(result)
        if on_run is not None:
            on_run(result)
        if not result.ok and not keep_going:
            break
        day += timedelta(days=1)
    return results
