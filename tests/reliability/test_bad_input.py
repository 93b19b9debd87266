"""Bad input at the HTTP and byte level: every refusal is a clean 4xx in the one error
shape, nothing is half-written, and the daemon stays healthy.

Requests are sent over raw sockets (no client library would send most of them):
deeply nested JSON, NaN and Infinity (JSON literals, out-of-range numbers, msgpack
floats), 10 MB bodies and strings, invalid UTF-8, wrong content types, truncated
bodies and connections closed mid-body, oversized and invalid headers, garbage.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from tests.e2e.dsf_e2e import Daemon, embedding_group, scalar_group

pytestmark = pytest.mark.e2e

W = "/v1/features/write"
G = "/v1/features/get"
S = "/v1/embeddings/search"
ETYPE = "bad_rider"
GROUP = "bad_stats"
EMB = "bad_emb"
FEATURES = [
    {"name": "n", "type": "int64"},
    {"name": "f", "type": "float64"},
    {"name": "s", "type": "string"},
    {"name": "l", "type": "list<float64>"},
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("bad-input")
    d = Daemon(root / "data", root / "daemon.log").start()
    try:
        for body in (
            scalar_group(GROUP, ETYPE, FEATURES),
            embedding_group(EMB, ETYPE, dimension=2, metric="cosine"),
        ):
            status, _, raw = _http(d.port, "POST", "/v1/registry/groups", json.dumps(body).encode())
            assert status == 201, raw
        yield d
    finally:
        d.stop()


# --- raw HTTP ---------------------------------------------------------------------------------


def _exchange(port: int, data: bytes, *, timeout: float = 20.0) -> bytes:
    """Send ``data``, read one response (or until the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(body) >= length[0]:
                    break
        return out


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1."), raw[:200]
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode("latin-1")
    return status, headers, body


def _http(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    ctype: str = "application/json",
    headers: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()
    return _parse(_exchange(port, head + headers + b"\r\n" + body))


def _error(
    resp: tuple[int, dict[str, str], bytes], status: int, code: str | None = None
) -> dict[str, Any]:
    """A clean error: the status, JSON ``{code, message, request_id}``, ``X-Request-Id``."""
    got, headers, body = resp
    assert got == status, (got, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    doc = json.loads(body)
    assert set(doc) == {"code", "message", "request_id"}, doc
    assert doc["message"]
    assert doc["request_id"]
    assert headers["x-request-id"] == doc["request_id"]
    if code is not None:
        assert doc["code"] == code, doc
    return doc


def _row(eid: str, values: dict[str, Any], group: str = GROUP) -> dict[str, Any]:
    return {"group": group, "entity_id": eid, "values": values}


def _write_json(eid: str, values_json: bytes) -> bytes:
    return (
        b'{"rows":[{"group":"' + GROUP.encode() + b'","entity_id":"' + eid.encode() + b'",'
        b'"values":' + values_json + b"}]}"
    )


def _absent(d: Daemon, *eids: str) -> None:
    body = json.dumps({"entities": {ETYPE: list(eids)}, "features": [f"{GROUP}:n", f"{EMB}:vec"]})
    status, _, raw = _http(d.port, "POST", G, body.encode())
    assert status == 200, raw
    for row in json.loads(raw)["rows"]:
        assert row["statuses"] == ["NOT_FOUND", "NOT_FOUND"], row


# --- bodies -----------------------------------------------------------------------------------

DEEP = 100_000
BODIES: dict[str, tuple[bytes, str, int, str | None]] = {
    # name: (body, content type, status, code)
    "nested arrays, 100k deep": (b"[" * DEEP, "application/json", 400, "MALFORMED_BODY"),
    "nested objects, 100k deep": (b'{"a":' * DEEP, "application/json", 400, "MALFORMED_BODY"),
    "nesting inside a value": (
        _write_json("deep", b'{"l":' + b"[" * DEEP + b"]" * DEEP + b"}"),
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "nested msgpack arrays": (
        b"\x91" * DEEP + b"\x01",
        "application/msgpack",
        400,
        "MALFORMED_BODY",
    ),
    "NaN literal": (_write_json("nan", b'{"f":NaN}'), "application/json", 400, "MALFORMED_BODY"),
    "Infinity literal": (
        _write_json("inf", b'{"f":Infinity}'),
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "-Infinity in a list": (
        _write_json("ninf", b'{"l":[1.0,-Infinity]}'),
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "number overflowing to infinity": (
        _write_json("big", b'{"f":1e400}'),
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "msgpack NaN": (
        msgspec.msgpack.encode({"rows": [_row("mnan", {"f": float("nan")})]}),
        "application/msgpack",
        400,
        "INVALID_REQUEST",
    ),
    "msgpack infinity in a list": (
        msgspec.msgpack.encode({"rows": [_row("minf", {"l": [1.0, float("inf")]})]}),
        "application/msgpack",
        400,
        "INVALID_REQUEST",
    ),
    "msgpack NaN in a vector": (
        msgspec.msgpack.encode({"rows": [_row("mvec", {"vec": [float("nan"), 1.0]}, EMB)]}),
        "application/msgpack",
        400,
        "INVALID_REQUEST",
    ),
    "integer beyond int64": (
        _write_json("i65", b'{"n":9223372036854775808}'),
        "application/json",
        400,
        "INVALID_REQUEST",
    ),
    "integer beyond 128 bits": (
        _write_json("i200", b'{"n":' + b"9" * 60 + b"}"),
        "application/json",
        400,
        None,
    ),
    "invalid UTF-8 in a JSON string": (
        b'{"rows":[{"group":"bad_stats","entity_id":"u\xff","values":{"n":1}}]}',
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "lone surrogate escape": (
        _write_json("sur", b'{"s":"\\ud800"}'),
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "invalid UTF-8 in a msgpack string": (
        b"\x81\xa4rows\x91\x83\xa5group\xa9bad_stats\xa9entity_id\xa2e\xff\xa6values\x81\xa1n\x01",
        "application/msgpack",
        400,
        "MALFORMED_BODY",
    ),
    "truncated JSON": (b'{"rows":[{"group":"bad_st', "application/json", 400, "MALFORMED_BODY"),
    "truncated msgpack": (
        msgspec.msgpack.encode({"rows": [_row("tm", {"n": 1})]})[:-3],
        "application/msgpack",
        400,
        "MALFORMED_BODY",
    ),
    "empty body": (b"", "application/json", 400, "MALFORMED_BODY"),
    "text/plain": (_write_json("tp", b'{"n":1}'), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "form data": (b"rows=1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "multipart": (b"--x--", "multipart/form-data; boundary=x", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "XML": (b"<rows/>", "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "msgpack sent as JSON": (
        msgspec.msgpack.encode({"rows": [_row("mj", {"n": 1})]}),
        "application/json",
        400,
        "MALFORMED_BODY",
    ),
    "10 MB body": (
        _write_json("big", b'{"s":"' + b"x" * (10 * 1024 * 1024) + b'"}'),
        "application/json",
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    "a 7 MB entity id": (
        _write_json("e" * (7 * 1024 * 1024), b'{"n":1}'),
        "application/json",
        400,
        "INVALID_FIELD",
    ),
    "NUL bytes in a feature name": (
        _write_json("nul", b'{"n\\u0000":1}'),
        "application/json",
        400,
        None,
    ),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_bad_body_is_a_clean_4xx(daemon: Daemon, case: str) -> None:
    body, ctype, status, code = BODIES[case]
    _error(_http(daemon.port, "POST", W, body, ctype=ctype), status, code)


def test_bad_bodies_on_every_decoding_route(daemon: Daemon) -> None:
    for path in (G, S, "/v1/features/delete", "/v1/registry/groups", "/get-online-features"):
        for body, ctype, status in (
            (b"[" * DEEP, "application/json", 400),
            (b"\x91" * DEEP + b"\x01", "application/msgpack", 400),
            (b'{"a":NaN}', "application/json", 400),
            (b'{"a":"\xff"}', "application/json", 400),
            (b"{}", "text/csv", 415),
        ):
            _error(_http(daemon.port, "POST", path, body, ctype=ctype), status)


def test_search_with_non_finite_vectors(daemon: Daemon) -> None:
    for vec in ([float("nan"), 1.0], [float("inf"), 1.0], [1e39, 1.0]):
        body = msgspec.msgpack.encode({"group": EMB, "vector": vec, "k": 3})
        _error(_http(daemon.port, "POST", S, body, ctype="application/msgpack"), 400)
    _error(_http(daemon.port, "POST", S, b'{"group":"bad_emb","vector":[1e400,1]}'), 400)


def test_a_10mb_chunked_body_is_refused(daemon: Daemon) -> None:
    body = _write_json("chunked", b'{"s":"' + b"x" * (10 * 1024 * 1024) + b'"}')
    head = (
        b"POST " + W.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    raw = _exchange(daemon.port, head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    _error(_parse(raw), 413, "PAYLOAD_TOO_LARGE")


# --- the protocol -----------------------------------------------------------------------------

PROTOCOL: dict[str, bytes] = {
    "a 20 KB header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    "500 headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(500))
    + b"\r\n",
    "a 10 KB URL": b"GET /v1/features/r/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw non-ASCII bytes in the path": b"GET /v1/features/r/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "a control character in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    b"X-Request-Id: a\x7f\r\n\r\n",
    "negative Content-Length": b"POST /v1/features/write HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: -5\r\n\r\n",
    "Content-Length and chunked": b"POST /v1/features/write HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad chunk size": b"POST /v1/features/write HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n",
    "an invalid method": b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", list(PROTOCOL))
def test_malformed_http_is_a_clean_4xx(daemon: Daemon, case: str) -> None:
    resp = _parse(_exchange(daemon.port, PROTOCOL[case]))
    assert 400 <= resp[0] < 500, resp
    _error(resp, resp[0])


def test_percent_encoded_invalid_utf8_in_the_path(daemon: Daemon) -> None:
    for path in (
        f"/v1/features/{ETYPE}/%FF%FE",
        f"/v1/features/{ETYPE}/%ED%A0%80",
        f"/v1/features/{ETYPE}/a%00b",
    ):
        status, _, raw = _http(daemon.port, "GET", path)
        assert status == 200, raw  # an id of its own, not found
    status, _, raw = _http(daemon.port, "DELETE", f"/v1/entities/{ETYPE}/%C0%AF")
    assert status == 200, raw


def test_connections_closed_mid_body_leave_nothing_and_no_error(daemon: Daemon) -> None:
    body = json.dumps({"rows": [_row("cut", {"n": 1})]}).encode()
    for cut in (0, 1, len(body) // 2, len(body) - 1):
        head = (
            f"POST {W} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
            s.sendall(head + body[:cut])
    time.sleep(0.3)
    _absent(daemon, "cut")
    assert "unhandled error" not in daemon.output()


def test_slow_partial_headers_then_close(daemon: Daemon) -> None:
    socks = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        s.sendall(b"POST /v1/features/get HTTP/1.1\r\nHost: x\r\nContent-Le")
        socks.append(s)
    # Half-open connections do not stop the daemon from serving others.
    status, _, _ = _http(daemon.port, "GET", "/healthz")
    assert status == 200
    for s in socks:
        s.close()


# --- afterwards -------------------------------------------------------------------------------


def test_nothing_was_written_and_the_daemon_is_healthy(daemon: Daemon) -> None:
    """Runs last in this module: the refusals above left no row and no server error."""
    _absent(daemon, "deep", "nan", "inf", "ninf", "big", "mnan", "minf", "mvec", "i65", "sur")
    _absent(daemon, "tm", "tp", "mj", "chunked", "nul")
    for path in ("/healthz", "/readyz"):
        status, _, raw = _http(daemon.port, "GET", path)
        assert status == 200, raw
    body = json.dumps({"rows": [_row("ok", {"n": 7, "f": 1.5, "l": [1.0]})]}).encode()
    status, _, raw = _http(daemon.port, "POST", W, body)
    assert status == 200, raw
    assert json.loads(raw)["results"][0]["status"] == "WRITTEN", raw
    out = daemon.output()
    assert "unhandled error" not in out
    assert "Traceback" not in out
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
