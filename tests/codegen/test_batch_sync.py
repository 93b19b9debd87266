"""The regeneration service: what it rewrites, removes and keeps, and the watching process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from batch_support import REPO

from codegen.render import GENERATED_MARKER
from codegen.sync import SyncReport, sync_once, watch

RIDER = "dsf_rider_ride_stats_v1.py"
DRIVER = "dsf_driver_daily_stats_v1.py"


def _bump(features: Path, name: str, **changes: object) -> None:
    path = features / name / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg, indent=2))


def test_first_pass_creates_then_nothing_changes(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    first = sync_once(features, out)
    assert sorted(first.created) == [DRIVER, RIDER]
    second = sync_once(features, out)
    assert not second.changed
    assert sorted(second.unchanged) == [DRIVER, RIDER]


def test_changed_config_is_rewritten(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    sync_once(features, out)
    before = (out / RIDER).read_text()
    _bump(features, "rider_ride_stats", description="Rider statistics, reworded.")
    report = sync_once(features, out)
    assert report.updated == [RIDER]
    assert report.unchanged == [DRIVER]
    assert (out / RIDER).read_text() != before
    assert "Rider statistics, reworded." in (out / RIDER).read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left"


def test_deleted_feature_and_version_bump_remove_old_dags(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    sync_once(features, out)
    for f in (features / "driver_daily_stats").iterdir():
        f.unlink()
    (features / "driver_daily_stats").rmdir()
    _bump(features, "rider_ride_stats", version=2)
    report = sync_once(features, out)
    assert report.removed == [DRIVER, RIDER]
    assert report.created == ["dsf_rider_ride_stats_v2.py"]
    assert sorted(p.name for p in out.glob("*.py")) == ["dsf_rider_ride_stats_v2.py"]


def test_invalid_feature_keeps_its_last_good_dag(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    sync_once(features, out)
    good = (out / RIDER).read_text()
    (features / "rider_ride_stats" / "config.json").write_text("{ not json")
    report = sync_once(features, out)
    assert not report.ok
    assert report.kept == [RIDER]
    assert (out / RIDER).read_text() == good


def test_broken_catalog_removes_nothing(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    sync_once(features, out)
    (features / "sources.json").write_text("{}")
    report = sync_once(features, out)
    assert not report.ok
    assert report.removed == []
    assert sorted(report.kept) == [DRIVER, RIDER]


def test_files_it_did_not_generate_are_never_touched(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    out.mkdir()
    mine = out / "hand_written.py"
    mine.write_text("# a DAG someone wrote\n")
    clash = out / RIDER
    clash.write_text("# not generated\n")
    report = sync_once(features, out)
    assert mine.read_text() == "# a DAG someone wrote\n"
    assert clash.read_text() == "# not generated\n"
    assert report.created == [DRIVER]


def test_check_mode_writes_nothing(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    report = sync_once(features, out, check=True)
    assert sorted(report.created) == [DRIVER, RIDER]
    assert not out.exists()


def test_watch_regenerates_on_change(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    stop = threading.Event()
    passes: list[SyncReport] = []
    t = threading.Thread(
        target=watch,
        args=(features, out),
        kwargs={"poll": 0.05, "stop": stop, "on_pass": passes.append},
        daemon=True,
    )
    t.start()
    try:
        _wait(lambda: (out / RIDER).exists())
        _bump(features, "rider_ride_stats", tags=["rides", "rider", "watched"])
        _wait(lambda: '"watched"' in (out / RIDER).read_text())
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()
    assert passes[0].created
    assert any(p.updated == [RIDER] for p in passes)


def _wait(cond: object, timeout: float = 20.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_the_sync_command_watches_and_stops_on_sigterm(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    log = tmp_path / "sync.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "codegen", "sync", str(features), "--out", str(out)),
                *("--watch", "--poll", "0.1"),
            ],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(lambda: (out / RIDER).exists() and (out / DRIVER).exists())
        shutil.rmtree(features / "driver_daily_stats")
        _wait(lambda: not (out / DRIVER).exists())
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    text = log.read_text()
    assert f"created {out / RIDER}" in text
    assert f"removed {out / DRIVER} (no feature generates it any more)" in text
    assert (out / RIDER).read_text().startswith(GENERATED_MARKER)
    assert "stopping (signal 15)" in text


def test_interval_mode_runs_on_a_clock(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "dags"
    stop = threading.Event()
    passes: list[SyncReport] = []

    def on_pass(report: SyncReport) -> None:
        passes.append(report)
        if len(passes) == 3:
            stop.set()

    watch(features, out, on_change=False, interval=0.05, stop=stop, on_pass=on_pass)
    assert len(passes) == 3
    assert passes[0].created
    assert not passes[1].changed
