"""Data-quality checks on one day's offline partition (Spark).

All per-row checks (nulls, uniqueness, ranges, freshness) are computed in one
aggregation over the partition; the row-count check compares with the previous
partition's count, a cheap metadata-guided read. Every check gives a
:class:`CheckResult`; the DAG fails the run on any failed one, before the online write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from codegen.spark import partition_count, previous_partition, read_partition
from codegen.spec import JobSpec

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

__all__ = ["CheckResult", "run_checks", "summarize"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: ``kind:column`` (``not_null:trips_7d``, ``row_count``...).
        passed: whether it held.
        detail: what was observed and expected.
    """

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (XCom)."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def summarize(results: list[CheckResult]) -> str:
    """One line per failed check (or ``all N checks passed``)."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return f"all {len(results)} checks passed"
    return "; ".join(f"{r.name}: {r.detail}" for r in failed)


def run_checks(spark: SparkSession, job: JobSpec, ds: date) -> list[CheckResult]:
    """Run the config's checks on the ``ds`` partition of the offline table.

    The entity key is always checked non-null and unique.
    """
    from pyspark.sql import functions as F

    c = job.config
    checks = c.checks
    df = read_partition(spark, job.offline_table, ds)
    exprs: dict[str, Column] = {"rows": F.count(F.lit(1))}
    not_null = list(dict.fromkeys([c.entity_key, *checks.not_null]))
    unique = list(dict.fromkeys([c.entity_key, *checks.unique]))
    for col in not_null:
        exprs[f"null:{col}"] = F.sum(F.when(F.col(col).isNull(), 1).otherwise(0))
    for col in unique:
        exprs[f"nonnull:{col}"] = F.count(F.col(col))
        exprs[f"distinct:{col}"] = F.count_distinct(F.col(col))
    for col, rng in sorted(checks.ranges.items()):
        cond = F.lit(False)
        if rng.min is not None:
            cond = cond | (F.col(col) < F.lit(rng.min))
        if rng.max is not None:
            cond = cond | (F.col(col) > F.lit(rng.max))
        exprs[f"out:{col}"] = F.sum(F.when(cond, 1).otherwise(0))
        exprs[f"min:{col}"] = F.min(F.col(col)).cast("double")
        exprs[f"max:{col}"] = F.max(F.col(col)).cast("double")
    if checks.freshness is not None:
        stamp = F.col(checks.freshness.column).cast("timestamp")
        exprs["newest"] = F.unix_micros(F.max(stamp))
    row = df.agg(*(e.alias(k) for k, e in exprs.items())).first()
    got: dict[str, Any] = row.asDict() if row is not None else {}
    n = int(got.get("rows") or 0)
    out: list[CheckResult] = []
    for col in not_null:
        nulls = int(got.get(f"null:{col}") or 0)
        out.append(CheckResult(f"not_null:{col}", nulls == 0, f"{nulls} null of {n} rows"))
    for col in unique:
        nonnull = int(got.get(f"nonnull:{col}") or 0)
        dupes = nonnull - int(got.get(f"distinct:{col}") or 0)
        out.append(CheckResult(f"unique:{col}", dupes == 0, f"{dupes} duplicate values"))
    for col, rng in sorted(checks.ranges.items()):
        bad = int(got.get(f"out:{col}") or 0)
        lo, hi = got.get(f"min:{col}"), got.get(f"max:{col}")
        detail = f"{bad} values outside [{rng.min}, {rng.max}] (observed {lo} to {hi})"
        out.append(CheckResult(f"range:{col}", bad == 0, detail))
    out.append(_row_count(spark, job, ds, n))
    if checks.freshness is not None:
        fr = checks.freshness
        end = datetime(ds.year, ds.month, ds.day, tzinfo=UTC) + timedelta(days=1)
        oldest_ok = end - timedelta(hours=fr.max_age_hours)
        newest_us = got.get("newest")
        if newest_us is None:
            out.append(CheckResult(f"freshness:{fr.column}", False, "no values"))
        else:
            newest = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(newest_us))
            ok = newest >= oldest_ok
            detail = (
                f"newest {newest.isoformat()}, must be at or after {oldest_ok.isoformat()} "
                f"({fr.max_age_hours} h before the end of {ds})"
            )
            out.append(CheckResult(f"freshness:{fr.column}", ok, detail))
    return out


def _row_count(spark: SparkSession, job: JobSpec, ds: date, n: int) -> CheckResult:
    rc = job.config.checks.row_count
    problems = []
    if n < rc.min:
        problems.append(f"fewer than {rc.min}")
    if rc.max is not None and n > rc.max:
        problems.append(f"more than {rc.max}")
    detail = f"{n} rows"
    if rc.min_ratio_to_previous is not None or rc.max_ratio_to_previous is not None:
        prev = previous_partition(spark, job.offline_table, ds)
        if prev is None:
            detail += " (no previous partition to compare with)"
        else:
            before = partition_count(spark, job.offline_table, prev)
            detail += f", {before} on {prev}"
            if before > 0:
                ratio = n / before
                if rc.min_ratio_to_previous is not None and ratio < rc.min_ratio_to_previous:
                    problems.append(f"ratio {ratio:.3f} below {rc.min_ratio_to_previous}")
                if rc.max_ratio_to_previous is not None and ratio > rc.max_ratio_to_previous:
                    problems.append(f"ratio {ratio:.3f} above {rc.max_ratio_to_previous}")
    if problems:
        detail += ": " + ", ".join(problems)
    return CheckResult("row_count", not problems, detail)
