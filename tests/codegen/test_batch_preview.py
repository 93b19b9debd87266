"""run-sql: the DuckDB preview (and its warnings) and the exact Spark run agree with Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batch_support import FEATURES, ago, rider_stats
from click.testing import CliRunner

from codegen.cli import cli
from codegen.config import load_catalog
from codegen.preview import divergences, duckdb_sql, preview


def test_duckdb_preview_matches_python(
    sample_data: Path, sample_rows: list[dict[str, Any]]
) -> None:
    ds = ago(3)
    sql = (FEATURES / "rider_ride_stats" / "query.sql").read_text()
    result = preview(sql, load_catalog(FEATURES / "sources.json"), sample_data, ds, limit=1000)
    want = rider_stats(sample_rows, ds)
    assert result.total == len(want)
    assert result.columns[:3] == ["rider_id", "trips_7d", "cancel_rate_7d"]
    for row in result.rows:
        got = dict(zip(result.columns, row, strict=True))
        exp = want[got["rider_id"]]
        assert got["trips_7d"] == exp["trips_7d"]
        assert got["spend_7d"] == pytest.approx(exp["spend_7d"])
        assert got["cancel_rate_7d"] == pytest.approx(exp["cancel_rate_7d"])
    assert "$ds" in result.sql
    assert any("date_add/date_sub" in w for w in result.warnings)
    assert any("division by zero" in w for w in result.warnings)


def test_divergent_functions_are_named() -> None:
    sql = (
        "SELECT dayofweek(d), percentile(x, 0.5), approx_count_distinct(y), "
        "unix_timestamp(ts), trunc(d, 'MM'), timestamp_seconds(s) FROM t"
    )
    found = " | ".join(divergences(sql))
    for words in (
        "dayofweek",
        "percentile",
        "approx_count_distinct",
        "unix_timestamp",
        "trunc(date, 'MM'",
        "timestamp_seconds",
    ):
        assert words in found
    assert divergences("SELECT a + 1 FROM t") == []
    assert duckdb_sql("SELECT max_by(a, b) FROM t WHERE d = :ds") == (
        "SELECT ARG_MAX(a, b) FROM t WHERE d = $ds"
    )


def test_run_sql_command_duckdb(sample_data: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run-sql",
            str(FEATURES / "driver_daily_stats"),
            "--ds",
            ago(2).isoformat(),
            "--data",
            str(sample_data),
            "--limit",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "driver_daily_stats v1" in result.output
    assert "3 shown" in result.output


@pytest.mark.spark
@pytest.mark.timeout(300)
def test_run_sql_command_spark(spark: Any, sample_rows: list[dict[str, Any]]) -> None:
    ds = ago(4)
    result = CliRunner().invoke(
        cli,
        [
            "run-sql",
            str(FEATURES / "rider_ride_stats"),
            "--ds",
            ds.isoformat(),
            "--engine",
            "spark",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(rider_stats(sample_rows, ds))} rows (20 shown)" in result.output
