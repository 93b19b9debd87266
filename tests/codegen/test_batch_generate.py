"""The generator: golden files, determinism, and every generated DAG importing in a DagBag."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from batch_support import FEATURES, GOLDEN
from click.testing import CliRunner

from codegen.cli import cli
from codegen.render import GENERATED_MARKER, TASK_IDS, render_dag
from codegen.spec import decode_spec
from codegen.sync import sync_once
from codegen.validate import validate_features

pytestmark = pytest.mark.airflow


def _generate(features: Path, out: Path) -> dict[str, str]:
    report = sync_once(features, out)
    assert report.ok, [str(d) for d in report.diagnostics]
    return {p.name: p.read_text() for p in sorted(out.glob("*.py"))}


def test_matches_the_golden_files(tmp_path: Path) -> None:
    """tests/codegen/golden holds what the examples generate; regenerate it with
    dsfeatures-codegen generate features --out tests/codegen/golden."""
    got = _generate(FEATURES, tmp_path / "dags")
    want = {p.name: p.read_text() for p in sorted(GOLDEN.glob("*.py"))}
    assert (
        sorted(got)
        == sorted(want)
        == ["dsf_driver_daily_stats_v1.py", "dsf_rider_ride_stats_v1.py"]
    )
    for name in want:
        assert got[name] == want[name], f"{name} differs from its golden file"


def test_regenerating_gives_no_diff(tmp_path: Path) -> None:
    out = tmp_path / "dags"
    first = _generate(FEATURES, out)
    report = sync_once(FEATURES, out)
    assert not report.changed
    assert sorted(report.unchanged) == sorted(first)
    # The output depends on the files, not on where the features folder is.
    moved = shutil.copytree(FEATURES, tmp_path / "elsewhere" / "features")
    assert _generate(moved, tmp_path / "dags2") == first


def test_generated_file_shape() -> None:
    report = validate_features(FEATURES)
    spec = next(s for s in report.specs if s.config.name == "rider_ride_stats")
    text = render_dag(spec)
    assert text.startswith(GENERATED_MARKER + "\n")
    assert text == render_dag(spec)
    start = text.index('SPEC = r"""\n') + len('SPEC = r"""\n')
    embedded = decode_spec(text[start : text.index('\n"""', start)])
    assert embedded.dag_id == "dsf_rider_ride_stats_v1"
    assert embedded.definition == spec.definition
    assert embedded.config.schema_uri == ""
    assert f'SQL = """\n{spec.sql}"""' in text


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    out = tmp_path / "dags"
    runner = CliRunner()
    stale = runner.invoke(cli, ["generate", str(FEATURES), "--out", str(out), "--check"])
    assert stale.exit_code == 1
    assert "2 DAG files would change (2 created" in stale.output
    assert not out.exists() or not any(out.iterdir())
    done = runner.invoke(cli, ["generate", str(FEATURES), "--out", str(out)])
    assert done.exit_code == 0, done.output
    again = runner.invoke(cli, ["generate", str(FEATURES), "--out", str(out), "--check"])
    assert again.exit_code == 0, again.output


def test_every_generated_dag_imports_in_a_dagbag(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    out = tmp_path / "dags"
    _generate(FEATURES, out)
    for folder in (out, GOLDEN):
        bag = DagBag(dag_folder=str(folder))
        assert bag.import_errors == {}
        assert sorted(bag.dags) == ["dsf_driver_daily_stats_v1", "dsf_rider_ride_stats_v1"]

    bag = DagBag(dag_folder=str(out))
    dag = bag.dags["dsf_rider_ride_stats_v1"]
    assert [t.task_id for t in dag.topological_sort()] == list(TASK_IDS)
    for upstream, downstream in itertools.pairwise(TASK_IDS):
        assert dag.task_dict[upstream].downstream_task_ids == {downstream}
    assert dag.timetable.expression == "0 4 * * *"
    assert dag.timetable.interval == timedelta(days=1)
    assert dag.start_date == datetime(2026, 11, 2, tzinfo=UTC)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.tags) >= {"dsfeatures", "batch", "tier2", "rides"}
    compute = dag.task_dict["compute_offline"]
    assert compute.retries == 2
    assert compute.retry_delay == timedelta(minutes=5)
    assert compute.execution_timeout == timedelta(minutes=120)
    assert compute.owner == "pricing"


def test_the_day_a_run_computes() -> None:
    from types import SimpleNamespace

    from codegen.steps import run_day

    nov26 = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    assert run_day({"logical_date": nov26}).isoformat() == "2026-11-25"
    # Late in the evening elsewhere is already the next day in UTC.
    evening = datetime.fromisoformat("2026-11-25T21:00:00-05:00")
    assert run_day({"logical_date": evening}).isoformat() == "2026-11-25"
    manual = {"logical_date": None, "dag_run": SimpleNamespace(run_after=nov26)}
    assert run_day(manual).isoformat() == "2026-11-25"
