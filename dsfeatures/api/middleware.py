"""Middlewares: request ids, request metrics, and the one place errors become responses."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import Counter, Histogram

from dsfeatures.errors import DSFError, InvalidRequest, PayloadTooLarge
from dsfeatures.wire.types import ErrorBody

__all__ = ["INFLIGHT", "REQUEST_ID", "Inflight", "error_middleware", "error_response"]

log = logging.getLogger("dsfeatures.api")


class Inflight:
    """Counts requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.n = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.n += 1
        self._idle.clear()

    def leave(self) -> None:
        self.n -= 1
        if self.n == 0:
            self._idle.set()

    async def drained(self, within: float) -> bool:
        """Wait until no request is in flight; False if ``within`` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


INFLIGHT: web.AppKey[Inflight] = web.AppKey("inflight", Inflight)
#: The id of the request being handled (empty outside requests), for log records.
REQUEST_ID: ContextVar[str] = ContextVar("dsf_request_id", default="")
_ENC = msgspec.json.Encoder()

REQUEST_SECONDS = Histogram(
    "dsf_request_seconds",
    "HTTP request latency by route",
    ["route", "method"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REQUESTS = Counter(
    "dsf_requests_total", "HTTP requests by route and status", ["route", "method", "status"]
)
ERRORS = Counter("dsf_errors_total", "Error responses by code", ["code"])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Request ids: 16 hex digits (64 bits), counting up from a random start chosen per
# process. As unique as 64 random bits (two processes collide only if their ranges
# overlap), without uuid4's system call and object per request.
_ID_MASK = (1 << 64) - 1
_ids = itertools.count(int.from_bytes(os.urandom(8)))


def _reseed_ids() -> None:
    global _ids
    _ids = itertools.count(int.from_bytes(os.urandom(8)))


os.register_at_fork(after_in_child=_reseed_ids)


def _new_request_id() -> str:
    """A request id for a request that brings none (16 hex digits, unique per process)."""
    return "%016x" % (next(_ids) & _ID_MASK)


# Metric children per label values, so each request skips the label look-up.
# Bounded: methods come from clients; past the bound, look-ups go to the metric.
_CHILDREN_MAX = 1024
_seconds_children: dict[tuple[str, str], Any] = {}
_request_children: dict[tuple[str, str, int], Any] = {}


def _observe(route: str, method: str, status: int, seconds: float) -> None:
    h = _seconds_children.get((route, method))
    if h is None:
        h = REQUEST_SECONDS.labels(route, method)
        if len(_seconds_children) < _CHILDREN_MAX:
            _seconds_children[(route, method)] = h
    h.observe(seconds)
    c = _request_children.get((route, method, status))
    if c is None:
        c = REQUESTS.labels(route, method, str(status))
        if len(_request_children) < _CHILDREN_MAX:
            _request_children[(route, method, status)] = c
    c.inc()


def error_response(err: DSFError, request_id: str) -> web.Response:
    """The JSON response of an error."""
    ERRORS.labels(err.code).inc()
    body = _ENC.encode(ErrorBody(code=err.code, message=err.message, request_id=request_id))
    headers = {"X-Request-Id": request_id}
    if err.retryable:
        headers["Retry-After"] = "1"
    return web.Response(
        status=err.status, body=body, content_type="application/json", headers=headers
    )


def _route(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, time it, and map every error to ``{code, message, request_id}``."""
    rid = request.headers.get("X-Request-Id", "")[:64] or _new_request_id()
    request["request_id"] = rid
    rid_token = REQUEST_ID.set(rid)
    start = time.perf_counter()
    status = 500
    inflight = request.app[INFLIGHT]
    inflight.enter()
    try:
        resp = await handler(request)
        status = resp.status
        resp.headers["X-Request-Id"] = rid
        return resp
    except DSFError as e:
        status = e.status
        return error_response(e, rid)
    except web.HTTPRequestEntityTooLarge as e:
        status = 413
        return error_response(PayloadTooLarge(f"request body too large: {e.text}"), rid)
    except web.HTTPException as e:
        status = e.status
        if e.status == 404:
            return error_response(
                _http_error(404, "NOT_FOUND", f"no route for {request.path}"), rid
            )
        if e.status == 405:
            err = _http_error(
                405, "METHOD_NOT_ALLOWED", f"{request.method} not allowed on {request.path}"
            )
            return error_response(err, rid)
        if e.status < 400:
            raise
        return error_response(_http_error(e.status, "HTTP_ERROR", e.reason), rid)
    except ConnectionResetError:
        # The client went away before its request was read in full: not a server
        # error, and nobody will read the answer (499, as nginx counts it).
        status = 499
        log.info("client disconnected during its request request_id=%s path=%s", rid, request.path)
        return error_response(
            _http_error(499, "CLIENT_CLOSED", "client closed the connection"), rid
        )
    except Exception:
        log.exception("unhandled error request_id=%s path=%s", rid, request.path)
        return error_response(DSFError("internal error"), rid)
    finally:
        REQUEST_ID.reset(rid_token)
        inflight.leave()
        _observe(_route(request), request.method, status, time.perf_counter() - start)


def _http_error(status: int, code: str, message: str) -> DSFError:
    err = InvalidRequest(message, code=code) if status < 500 else DSFError(message, code=code)
    err.status = status
    return err
