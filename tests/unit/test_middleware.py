"""Request ids and request metrics of the API middleware."""

from __future__ import annotations

import os
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dsfeatures.api import middleware
from dsfeatures.api.middleware import (
    INFLIGHT,
    REQUEST_SECONDS,
    REQUESTS,
    Inflight,
    _new_request_id,
    _observe,
    error_middleware,
)


def _count(route: str, method: str, status: str) -> float:
    return REQUESTS.labels(route, method, status)._value.get()  # type: ignore[no-any-return]


def _observations(route: str, method: str) -> float:
    h = REQUEST_SECONDS.labels(route, method)
    return sum(b.get() for b in h._buckets)  # type: ignore[attr-defined]


def test_request_ids_are_16_hex_digits_and_distinct() -> None:
    ids = [_new_request_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_request_ids_wrap_within_64_bits() -> None:
    saved = middleware._ids
    try:
        middleware._ids = iter([(1 << 64) - 1, 1 << 64])  # type: ignore[assignment]
        assert _new_request_id() == "f" * 16
        assert _new_request_id() == "0" * 16
    finally:
        middleware._ids = saved


def test_a_forked_child_draws_a_new_start() -> None:
    r, w = os.pipe()
    parent_next = _new_request_id()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, _new_request_id().encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    os.close(r)
    assert re.fullmatch(r"[0-9a-f]{16}", child)
    assert int(child, 16) - int(parent_next, 16) not in range(0, 1000)


def test_observe_counts_the_same_series_as_labels() -> None:
    before = _count("/t/observe", "GET", "200"), _count("/t/observe", "GET", "503")
    seen = _observations("/t/observe", "GET")
    for status in (200, 200, 503):
        _observe("/t/observe", "GET", status, 0.001)
    assert _count("/t/observe", "GET", "200") == before[0] + 2
    assert _count("/t/observe", "GET", "503") == before[1] + 1
    assert _observations("/t/observe", "GET") == seen + 3


def test_observe_past_the_bound_still_counts() -> None:
    saved = middleware._CHILDREN_MAX
    middleware._CHILDREN_MAX = 0
    try:
        before = _count("/t/bound", "BREW", "418")
        _observe("/t/bound", "BREW", 418, 0.0)
        _observe("/t/bound", "BREW", 418, 0.0)
        assert _count("/t/bound", "BREW", "418") == before + 2
        assert ("/t/bound", "BREW", 418) not in middleware._request_children
    finally:
        middleware._CHILDREN_MAX = saved


# The middleware keeps the id under a string key, which aiohttp 3.14 warns about once.
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
async def test_middleware_gives_an_id_and_counts_the_request() -> None:
    app = web.Application()
    app[INFLIGHT] = Inflight()

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=request["request_id"])

    route = app.router.add_get("/t/mw", handler)
    req = make_mocked_request("GET", "/t/mw", app=app)
    match = await app.router.resolve(req)
    match.add_app(app)
    req._match_info = match
    assert match.route is route
    before = _count("/t/mw", "GET", "200")
    resp = await error_middleware(req, handler)
    assert isinstance(resp, web.Response)
    rid = resp.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    assert resp.text == rid
    assert _count("/t/mw", "GET", "200") == before + 1

    req = make_mocked_request("GET", "/t/mw", headers={"X-Request-Id": "given-1"}, app=app)
    req._match_info = match
    resp = await error_middleware(req, handler)
    assert resp.headers["X-Request-Id"] == "given-1"
    assert _count("/t/mw", "GET", "200") == before + 2
