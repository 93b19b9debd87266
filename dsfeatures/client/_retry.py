"""The retry policy: what may be sent again, how many times and after what wait."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.retry import retry_base
from tenacity.stop import stop_base

from dsfeatures.client._calls import Call
from dsfeatures.client._settings import ClientSettings
from dsfeatures.errors import DSFError

__all__ = ["RETRY_STATUSES", "backoff", "retry_condition", "stop_condition"]

#: Response statuses worth repeating: throttled, or a gateway or store briefly down.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Failures that prove the request never reached the server: safe to repeat any call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def should_retry(exc: BaseException, idempotent: bool) -> bool:
    """Whether a failed attempt of a call may be repeated."""
    if not isinstance(exc, DSFError):
        return False
    if isinstance(exc.__cause__, _NOT_SENT):
        return True
    return idempotent and exc.retryable and exc.status in RETRY_STATUSES


def retry_condition(call: Call[Any]) -> retry_base:
    """Tenacity's ``retry=`` for ``call``."""
    idempotent = call.idempotent
    return retry_if_exception(lambda exc: should_retry(exc, idempotent))


def stop_condition(call: Call[Any], settings: ClientSettings) -> stop_base:
    """Tenacity's ``stop=`` for ``call``: one attempt plus ``settings.retries``."""
    return stop_after_attempt(1 + (settings.retries if call.retry else 0))


def backoff(settings: ClientSettings) -> Callable[[RetryCallState], float]:
    """Exponential backoff with "equal jitter": half fixed, half random.

    The fixed half keeps retries from hammering a recovering server; the random
    half spreads clients that failed together.
    """
    base, cap = settings.backoff_base, settings.backoff_max

    def wait(state: RetryCallState) -> float:
        delay = min(cap, base * 2.0 ** (state.attempt_number - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    return wait
