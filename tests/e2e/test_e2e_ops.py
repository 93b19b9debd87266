"""Operations endpoints end to end: health, readiness, metrics, OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from dsfeatures.api.handlers import routes
from dsfeatures.client import Client

pytestmark = pytest.mark.e2e


def test_healthz_and_readyz(http: httpx.Client, client: Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["X-Request-Id"]
    r = http.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["backends"]
    assert all(v == "ok" for v in body["backends"].values())
    assert client.health() == {"status": "ok"}
    assert client.ready()["status"] == "ok"


def test_request_id_is_echoed(http: httpx.Client) -> None:
    r = http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r = http.post(
        "/v1/features/get",
        content=b"{",
        headers={"Content-Type": "application/json", "X-Request-Id": "req-9"},
    )
    assert r.json()["request_id"] == "req-9"


def test_metrics(http: httpx.Client) -> None:
    http.get("/healthz")
    http.post("/v1/features/get", content=b"{", headers={"Content-Type": "application/json"})
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "dsf_request_seconds" in text
    assert "dsf_request_seconds_bucket" in text
    assert 'route="/healthz"' in text
    assert "dsf_requests_total" in text
    assert 'status="400"' in text


def _refs(obj: Any) -> list[str]:
    """Every ``$ref`` value inside ``obj``."""
    if isinstance(obj, dict):
        out = [obj["$ref"]] if isinstance(obj.get("$ref"), str) else []
        for v in obj.values():
            out += _refs(v)
        return out
    if isinstance(obj, list):
        return [r for v in obj for r in _refs(v)]
    return []


def test_openapi_document_covers_every_route(http: httpx.Client) -> None:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = json.loads(r.content)
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    paths = doc["paths"]
    declared = {(route.path, route.method.lower()) for route in routes}  # type: ignore[attr-defined]
    assert len(declared) >= 16
    for path, method in sorted(declared):
        assert path in paths, f"{path} missing from /openapi.json"
        assert method in paths[path], f"{method.upper()} {path} missing from /openapi.json"
        op = paths[path][method]
        assert op["responses"], (path, method)
        for param in (p[1:-1] for p in path.split("/") if p.startswith("{")):
            assert param in {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert "/openapi.json" in paths
    # Every reference resolves inside the document.
    for ref in _refs(doc):
        assert ref.startswith("#/")
        node: Any = doc
        for part in ref[2:].split("/"):
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]
