"""dsfeatures beside Feast and a bare reference server, in one interleaved run.

One command (``make bench-compare``)::

    .venv/bin/python bench/compare.py [--slice 5] [--rounds 3] [--quick] [--targets ...]

What it does, every server on a free loopback port, every process stopped by PID at the
end (also on failure or Ctrl-C):

1. Starts ValKey and dynalite; makes Feast's virtualenv from
   ``bench/feast-requirements.txt`` if needed (``.venv-feast`` through the project's
   ``scripts/feast/setup.sh``; ``bench/.feast-venv`` where that script is missing).
2. Generates 100,000 rows (seed 42) of one entity (``rider``) with 10 features and loads
   the same rows into: Feast (parquet -> ``feast apply`` -> ``feast materialize`` into its
   Redis layout in the ValKey); dsfeatures on DynamoDB (dynalite) + ValKey and dsfeatures
   embedded (register a group, write through ``POST /v1/features/write``); the bare
   server (one msgpack blob per entity in the same ValKey).
3. Starts ``feast serve`` (2 workers), the dsfeatures daemons (1 worker each; the
   DynamoDB + ValKey one also with 2 workers) and ``bench/bare_server.py``; reads every
   row once through each (cache-hit path from then on) and checks every value.
4. Closed loop: for each batch size (1, 10, 100 entities x 10 features) runs ``rounds``
   slices of ``--slice`` seconds per target with wrk at concurrency 8, round-robin across
   targets (order rotated each round), reading each server's CPU from /proc around each
   slice.
5. Open loop: 100-entity requests at half of Feast's measured capacity, per target.
6. Prints and saves a table with ratios (``bench/results/compare-<UTC time>.json``,
   ``bench/RESULTS.md``) and checks the performance issue's targets.

Linux only (reads /proc). Needs ``valkey-server`` and ``node`` on PATH and dynalite in
``.servers/node/node_modules`` (scripts/servers/install.sh), and ``wrk`` for the closed
loop (an aiohttp generator process stands in without it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import loadgen, stack  # noqa: E402
from bench.dataset import (  # noqa: E402
    FEATURE_NAMES,
    FEATURES,
    Row,
    bare_body,
    dsf_body,
    feast_body,
    make_rows,
    request_id_lists,
)
from bench.procstat import (  # noqa: E402
    cpu_seconds,
    git_commit,
    host_busy_seconds,
    machine,
    package_versions,
)
from bench.report import RESULTS_DIR, write_results_md  # noqa: E402
from tests.servers.process import ManagedServer  # noqa: E402

ALL_TARGETS = ("feast", "dsf-dv", "dsf-dv-nometa", "dsf-emb", "dsf-dv-w2", "bare")


@dataclass
class Target:
    """One server under test and how to ask it for ids."""

    name: str
    label: str
    server: ManagedServer
    path: str
    body: Callable[[Sequence[str]], bytes]
    kind: str  # "feast" | "dsf" | "bare"

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}{self.path}"

    @property
    def pid(self) -> int:
        assert self.server.pid is not None
        return self.server.pid


# --- correctness and warm-up ---------------------------------------------------------------


def check_answer(kind: str, payload: dict[str, Any], rows: Sequence[Row]) -> str | None:
    """None if ``payload`` holds exactly ``rows``' values, all PRESENT; else what differs."""
    if kind == "feast":  # columns: the join key, then the features in Feast's own order
        names = payload["metadata"]["feature_names"]
        if sorted(names[1:]) != sorted(FEATURE_NAMES):
            return f"feature names {names}"
        where = {name: k for k, name in enumerate(names)}
        cols = payload["results"]
        feats = [cols[where[name]] for name in FEATURE_NAMES]
        for i, (eid, values) in enumerate(rows):
            if cols[0]["values"][i] != eid:
                return f"row {i}: entity {cols[0]['values'][i]} != {eid}"
            got = [c["values"][i] for c in feats]
            statuses = [c["statuses"][i] for c in feats]
            if got != values or any(s != "PRESENT" for s in statuses):
                return f"{eid}: {got} {statuses} != {values}"
        return None
    answer = payload["rows"]
    if len(answer) != len(rows):
        return f"{len(answer)} rows for {len(rows)} entities"
    for row, (eid, values) in zip(answer, rows, strict=True):
        if row["values"] != values or any(s != "PRESENT" for s in row["statuses"]):
            return f"{eid}: {row['values']} {row['statuses']} != {values}"
    return None


async def warm_and_check(target: Target, rows: Sequence[Row], in_flight: int = 8) -> float:
    """Read every row once through ``target`` in 100-entity requests, checking each answer.

    Returns the seconds it took. Raises if any answer is wrong.
    """
    chunks = [rows[i : i + 100] for i in range(0, len(rows), 100)]
    todo = iter(chunks)
    headers = {"Content-Type": "application/json"}
    t = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:

        async def reader() -> None:
            for chunk in todo:
                body = target.body([eid for eid, _ in chunk])
                async with s.post(target.url, data=body, headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{target.name}: {r.status} {await r.text()}")
                    payload = await r.json(content_type=None)
                wrong = check_answer(target.kind, payload, chunk)
                if wrong:
                    raise RuntimeError(f"{target.name} answered wrongly: {wrong}")

        await asyncio.gather(*(reader() for _ in range(in_flight)))
    return time.monotonic() - t


# --- measurement ---------------------------------------------------------------------------


class Meter:
    """CPU of a target, the stores and the whole machine around one slice."""

    def __init__(self, store_pids: Sequence[int]) -> None:
        self.store_pids = list(store_pids)

    def read(self, pid: int) -> tuple[float, float, float]:
        stores = sum(cpu_seconds(p) for p in self.store_pids)
        return cpu_seconds(pid), stores, host_busy_seconds()


def closed_slice(
    target: Target,
    bodies: Sequence[bytes],
    concurrency: int,
    seconds: float,
    meter: Meter,
    start_at: int,
    generator: str,
) -> dict[str, Any]:
    """One closed-loop slice against ``target``; CPU read from /proc before and after."""
    s0, st0, h0 = meter.read(target.pid)
    if generator == "wrk":
        res = loadgen.run_wrk(target.url, bodies, concurrency, seconds, start_at=start_at)
    else:
        rot = list(bodies[start_at % len(bodies) :]) + list(bodies[: start_at % len(bodies)])
        res = loadgen.run_closed_aiohttp(target.url, rot, concurrency, seconds)
    s1, st1, h1 = meter.read(target.pid)
    return _slice_record(target, res, s1 - s0, st1 - st0, h1 - h0)


def open_slice(
    target: Target, bodies: Sequence[bytes], rate: float, seconds: float, meter: Meter
) -> dict[str, Any]:
    """One open-loop slice at ``rate`` requests/s."""
    s0, st0, h0 = meter.read(target.pid)
    res = loadgen.run_open_loop(target.url, bodies, rate, seconds)
    s1, st1, h1 = meter.read(target.pid)
    return _slice_record(target, res, s1 - s0, st1 - st0, h1 - h0)


def _slice_record(
    target: Target, res: loadgen.LoadResult, server: float, stores: float, host: float
) -> dict[str, Any]:
    return {
        "target": target.name,
        "requests": res.requests,
        "errors": res.errors,
        "duration_s": res.duration_s,
        "server_cpu_s": server,
        "store_cpu_s": stores,
        "loadgen_cpu_s": res.loadgen_cpu_s,
        "host_busy_s": host,
        "hist_us": res.hist_us,
    }


def aggregate(slices: Sequence[dict[str, Any]], entities: int) -> dict[str, Any]:
    """Totals over the slices of one target and case (rates from summed counts and times)."""
    req = sum(s["requests"] for s in slices)
    dur = sum(s["duration_s"] for s in slices) or 1e-9
    cpu = sum(s["server_cpu_s"] for s in slices)
    stores = sum(s["store_cpu_s"] for s in slices)
    hist = loadgen.merge_histograms(s["hist_us"] for s in slices)

    def ms(q: float) -> float | None:
        v = loadgen.percentile(hist, q)
        return None if v is None else v / 1000

    per_slice = [s["requests"] / s["duration_s"] for s in slices if s["duration_s"]]
    return {
        "target": slices[0]["target"],
        "slices": len(slices),
        "requests": req,
        "errors": sum(s["errors"] for s in slices),
        "requests_per_s": req / dur,
        "entity_rows_per_s": req * entities / dur,
        "requests_per_s_slices": [round(x, 1) for x in per_slice],
        "latency_samples": sum(hist.values()),
        "p50_ms": ms(50),
        "p90_ms": ms(90),
        "p99_ms": ms(99),
        "max_ms": (max(hist) / 1000) if hist else None,
        "server_cpu_ms_per_req": 1000 * cpu / req if req else None,
        "server_cpu_util": cpu / dur,
        "store_cpu_ms_per_req": 1000 * stores / req if req else None,
        "loadgen_cpu_util": sum(s["loadgen_cpu_s"] for s in slices) / dur,
    }


def add_ratios(aggs: list[dict[str, Any]]) -> None:
    """Ratios of each target to Feast and to the bare server (same case)."""
    by = {a["target"]: a for a in aggs}
    feast, bare = by.get("feast"), by.get("bare")
    for a in aggs:
        if feast and a is not feast and feast["entity_rows_per_s"]:
            a["rows_vs_feast"] = a["entity_rows_per_s"] / feast["entity_rows_per_s"]
            if a["server_cpu_ms_per_req"] and feast["server_cpu_ms_per_req"]:
                a["cpu_vs_feast"] = a["server_cpu_ms_per_req"] / feast["server_cpu_ms_per_req"]
            if a["p99_ms"] and feast["p99_ms"]:
                a["p99_feast_over"] = feast["p99_ms"] / a["p99_ms"]
        if bare and a is not bare and bare["entity_rows_per_s"]:
            a["rows_vs_bare"] = a["entity_rows_per_s"] / bare["entity_rows_per_s"]


def evaluate_goals(
    closed: list[dict[str, Any]], open_: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The performance issue's targets, for each single-worker dsfeatures configuration."""
    cases = {c["entities"]: {a["target"]: a for a in c["targets"]} for c in closed}
    goals: list[dict[str, Any]] = []

    def goal(target: str, text: str, measured: str, met: bool | None) -> None:
        goals.append({"target": target, "goal": text, "measured": measured, "met": met})

    for name in ("dsf-dv", "dsf-emb"):
        c100 = cases.get(100, {})
        c1 = cases.get(1, {})
        if name in c100:
            a = c100[name]
            cpu = a["server_cpu_ms_per_req"]
            if cpu is not None:
                goal(name, "100 entities: server CPU/request <= 0.45 ms", f"{cpu:.3f} ms",
                     cpu <= 0.45)  # fmt: skip
            if "rows_vs_feast" in a:
                r = a["rows_vs_feast"]
                goal(name, "100 entities, c=8: entity-rows/s >= 15x Feast", f"{r:.1f}x", r >= 15)
            if "rows_vs_bare" in a:
                r = a["rows_vs_bare"]
                goal(name, "100 entities, c=8: entity-rows/s >= 0.7x bare", f"{r:.2f}x", r >= 0.7)
            if "p99_feast_over" in a:
                f = c100["feast"]["p99_ms"]
                goal(
                    name,
                    "100 entities, c=8: p99 <= 1/20 of Feast's",
                    f"{a['p99_ms']:.2f} ms vs {f / 20:.2f} ms ({a['p99_feast_over']:.1f}x lower)",
                    a["p99_feast_over"] >= 20,
                )
        if name in c1:
            a = c1[name]
            cpu = a["server_cpu_ms_per_req"]
            if cpu is not None:
                goal(name, "1 entity: server CPU/request <= 0.15 ms", f"{cpu:.3f} ms",
                     cpu <= 0.15)  # fmt: skip
            if "rows_vs_feast" in a:
                r = a["rows_vs_feast"]
                goal(name, "1 entity, c=8: requests/s >= 4x Feast", f"{r:.1f}x", r >= 4)
        if open_:
            by = {a["target"]: a for a in open_["targets"]}
            if name in by and "feast" in by and by[name]["p99_ms"] and by["feast"]["p99_ms"]:
                goal(
                    name,
                    f"open loop at {open_['rate']:.0f} req/s (100 entities): p99 reported",
                    f"{by[name]['p99_ms']:.2f} ms vs Feast {by['feast']['p99_ms']:.2f} ms",
                    None,
                )
    return goals


# --- orchestration -------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, flush=True)


def build_targets(
    opts: argparse.Namespace, tmp: Path, ss: stack.ServerSet, rows: Sequence[Row]
) -> tuple[list[Target], list[int]]:
    """Start the stores and every selected target, load the data; return targets, store PIDs."""
    chosen = set(opts.targets)
    need_dv = bool(chosen & {"dsf-dv", "dsf-dv-nometa", "dsf-dv-w2"})
    feast_venv = stack.ensure_feast_venv(log) if "feast" in chosen else None
    valkey = ss.start(stack.valkey_server(tmp))
    store_pids = [valkey.pid]
    log(f"bench: ValKey {valkey.url} (pid {valkey.pid})")
    dv_env: dict[str, str] = {}
    if need_dv:
        dyn = ss.start(stack.dynalite_server(tmp))
        store_pids.append(dyn.pid)
        log(f"bench: dynalite {dyn.endpoint} (pid {dyn.pid})")
        stack.create_dynamodb_table(dyn.endpoint, stack.DSF_TABLE)
        dv_env = {
            "DSF_DYNAMODB_TABLE": stack.DSF_TABLE,
            "DSF_DYNAMODB_ENDPOINT": dyn.endpoint,
            "DSF_VALKEY_URL": valkey.url,
        }
    dv_toml = f'[cache]\nkey_prefix = "{stack.DSF_KEY_PREFIX}"\n'
    metadata = opts.metadata

    def dsf(ids: Sequence[str]) -> bytes:
        return dsf_body(ids, metadata)

    def bare(ids: Sequence[str]) -> bytes:
        return bare_body(ids, metadata)

    targets: dict[str, Target] = {}
    loads: list[Any] = []
    t = time.monotonic()
    if need_dv:
        d = ss.start(stack.DsfDaemon(tmp / "dsf-dv", dv_env, config_toml=dv_toml))
        targets["dsf-dv"] = Target(
            "dsf-dv", "dsfeatures, DynamoDB (dynalite) + ValKey, 1 worker", d,
            "/v1/features/get", dsf, "dsf",
        )  # fmt: skip
        loads.append(stack.load_dsfeatures(d.base, rows))
        targets["dsf-dv-nometa"] = Target(
            "dsf-dv-nometa", "the `dsf-dv` daemon asked without `include_metadata` "
            "(diagnostic: the price of metadata)", d, "/v1/features/get",
            lambda ids: dsf_body(ids, False), "dsf",
        )  # fmt: skip
    if "dsf-emb" in chosen:
        d = ss.start(stack.DsfDaemon(tmp / "dsf-emb", {}))
        targets["dsf-emb"] = Target(
            "dsf-emb", "dsfeatures, embedded (SQLite + in-process LRU), 1 worker", d,
            "/v1/features/get", dsf, "dsf",
        )  # fmt: skip
        loads.append(stack.load_dsfeatures(d.base, rows))
    if feast_venv is not None:
        repo = tmp / "feast-repo"
        loads.append(
            asyncio.to_thread(stack.prepare_feast_repo, repo, rows, valkey.port, feast_venv, log)
        )
    if "bare" in chosen:
        stack.load_bare(valkey.url, rows)

    async def load_all() -> None:
        await asyncio.gather(*loads)

    asyncio.run(load_all())
    log(f"bench: loaded {len(rows):,} rows into every target in {time.monotonic() - t:.0f} s")
    if feast_venv is not None:
        f = ss.start(stack.FeastServer(tmp / "feast", tmp / "feast-repo", feast_venv, workers=2))
        targets["feast"] = Target(
            "feast", f"Feast {_feast_version(feast_venv)} `feast serve` (gunicorn, 2 uvicorn "
            "workers), Redis online store on the same ValKey", f, "/get-online-features",
            feast_body, "feast",
        )  # fmt: skip
    if "dsf-dv-w2" in chosen:
        d = ss.start(stack.DsfDaemon(tmp / "dsf-dv-w2", dv_env, config_toml=dv_toml, workers=2))
        targets["dsf-dv-w2"] = Target(
            "dsf-dv-w2", "dsfeatures, DynamoDB (dynalite) + ValKey, 2 workers (extra row)", d,
            "/v1/features/get", dsf, "dsf",
        )  # fmt: skip
    if "bare" in chosen:
        b = ss.start(stack.BareServer(tmp / "bare", valkey.url))
        targets["bare"] = Target(
            "bare", "bare reference: aiohttp + uvloop, one MGET of pre-encoded msgpack "
            "blobs, 1 process, no features", b, "/get", bare, "bare",
        )  # fmt: skip
    ordered = [targets[n] for n in ALL_TARGETS if n in targets and n in chosen]
    for tg in ordered:
        took = asyncio.run(warm_and_check(tg, rows))
        log(f"bench: {tg.name}: pid {tg.pid}, every row read and checked in {took:.1f} s")
    return ordered, [p for p in store_pids if p is not None]


def run(opts: argparse.Namespace, tmp: Path, ss: stack.ServerSet) -> dict[str, Any]:
    host = machine()
    commit_at_start = git_commit()
    rows = make_rows(opts.entities)
    targets, store_pids = build_targets(opts, tmp, ss, rows)
    meter = Meter(store_pids)
    generator = opts.generator
    if generator == "auto":
        generator = "wrk" if loadgen.wrk_available() else "aiohttp"
    log(f"bench: closed loop with {generator}, concurrency {opts.concurrency}")
    ids = {
        size: request_id_lists(size, opts.entities, 500 if size >= 100 else 1000, seed=7 + size)
        for size in opts.sizes
    }
    bodies = {
        (t.name, size): [t.body(x) for x in ids[size]] for t in targets for size in opts.sizes
    }
    slices: dict[tuple[str, int], list[dict[str, Any]]] = {}
    other: list[float] = []
    for size in opts.sizes:  # unmeasured warm-up of each case (connections, code paths)
        for t in targets:
            closed_slice(t, bodies[(t.name, size)], opts.concurrency, 1, meter, 0, generator)
    for r in range(opts.rounds):
        for k, size in enumerate(opts.sizes):
            shift = (r + k) % len(targets)
            for t in targets[shift:] + targets[:shift]:
                rec = closed_slice(
                    t, bodies[(t.name, size)], opts.concurrency, opts.slice, meter,
                    start_at=101 * r + 7, generator=generator,
                )  # fmt: skip
                slices.setdefault((t.name, size), []).append(rec)
                busy = rec["host_busy_s"] - rec["server_cpu_s"] - rec["store_cpu_s"]
                other.append(max(0.0, busy - rec["loadgen_cpu_s"]) / rec["duration_s"])
                log(
                    f"bench: round {r + 1}/{opts.rounds} {size:>3} entities {t.name:<10} "
                    f"{rec['requests'] / rec['duration_s']:>8,.0f} req/s  server CPU "
                    f"{1000 * rec['server_cpu_s'] / max(1, rec['requests']):.3f} ms/req  "
                    f"errors {rec['errors']}"
                )
    closed = []
    for size in opts.sizes:
        aggs = [aggregate(slices[(t.name, size)], size) for t in targets]
        add_ratios(aggs)
        closed.append({"entities": size, "targets": aggs})
    open_: dict[str, Any] | None = None
    feast100 = next(
        (a for c in closed if c["entities"] == 100 for a in c["targets"] if a["target"] == "feast"),
        None,
    )
    rate = opts.open_rate or (feast100["requests_per_s"] * opts.open_fraction if feast100 else 0)
    if rate > 0 and opts.open_rounds > 0 and 100 in ids:
        log(f"bench: open loop, 100 entities at {rate:.0f} requests/s")
        oslices: dict[str, list[dict[str, Any]]] = {}
        for r in range(opts.open_rounds):
            shift = r % len(targets)
            for t in targets[shift:] + targets[:shift]:
                rec = open_slice(t, bodies[(t.name, 100)], rate, opts.open_seconds, meter)
                oslices.setdefault(t.name, []).append(rec)
        aggs = [aggregate(oslices[t.name], 100) for t in targets]
        add_ratios(aggs)
        open_ = {
            "entities": 100,
            "rate": rate,
            "fraction": (rate / feast100["requests_per_s"]) if feast100 else 0.0,
            "targets": aggs,
        }
    commit, dirty = commit_at_start
    moved = git_commit()[0]
    versions = package_versions(("dsfeatures", "aiohttp", "msgspec", "uvloop", "redis", "hiredis"))
    feast_label = next((t.label for t in targets if t.name == "feast"), "")
    versions["feast"] = feast_label.split(" ")[1] if feast_label else "-"
    versions["valkey"] = _first_line(["valkey-server", "--version"]).split(" ")[2].strip("v=")
    versions["wrk"] = _first_line(["wrk", "-v"]).split(" ")[1] if generator == "wrk" else "-"
    return {
        "benchmark": "compare",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "git_dirty": dirty,
        "git_commit_at_end": moved,
        "machine": host,
        "versions": versions,
        "config": {
            "entities": opts.entities,
            "features": len(FEATURES),
            "metadata": opts.metadata,
            "concurrency": opts.concurrency,
            "rounds": opts.rounds,
            "slice_s": opts.slice,
            "sizes": opts.sizes,
            "generator": generator,
            "open_rounds": opts.open_rounds,
            "open_s": opts.open_seconds,
        },
        "targets": [{"name": t.name, "label": t.label} for t in targets],
        "other_cpu": {
            "median": statistics.median(other) if other else 0.0,
            "max": max(other) if other else 0.0,
        },
        "closed": closed,
        "open": open_,
        "goals": evaluate_goals(closed, open_),
        "slices": [
            {k: v for k, v in s.items() if k != "hist_us"} | {"entities": size}
            for (_, size), case_slices in slices.items()
            for s in case_slices
        ],
    }


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "- - -"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "- - -"


def _feast_version(venv: Path) -> str:
    py = venv / "bin" / "python"
    code = "from importlib.metadata import version; print(version('feast'))"
    return _first_line([str(py), "-c", code])


def print_summary(result: dict[str, Any]) -> None:
    for case in result["closed"]:
        for a in case["targets"]:
            extra = ""
            if "rows_vs_feast" in a:
                extra += f"  {a['rows_vs_feast']:.1f}x Feast"
            if "rows_vs_bare" in a:
                extra += f"  {a['rows_vs_bare']:.2f}x bare"
            log(
                f"{case['entities']:>4} {a['target']:<10} {a['requests_per_s']:>8,.0f} req/s "
                f"{a['entity_rows_per_s']:>10,.0f} rows/s  p50 {a['p50_ms'] or 0:.2f}  "
                f"p99 {a['p99_ms'] or 0:.2f} ms  CPU {a['server_cpu_ms_per_req'] or 0:.3f} "
                f"ms/req{extra}"
            )
    if result["open"]:
        for a in result["open"]["targets"]:
            log(
                f"open {result['open']['rate']:.0f}/s {a['target']:<10} p50 "
                f"{a['p50_ms'] or 0:.2f} p99 {a['p99_ms'] or 0:.2f} ms"
            )
    for g in result["goals"]:
        status = {True: "met", False: "MISSED", None: "reported"}[g["met"]]
        log(f"goal {g['target']:<8} {g['goal']}: {g['measured']} -> {status}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--slice",
        "--duration",
        dest="slice",
        type=float,
        default=5.0,
        help="seconds per measurement slice (whole seconds with wrk; 5)",
    )
    p.add_argument("--rounds", type=int, default=3, help="slices per target per case (3)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    p.add_argument("--sizes", default="1,10,100", help="entities per request (1,10,100)")
    p.add_argument("--entities", type=int, default=100_000, help="rows loaded (100000)")
    p.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated subset of {','.join(ALL_TARGETS)}",
    )
    p.add_argument(
        "--no-metadata",
        dest="metadata",
        action="store_false",
        help="dsfeatures without include_metadata (Feast always sends timestamps)",
    )
    p.add_argument(
        "--generator",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="closed-loop generator (auto: wrk when installed)",
    )
    p.add_argument("--open-seconds", type=float, default=10.0, help="open-loop slice (10)")
    p.add_argument("--open-rounds", type=int, default=2, help="open-loop slices per target (2)")
    p.add_argument(
        "--open-fraction",
        type=float,
        default=0.5,
        help="open-loop rate as a fraction of Feast's 100-entity capacity (0.5)",
    )
    p.add_argument(
        "--open-rate",
        type=float,
        default=0.0,
        help="open-loop requests/s (overrides --open-fraction; needed without Feast)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 10,000 rows, 1 round of 2 s, 1 open-loop slice of 3 s",
    )
    p.add_argument("--no-save", action="store_true", help="print only; write no result files")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.entities, opts.rounds, opts.slice = 10_000, 1, 2.0
        opts.open_rounds, opts.open_seconds = 1, 3.0
    opts.sizes = [int(s) for s in opts.sizes.split(",") if s]
    opts.targets = [t for t in opts.targets.split(",") if t]
    unknown = set(opts.targets) - set(ALL_TARGETS)
    if unknown:
        p.error(f"--targets: unknown {sorted(unknown)}")
    if any(not 1 <= s <= min(opts.entities, 1000) for s in opts.sizes):
        p.error("--sizes: each size must be between 1 and min(--entities, 1000)")
    if opts.entities % 100:
        p.error("--entities: a multiple of 100")
    return opts


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    if not Path("/proc/self/stat").exists():
        sys.exit("bench: needs Linux (/proc)")
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the servers on SIGTERM too
    tmp = Path(tempfile.mkdtemp(prefix="dsf-compare-"))
    ss = stack.ServerSet()
    try:
        result = run(opts, tmp, ss)
    except KeyboardInterrupt:
        log("bench: interrupted; stopping every server")
        return 130
    finally:
        ss.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print_summary(result)
    if opts.no_save:
        print(json.dumps({k: v for k, v in result.items() if k != "slices"}, indent=2))
    else:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = result["date"].replace("-", "").replace(":", "")
        path = RESULTS_DIR / f"compare-{stamp}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        md = write_results_md()
        log(f"bench: wrote {path.relative_to(ROOT)} and {md.relative_to(ROOT)}")
    errors = sum(a["errors"] for c in result["closed"] for a in c["targets"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
