"""Fixtures of the reliability suites (faults, bad input, shutdown, audit).

The daemon runs as a real process (``tests/e2e/dsf_e2e.py``); ``spawn_daemon``
starts daemons that are stopped when the test ends, whatever its outcome. The
figures each scenario measures are printed again at the end of the run, under
"reliability figures" (they are the source of ``docs/reliability.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dsf_workload import FIGURES

from tests.e2e.dsf_e2e import Daemon, Names, SpawnDaemon


@pytest.fixture
def spawn_daemon(tmp_path: Path) -> Iterator[SpawnDaemon]:
    """Start daemons: ``spawn_daemon(data_dir=None, *, workers=None, config=None, extra=())``."""
    started: list[Daemon] = []

    def spawn(
        data_dir: Path | None = None,
        *,
        workers: int | None = None,
        config: Path | None = None,
        **kw: Any,
    ) -> Daemon:
        n = len(started)
        d = Daemon(
            data_dir or tmp_path / f"data{n}",
            tmp_path / f"daemon{n}.log",
            workers=workers,
            config=config,
            **kw,
        )
        started.append(d)
        return d.start()

    try:
        yield spawn
    finally:
        for d in reversed(started):
            d.stop()


@pytest.fixture
def names() -> Names:
    """Unique names for this test."""
    return Names()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_sep("=", "reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
