"""BatchGet load benchmark: a lean aiohttp load generator against a real daemon.

Starts ``dsfeatures serve`` on its embedded default in a temporary folder,
registers one group of 10 features, writes 1,000 entities through the HTTP
write API, then for each batch size (1, 10 and 100 entities by default) runs
``POST /v1/features/get`` of N entities x 10 features at a fixed concurrency
for a fixed duration. The load generator runs in its own process(es), so its
CPU is not the daemon's. Reported per case: requests/s, entity-rows/s,
latency percentiles, and the daemon's CPU seconds per request (utime + stime
of the daemon's processes from /proc, read at the start and end of the
measured window).

Writes ``bench/results/batchget-<UTC time>.json`` and regenerates
``bench/RESULTS.md`` (bench/report.py) from every JSON file there.

Usage: .venv/bin/python bench/batchget.py [--duration 10] [--concurrency 32] ...
(``make bench BENCH_ARGS="--duration 5"``). Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_seconds, git_commit, machine, package_versions  # noqa: E402
from bench.report import RESULTS_DIR, write_results_md  # noqa: E402

GROUP = "bench_user_stats"
ENTITY_TYPE = "user"
#: 10 features of mixed types, like a typical scalar group.
FEATURES: list[tuple[str, str]] = [
    ("trips_7d", "int64"),
    ("trips_30d", "int64"),
    ("cancels_30d", "int64"),
    ("avg_fare", "float64"),
    ("avg_rating", "float64"),
    ("p90_wait_s", "float64"),
    ("spend_30d", "float64"),
    ("home_city", "string"),
    ("segment", "string"),
    ("is_premium", "bool"),
]
CITIES = ["sf", "nyc", "la", "sea", "chi", "bos", "atx"]
SEGMENTS = ["commuter", "leisure", "business", "student"]


# --- the daemon ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_command() -> list[str]:
    exe = Path(sys.executable).parent / "dsfeatures"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("dsfeatures")
    if found is None:
        sys.exit("bench: the dsfeatures command is not installed (run scripts/setup.sh)")
    return [found]


def start_daemon(port: int, data_dir: Path, workers: int, cache: str) -> subprocess.Popen[bytes]:
    # Start from a clean configuration: no DSF_* from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSF_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(DSF_WORKERS=str(workers), DSF_CACHE=cache, DSF_LOG_LEVEL="WARNING")
    log = open(data_dir / "daemon.log", "wb")  # noqa: SIM115 - closed with the process
    cmd = [*daemon_command(), "serve", "--port", str(port), "--data-dir", str(data_dir / "data")]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # graceful drain; the supervisor stops its workers
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_ready(base: str, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}")
            try:
                async with s.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the daemon did not become ready")


async def load_data(base: str, entities: int) -> None:
    group = {
        "name": GROUP,
        "version": 1,
        "entity_type": ENTITY_TYPE,
        "kind": "scalar",
        "features": [{"name": n, "type": t} for n, t in FEATURES],
        "owner": {"team": "bench", "contact": "bench@example.com"},
        "description": "Load benchmark group",
        "tags": ["bench"],
    }
    rnd = random.Random(42)

    def values() -> dict[str, Any]:
        return {
            "trips_7d": rnd.randint(0, 40),
            "trips_30d": rnd.randint(0, 160),
            "cancels_30d": rnd.randint(0, 5),
            "avg_fare": round(rnd.uniform(6, 60), 2),
            "avg_rating": round(rnd.uniform(4, 5), 2),
            "p90_wait_s": round(rnd.uniform(60, 900), 1),
            "spend_30d": round(rnd.uniform(0, 2000), 2),
            "home_city": rnd.choice(CITIES),
            "segment": rnd.choice(SEGMENTS),
            "is_premium": rnd.random() < 0.2,
        }

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/v1/registry/groups", json=group) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"register: {r.status} {await r.text()}")
        for start in range(0, entities, 500):
            rows = [
                {
                    "group": GROUP,
                    "entity_id": f"u{i}",
                    "values": values(),
                    "event_time": "2026-11-01T00:00:00Z",
                }
                for i in range(start + 1, min(start + 500, entities) + 1)
            ]
            body = {"mode": "upsert", "lane": "batch", "writer": "bench", "rows": rows}
            async with s.post(f"{base}/v1/features/write", json=body) as r:
                got = await r.json()
                if r.status != 200 or any(x["status"] != "WRITTEN" for x in got["results"]):
                    raise RuntimeError(f"write: {r.status} {got}")


# --- the load generator (runs in its own processes) ------------------------------------


def request_bodies(size: int, entities: int, count: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    feats = [f"{GROUP}:{n}" for n, _ in FEATURES]
    bodies = []
    for _ in range(count):
        ids = [f"u{i}" for i in rnd.sample(range(1, entities + 1), size)]
        bodies.append(json.dumps({"entities": {ENTITY_TYPE: ids}, "features": feats}).encode())
    return bodies


async def _generate(
    url: str, bodies: list[bytes], size: int, concurrency: int, t0: float, t1: float
) -> dict[str, Any]:
    lat: list[int] = []
    errors = 0
    checked = 0
    cpu: dict[str, float] = {}
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)

    async def cpu_window() -> None:
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        cpu["start"] = time.process_time()
        await asyncio.sleep(max(0.0, t1 - time.monotonic()))
        cpu["end"] = time.process_time()

    async def worker(n: int) -> None:
        nonlocal errors, checked
        i = n
        while True:
            start = time.monotonic()
            if start >= t1:
                return
            body = bodies[i % len(bodies)]
            i += concurrency
            begin = time.perf_counter_ns()
            async with session.post(url, data=body, headers=headers) as r:
                payload = await r.read()
                ok = r.status == 200
            took = time.perf_counter_ns() - begin
            if ok and i % 97 == 0:  # check a sample of answers in full
                rows = json.loads(payload)["rows"]
                ok = len(rows) == size and all(
                    s == "PRESENT" for row in rows for s in row["statuses"]
                )
                checked += 1
            end = time.monotonic()
            if t0 <= end <= t1:
                if ok:
                    lat.append(took)
                else:
                    errors += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(cpu_window(), *(worker(n) for n in range(concurrency)))
    return {
        "latencies_ns": lat,
        "errors": errors,
        "checked": checked,
        "cpu_s": cpu.get("end", 0.0) - cpu.get("start", 0.0),
    }


def _client_main(args: tuple[Any, ...], conn: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        conn.send(asyncio.run(_generate(*args)))
    except BaseException as e:
        conn.send({"error": repr(e)})
    finally:
        conn.close()


def run_case(base: str, daemon_pid: int, size: int, opts: argparse.Namespace) -> dict[str, Any]:
    url = f"{base}/v1/features/get"
    ctx = mp.get_context("spawn")
    per_client = max(1, opts.concurrency // opts.clients)
    # Start after every client process has imported and connected.
    t0 = time.monotonic() + 1.5 + opts.warmup
    t1 = t0 + opts.duration
    procs = []
    for c in range(opts.clients):
        bodies = request_bodies(size, opts.entities, 256, seed=1000 * size + c)
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_client_main, args=((url, bodies, size, per_client, t0, t1), send))
        p.start()
        send.close()
        procs.append((p, recv))
    time.sleep(max(0.0, t0 - time.monotonic()))
    cpu_start = cpu_seconds(daemon_pid)
    time.sleep(max(0.0, t1 - time.monotonic()))
    cpu_end = cpu_seconds(daemon_pid)
    lat: list[int] = []
    errors = checked = 0
    client_cpu = 0.0
    for p, recv in procs:
        got = recv.recv()
        p.join()
        if "error" in got:
            raise RuntimeError(f"load generator failed: {got['error']}")
        lat.extend(got["latencies_ns"])
        errors += got["errors"]
        checked += got["checked"]
        client_cpu += got["cpu_s"]
    n = len(lat)
    ms = np.asarray(lat, dtype=np.float64) / 1e6 if n else np.zeros(1)
    daemon_cpu = cpu_end - cpu_start
    return {
        "entities_per_request": size,
        "features_per_request": len(FEATURES),
        "requests": n,
        "errors": errors,
        "answers_checked": checked,
        "requests_per_s": n / opts.duration,
        "entity_rows_per_s": n * size / opts.duration,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "daemon_cpu_s": daemon_cpu,
        "daemon_cpu_ms_per_request": 1000 * daemon_cpu / n if n else None,
        "daemon_cpu_util": daemon_cpu / opts.duration,
        "loadgen_cpu_util": client_cpu / opts.duration,
    }


# --- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per case (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per case (2)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (16)")
    p.add_argument("--clients", type=int, default=1, help="load generator processes (1)")
    p.add_argument(
        "--sizes", default="1,10,100", help="entities per request, comma-separated (1,10,100)"
    )
    p.add_argument("--entities", type=int, default=1000, help="entities written (1000)")
    p.add_argument("--workers", type=int, default=1, help="daemon worker processes (1)")
    p.add_argument(
        "--cache",
        choices=("memory", "none"),
        default="memory",
        help="daemon cache (memory; turned off anyway with several workers)",
    )
    p.add_argument("--no-save", action="store_true", help="print only; write no result files")
    opts = p.parse_args(argv)
    opts.sizes = [int(s) for s in opts.sizes.split(",") if s]
    if any(s < 1 or s > opts.entities for s in opts.sizes):
        p.error("--sizes: each size must be between 1 and --entities")
    return opts


def main(argv: list[str] | None = None) -> int:
    if not Path("/proc/self/stat").exists():
        sys.exit("bench: needs Linux (/proc)")
    opts = parse_args(argv)
    host = machine()  # before the daemon starts, for the load average
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="dsf-bench-"))
    proc = start_daemon(port, tmp, opts.workers, opts.cache)
    cases = []
    try:
        asyncio.run(wait_ready(base, proc))
        t = time.monotonic()
        asyncio.run(load_data(base, opts.entities))
        print(
            f"bench: daemon pid {proc.pid} on {base}; wrote {opts.entities} entities in "
            f"{time.monotonic() - t:.1f} s"
        )
        for size in opts.sizes:
            case = run_case(base, proc.pid, size, opts)
            cases.append(case)
            print(
                f"bench: {size:>4} entities/request: {case['requests_per_s']:>8,.0f} req/s "
                f"{case['entity_rows_per_s']:>10,.0f} rows/s  p50 {case['p50_ms']:.2f} ms  "
                f"p99 {case['p99_ms']:.2f} ms  daemon CPU "
                f"{case['daemon_cpu_ms_per_request'] or 0:.3f} ms/req "
                f"({100 * case['daemon_cpu_util']:.0f}%)  load generator CPU "
                f"{100 * case['loadgen_cpu_util']:.0f}%  errors {case['errors']}"
            )
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}")
    finally:
        stop_daemon(proc)
        if proc.returncode not in (0, None):
            print((tmp / "daemon.log").read_text()[-4000:], file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    commit, dirty = git_commit()
    run: dict[str, Any] = {
        "benchmark": "batchget",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "git_dirty": dirty,
        "machine": host,
        "versions": package_versions(("dsfeatures", "aiohttp", "msgspec", "uvloop", "numpy")),
        "config": {
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "concurrency": opts.concurrency,
            "clients": opts.clients,
            "entities": opts.entities,
            "features": len(FEATURES),
            "daemon_workers": opts.workers,
            "cache": opts.cache if opts.workers == 1 else "none (several workers)",
        },
        "cases": cases,
    }
    if opts.no_save:
        print(json.dumps(run, indent=2))
    else:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = run["date"].replace("-", "").replace(":", "")
        path = RESULTS_DIR / f"batchget-{stamp}.json"
        path.write_text(json.dumps(run, indent=2) + "\n")
        md = write_results_md()
        print(f"bench: wrote {path.relative_to(ROOT)} and {md.relative_to(ROOT)}")
    errors = sum(c["errors"] for c in cases)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
