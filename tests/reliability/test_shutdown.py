"""Graceful shutdown and worker crashes under load (two workers on embedded stores).

* SIGTERM to the supervisor during a write-heavy run: requests in flight are answered,
  the daemon exits 0, and a daemon restarted on the same data folder holds every write
  that was acknowledged (and only values that were written).
* SIGKILL of one worker during the run: the other worker keeps serving, the supervisor
  starts a new worker, both serve afterwards, and every acknowledged write is there.
* A replacement worker that cannot start (DynamoDB unreachable) is retried with growing
  delays while the other worker serves; the daemon never stops.

The load and the checks are those of the fault suite (``dsf_workload.py``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from dsf_workload import Fault, LoadReport, LoadSpec, report_figure, run_load

from tests.e2e.dsf_e2e import (
    DSF_BIN,
    TLS,
    Daemon,
    Names,
    SpawnDaemon,
    children,
    scalar_group,
)
from tests.servers.aws import DynaliteServer
from tests.servers.faultproxy import BackgroundFaultProxy

pytestmark = pytest.mark.e2e

FEATURES = [{"name": "rev", "type": "int64"}, {"name": "tag", "type": "string"}]


def _workers(daemon: Daemon, n: int = 2, timeout: float = 10.0) -> set[int]:
    """The supervisor's worker processes, once there are ``n`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        # multiprocessing's resource tracker is a child too; workers are dsf-worker-N
        found = {p for p in children(daemon.pid) if _is_worker(p)}
        if len(found) == n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return b"resource_tracker" not in cmd


def _spec(daemon: Daemon, names: Names, **kw: int) -> LoadSpec:
    etype, group = names.etype(), names.group("stats")
    r = httpx.post(
        f"{daemon.url}/v1/registry/groups", json=scalar_group(group, etype, FEATURES), timeout=10
    )
    assert r.status_code == 201, r.text
    # Registration reaches every worker within a second: wait until fresh connections see it.
    body = {"entities": {etype: ["x"]}, "features": [f"{group}:rev"]}
    deadline = time.monotonic() + 5
    streak = 0
    while streak < 10:
        assert time.monotonic() < deadline, "registration did not reach every worker"
        ok = httpx.post(f"{daemon.url}/v1/features/get", json=body, timeout=5, verify=TLS)
        streak = streak + 1 if ok.status_code == 200 else 0
    return LoadSpec(
        url=daemon.url,
        entity_type=etype,
        scalar_group=group,
        scalar_writers=kw.get("writers", 6),
        keys_per_writer=10,
        rows_per_write=5,
        scalar_readers=kw.get("readers", 2),
        timeout=15.0,
    )


def _check(report: LoadReport) -> None:
    assert not report.lost, report.lost[:5]
    assert not report.inconsistent, report.inconsistent[:5]
    assert not report.stale_reads, report.stale_reads[:5]


async def test_sigterm_under_write_load_loses_nothing(
    spawn_daemon: SpawnDaemon, tmp_path: Path, names: Names
) -> None:
    data = tmp_path / "data"
    config = tmp_path / "dsf.toml"
    config.write_text("[server]\nshutdown_timeout = 10.0\n")
    first = spawn_daemon(data, workers=2, config=config)
    spec = _spec(first, names)
    proc = first.proc
    assert proc is not None
    restarted: list[Daemon] = []
    exit_codes: list[int] = []

    async def fault() -> Fault:
        f = Fault("SIGTERM to the supervisor under write load (2 workers)")
        await asyncio.sleep(2.5)
        f.started = time.monotonic()
        os.kill(first.pid, signal.SIGTERM)
        f.injected["SIGTERM"] = 1
        exit_codes.append(await asyncio.to_thread(proc.wait, 30))
        f.ended = time.monotonic()
        restarted.append(await asyncio.to_thread(spawn_daemon, data, workers=2, config=config))
        return f

    report = await run_load(spec, 6.0, fault, final_url=lambda: restarted[0].url)
    assert exit_codes == [0], first.output()[-3000:]
    fault_ = report.fault
    assert fault_ is not None
    drained = sum(
        1 for t, op, _, ok in report.timeline if ok and op == "write" and t >= fault_.started
    )
    report_figure(
        f"{fault_.name}: requests {sum(report.requests.values())}, writes acknowledged "
        f"{report.acknowledged} ({drained} answered after the SIGTERM, while draining); "
        f"stopped in {fault_.ended - fault_.started:.2f}s with exit code 0; after the "
        f"restart lost {len(report.lost)}, stale reads {len(report.stale_reads)} of "
        f"{report.reads_checked}"
    )
    _check(report)
    assert report.acknowledged > 200


async def test_sigkill_of_one_worker_leaves_the_other_serving(
    spawn_daemon: SpawnDaemon, names: Names
) -> None:
    daemon = spawn_daemon(workers=2)
    spec = _spec(daemon, names, writers=4, readers=2)
    before = _workers(daemon)
    assert len(before) == 2, before
    victim = min(before)
    after: set[int] = set()

    async def fault() -> Fault:
        f = Fault("SIGKILL of one of two workers under load")
        await asyncio.sleep(2.0)
        f.started = time.monotonic()
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pytest.fail(
                f"worker {victim} was gone before the fault (workers now "
                f"{_workers(daemon, timeout=0)}); daemon output:\n{daemon.output()[-4000:]}"
            )
        f.injected["SIGKILL"] = 1
        nonlocal after
        after = await asyncio.to_thread(lambda: _respawned(daemon, before - {victim}, victim))
        f.ended = time.monotonic()
        return f

    report = await run_load(spec, 9.0, fault)
    fault_ = report.fault
    assert fault_ is not None
    served = report.requests_between(fault_.started, fault_.ended) - report.failures_between(
        fault_.started, fault_.ended
    )
    report_figure(
        f"{fault_.name}: requests {sum(report.requests.values())} (failed "
        f"{sum(report.failures.values())}: {dict(report.failure_kinds)}); "
        f"{served} served by the other worker in the {fault_.ended - fault_.started:.2f}s "
        f"before the new one listened; writes acknowledged {report.acknowledged}; "
        f"lost {len(report.lost)}; stale reads {len(report.stale_reads)} of "
        f"{report.reads_checked}"
    )
    _check(report)
    # The supervisor lives on and replaced the worker.
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    assert victim not in after
    assert len(after) == 2, after
    # Requests went on being served right after the kill.
    first_half_second = report.requests_between(
        fault_.started, fault_.started + 0.5
    ) - report.failures_between(fault_.started, fault_.started + 0.5)
    assert first_half_second > 20, (first_half_second, served, report.failure_kinds)
    # After the restart nothing fails any more.
    assert report.failures_between(fault_.ended + 1.0, report.run_ended) == 0, report.failure_kinds
    # Fresh connections (spread over both workers by the kernel) all succeed.
    for _ in range(20):
        async with httpx.AsyncClient(base_url=daemon.url, timeout=5) as c:
            assert (await c.get("/readyz")).status_code == 200


def _respawned(daemon: Daemon, survivors: set[int], victim: int) -> set[int]:
    """Wait until the supervisor has two workers again, the new one listening on the port."""
    deadline = time.monotonic() + 15
    now: set[int] = set()
    while time.monotonic() < deadline:
        now = {p for p in children(daemon.pid) if _is_worker(p)}
        new = now - survivors
        if victim not in now and survivors <= now and len(new) == 1:
            (pid,) = new
            if _listening(pid, daemon.port):
                return now
        time.sleep(0.02)
    return now


def _listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (Linux /proc)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port and parts[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{parts[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def test_a_replacement_that_cannot_start_is_retried_while_the_other_worker_serves(
    spawn_daemon: SpawnDaemon, tmp_path: Path, names: Names, dynalite: DynaliteServer
) -> None:
    """A worker dies while DynamoDB is unreachable, so its replacement cannot start: the
    supervisor keeps the other worker serving and retries, with growing delays, until
    DynamoDB answers again; the daemon never stops."""
    table = "shut" + names.token
    subprocess.run(
        [
            str(DSF_BIN),
            "dynamodb",
            "create-table",
            "--table",
            table,
            "--endpoint",
            dynalite.endpoint,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with BackgroundFaultProxy("127.0.0.1", dynalite.port) as proxy:
        config = tmp_path / "dsf.toml"
        config.write_text(
            f'[dynamodb]\ntable = "{table}"\nendpoint = "http://127.0.0.1:{proxy.port}"\n'
            "connect_timeout = 0.5\nread_timeout = 1.0\n"
        )
        daemon = spawn_daemon(workers=2, config=config)
        before = _workers(daemon)
        assert len(before) == 2, before
        victim = min(before)
        proxy.refuse()  # DynamoDB unreachable: a new worker cannot open its store
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while daemon.output().count("could not start again") < 2:
            assert time.monotonic() < deadline, daemon.output()[-3000:]
            assert daemon.proc is not None
            assert daemon.proc.poll() is None, daemon.output()[-3000:]
            # the surviving worker still answers (its reads of DynamoDB fail: UNAVAILABLE)
            assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
            time.sleep(0.2)
        assert "retrying in 2s" in daemon.output()  # the second retry waits longer
        proxy.pass_through()
        after = _respawned(daemon, before - {victim}, victim)
        assert len(after) == 2, (after, daemon.output()[-3000:])
        assert daemon.proc.poll() is None
        etype, group = names.etype(), names.group("stats")
        r = httpx.post(
            f"{daemon.url}/v1/registry/groups",
            json=scalar_group(group, etype, FEATURES),
            timeout=10,
        )
        assert r.status_code == 201, r.text
