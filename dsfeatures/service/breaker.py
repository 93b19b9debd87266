"""A small circuit breaker per backend.

After ``threshold`` consecutive failures a backend is skipped for
``reset_after`` seconds: reads answer UNAVAILABLE at once and writes a
retryable 503, instead of each request waiting out its deadline on a dead
backend. Then one call is let through; its success closes the breaker.

Failures are counted per episode, not per call: a call that was already in
flight when the previous failure was counted fails with it but does not count
again. One stall of a backend (a pause, one slow moment under load) hits every
concurrent call at once; counted per call, it would open the breaker and refuse
traffic for ``reset_after`` seconds after the backend had already recovered.
A backend that is really down fails calls started after each failure, so it
still opens the breaker after ``threshold`` failures in a row.

Written here rather than taken from a library: the circuit-breaker packages
on PyPI wrap calls in decorators or sync-first state machines, while the hot
path only needs two integer checks per store call.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Gauge

from dsfeatures.errors import DSFError

__all__ = ["Breaker", "Breakers", "counts_as_failure", "new_breakers"]

log = logging.getLogger(__name__)

BREAKER_OPEN = Gauge("dsf_breaker_open", "1 while a backend is skipped after failures", ["store"])


class Breaker:
    """Closed (calls go through), open (calls refused), half-open (one trial call).

    Args:
        name: the backend, for logs and the ``dsf_breaker_open`` gauge.
        threshold: consecutive failures that open the breaker.
        reset_after: seconds the breaker stays open before a trial call.
    """

    __slots__ = (
        "_gauge",
        "_last_failure",
        "_open_until",
        "_trial",
        "failures",
        "name",
        "reset_after",
        "threshold",
    )

    def __init__(self, name: str, *, threshold: int = 5, reset_after: float = 1.0) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_after = reset_after
        self.failures = 0
        self._open_until = 0.0
        self._last_failure = 0.0
        self._trial = False
        self._gauge = BREAKER_OPEN.labels(name)
        self._gauge.set(0)

    def allow(self) -> bool:
        """Whether a call may go to the backend now."""
        if not self._open_until:
            return True
        if time.monotonic() < self._open_until or self._trial:
            return False
        self._trial = True  # half-open: exactly one call tries
        return True

    def success(self) -> None:
        """The call worked: close the breaker."""
        if self._open_until:
            log.info("%s answers again; breaker closed", self.name)
            self._gauge.set(0)
        self.failures = 0
        self._open_until = 0.0
        self._trial = False

    def failure(self, started: float | None = None) -> None:
        """The call failed (error or timeout).

        Args:
            started: when the call began (``time.monotonic()``). A call that began
                before the last counted failure is part of that episode and does not
                count again. None: count it.
        """
        now = time.monotonic()
        if started is not None and started < self._last_failure:
            return
        self._last_failure = now
        self.failures += 1
        if self._trial or self.failures >= self.threshold:
            if not self._open_until or self._trial:
                log.warning(
                    "%s failed %d times; skipping it for %.1fs",
                    self.name,
                    self.failures,
                    self.reset_after,
                )
            self._open_until = now + self.reset_after
            self._trial = False
            self._gauge.set(1)


#: One breaker per backend role, shared by the reads, writes and searches of a service.
Breakers = dict[str, Breaker]


def new_breakers() -> Breakers:
    """Breakers for the persistent store and the vector store."""
    return {"rows": Breaker("rows"), "vectors": Breaker("vectors")}


def counts_as_failure(e: BaseException) -> bool:
    """Whether an error says the backend is unwell (not that the request was wrong)."""
    if isinstance(e, DSFError):
        return e.retryable
    return isinstance(e, Exception)
