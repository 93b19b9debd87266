"""The fast local preview: a feature's Spark SQL run on DuckDB through sqlglot.

About half a second instead of a Spark start-up, on local Parquet sample data. Spark
remains the source of truth: some functions give other answers on DuckDB, silently or
with an error, and :func:`divergences` names those a query uses so the preview can
warn. ``run-sql --engine spark`` runs the exact engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import sqlglot
from sqlglot import exp

from codegen.config import SourceCatalog
from codegen.sql import parameters_for

__all__ = ["PreviewResult", "divergences", "duckdb_sql", "preview"]

# Spark functions whose DuckDB translation differs, and how (from comparing both engines).
_DIVERGENT: Final[tuple[tuple[type[exp.Expression], str], ...]] = (
    (exp.DayOfWeek, "dayofweek: DuckDB counts from Sunday = 0, Spark from Sunday = 1"),
    (exp.Quantile, "percentile: DuckDB's exact quantile interpolates differently"),
    (exp.PercentileCont, "percentile_cont: interpolation differs between the engines"),
    (exp.PercentileDisc, "percentile_disc: results may differ between the engines"),
    (exp.ApproxQuantile, "approximate percentiles differ between the engines"),
    (exp.ApproxDistinct, "approx_count_distinct differs between the engines"),
    (exp.StrToUnix, "unix_timestamp on a timestamp fails on DuckDB"),
    (exp.TimeToUnix, "unix_timestamp on a timestamp fails on DuckDB"),
    (exp.DateTrunc, "trunc(date, 'MM'|'YY'): DuckDB does not take Spark's format units"),
    (exp.UnixToTime, "timestamp_seconds fails on DuckDB"),
    (exp.TsOrDsAdd, "date_add/date_sub give a TIMESTAMP on DuckDB, a DATE on Spark"),
    (exp.DateSub, "date_add/date_sub give a TIMESTAMP on DuckDB, a DATE on Spark"),
    (exp.DateAdd, "date_add/date_sub give a TIMESTAMP on DuckDB, a DATE on Spark"),
    (exp.Div, "division by zero gives NULL on DuckDB and an error on Spark (ANSI mode)"),
)
_DIVERGENT_NAMES: Final = {
    "TIMESTAMP_SECONDS": "timestamp_seconds fails on DuckDB",
    "UNIX_TIMESTAMP": "unix_timestamp on a timestamp fails on DuckDB",
}


def divergences(sql: str) -> list[str]:
    """Warnings for the functions of ``sql`` whose DuckDB answers may differ from Spark's."""
    tree = sqlglot.parse_one(sql, read="spark")
    found: dict[str, int] = {}
    for node in tree.walk():
        for cls, why in _DIVERGENT:
            if isinstance(node, cls):
                found[why] = found.get(why, 0) + 1
        if isinstance(node, exp.Anonymous):
            why = _DIVERGENT_NAMES.get(str(node.this).upper(), "")
            if why:
                found[why] = found.get(why, 0) + 1
    return [f"{why} (used {n}x)" if n > 1 else why for why, n in found.items()]


def duckdb_sql(sql: str) -> str:
    """The query in DuckDB's dialect (parameter markers become ``$name``)."""
    return str(sqlglot.transpile(sql, read="spark", write="duckdb")[0])


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """A preview's answer.

    Attributes:
        columns: result column names.
        rows: result rows (at most the limit asked for).
        total: rows the query returned before the limit.
        sql: the DuckDB query that ran.
        warnings: functions that may give other answers on Spark.
        seconds: wall time of the query (views included).
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    total: int
    sql: str
    warnings: list[str]
    seconds: float


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def preview(
    sql: str, catalog: SourceCatalog, data_dir: Path, ds: date, limit: int = 20
) -> PreviewResult:
    """Run a feature's SQL for one day on DuckDB over Hive-layout Parquet.

    Args:
        sql: the Spark SQL.
        catalog: the source tables (each becomes a view over ``data_dir/<db>/<table>``).
        data_dir: the sample data (see :mod:`codegen.samples`).
        ds: the day.
        limit: rows kept in the result.

    Raises:
        duckdb.Error: the query fails on DuckDB (see the warnings: it may still be fine
            on Spark).
    """
    import duckdb

    warnings = divergences(sql)
    text = duckdb_sql(sql)
    started = time.monotonic()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        for full, table in sorted(catalog.tables.items()):
            db, name = full.split(".", 1)
            folder = data_dir / db / name
            if not folder.is_dir():
                continue
            part = table.partition_column
            part_type = table.columns.get(part, "date").upper()
            glob = (folder / "*" / "*.parquet").as_posix()
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{db}"')
            con.execute(
                f'CREATE OR REPLACE VIEW "{db}"."{name}" AS SELECT * FROM read_parquet('
                f"{_literal(glob)}, hive_partitioning = true, "
                f"hive_types = {{{_literal(part)}: {_literal(part_type)}}})"
            )
        params = {k: v for k, v in parameters_for(ds).items() if f"${k}" in text}
        cur = con.execute(text, params) if params else con.execute(text)
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    finally:
        con.close()
    return PreviewResult(
        columns, rows[:limit], len(rows), text, warnings, time.monotonic() - started
    )
