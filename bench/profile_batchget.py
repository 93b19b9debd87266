"""Profile the daemon's BatchGet hot path under load with pyinstrument.

    .venv/bin/python bench/profile_batchget.py [--sizes 100,1] [--seconds 10]

Starts ValKey and dynalite, writes ``--entities`` rows (the comparison's data set) through
a dsfeatures daemon on DynamoDB + ValKey, then for each batch size restarts that daemon
(1 worker) under ``python -m pyinstrument``, reads every row once (cache-hit path from
then on), drives it with wrk at concurrency 8 for ``--seconds`` and stops it (SIGTERM:
pyinstrument writes its session on exit). Writes per size, under ``bench/profiles/``
(git-ignored): the session (``.pyisession``), an HTML flame view and a text call tree; and
prints a summary: the share of busy (non-idle) samples per function, self and inclusive,
with the daemon's requests and CPU per request measured without the profiler beside it.

``--gc`` runs the daemon under ``bench/gcwatch.py`` instead (no profiler) and prints its
garbage-collector pauses during the load beside p50/p99/max latency, for ``--store dv``
(DynamoDB + ValKey) or ``--store emb`` (embedded); ``--entities 100000`` for the
comparison's data size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen, stack  # noqa: E402
from bench.compare import Target, warm_and_check  # noqa: E402
from bench.dataset import dsf_body, make_rows, request_id_lists  # noqa: E402
from bench.procstat import cpu_seconds  # noqa: E402

PROFILES = ROOT / "bench" / "profiles"
#: Frames where the event loop waits for I/O: their self time is idle, not work.
IDLE = ("run_forever", "run_until_complete", "select", "poll", "_run_once")
#: The frame under which the server runs (dsfeatures.server).
SCOPE = "_worker_main"


def _find(frame: Any, function: str) -> Any:
    """The heaviest frame of ``function`` (breadth-first), or None."""
    level = [frame]
    while level:
        hits = [f for f in level if f.function == function]
        if hits:
            return max(hits, key=lambda f: f.time)
        level = [c for f in level for c in f.children if not c.is_synthetic]
    return None


def summarise(session_path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive time per function (file:function), as shares of busy time.

    Only the running server counts (the subtree of ``SCOPE``): start-up imports and
    configuration are left out.
    """
    from pyinstrument.session import Session

    session = Session.load(str(session_path))
    root = session.root_frame()
    if root is None:
        return {"busy_s": 0.0, "idle_s": 0.0, "self": [], "inclusive": []}
    self_t: dict[str, float] = defaultdict(float)
    incl_t: dict[str, float] = defaultdict(float)
    idle = 0.0

    def name(frame: Any) -> str:
        path = frame.file_path_short or frame.file_path or ""
        if path == "<built-in>":
            return f"{frame.function} (C)"
        return f"{frame.function} ({path}:{frame.line_no})" if path else frame.function

    def walk(frame: Any, on_stack: frozenset[str]) -> None:
        nonlocal idle
        key = name(frame)
        if key not in on_stack:  # count a recursive function once per stack
            incl_t[key] += frame.time
        own = frame.time - sum(c.time for c in frame.children if not c.is_synthetic)
        if frame.function in IDLE:
            idle += max(0.0, own)
        else:  # own time includes the synthetic [self]/[await] children's
            self_t[key] += max(0.0, own)
        for child in frame.children:
            if not child.is_synthetic:
                walk(child, on_stack | {key})

    scope = _find(root, SCOPE) or root
    walk(scope, frozenset())
    busy = sum(self_t.values())

    def ranked(d: dict[str, float]) -> list[tuple[str, float]]:
        return [(k, v / busy) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {
        "busy_s": busy,
        "idle_s": idle,
        "self": ranked(self_t),
        "inclusive": ranked({k: v for k, v in incl_t.items() if v < busy * 1.0001}),
    }


def profile_size(
    size: int,
    seconds: float,
    tmp: Path,
    dv_env: dict[str, str],
    toml: str,
    rows: Any,
    interval: float,
) -> dict[str, Any]:
    PROFILES.mkdir(parents=True, exist_ok=True)
    session = PROFILES / f"batchget-{size}.pyisession"
    session.unlink(missing_ok=True)
    wrapper = [
        sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session),
        "--interval", str(interval),
    ]  # fmt: skip
    daemon = stack.DsfDaemon(tmp / f"prof-{size}", dv_env, config_toml=toml, wrapper=wrapper)
    daemon.stop_timeout = 60
    ss = stack.ServerSet()
    try:
        ss.start(daemon)
        target = Target(
            "dsf-dv", "", daemon, "/v1/features/get", lambda i: dsf_body(i, True), "dsf"
        )
        asyncio.run(warm_and_check(target, rows))
        bodies = [dsf_body(ids, True) for ids in request_id_lists(size, len(rows), 500, seed=3)]
        assert daemon.pid is not None
        c0 = cpu_seconds(daemon.pid)
        res = loadgen.run_wrk(target.url, bodies, 8, seconds)
        c1 = cpu_seconds(daemon.pid)
    finally:
        ss.stop()
    for renderer, ext in (("html", "html"), ("text", "txt")):
        out = PROFILES / f"batchget-{size}.{ext}"
        subprocess.run(
            [sys.executable, "-m", "pyinstrument", f"--load={session}", "-r", renderer,
             "-o", str(out), "--show-all" if renderer == "text" else "--hide=*/asyncio/*"],
            check=True,
        )  # fmt: skip
    summary = summarise(session)
    summary |= {
        "entities": size,
        "requests": res.requests,
        "requests_per_s": res.requests / res.duration_s,
        "cpu_ms_per_req_profiled": 1000 * (c1 - c0) / max(1, res.requests),
        "errors": res.errors,
    }
    return summary


def gc_pauses(
    size: int,
    seconds: float,
    tmp: Path,
    env: dict[str, str],
    toml: str,
    rows: Any,
    freeze: bool,
) -> dict[str, Any]:
    """Run the daemon under bench/gcwatch.py: its collections during a wrk slice, and the
    slice's latency, to tell whether tail latency is collector pauses."""
    PROFILES.mkdir(parents=True, exist_ok=True)
    out = PROFILES / f"gc-{size}.json"
    out.unlink(missing_ok=True)
    wrapper = [sys.executable, str(ROOT / "bench" / "gcwatch.py"), str(out)]
    daemon = stack.DsfDaemon(tmp / f"gc-{size}", env, config_toml=toml, wrapper=wrapper)
    ss = stack.ServerSet()
    try:
        ss.start(daemon)
        asyncio.run(stack.load_dsfeatures(daemon.base, rows))
        target = Target("dsf", "", daemon, "/v1/features/get", lambda i: dsf_body(i, True), "dsf")
        asyncio.run(warm_and_check(target, rows))
        if freeze:
            assert daemon.pid is not None
            os.kill(daemon.pid, signal.SIGUSR1)
            time.sleep(0.5)
        bodies = [dsf_body(ids, True) for ids in request_id_lists(size, len(rows), 500, seed=3)]
        t0 = time.time()
        res = loadgen.run_wrk(target.url, bodies, 8, seconds)
        t1 = time.time()
    finally:
        ss.stop()
    pauses = [p for p in json.loads(out.read_text())["pauses"] if t0 <= p[0] <= t1]
    by_gen: dict[int, list[float]] = defaultdict(list)
    for _, gen, ms, _ in pauses:
        by_gen[gen].append(ms)
    return {
        "entities": size,
        "requests": res.requests,
        "requests_per_s": res.requests / res.duration_s,
        "p50_ms": (loadgen.percentile(res.hist_us, 50) or 0) / 1000,
        "p99_ms": (loadgen.percentile(res.hist_us, 99) or 0) / 1000,
        "max_ms": max(res.hist_us, default=0) / 1000,
        "gc": {
            gen: {"count": len(v), "total_ms": sum(v), "max_ms": max(v)}
            for gen, v in sorted(by_gen.items())
        },
        "gc_share": sum(ms for _, _, ms, _ in pauses) / 1000 / res.duration_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sizes", default="100,1", help="entities per request (100,1)")
    p.add_argument("--seconds", type=float, default=10.0, help="load per size (10)")
    p.add_argument("--entities", type=int, default=10_000, help="rows written (10000)")
    p.add_argument("--interval", type=float, default=0.0005, help="sampling interval s (0.0005)")
    p.add_argument("--top", type=int, default=25, help="functions listed (25)")
    p.add_argument(
        "--gc",
        action="store_true",
        help="record garbage-collector pauses (bench/gcwatch.py) instead of profiling",
    )
    p.add_argument(
        "--freeze",
        action="store_true",
        help="with --gc: gc.freeze() in the daemon after warm-up (an experiment)",
    )
    p.add_argument(
        "--store",
        choices=("dv", "emb"),
        default="dv",
        help="with --gc: DynamoDB + ValKey (dv) or embedded (emb) daemon (dv)",
    )
    opts = p.parse_args(argv)
    rows = make_rows(opts.entities)
    tmp = Path(tempfile.mkdtemp(prefix="dsf-profile-"))
    ss = stack.ServerSet()
    try:
        valkey = ss.start(stack.valkey_server(tmp))
        dyn = ss.start(stack.dynalite_server(tmp))
        stack.create_dynamodb_table(dyn.endpoint, stack.DSF_TABLE)
        dv_env = {
            "DSF_DYNAMODB_TABLE": stack.DSF_TABLE,
            "DSF_DYNAMODB_ENDPOINT": dyn.endpoint,
            "DSF_VALKEY_URL": valkey.url,
        }
        toml = f'[cache]\nkey_prefix = "{stack.DSF_KEY_PREFIX}"\n'
        sizes = [int(s) for s in opts.sizes.split(",") if s]
        if opts.gc:
            env, conf = (dv_env, toml) if opts.store == "dv" else ({}, "")
            for size in sizes:
                g = gc_pauses(size, opts.seconds, tmp, env, conf, rows, opts.freeze)
                print(
                    f"\n== GC, {size} entities, {opts.store}, {len(rows):,} rows"
                    f"{' (gc.freeze() after warm-up)' if opts.freeze else ''}: "
                    f"{g['requests_per_s']:,.0f} req/s, p50 {g['p50_ms']:.2f} ms, p99 "
                    f"{g['p99_ms']:.2f} ms, max {g['max_ms']:.2f} ms; collector "
                    f"{100 * g['gc_share']:.1f}% of the time"
                )
                for gen, v in g["gc"].items():
                    print(
                        f"generation {gen}: {v['count']} collections, {v['total_ms']:.1f} ms "
                        f"in all, longest {v['max_ms']:.1f} ms"
                    )
            return 0
        assert opts.store == "dv", "profiles run on DynamoDB + ValKey"
        loader = ss.start(stack.DsfDaemon(tmp / "loader", dv_env, config_toml=toml))
        asyncio.run(stack.load_dsfeatures(loader.base, rows))
        loader.stop()
        for size in sizes:
            got = profile_size(size, opts.seconds, tmp, dv_env, toml, rows, opts.interval)
            print(
                f"\n== {size} entities x 10 features, DynamoDB + ValKey, cache hits: "
                f"{got['requests']:,} requests ({got['requests_per_s']:,.0f}/s under the "
                f"profiler), {got['cpu_ms_per_req_profiled']:.3f} ms CPU/request profiled; "
                f"busy {got['busy_s']:.1f} s, idle {got['idle_s']:.1f} s, errors {got['errors']}"
            )
            print("-- self time, share of busy time")
            for fn, share in got["self"]:
                print(f"{100 * share:6.1f}%  {fn}")
            print("-- inclusive time, share of busy time")
            for fn, share in got["inclusive"]:
                print(f"{100 * share:6.1f}%  {fn}")
        print(f"\nbench: HTML and text reports in {PROFILES.relative_to(ROOT)}/")
    finally:
        ss.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
