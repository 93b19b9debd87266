"""Shared wire vectors, Python side: ``tests/vectors/*.json`` decoded with the daemon's own types.

Each vector is ``{"name", "kind", "description", "json", "expect"}`` (plus ``http_status`` for
errors and ``daemon_output: false`` for documents the daemon would not emit as they are).
``json`` is the exact wire document; ``expect`` describes its decoded content. The Go SDK's
``vectors_test.go`` decodes the same files with its own types and checks the same
``expect``, so neither SDK can drift from the daemon. The rules are in
``tests/vectors/README.md``.

Here a vector is decoded with the msgspec types of ``dsfeatures.wire`` and
``dsfeatures.registry``, compared with ``expect``, and:

- a response re-encoded by the daemon's encoder gives ``json`` back (it is what the
  daemon sends);
- a request is what the Python SDK sends for the same arguments, and for writes the
  SDK's retry safety equals ``expect.retryable``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dsfeatures.client._calls import CallBuilder
from dsfeatures.client._retry import should_retry
from dsfeatures.errors import (
    BackendUnavailable,
    Conflict,
    DeadlineExceeded,
    DSFError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnknownFeature,
    error_for,
)
from dsfeatures.registry.models import (
    FeatureGroup,
    GroupList,
    GroupVersions,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.wire import (
    JSON_ENCODER,
    DeleteRequest,
    DeleteResponse,
    EraseResponse,
    ErrorBody,
    FeastResponse,
    GetRequest,
    GetResponse,
    SearchRequest,
    SearchResponse,
    WriteRequest,
    WriteResponse,
)

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"

#: The type each kind of vector decodes to.
TYPES: dict[str, type[Any]] = {
    "get_request": GetRequest,
    "get_response": GetResponse,
    "write_request": WriteRequest,
    "write_response": WriteResponse,
    "delete_request": DeleteRequest,
    "delete_response": DeleteResponse,
    "erase_response": EraseResponse,
    "search_request": SearchRequest,
    "search_response": SearchResponse,
    "error": ErrorBody,
    "register_request": FeatureGroup,
    "register_response": RegisterResponse,
    "registered_group": RegisteredGroup,
    "group_versions": GroupVersions,
    "group_list": GroupList,
    "feast_response": FeastResponse,
}

#: The error classes named by ``expect.is`` of error vectors (Go: the sentinel errors).
ERROR_CLASSES: dict[str, type[DSFError]] = {
    "invalid_request": InvalidRequest,
    "unknown_feature": UnknownFeature,
    "not_found": NotFound,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "unavailable": BackendUnavailable,
    "deadline_exceeded": DeadlineExceeded,
}

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _load() -> list[dict[str, Any]]:
    vectors = []
    for path in sorted(VECTORS_DIR.glob("*.json")):
        v = json.loads(path.read_text(encoding="utf-8"))
        assert v.get("name") == path.stem, f"{path.name}: name must be the file's stem"
        vectors.append(v)
    return vectors


VECTORS = _load()


def _ids(kind: str | None = None) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in VECTORS if kind is None or v["kind"] == kind]


# --- normalising and comparing ---------------------------------------------------------------


def normalise(obj: Any) -> Any:
    """Builtins of a decoded value with every struct field present (defaults included)."""
    if isinstance(obj, msgspec.Struct):
        return {f: normalise(getattr(obj, f)) for f in obj.__struct_fields__}
    if isinstance(obj, datetime):
        return obj.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(obj, list | tuple):
        return [normalise(x) for x in obj]
    if isinstance(obj, dict):
        return {k: normalise(v) for k, v in obj.items()}
    return obj


def _instant(s: str) -> datetime | None:
    if not _TIMESTAMP.match(s):
        return None
    return msgspec.convert(s, datetime)


def mismatch(expect: Any, actual: Any, path: str = "$") -> str | None:
    """Where ``actual`` differs from ``expect``, or None.

    Objects in ``expect`` are partial (keys it leaves out are not checked); lists have
    the same length; numbers compare by value (a bool is not a number); strings that
    are both RFC 3339 timestamps compare as instants.
    """
    if isinstance(expect, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {actual!r}"
        for k, v in expect.items():
            if k not in actual:
                return f"{path}.{k}: missing"
            found = mismatch(v, actual[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(expect, list):
        if not isinstance(actual, list) or len(actual) != len(expect):
            return f"{path}: expected {expect!r}, got {actual!r}"
        for i, (e, a) in enumerate(zip(expect, actual, strict=True)):
            found = mismatch(e, a, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(expect, bool) or expect is None:
        ok = actual is expect
    elif isinstance(expect, int | float):
        ok = type(actual) in (int, float) and actual == expect
    elif isinstance(expect, str) and isinstance(actual, str) and expect != actual:
        e, a = _instant(expect), _instant(actual)
        ok = e is not None and a is not None and e == a
    else:
        ok = expect == actual
    return None if ok else f"{path}: expected {expect!r}, got {actual!r}"


def _f32(x: float) -> float:
    result: float = struct.unpack("f", struct.pack("f", x))[0]
    return result


def typed_mismatch(expect: dict[str, Any], value: Any, path: str) -> str | None:
    """Check one decoded value against its typed expectation (``{"int64": 3}``...)."""
    ((kind, want),) = expect.items()
    if kind == "null":
        ok = value is None
    elif kind == "int64":
        ok = type(value) is int and value == want
    elif kind == "float64":
        ok = type(value) in (int, float) and float(value) == float(want)
    elif kind == "string":
        ok = type(value) is str and value == want
    elif kind == "bool":
        ok = type(value) is bool and value is want
    elif kind == "timestamp":
        ok = type(value) is str and _instant(value) == _instant(want) is not None
    elif kind == "bytes":
        ok = type(value) is str and base64.b64decode(value) == base64.b64decode(want)
    elif kind == "vector":
        ok = (
            type(value) is list
            and len(value) == len(want)
            and all(type(x) in (int, float) for x in value)
            and all(_f32(x) == _f32(w) for x, w in zip(value, want, strict=True))
        )
    elif kind == "list":
        ok = value == want
    else:
        return f"{path}: unknown typed expectation {kind!r}"
    return None if ok else f"{path}: expected {kind} {want!r}, got {value!r}"


def equivalent_documents(a: Any, b: Any) -> bool:
    """Equal JSON documents, a null member being the same as an absent one."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if v is not None}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return bool(strip(a) == strip(b))


def decode(vector: dict[str, Any]) -> Any:
    doc = json.dumps(vector["json"]).encode()
    return msgspec.json.decode(doc, type=TYPES[vector["kind"]])


# --- the vectors themselves ------------------------------------------------------------------


def test_every_kind_is_covered() -> None:
    kinds = {v["kind"] for v in VECTORS}
    assert kinds == set(TYPES), f"kinds without vectors: {set(TYPES) - kinds}"
    statuses = {
        s
        for v in VECTORS
        if v["kind"] == "get_response"
        for row in v["json"]["rows"]
        for s in row["statuses"]
    }
    assert statuses == {"PRESENT", "NOT_FOUND", "EXPIRED", "DEFAULTED", "UNAVAILABLE"}
    write_statuses = {
        r["status"] for v in VECTORS if v["kind"] == "write_response" for r in v["json"]["results"]
    }
    assert write_statuses == {"WRITTEN", "STALE", "CONFLICT"}
    assert {c for v in VECTORS if v["kind"] == "error" for c in v["expect"]["is"]} == set(
        ERROR_CLASSES
    )


@pytest.mark.parametrize("vector", _ids())
def test_vector_is_well_formed(vector: dict[str, Any]) -> None:
    assert vector["kind"] in TYPES
    assert isinstance(vector.get("description"), str)
    assert vector["description"]
    assert "json" in vector
    assert "expect" in vector
    assert ("http_status" in vector) == (vector["kind"] == "error")


@pytest.mark.parametrize("vector", [v for v in _ids() if v.values[0]["kind"] != "get_response"])
def test_decoded_content_matches_expect(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    if vector["kind"] in ("write_request", "error"):
        expect = {k: v for k, v in expect.items() if k not in ("retryable", "is")}
    found = mismatch(expect, normalise(decode(vector)))
    assert found is None, found


@pytest.mark.parametrize("vector", _ids("get_response"))
def test_get_response_values_and_statuses(vector: dict[str, Any]) -> None:
    resp: GetResponse = decode(vector)
    expect = vector["expect"]
    assert resp.features == expect["features"]
    assert len(resp.rows) == len(expect["rows"])
    for i, (row, want) in enumerate(zip(resp.rows, expect["rows"], strict=True)):
        plain = {k: v for k, v in want.items() if k != "values"}
        found = mismatch(plain, normalise(row), f"$.rows[{i}]")
        assert found is None, found
        assert len(row.values) == len(want["values"]) == len(row.statuses)
        for j, (value, typed) in enumerate(zip(row.values, want["values"], strict=True)):
            found = typed_mismatch(typed, value, f"$.rows[{i}].values[{j}]")
            assert found is None, found


@pytest.mark.parametrize(
    "vector",
    [
        v
        for v in _ids()
        if v.values[0].get("daemon_output", True) and not v.values[0]["kind"].endswith("_request")
    ],
)
def test_the_daemon_encodes_the_decoded_value_as_the_vector(vector: dict[str, Any]) -> None:
    """The vector is what the daemon's encoder emits (defaults left out, times formatted).

    Requests are checked against what the Python SDK sends instead.
    """
    again = json.loads(JSON_ENCODER.encode(decode(vector)))
    assert again == vector["json"]


# --- requests: what the Python SDK sends -----------------------------------------------------


def _sdk_request(vector: dict[str, Any]) -> tuple[bytes, bool]:
    """The body the Python SDK sends for the arguments in ``expect``, and its retry safety."""
    calls = CallBuilder(msgpack=False)
    e = vector["expect"]
    kind = vector["kind"]
    builders: dict[str, Callable[[], Any]] = {
        "get_request": lambda: calls.batch_get(e["entities"], e["features"], e["include_metadata"]),
        "write_request": lambda: calls.write(e["rows"], e["mode"], e["lane"], e["writer"]),
        "delete_request": lambda: calls.delete(e["entity_type"], e["entity_ids"], e["groups"]),
        "search_request": lambda: calls.search(
            e["group"], e["vector"], e["k"], e["feature"], e["filter"], e["min_score"]
        ),
        "register_request": lambda: calls.register_group(vector["json"]),
    }
    call = builders[kind]()
    assert call is not None
    assert call.body is not None
    return call.body, call.idempotent


@pytest.mark.parametrize("vector", [v for v in _ids() if v.values[0]["kind"].endswith("_request")])
def test_the_python_sdk_sends_the_vector(vector: dict[str, Any]) -> None:
    body, idempotent = _sdk_request(vector)
    dec = msgspec.json.Decoder(TYPES[vector["kind"]])
    # The daemon reads the SDK's body and the vector as the same request.
    assert dec.decode(body) == decode(vector)
    if vector["kind"] != "register_request":  # FeatureGroup leaves its defaults out
        assert equivalent_documents(json.loads(body), vector["json"])
    if vector["kind"] == "write_request":
        assert idempotent is vector["expect"]["retryable"]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", _ids("error"))
def test_error_classes_and_retry(vector: dict[str, Any]) -> None:
    body: ErrorBody = decode(vector)
    err = error_for(vector["http_status"], body.code, body.message, body.request_id)
    expect = vector["expect"]
    assert (err.code, err.message, err.request_id) == (
        expect["code"],
        expect["message"],
        expect["request_id"],
    )
    assert err.status == vector["http_status"]
    for name, cls in ERROR_CLASSES.items():
        assert isinstance(err, cls) is (name in expect["is"]), name
    assert should_retry(err, idempotent=True) is expect["retryable"]
    assert should_retry(err, idempotent=False) is False


# --- the comparison rules themselves ---------------------------------------------------------


def test_mismatch_rules() -> None:
    assert mismatch({"a": 1}, {"a": 1.0, "b": 2}) is None
    assert mismatch({"a": True}, {"a": 1}) is not None
    assert mismatch({"a": 1}, {"a": True}) is not None
    assert mismatch(["x"], ["x", "y"]) is not None
    assert mismatch({"t": "2026-11-26T10:00:00.5Z"}, {"t": "2026-11-26T10:00:00.500000Z"}) is None
    assert mismatch({"t": "2026-11-26T10:00:00Z"}, {"t": "2026-11-26T11:00:00+01:00"}) is None
    assert mismatch({"t": "2026-11-26T10:00:00Z"}, {"t": "2026-11-26T10:00:01Z"}) is not None
    assert mismatch({"a": None}, {}) is not None
    assert typed_mismatch({"int64": 3}, 3.0, "$") is not None
    assert typed_mismatch({"float64": 3.0}, 3, "$") is None
    assert typed_mismatch({"vector": [0.1]}, [0.1000000001], "$") is None
    assert not math.isnan(_f32(0.1))
    assert equivalent_documents({"a": None, "b": [1]}, {"b": [1]})
