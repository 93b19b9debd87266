"""Run a Python program with its garbage-collector pauses recorded.

    python bench/gcwatch.py OUT.json SCRIPT [ARGS...]

Runs ``SCRIPT`` (a file, such as ``.venv/bin/dsfeatures``) as ``__main__`` with a
``gc.callbacks`` hook that times every collection, and writes at exit (normal exit or
SIGTERM through the program's own shutdown) ``{"pauses": [[unix time, generation, ms,
collected], ...]}`` to ``OUT.json``. Used by ``bench/profile_batchget.py --gc`` to tie
tail latency to collections of the long-lived objects a cache keeps. SIGUSR1 makes the
program call ``gc.freeze()`` (move every object alive now out of the collector's reach), to
test whether the long-lived objects are what the pauses scan.
"""

from __future__ import annotations

import atexit
import gc
import json
import runpy
import signal
import sys
import time
from typing import Any

__all__ = ["main"]


def main() -> None:
    out, script = sys.argv[1], sys.argv[2]
    pauses: list[tuple[float, int, float, int]] = []
    started: list[float] = [0.0, 0.0]

    def hook(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0], started[1] = time.perf_counter(), time.time()
        else:
            took = (time.perf_counter() - started[0]) * 1000
            gen, collected = int(info["generation"]), int(info["collected"])
            pauses.append((round(started[1], 4), gen, round(took, 3), collected))

    def dump() -> None:
        with open(out, "w") as f:
            json.dump({"pauses": pauses}, f)

    def freeze(signum: int, frame: Any) -> None:
        gc.freeze()  # what survives so far is never scanned again (an experiment's switch)

    gc.callbacks.append(hook)
    atexit.register(dump)
    signal.signal(signal.SIGUSR1, freeze)
    sys.argv = sys.argv[2:]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        dump()


if __name__ == "__main__":
    main()
