"""Fixtures of the reliability suites (faults, bad input, shutdown, audit).

The daemon runs as a real process (``tests/e2e/dsf_e2e.py``); ``spawn_daemon``
starts daemons that are stopped when the test ends, whatever its outcome. The
figures each scenario measures are printed again at the end of the run, under
"reliability figures" (they are the source of ``docs/reliability.md``).
"""

from __future__ import annotations

from typing import Any

from dsf_workload import FIGURES

from tests.e2e.dsf_e2e import names as names
from tests.e2e.dsf_e2e import spawn_daemon as spawn_daemon


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_sep("=", "reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
