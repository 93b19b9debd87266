"""The catalog page in real headless Chromium (Debian's package, driven by Playwright).

Playwright's Python package talks to the system's ``/usr/bin/chromium``; no browser is
downloaded. Without Chromium or Playwright these tests skip locally and fail under CI
(``CI=true``); ``scripts/servers/install_chromium.sh`` installs Chromium. Screenshots
are saved under ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.plugin import require_module, unavailable
from tests.ui.dsf_ui import (
    ARTIFACTS,
    BATCH_ROWS,
    DOWNSTREAM,
    ENTITY,
    GENERATED,
    GROUP,
    SAME_SQL,
    STREAM_ROWS,
    UPSTREAM,
    Catalog,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture fails or skips, saying what is missing
    expect = None

pytestmark = pytest.mark.e2e

#: Flags known to work on these machines (no sandbox as root, no background networking:
#: the network is closed, and Chromium would otherwise keep trying to reach Google).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 15_000


def chromium_executable() -> str:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = name if Path(name).exists() else shutil.which(name)
        if found:
            return str(found)
    unavailable(
        "chromium not found, needed by the browser tests; "
        "install it with scripts/servers/install_chromium.sh (Debian's chromium package)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for this module, closed at its end."""
    exe = chromium_executable()
    sync_api = require_module("playwright.sync_api", "the browser tests (pip install playwright)")
    with (
        tempfile.TemporaryDirectory(prefix="dsf-chromium-") as profile,
        sync_api.sync_playwright() as pw,
    ):
        # A persistent context with a fresh, empty profile folder of our own.
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=exe,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()


class PageErrors:
    """JavaScript errors and failed requests seen by a page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def check(self) -> None:
        assert not self.errors, f"the page reported errors: {self.errors}"


@pytest.fixture
def page(browser: Any, catalog: Catalog, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab on the catalog page; a screenshot is saved when the test fails."""
    pg = browser.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors = PageErrors()
    pg.on("pageerror", lambda e: errors.errors.append(f"pageerror: {e}"))
    pg.on(
        "console",
        lambda m: (
            errors.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
        ),
    )
    pg.on("requestfailed", lambda r: errors.errors.append(f"request failed: {r.url}"))
    pg.errors = errors
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            pg.screenshot(
                path=str(ARTIFACTS / f"ui-failed-{request.node.name}.png"), full_page=True
            )
        pg.close()


def screenshot(pg: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def open_group(page: Any, catalog: Catalog, name: str = GROUP) -> None:
    page.goto(f"{catalog.url}/ui#/groups/{name}")
    page.wait_for_selector("[data-testid=schema]")


# --- search ---------------------------------------------------------------------------


def test_search_finds_a_group(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui")
    page.wait_for_selector("[data-testid=count]")
    assert page.inner_text("[data-testid=count]") == f"{GENERATED + 4} of {GENERATED + 4} groups"
    page.fill("#q", "ride statistics pricing")
    # (The page's CSP forbids eval, so waits use locators, not JavaScript strings.)
    expect(page.locator("[data-testid=count]")).to_have_text(re.compile(r"^1 of "))
    hits = page.locator("[data-testid=hit]")
    assert hits.count() == 1
    assert hits.first.get_attribute("data-name") == GROUP
    text = hits.first.inner_text()
    assert "Rider ride statistics for pricing" in text
    assert "owner pricing" in text
    assert "v2 of 2 versions" in text
    # The query is in the address, so the view can be shared and reloaded.
    assert "q=ride+statistics+pricing" in page.url
    screenshot(page, "ui-search")
    page.errors.check()


def test_search_by_feature_name_highlights_the_feature(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui#/?q=avg_fare")
    page.wait_for_selector(f"[data-testid=hit][data-name={GROUP}]")
    hit = page.locator(f"[data-testid=hit][data-name={GROUP}]")
    assert "matching features: avg_fare" in hit.inner_text()
    page.errors.check()


def test_filters_narrow_the_search(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui")
    page.wait_for_selector("[data-testid=filter-entity_type]")
    page.select_option("[data-testid=filter-entity_type]", ENTITY)
    expect(page.locator("[data-testid=count]")).to_have_text(re.compile(r"^3 of "))
    shown = {
        h.get_attribute("data-name") for h in page.locator("[data-testid=hit]").element_handles()
    }
    assert shown == {GROUP, UPSTREAM, DOWNSTREAM}
    assert f"entity_type={ENTITY}" in page.url
    page.select_option("[data-testid=filter-owner]", "pricing")
    expect(page.locator("[data-testid=count]")).to_have_text(re.compile(r"^1 of "))
    page.errors.check()


def test_show_more_pages_through_2000_groups(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui")
    hits = page.locator("[data-testid=hit]")
    expect(hits).to_have_count(50)
    page.click("[data-testid=more]")
    expect(hits).to_have_count(100)
    assert "left" in page.inner_text("[data-testid=more]")
    page.errors.check()


def test_search_with_no_hit_says_so(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui#/?q=nothing_is_called_like_this")
    page.wait_for_selector("[data-testid=no-hits]")
    assert page.locator("[data-testid=hit]").count() == 0
    page.errors.check()


# --- the group page -------------------------------------------------------------------


def test_group_page_shows_schema_versions_lineage_freshness(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui")
    page.fill("#q", GROUP)
    page.click(f"[data-testid=hit][data-name={GROUP}] a.hit-name")
    page.wait_for_selector("[data-testid=schema]")
    assert page.inner_text("[data-testid=group-name]") == GROUP
    assert page.url.endswith(f"#/groups/{GROUP}")

    # Schema: every feature with its type, default and description.
    rows = page.locator("[data-testid=schema] tbody tr")
    assert rows.count() == 3
    schema = [[c.strip() for c in r.inner_text().split("\t")] for r in rows.all()]
    assert schema[0] == ["trips_7d", "int64", "0", "rides in 7 days"]
    assert schema[1] == ["avg_fare", "float64", "—", "mean fare in USD"]
    assert schema[2] == ["home_city", "string", '""', "most used city"]

    # Owner, tier, TTL, carryover, rollup.
    meta = page.inner_text("[data-testid=meta]")
    assert "pricing@example.com" in meta
    assert "1 day (86400 s)" in meta
    assert "up to 3 days" in meta
    assert "hour → day" in meta
    assert "tier 2" in page.inner_text(".group-head")

    # Versions: v2 current, v1 retired.
    v2 = page.locator("[data-testid=versions] tr[data-version='2']").inner_text()
    v1 = page.locator("[data-testid=versions] tr[data-version='1']").inner_text()
    assert "current" in v2
    assert "retired" in v1

    # Lineage: source tables and the upstream group feed it, the downstream group reads it.
    lineage = page.locator("svg[data-testid=lineage]")
    nodes = {n.get_attribute("data-node") for n in lineage.locator("g.node").element_handles()}
    assert nodes == {"hive.rides", "hive.payments", UPSTREAM, GROUP, DOWNSTREAM}
    assert lineage.locator("path.edge").count() == 4
    assert lineage.locator(f"a[href='#/groups/{DOWNSTREAM}']").count() == 1

    # Freshness: one row per lane with its counts, and a bar chart of both lanes.
    fresh = page.locator("[data-testid=freshness]")
    batch = fresh.locator("tr[data-lane=batch]").inner_text()
    stream = fresh.locator("tr[data-lane=stream]").inner_text()
    assert batch.split("\t")[-1].strip() == str(BATCH_ROWS)
    assert stream.split("\t")[-1].strip() == str(STREAM_ROWS)
    assert "ago" in batch
    chart = page.locator("svg[data-testid=volume-chart]")
    assert chart.locator("rect[data-lane=batch]").count() >= 1
    assert chart.locator("rect[data-lane=stream]").count() >= 1
    total = page.inner_text("[data-testid=volume-total]")
    assert total.startswith(f"{BATCH_ROWS + STREAM_ROWS} rows in the window")

    # Possible duplicates, with the reason.
    similar = page.inner_text("[data-testid=similar]")
    assert DOWNSTREAM in similar
    assert "3 of 3 features match" in similar
    assert SAME_SQL in similar
    assert "identical SQL fingerprint" in similar

    screenshot(page, "ui-group")
    page.errors.check()


def test_snippets_are_the_daemons_and_copyable(page: Any, catalog: Catalog) -> None:
    expected = httpx.get(f"{catalog.url}/v1/catalog/groups/{GROUP}").json()["snippets"]
    open_group(page, catalog)
    for lang in ("python", "go", "curl"):
        page.click(f"[data-testid=tab-{lang}]")
        # Exactly the daemon's text (names this daemon's URL and the shown version).
        assert page.locator(f"[data-testid=snippet-{lang}]").text_content() == expected[lang]
    page.click("[data-testid=tab-curl]")
    page.click("[data-testid=copy]")
    page.wait_for_selector(".copied:not([hidden])")
    # The curl snippet, as shown, is a valid request once the entity id is filled in.
    shown = page.locator("[data-testid=snippet-curl]").text_content()
    body = shown.split("-d '", 1)[1].rsplit("'", 1)[0]
    req = json.loads(body.replace("ENTITY_ID", "r1"))
    r = httpx.post(f"{catalog.url}/v1/features/get", json=req)
    assert r.status_code == 200
    assert r.json()["rows"][0]["statuses"] == ["PRESENT", "PRESENT", "PRESENT"]
    page.errors.check()


def test_version_switch_and_chart_window(page: Any, catalog: Catalog) -> None:
    open_group(page, catalog)
    page.select_option("[data-testid=version-select]", "1")
    expect(page).to_have_url(re.compile(r"#/groups/\w+\?version=1$"))
    expect(page.locator("[data-testid=schema] tbody tr")).to_have_count(2)
    assert "retired" in page.inner_text(".group-head")
    assert "No rows written to v1 yet" in page.inner_text("[data-testid=freshness-panel]")
    assert f"{GROUP}@1:trips_7d" in page.locator("[data-testid=snippet-python]").text_content()
    open_group(page, catalog)
    page.click("[data-testid=window-86400]")
    page.wait_for_selector("[data-testid=window-86400].active")
    assert "24 min per bar" in page.inner_text("[data-testid=volume-total]")
    page.errors.check()


def test_lineage_links_navigate_between_groups(page: Any, catalog: Catalog) -> None:
    open_group(page, catalog)
    page.click(f"svg[data-testid=lineage] a[href='#/groups/{UPSTREAM}']")
    expect(page.locator("[data-testid=group-name]")).to_have_text(UPSTREAM)
    nodes = {
        n.get_attribute("data-node")
        for n in page.locator("svg[data-testid=lineage] g.node").element_handles()
    }
    assert nodes == {"hive.riders", UPSTREAM, GROUP}
    page.go_back()
    expect(page.locator("[data-testid=group-name]")).to_have_text(GROUP)
    page.errors.check()


def test_unknown_group_shows_the_error(page: Any, catalog: Catalog) -> None:
    page.goto(f"{catalog.url}/ui#/groups/no_such_group")
    page.wait_for_selector("[data-testid=error]")
    assert "unknown feature group 'no_such_group'" in page.inner_text("[data-testid=error]")
    page.errors.errors = [e for e in page.errors.errors if "404" not in e]
    page.errors.check()
