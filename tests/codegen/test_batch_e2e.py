"""End to end: generated DAGs run with real Airflow (dag.test), real local Spark with Hive,
and the daemon as a real process.

* one day of rider_ride_stats through the CLI: the offline partition holds what an
  independent Python computation gives, and the daemon serves the same values, written
  by the batch lane;
* a failing data-quality check stops the DAG before the online write;
* a backfill of three days of driver_daily_stats (hourly rollup, carryover) writes three
  partitions and leaves the online store at the newest day's values.
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from batch_support import (
    day_end,
    driver_with_carryover,
    rider_stats,
    stored_records,
)
from click.testing import CliRunner

from codegen.cli import cli
from codegen.localrun import run_dag
from codegen.sync import sync_once
from dsfeatures.client import Client

pytestmark = [pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(600)]

RIDER_FEATURES = ["trips_7d", "cancel_rate_7d", "avg_fare_7d", "spend_7d", "last_ride_at"]
DRIVER_FEATURES = ["trips_day", "peak_hour_trips", "earnings_day", "distance_km_day", "rating_day"]


def _partition(spark: Any, table: str, ds: date, key: str) -> dict[str, dict[str, Any]]:
    rows = spark.table(table).where(f"ds = DATE'{ds.isoformat()}'").collect()
    out = {}
    for r in rows:
        d = r.asDict()
        out[d[key]] = d
    return out


def _as_utc(v: Any) -> Any:
    if isinstance(v, str):
        return datetime.fromisoformat(v)
    if isinstance(v, datetime) and v.tzinfo is None:
        # PySpark hands TIMESTAMPs back as naive local times; the JVM and TZ here are UTC.
        return v.astimezone()
    return v


def _online(base_url: str, etype: str, group: str, ids: list[str], feats: list[str]) -> Any:
    with Client(base_url, timeout=30.0) as client:
        return client.batch_get(
            {etype: ids}, [f"{group}@1:{f}" for f in feats], include_metadata=True
        )


def _amundsen_labels(folder: Path) -> set[str]:
    labels = set()
    for f in (folder / "nodes").glob("*.csv"):
        with f.open(newline="") as fh:
            for row in csv.DictReader(fh):
                labels.add(row["LABEL"])
    return labels


def test_one_day_offline_and_online(
    spark: Any,
    base_url: str,
    daemon: Any,
    sample_rows: list[dict[str, Any]],
    airflow_home: Path,
    days: dict[str, Any],
    batch_root: Path,
    features: Path,
) -> None:
    ds: date = days["single"]
    result = CliRunner().invoke(
        cli,
        [
            "run-dag",
            str(features / "rider_ride_stats"),
            "--ds",
            ds.isoformat(),
            "--airflow-home",
            str(airflow_home),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dsf_rider_ride_stats_v1 ds=" in result.output

    # The offline partition: what an independent computation gives.
    want = rider_stats(sample_rows, ds)
    offline = _partition(spark, "features.rider_ride_stats_v1", ds, "rider_id")
    assert set(offline) == set(want)
    for rider, exp in want.items():
        got = offline[rider]
        assert got["trips_7d"] == exp["trips_7d"]
        assert got["cancel_rate_7d"] == pytest.approx(exp["cancel_rate_7d"])
        assert got["spend_7d"] == pytest.approx(exp["spend_7d"])
        if exp["avg_fare_7d"] is None:
            assert got["avg_fare_7d"] is None
        else:
            assert got["avg_fare_7d"] == pytest.approx(exp["avg_fare_7d"])
        assert _as_utc(got["last_ride_at"]) == exp["last_ride_at"]
        assert got["computed_ds"] == ds

    # The daemon serves the same values, with the day's end as their event time.
    ids = sorted(offline)
    resp = _online(base_url, "rider", "rider_ride_stats", ids, RIDER_FEATURES)
    for rider, row in zip(ids, resp.rows, strict=True):
        for i, name in enumerate(RIDER_FEATURES):
            value = offline[rider][name]
            if value is None:
                assert row.statuses[i] in ("NOT_FOUND", "DEFAULTED"), (rider, name)
                continue
            assert row.statuses[i] == "PRESENT", (rider, name, row.statuses[i])
            assert _as_utc(row.values[i]) == _as_utc(value), (rider, name)
            assert row.event_times is not None
            assert row.event_times[i] == day_end(ds)

    # ... written through the batch lane, by this DAG.
    stored = stored_records(daemon.data_dir, "rider_ride_stats", 1)
    assert set(stored) == set(offline)
    assert {r.lane for r in stored.values()} == {"batch"}
    assert {r.writer for r in stored.values()} == {"airflow:dsf_rider_ride_stats_v1"}
    metrics = httpx.get(f"{base_url}/metrics", timeout=10.0).text
    assert 'dsf_write_rows_total{lane="batch",status="WRITTEN"}' in metrics

    # The registry holds the definition with lineage from the SQL.
    with Client(base_url) as client:
        reg = client.get_group_version("rider_ride_stats", 1)
    assert reg.definition.lineage.sources == ["core.rides"]
    assert len(reg.definition.lineage.sql_fingerprint) == 64

    # Amundsen's databuilder CSVs: nodes and relationships its Neo4j publisher loads.
    folder = batch_root / "amundsen" / "dsf_rider_ride_stats_v1" / f"ds={ds.isoformat()}"
    labels = _amundsen_labels(folder)
    assert {"Table", "Column", "Feature", "Feature_Group", "Application"} <= labels
    assert any((folder / "relationships").glob("*.csv"))


def test_failed_quality_check_stops_the_online_write(
    spark: Any,
    base_url: str,
    daemon: Any,
    airflow_home: Path,
    days: dict[str, Any],
    features: Path,
    tmp_path: Path,
) -> None:
    # A variant of rider_ride_stats (its own group) whose range check cannot hold.
    cfg_path = features / "rider_ride_stats" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["name"] = "rider_ride_stats_dq"
    cfg["checks"]["ranges"]["avg_fare_7d"] = {"min": 0, "max": 1}
    cfg_path.write_text(json.dumps(cfg))
    report = sync_once(features, tmp_path / "dags")
    assert report.ok, report.diagnostics
    dag_file = tmp_path / "dags" / "dsf_rider_ride_stats_dq_v1.py"

    result = run_dag(dag_file, days["dq"], airflow_home)

    assert result.state == "failed"
    assert result.tasks["register_group"] == "success"
    assert result.tasks["compute_offline"] == "success"
    assert result.tasks["check_quality"] == "failed"
    assert result.tasks["write_online"] == "upstream_failed"
    assert result.tasks["publish_metadata"] == "upstream_failed"
    assert stored_records(daemon.data_dir, "rider_ride_stats_dq", 1) == {}
    resp = _online(base_url, "rider", "rider_ride_stats_dq", ["r1", "r2"], ["spend_7d"])
    assert [r.statuses[0] for r in resp.rows] == ["DEFAULTED", "DEFAULTED"]


def test_backfill_three_days(
    spark: Any,
    base_url: str,
    daemon: Any,
    sample_rows: list[dict[str, Any]],
    airflow_home: Path,
    days: dict[str, Any],
    features: Path,
) -> None:
    first, _, last = days["backfill"]
    result = CliRunner().invoke(
        cli,
        [
            "backfill",
            str(features / "driver_daily_stats"),
            "--start",
            first.isoformat(),
            "--end",
            last.isoformat(),
            "--no-progress",
            "--airflow-home",
            str(airflow_home),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 of 3 days succeeded" in result.output

    table = "features.driver_daily_stats_v1"
    parts = {r[0] for r in spark.sql(f"SHOW PARTITIONS {table}").collect()}
    assert {f"ds={d.isoformat()}" for d in days["backfill"]} <= parts

    # The newest partition: the day's hourly rollup plus drivers carried over.
    want = driver_with_carryover(sample_rows, days["backfill"], max_days=3)
    newest = _partition(spark, table, last, "driver_id")
    assert set(newest) == set(want)
    carried = [d for d, v in want.items() if v["computed_ds"] != last]
    for driver, exp in want.items():
        got = newest[driver]
        assert got["computed_ds"] == exp["computed_ds"]
        assert got["trips_day"] == exp["trips_day"]
        assert got["peak_hour_trips"] == exp["peak_hour_trips"]
        assert got["earnings_day"] == pytest.approx(exp["earnings_day"])
        assert got["distance_km_day"] == pytest.approx(exp["distance_km_day"])
        assert _as_utc(got["hour_start"]) == exp["hour_start"]

    # The online store holds the newest day's values (carried rows with their own time).
    ids = sorted(newest)
    resp = _online(base_url, "driver", "driver_daily_stats", ids, DRIVER_FEATURES)
    for driver, row in zip(ids, resp.rows, strict=True):
        assert row.event_times is not None
        for i, name in enumerate(DRIVER_FEATURES):
            value = newest[driver][name]
            if value is None:
                assert row.statuses[i] == "NOT_FOUND", (driver, name)
                continue
            assert row.statuses[i] == "PRESENT", (driver, name)
            assert row.values[i] == value, (driver, name)
            assert row.event_times[i] == _as_utc(newest[driver]["hour_start"])
    stored = stored_records(daemon.data_dir, "driver_daily_stats", 1)
    assert set(stored) == set(newest)
    assert {r.lane for r in stored.values()} == {"batch"}
    assert carried == [d for d in ids if newest[d]["computed_ds"] != last]
