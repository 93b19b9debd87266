"""The Feast-compatible endpoint end to end, checked on the raw JSON body."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dsf_e2e import Names, ago, iso, scalar_group

from dsfeatures.client import Client

pytestmark = pytest.mark.e2e

ZERO = "1970-01-01T00:00:00Z"
FEAST_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")
FEAST_STATUSES = {"PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE", "INVALID"}


def _float_literals(raw: bytes) -> list[str]:
    """Every JSON number literal of ``raw`` that Python reads as a float."""
    found: list[str] = []

    def keep(s: str) -> float:
        found.append(s)
        return float(s)

    json.loads(raw, parse_float=keep)
    return found


def _setup(client: Client, names: Names) -> dict[str, Any]:
    rider = names.etype("rider")
    driver = names.etype("driver")
    join_key = f"{names.token}_rider_id"
    view = names.group("rider_view")
    aged = names.group("rider_aged")
    dview = names.group("driver_view")
    client.register_group(
        scalar_group(
            view,
            rider,
            [
                {"name": "trips", "type": "int64", "default": 0},
                {"name": "fare", "type": "float64"},
                {"name": "rating", "type": "float64", "default": 2},
                {"name": "seen", "type": "timestamp"},
                {"name": "blob", "type": "bytes"},
                {"name": "recent", "type": "list<int64>"},
                {"name": "weights", "type": "list<float64>"},
                {"name": "vip", "type": "bool"},
            ],
            join_key=join_key,
        )
    )
    client.register_group(
        scalar_group(
            aged, rider, [{"name": "score", "type": "float64"}], ttl_seconds=60, join_key=join_key
        )
    )
    client.register_group(scalar_group(dview, driver, [{"name": "rides", "type": "int64"}]))
    event = datetime(2026, 3, 4, 5, 6, 7, 250000, tzinfo=UTC)
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    res = client.write(
        [
            {
                "group": view,
                "entity_id": "1001",
                "values": {
                    "trips": 3,
                    "fare": 12,  # an integral float64
                    "rating": 4.5,
                    "seen": iso(seen),
                    "blob": base64.b64encode(b"\x01\x02hey").decode(),
                    "recent": [],
                    "weights": [1, 2.5],
                    "vip": True,
                },
                "event_time": iso(event),
            },
            # a row with only some features: the others fall back to defaults
            {"group": view, "entity_id": "1002", "values": {"fare": 0.5}, "event_time": iso(event)},
            {"group": aged, "entity_id": "1001", "values": {"score": 1.0}, "event_time": ago(3600)},
            {"group": aged, "entity_id": "1002", "values": {"score": 7}, "event_time": ago(1)},
            {"group": dview, "entity_id": "d9", "values": {"rides": 40}},
        ]
    )
    assert [r.status for r in res] == ["WRITTEN"] * 5
    return {
        "rider": rider,
        "driver": driver,
        "join_key": join_key,
        "view": view,
        "aged": aged,
        "dview": dview,
        "event": event,
        "seen": seen,
    }


def _columns(body: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    names = body["metadata"]["feature_names"]
    assert len(names) == len(body["results"])
    return dict(zip(names, body["results"], strict=True))


def test_feast_request_shape_and_values(client: Client, http: httpx.Client, names: Names) -> None:
    fx = _setup(client, names)
    view, aged, key = fx["view"], fx["aged"], fx["join_key"]
    request = {
        "features": [
            f"{view}:fare",
            f"{view}:trips",
            f"{view}@v1:rating",
            f"{view}@latest:seen",
            f"{view}:blob",
            f"{view}:recent",
            f"{view}:weights",
            f"{view}:vip",
            f"{aged}:score",
        ],
        "entities": {key: [1001, 1002, 1003]},  # integer keys
        "full_feature_names": False,
        "include_feature_view_version_metadata": False,
        "some_future_feast_field": {"x": [1, 2]},  # ignored, unlike the v1 API
        "request_context": None,
    }
    r = http.post("/get-online-features", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["feature_names"] == [
        key,
        "fare",
        "trips",
        "rating",
        "seen",
        "blob",
        "recent",
        "weights",
        "vip",
        "score",
    ]
    cols = _columns(body)
    # The join-key column comes first: the request's values, PRESENT, epoch zero.
    assert body["results"][0] == {
        "values": [1001, 1002, 1003],
        "statuses": ["PRESENT"] * 3,
        "event_timestamps": [ZERO] * 3,
    }
    ev = "2026-03-04T05:06:07.250000Z"
    assert cols["fare"] == {
        "values": [12.0, 0.5, None],
        "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
        "event_timestamps": [ev, ev, ZERO],
    }
    assert cols["trips"]["values"] == [3, 0, 0]
    assert cols["trips"]["statuses"] == ["PRESENT", "NOT_FOUND", "NOT_FOUND"]
    # A default is served as NOT_FOUND with the default value (float64 stays a float).
    assert cols["rating"]["values"] == [4.5, 2.0, 2.0]
    assert cols["rating"]["statuses"] == ["PRESENT", "NOT_FOUND", "NOT_FOUND"]
    # Timestamps as epoch seconds, bytes as base64, no empty lists.
    assert cols["seen"]["values"] == [int(fx["seen"].timestamp()), None, None]
    assert cols["blob"]["values"] == [base64.b64encode(b"\x01\x02hey").decode(), None, None]
    assert cols["recent"]["values"] == [None, None, None]
    assert cols["weights"]["values"] == [[1.0, 2.5], None, None]
    assert cols["vip"]["values"] == [True, None, None]
    # TTL: an old value is OUTSIDE_MAX_AGE (and no value), a fresh one PRESENT.
    assert cols["score"]["values"] == [None, 7.0, None]
    assert cols["score"]["statuses"] == ["OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND"]

    # In the raw body, every float64 is a float literal: a decimal point or an exponent.
    floats = _float_literals(r.content)
    assert all("." in f or "e" in f.lower() for f in floats)
    assert "12.0" in floats
    assert "2.0" in floats
    assert "7.0" in floats
    assert "1.0" in floats
    assert b'"values":[12.0,0.5,null]' in r.content.replace(b" ", b"")
    # Only Feast statuses, and UTC times with Z and 0, 3 or 6 fractional digits.
    for col in body["results"]:
        assert set(col["statuses"]) <= FEAST_STATUSES
        for t in col["event_timestamps"]:
            assert FEAST_TIME.match(t), t


def test_feast_full_feature_names_and_two_join_keys(
    client: Client, http: httpx.Client, names: Names
) -> None:
    fx = _setup(client, names)
    view, dview, key, driver = fx["view"], fx["dview"], fx["join_key"], fx["driver"]
    r = http.post(
        "/get-online-features",
        json={
            "features": [f"{dview}:rides", f"{view}:fare"],
            "entities": {key: ["1002", "1001"], driver: ["d9", "d0"]},
            "full_feature_names": True,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["feature_names"] == [key, driver, f"{dview}__rides", f"{view}__fare"]
    cols = _columns(body)
    assert cols[key]["values"] == ["1002", "1001"]
    assert cols[driver]["values"] == ["d9", "d0"]
    assert cols[f"{dview}__rides"]["values"] == [40, None]
    assert cols[f"{dview}__rides"]["statuses"] == ["PRESENT", "NOT_FOUND"]
    assert cols[f"{view}__fare"]["values"] == [0.5, 12.0]
    assert all(FEAST_TIME.match(t) for c in body["results"] for t in c["event_timestamps"])

    # Flags absent mean false.
    r = http.post(
        "/get-online-features",
        json={"features": [f"{view}:trips"], "entities": {key: [1001]}},
    )
    assert r.status_code == 200
    assert r.json()["metadata"]["feature_names"] == [key, "trips"]
    # include_feature_view_version_metadata is accepted.
    r = http.post(
        "/get-online-features",
        json={
            "features": [f"{view}:trips"],
            "entities": {key: [1001]},
            "include_feature_view_version_metadata": True,
        },
    )
    assert r.status_code == 200, r.text


def test_feast_errors_are_json(client: Client, http: httpx.Client, names: Names) -> None:
    fx = _setup(client, names)
    view, key = fx["view"], fx["join_key"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"features": [f"{view}:nope"], "entities": {key: [1]}}, "UNKNOWN_FEATURE"),
        ({"features": [f"{names.group('none')}:x"], "entities": {key: [1]}}, "UNKNOWN_FEATURE"),
        ({"features": [f"{view}:trips"], "entities": {"no_such_key": [1]}}, "INVALID_REQUEST"),
        ({"features": [f"{view}:trips"], "entities": {key: [1, 2], fx["driver"]: ["d"]}}, ""),
        ({"features": [f"{view}:trips"], "entities": {key: [1.5]}}, ""),
        ({"features": [f"{view}:trips"], "entities": {key: [True]}}, ""),
        ({"feature_service": "svc", "entities": {key: [1]}}, ""),
        ({"features": [f"{view}@v9:trips"], "entities": {key: [1]}}, "UNKNOWN_FEATURE"),
    ]
    for request, code in cases:
        r = http.post("/get-online-features", json=request)
        assert r.status_code == 400, (request, r.text)
        body = r.json()
        assert set(body) == {"code", "message", "request_id"}
        if code:
            assert body["code"] == code
    r = http.post(
        "/get-online-features", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["code"] == "MALFORMED_BODY"
