"""The JSON endpoints and files the catalog page uses, on a daemon holding 2,000+ groups."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dsfeatures.api.ui import ui_routes
from tests.e2e.dsf_e2e import Daemon, ago
from tests.servers.plugin import unavailable
from tests.ui.dsf_ui import (
    BATCH_ROWS,
    DOWNSTREAM,
    ENTITY,
    GENERATED,
    GROUP,
    REPO,
    SAME_SQL,
    STREAM_ROWS,
    UPSTREAM,
    Catalog,
)

pytestmark = pytest.mark.e2e


def search(api: httpx.Client, **params: Any) -> dict[str, Any]:
    r = api.get("/v1/catalog/search", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [g["name"] for g in body["groups"]]


# --- search ---------------------------------------------------------------------------


def test_registering_2000_groups_stays_fast(catalog: Catalog) -> None:
    # One by one through the API; each registration must not reload the whole registry.
    assert catalog.register_seconds < 60, catalog.register_seconds


def test_search_without_words_lists_every_group_by_name(api: httpx.Client) -> None:
    body = search(api, limit=500)
    assert body["groups_in_catalog"] == GENERATED + 4
    assert body["total"] == GENERATED + 4
    assert len(body["groups"]) == 500
    assert names(body) == sorted(names(body))
    page2 = search(api, limit=500, offset=500)
    assert page2["offset"] == 500
    assert not set(names(body)) & set(names(page2))


def test_search_finds_a_group_by_exact_name_first(api: httpx.Client) -> None:
    body = search(api, q=GROUP)
    # The exact name ranks first; the group whose name contains it comes after.
    assert names(body)[0] == GROUP
    hit = body["groups"][0]
    assert hit["entity_type"] == ENTITY
    assert hit["versions"] == [1, 2]
    assert hit["latest_active"] == 2
    assert hit["owner"] == "pricing"
    assert hit["tier"] == 2
    assert hit["features"] == 3
    assert set(hit["tags"]) == {"rides", "pricing"}


def test_search_by_feature_name_says_which_features_matched(api: httpx.Client) -> None:
    body = search(api, q="avg_fare")
    assert GROUP in names(body)
    hit = next(g for g in body["groups"] if g["name"] == GROUP)
    assert hit["matched"] == ["avg_fare"]
    body = search(api, q="feature:mean_duration_7d", limit=500)
    assert body["total"] > 0
    for g in body["groups"]:
        assert g["matched"]
        assert all("mean_duration_7d" in f for f in g["matched"])


def test_search_by_description_words_must_all_match(api: httpx.Client) -> None:
    assert names(search(api, q="ride statistics pricing")) == [GROUP]
    assert search(api, q="ride statistics nothing-like-this")["total"] == 0


def test_search_by_owner_tag_and_entity_type(api: httpx.Client) -> None:
    by_owner = search(api, q="owner:team_fraud", limit=500)
    assert by_owner["total"] == GENERATED // 30 + (1 if GENERATED % 30 > 2 else 0)
    assert {g["owner"] for g in by_owner["groups"]} == {"team_fraud"}
    same = search(api, owner="team_fraud", limit=500)
    assert names(same) == names(by_owner)
    by_tag = search(api, tag="rides")
    assert names(by_tag) == [GROUP]
    by_entity = search(api, entity_type=ENTITY)
    assert set(names(by_entity)) == {GROUP, UPSTREAM, DOWNSTREAM}
    combined = search(api, q="entity:driver tag:eta owner:team_eta", limit=500)
    for g in combined["groups"]:
        assert g["entity_type"] == "driver"
        assert g["owner"] == "team_eta"
        assert "eta" in g["tags"]
    # Case does not matter.
    assert names(search(api, q=GROUP.upper())) == names(search(api, q=GROUP))


def test_search_facets_describe_the_whole_catalog(api: httpx.Client) -> None:
    body = search(api, q=GROUP)
    entity_types = {f["value"]: f["count"] for f in body["entity_types"]}
    assert entity_types["rider"] == GENERATED // 20
    assert entity_types[ENTITY] == 3
    assert sum(entity_types.values()) == GENERATED + 4
    assert {f["value"] for f in body["owners"]} >= {"pricing", "team_fraud"}
    assert "rides" in {f["value"] for f in body["tags"]}


def test_search_is_fast_with_2000_groups(api: httpx.Client) -> None:
    search(api, q="warm up the index")
    took = []
    for q in ("rider", "mean_duration", "owner:team_eta", "generated spend", "zzz", ""):
        for _ in range(5):
            t = time.perf_counter()
            search(api, q=q, limit=50)
            took.append(time.perf_counter() - t)
    # Over HTTP on a loaded 2-core machine: generous bounds, still far from "slow".
    assert statistics.median(took) < 0.05, took
    assert max(took) < 0.5, took


def test_search_refuses_bad_parameters(api: httpx.Client) -> None:
    for params in ({"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"offset": "-1"}):
        r = api.get("/v1/catalog/search", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["code"].startswith("INVALID")
    r = api.get("/v1/catalog/search", params={"q": "x" * 201})
    assert r.status_code == 400
    assert "q:" in r.json()["message"]


# --- the group page -------------------------------------------------------------------


def group(api: httpx.Client, name: str = GROUP, **params: Any) -> dict[str, Any]:
    r = api.get(f"/v1/catalog/groups/{name}", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_group_page_shows_schema_owner_tier_ttl_carryover_rollup(api: httpx.Client) -> None:
    g = group(api)
    assert g["name"] == GROUP
    assert g["version"] == 2
    assert g["latest_active"] == 2
    assert g["entity_type"] == ENTITY
    assert g["join_key"] == ENTITY
    assert g["kind"] == "scalar"
    assert g["owner"] == {"team": "pricing", "contact": "pricing@example.com"}
    assert g["tier"] == 2
    assert g["ttl_seconds"] == 86_400
    assert g["carryover"] == {"max_days": 3}
    assert g["rollup"] == {
        "source_period": "hour",
        "target_period": "day",
        "aggregations": {"trips_7d": "sum"},
    }
    assert g["features"] == [
        {"name": "trips_7d", "type": "int64", "description": "rides in 7 days", "default": 0},
        {"name": "avg_fare", "type": "float64", "description": "mean fare in USD"},
        {"name": "home_city", "type": "string", "description": "most used city", "default": ""},
    ]
    assert g["description"] == "Rider ride statistics for pricing"


def test_group_page_shows_versions_current_and_retired(api: httpx.Client) -> None:
    g = group(api)
    v1, v2 = g["versions"]
    assert v1["version"] == 1
    assert v1["retired"] is True
    assert v1["retired_at"]
    assert v1["features"] == 2
    assert "last_written_at" not in v1
    assert v2["version"] == 2
    assert not v2.get("retired", False)
    assert v2["features"] == 3
    assert v2["last_written_at"]
    assert len(v2["fingerprint"]) == 64
    # An older version can be shown too; its schema is its own.
    old = group(api, version=1)
    assert old["version"] == 1
    assert old["retired"] is True
    assert [f["name"] for f in old["features"]] == ["trips_7d", "avg_fare"]
    assert "carryover" not in old


def test_group_page_shows_lineage_both_ways(api: httpx.Client) -> None:
    g = group(api)
    lin = g["lineage"]
    assert lin["sources"] == ["hive.rides", "hive.payments"]
    assert lin["upstream"] == [{"name": UPSTREAM, "registered": True, "entity_type": ENTITY}]
    assert lin["downstream"] == [{"name": DOWNSTREAM, "registered": True, "entity_type": ENTITY}]
    assert lin["sql_fingerprint"] == "sqlfp_ui_rider_stats_v2"
    # The upstream group's page names this group downstream.
    up = group(api, UPSTREAM)
    assert [d["name"] for d in up["lineage"]["downstream"]] == [GROUP]


def test_group_page_shows_freshness_per_lane(api: httpx.Client) -> None:
    g = group(api)
    f = g["freshness"]
    assert f["version"] == 2
    lanes = {lane["lane"]: lane for lane in f["lanes"]}
    assert set(lanes) == {"batch", "stream"}
    assert lanes["batch"]["rows"] == BATCH_ROWS
    assert lanes["stream"]["rows"] == STREAM_ROWS
    for lane in lanes.values():
        assert lane["latest_event_time"].endswith("Z")
        assert lane["latest_written_at"].endswith("Z")
        assert 0 <= lane["age_seconds"] < 600
    # Stream rows carry later event times than batch rows.
    assert lanes["stream"]["latest_event_time"] > lanes["batch"]["latest_event_time"]
    # The chart: one series per lane, 60 one-minute points of the last hour.
    assert f["window_seconds"] == 3600
    assert f["step_seconds"] == 60
    series = {s["lane"]: s["rows"] for s in f["volume"]}
    assert set(series) == {"batch", "stream"}
    assert all(len(v) == 60 for v in series.values())
    assert sum(series["batch"]) == BATCH_ROWS
    assert sum(series["stream"]) == STREAM_ROWS
    # A wider window: fewer, wider points, same totals.
    day = group(api, window=86400)["freshness"]
    assert day["step_seconds"] == 1440
    assert sum(sum(s["rows"]) for s in day["volume"]) == BATCH_ROWS + STREAM_ROWS
    # A version nobody wrote has no lanes.
    assert group(api, version=1)["freshness"]["lanes"] == []


def test_group_page_and_registry_response_flag_duplicates(
    catalog: Catalog, api: httpx.Client
) -> None:
    # Registering the look-alike said so at once ...
    assert GROUP in catalog.registered[f"{DOWNSTREAM}@1"]["similar"]
    assert GROUP in catalog.registered[f"{SAME_SQL}@1"]["similar"]
    # ... and the page says so, with the reason.
    similar = {s["name"]: s for s in group(api)["similar"]}
    assert similar[DOWNSTREAM]["reason"].startswith("3 of 3 features match")
    assert "trips_7d ~ trip_count_7d" in similar[DOWNSTREAM]["reason"]
    assert similar[SAME_SQL]["reason"] == "identical SQL fingerprint"
    assert similar[SAME_SQL]["score"] == 1.0
    # Unrelated generated groups are not flagged.
    assert set(similar) == {DOWNSTREAM, SAME_SQL}


def test_group_page_errors(api: httpx.Client) -> None:
    r = api.get("/v1/catalog/groups/no_such_group")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"
    assert r.json()["request_id"]
    assert api.get(f"/v1/catalog/groups/{GROUP}", params={"version": "9"}).status_code == 404
    for params in ({"version": "0"}, {"version": "x"}, {"window": "60"}, {"window": "-1"}):
        r = api.get(f"/v1/catalog/groups/{GROUP}", params=params)
        assert r.status_code == 400, (params, r.text)


def test_group_page_is_fast_with_2000_groups(api: httpx.Client) -> None:
    group(api, "rider_activity_0000")
    took = []
    for i in range(0, 2000, 100):
        g = _generated_name(i)
        t = time.perf_counter()
        group(api, g)
        took.append(time.perf_counter() - t)
    assert statistics.median(took) < 0.05, took


def _generated_name(i: int) -> str:
    from tests.ui.dsf_ui import generated_group

    return str(generated_group(i)["name"])


# --- snippets -------------------------------------------------------------------------


def test_snippets_name_the_shown_version_and_this_daemon(
    catalog: Catalog, api: httpx.Client
) -> None:
    sn = group(api)["snippets"]
    refs = [f"{GROUP}@2:trips_7d", f"{GROUP}@2:avg_fare", f"{GROUP}@2:home_city"]
    for text in sn.values():
        assert catalog.url in text
        for ref in refs:
            assert ref in text
    assert f'client.get("{ENTITY}", "ENTITY_ID", features)' in sn["python"]
    assert f'client.Get(context.Background(), "{ENTITY}", "ENTITY_ID", features)' in sn["go"]
    assert sn["curl"].startswith(f"curl -s -X POST {catalog.url}/v1/features/get")


def test_python_snippet_runs_and_reads_the_group(catalog: Catalog, api: httpx.Client) -> None:
    code = group(api)["snippets"]["python"].replace('"ENTITY_ID"', '"r3"')
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"{GROUP}@2:trips_7d 3 PRESENT",
        f"{GROUP}@2:avg_fare 13.0 PRESENT",
        f"{GROUP}@2:home_city sf PRESENT",
    ]


def test_curl_snippet_runs_and_reads_the_group(catalog: Catalog, api: httpx.Client) -> None:
    curl = shutil.which("curl")
    if curl is None:
        unavailable("curl not found, needed to run the curl snippet")
    snippet = group(api)["snippets"]["curl"].replace("ENTITY_ID", "r2")
    out = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["rows"][0]["values"] == [2, 12.0, "sf"]
    # As written, it reads a row that does not exist: defaults and NOT_FOUND, not an error.
    out = subprocess.run(
        ["bash", "-c", group(api)["snippets"]["curl"]], capture_output=True, text=True, timeout=60
    )
    assert json.loads(out.stdout)["rows"][0]["statuses"] == ["DEFAULTED", "NOT_FOUND", "DEFAULTED"]


def test_go_snippet_builds_and_reads_the_group(
    catalog: Catalog, api: httpx.Client, tmp_path: Path
) -> None:
    go = shutil.which("go")
    if go is None:
        unavailable("go not found, needed to build the Go snippet")
    code = group(api)["snippets"]["go"].replace('"ENTITY_ID"', '"r5"')
    (tmp_path / "main.go").write_text(code)
    (tmp_path / "go.mod").write_text(
        "module snippet\n\ngo 1.22\n\n"
        "require github.com/dsfeatures/dsfeatures/sdk_go_compat v0.0.0\n\n"
        f"replace github.com/dsfeatures/dsfeatures/sdk_go_compat => {REPO / 'sdk_go_compat'}\n"
    )
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOWORK": "off"}
    gofmt = str(Path(go).resolve().parent / "gofmt")
    fmt = subprocess.run([gofmt, "-l", "main.go"], cwd=tmp_path, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr
    assert fmt.stdout == "", "the Go snippet is not gofmt-formatted"
    out = subprocess.run(
        [go, "run", "."], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"{GROUP}@2:trips_7d 5 PRESENT",
        f"{GROUP}@2:avg_fare 15.0 PRESENT",
        f"{GROUP}@2:home_city sf PRESENT",
    ]


# --- the page's files -----------------------------------------------------------------


def test_ui_page_and_assets_are_served_from_the_package(api: httpx.Client) -> None:
    r = api.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    html = r.text
    assert api.get("/ui/").text == html
    assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html)
    assert sorted(assets) == ["/ui/static/app.css", "/ui/static/app.js"]
    # No file comes from another host: no CDN, no fonts, nothing to download.
    for path in ["/ui", *assets]:
        text = api.get(path).text
        assert not re.search(r"(?:src|href)=\"https?://", text), path
        assert "cdn" not in text.lower(), path
    for path, ctype in (
        ("/ui/static/app.js", "text/javascript"),
        ("/ui/static/app.css", "text/css"),
    ):
        r = api.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(ctype)
        etag = r.headers["ETag"]
        again = api.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
    r = api.get("/ui/static/nope.js")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"
    assert api.get("/ui/static/..%2Fui.py").status_code == 404


def test_openapi_documents_the_catalog_endpoints(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    paths = doc["paths"]
    for path in ("/v1/catalog/search", "/v1/catalog/groups/{name}", "/ui"):
        assert "get" in paths[path], path
    declared = {route.path for route in ui_routes}  # type: ignore[attr-defined]
    assert declared >= {"/v1/catalog/search", "/v1/catalog/groups/{name}", "/ui"}
    schemas = doc["components"]["schemas"]
    for name in ("CatalogSearch", "CatalogGroup", "GroupFreshness", "Similarity", "Snippets"):
        assert name in schemas, name
    ref = paths["/v1/catalog/groups/{name}"]["get"]["responses"]["200"]
    assert ref["content"]["application/json"]["schema"]["$ref"].endswith("/CatalogGroup")


# --- logs and durability --------------------------------------------------------------


def test_log_lines_of_a_request_carry_its_request_id(catalog: Catalog, api: httpx.Client) -> None:
    # An erasure logs one line while the request is handled.
    r = api.delete(f"/v1/entities/{ENTITY}/nobody", headers={"X-Request-Id": "ui-req-42"})
    assert r.status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in catalog.daemon.output().splitlines() if x.startswith("{")]
        mine = [x for x in lines if x.get("request_id") == "ui-req-42"]
        if mine:
            break
        time.sleep(0.05)
    assert mine, "no log line carries the request id"
    assert mine[0]["msg"].startswith("erased entity")
    assert mine[0]["level"] == "INFO"
    # Lines logged outside requests carry none.
    assert any("request_id" not in x for x in lines if "listening" in x["msg"])


def test_freshness_is_flushed_at_shutdown_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    body = {
        "name": "ui_flush",
        "version": 1,
        "entity_type": "ui_flush_rider",
        "features": [{"name": "x", "type": "int64"}],
        "owner": {"team": "ops"},
    }
    first = Daemon(data, tmp_path / "one.log").start()
    try:
        with httpx.Client(base_url=first.url, timeout=10) as c:
            assert c.post("/v1/registry/groups", json=body).status_code == 201
            for lane in ("sdk", "batch"):
                rows = [
                    {
                        "group": "ui_flush",
                        "entity_id": f"e{i}",
                        "values": {"x": i},
                        "event_time": ago(5),
                    }
                    for i in range(3)
                ]
                c.post("/v1/features/write", json={"lane": lane, "rows": rows}).raise_for_status()
    finally:
        first.stop()  # SIGTERM: the last flush happens before the stores close
    second = Daemon(data, tmp_path / "two.log").start()
    try:
        with httpx.Client(base_url=second.url, timeout=10) as c:
            f = c.get("/v1/catalog/groups/ui_flush").json()["freshness"]
    finally:
        second.stop()
    assert {(x["lane"], x["rows"]) for x in f["lanes"]} == {("sdk", 3), ("batch", 3)}
    assert sum(sum(s["rows"]) for s in f["volume"]) == 6


def test_freshness_of_several_workers_adds_up(tmp_path: Path) -> None:
    # Each worker counts its own writes and flushes them every few seconds; the page
    # (answered by either worker) shows the sum once both have flushed.
    d = Daemon(tmp_path / "data", tmp_path / "d.log", workers=2).start()
    try:
        body = {
            "name": "ui_multi",
            "version": 1,
            "entity_type": "ui_multi_rider",
            "features": [{"name": "x", "type": "int64"}],
            "owner": {"team": "ops"},
        }
        with httpx.Client(base_url=d.url, timeout=10) as c:
            assert c.post("/v1/registry/groups", json=body).status_code == 201
        for i in range(12):
            # A new connection each time, so the kernel spreads them over both workers.
            with httpx.Client(base_url=d.url, timeout=10) as c:
                row = {"group": "ui_multi", "entity_id": f"e{i}", "values": {"x": i}}
                r = c.post("/v1/features/write", json={"lane": "stream", "rows": [row]})
                assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        seen: list[int] = []
        while time.monotonic() < deadline:
            with httpx.Client(base_url=d.url, timeout=10) as c:
                lanes = c.get("/v1/catalog/groups/ui_multi").json()["freshness"]["lanes"]
            seen.append(sum(x["rows"] for x in lanes))
            if seen[-1] == 12:
                break
            time.sleep(0.5)
        assert seen[-1] == 12, seen
    finally:
        d.stop()
