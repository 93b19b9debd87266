"""``bench/RESULTS.md`` from the JSON files in ``bench/results/``.

Two kinds of result files live there: ``compare-*.json`` (``bench/compare.py``: dsfeatures
beside Feast and the bare reference server) and ``batchget-*.json`` (``bench/batchget.py``:
the embedded daemon alone). RESULTS.md shows the latest comparison in full, a one-line
history of earlier comparisons, then the BatchGet runs, newest first. Both scripts call
:func:`write_results_md` after saving their JSON, so neither erases the other's tables.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "RESULTS_MD", "load_runs", "render", "write_results_md"]

BENCH = Path(__file__).resolve().parent
RESULTS_DIR = BENCH / "results"
RESULTS_MD = BENCH / "RESULTS.md"


def load_runs(prefix: str) -> list[dict[str, Any]]:
    """Every ``{prefix}-*.json`` in ``bench/results/``, newest first."""
    runs = []
    for f in sorted(RESULTS_DIR.glob(f"{prefix}-*.json"), reverse=True):
        try:
            runs.append(json.loads(f.read_text()))
        except (OSError, ValueError) as e:
            print(f"bench: skipping {f}: {e}", file=sys.stderr)
    return runs


def write_results_md() -> Path:
    """Regenerate ``bench/RESULTS.md`` from every result file."""
    RESULTS_MD.write_text(render(load_runs("compare"), load_runs("batchget")))
    return RESULTS_MD


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def _ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def _machine_line(run: dict[str, Any]) -> str:
    m = run["machine"]
    load = " / ".join(f"{x:.2f}" for x in m.get("loadavg_before", []))
    return (
        f"{m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"Linux {m['kernel']}, Python {m['python']}; load average before the run {load}"
    )


def _commit_line(run: dict[str, Any]) -> str:
    dirty = " with uncommitted changes in dsfeatures/" if run.get("git_dirty") else ""
    end = run.get("git_commit_at_end")
    moved = f", HEAD at the end `{end[:12]}`" if end and end != run["git_commit"] else ""
    return f"`{run['git_commit'][:12]}`{dirty}{moved}"


# --- comparison ----------------------------------------------------------------------------


def render_compare(run: dict[str, Any]) -> list[str]:
    """The latest comparison: setup, the closed-loop table with ratios, open loop, targets."""
    c = run["config"]
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    lines = [
        f"## Comparison with Feast: {run['date']}",
        "",
        f"- machine: {_machine_line(run)}",
        f"- commit: {_commit_line(run)}; {versions}",
        f"- data: {c['entities']:,} entities x 1 group/feature view of {c['features']} "
        f"features (5 int64, 5 float64), the same rows in every target; cache-hit path "
        f"(every row read once before measuring); dsfeatures requests with "
        f"`include_metadata: {str(c['metadata']).lower()}`, Prometheus metrics on",
        f"- load: {c['generator']} at concurrency {c['concurrency']}, {c['rounds']} rounds x "
        f"{c['slice_s']:g} s per target per case, interleaved round-robin (order rotated "
        f"each round); open loop: {c['open_rounds']} x {c['open_s']:g} s per target",
        f"- busy machine check: CPU used by other processes during the slices, "
        f"median {100 * run['other_cpu']['median']:.0f}%, max {100 * run['other_cpu']['max']:.0f}% "
        "of one core",
        "",
        "Targets:",
        "",
    ]
    lines += [f"- `{t['name']}`: {t['label']}" for t in run["targets"]]
    lines += [
        "",
        "Server CPU is utime + stime of the server's process tree (gunicorn master and "
        "workers for Feast) per request; store CPU is ValKey's + dynalite's per request. "
        "Ratios: entity-rows/s over Feast's and the bare server's at the same case; "
        "p99 ratio is Feast's p99 over this target's.",
        "",
        "### Closed loop (throughput and latency at a fixed concurrency)",
        "",
        "| entities | target | req/s | entity-rows/s | p50 ms | p99 ms | server CPU ms/req "
        "| store CPU ms/req | server CPU | rows/s vs Feast | rows/s vs bare | CPU vs Feast "
        "| p99 Feast/this | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in run["closed"]:
        for a in case["targets"]:
            lines.append(
                f"| {case['entities']} | `{a['target']}` | {_num(a['requests_per_s'])} "
                f"| {_num(a['entity_rows_per_s'])} | {_num(a['p50_ms'], '.2f')} "
                f"| {_num(a['p99_ms'], '.2f')} | {_num(a['server_cpu_ms_per_req'], '.3f')} "
                f"| {_num(a['store_cpu_ms_per_req'], '.3f')} "
                f"| {_num(100 * a['server_cpu_util'], '.0f')}% "
                f"| {_ratio(a.get('rows_vs_feast'))} | {_ratio(a.get('rows_vs_bare'))} "
                f"| {_ratio(a.get('cpu_vs_feast'))} | {_ratio(a.get('p99_feast_over'))} "
                f"| {a['errors']} |"
            )
    if run.get("open"):
        o = run["open"]
        lines += [
            "",
            f"### Open loop: {o['entities']} entities at {o['rate']:.0f} requests/s "
            f"({o['fraction']:.0%} of Feast's closed-loop capacity)",
            "",
            "Latency counts from each request's scheduled start (queueing included).",
            "",
            "| target | achieved req/s | p50 ms | p99 ms | max ms | server CPU ms/req "
            "| p99 Feast/this | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a in o["targets"]:
            lines.append(
                f"| `{a['target']}` | {_num(a['requests_per_s'])} | {_num(a['p50_ms'], '.2f')} "
                f"| {_num(a['p99_ms'], '.2f')} | {_num(a['max_ms'], '.2f')} "
                f"| {_num(a['server_cpu_ms_per_req'], '.3f')} "
                f"| {_ratio(a.get('p99_feast_over'))} | {a['errors']} |"
            )
    if run.get("goals"):
        lines += [
            "",
            "### Targets of the performance issue",
            "",
            "| target | goal | measured | status |",
            "|---|---|---:|---|",
        ]
        for g in run["goals"]:
            status = {True: "met", False: "**missed**", None: "n/a"}[g["met"]]
            lines.append(f"| `{g['target']}` | {g['goal']} | {g['measured']} | {status} |")
    return lines


def render_compare_history(runs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per earlier comparison: date, commit, the 100-entity headline."""
    if not runs:
        return []
    lines = ["", "### Earlier comparisons", ""]
    for run in runs:
        head = ""
        for case in run["closed"]:
            if case["entities"] == 100:
                parts = [
                    f"`{a['target']}` {_num(a['entity_rows_per_s'])} rows/s, "
                    f"{_num(a['server_cpu_ms_per_req'], '.3f')} ms CPU/req"
                    for a in case["targets"]
                ]
                head = "; ".join(parts)
        lines.append(f"- {run['date']}, {_commit_line(run)}: 100 entities: {head}")
    return lines


# --- batchget.py ---------------------------------------------------------------------------


def render_batchget(run: dict[str, Any]) -> list[str]:
    """One ``bench/batchget.py`` run."""
    c = run["config"]
    lines = [
        f"### {run['date']}",
        "",
        f"- machine: {_machine_line(run)}",
        f"- commit: {_commit_line(run)}; "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items()),
        f"- daemon: embedded stores (SQLite), {c['daemon_workers']} worker(s), "
        f"cache `{c['cache']}`; {c['entities']} entities x 1 group of {c['features']} features",
        f"- load: {c['clients']} aiohttp client process(es), concurrency {c['concurrency']}, "
        f"{c['warmup_s']:g} s warm-up, {c['duration_s']:g} s measured per case",
        "",
        "| entities/request | requests/s | entity-rows/s | p50 ms | p90 ms | p99 ms "
        "| daemon CPU ms/request | daemon CPU | load generator CPU | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in run["cases"]:
        per_req = k["daemon_cpu_ms_per_request"]
        if per_req is None:
            lines.append(
                f"| {k['entities_per_request']} | 0 | 0 | - | - | - | - | - | - | {k['errors']} |"
            )
            continue
        lines.append(
            f"| {k['entities_per_request']} | {k['requests_per_s']:,.0f} "
            f"| {k['entity_rows_per_s']:,.0f} | {k['p50_ms']:.2f} | {k['p90_ms']:.2f} "
            f"| {k['p99_ms']:.2f} | {per_req:.3f} | {100 * k['daemon_cpu_util']:.0f}% "
            f"| {100 * k['loadgen_cpu_util']:.0f}% | {k['errors']} |"
        )
    return lines


def render(compares: Sequence[dict[str, Any]], batchgets: Sequence[dict[str, Any]]) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# Benchmark results",
        "",
        "Generated from the JSON files in `bench/results/` by `bench/compare.py`",
        "(`make bench-compare`) and `bench/batchget.py` (`make bench`); see `bench/README.md`",
        "for what is measured and how. Server CPU is utime + stime of the server's processes",
        "over the measured window; 100% is one core.",
        "",
    ]
    if compares:
        lines += render_compare(compares[0])
        lines += render_compare_history(compares[1:])
    else:
        lines += ["No comparison with Feast recorded yet: run `bench/compare.py`."]
    lines += ["", "## BatchGet alone (`bench/batchget.py`, embedded daemon)", ""]
    if not batchgets:
        lines.append("No run recorded yet.")
    for i, run in enumerate(batchgets):
        if i:
            lines.append("")
        lines += render_batchget(run)
    return "\n".join(lines) + "\n"
