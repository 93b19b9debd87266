"""Fixtures of the catalog page tests: one daemon with 2,000 groups.

``catalog`` starts ``dsfeatures serve`` as a real process (embedded stores), registers
2,000 generated groups plus a few hand-made ones (``dsf_ui.py``) through the HTTP API,
and writes rows of one group from two lanes (batch and stream) so that freshness has
content. It is shared by the API tests and the browser tests of this folder.

``browser`` (in test_ui_browser.py) drives Debian's Chromium through Playwright's Python
package with the system executable: no browser is downloaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.dsf_e2e import ago, running_daemon
from tests.ui.dsf_ui import (
    BATCH_ROWS,
    GENERATED,
    GROUP,
    STREAM_ROWS,
    Catalog,
    generated_group,
    special_groups,
)


def _register_all(http: httpx.Client, cat: Catalog) -> None:
    start = time.perf_counter()
    for i in range(GENERATED):
        r = http.post("/v1/registry/groups", json=generated_group(i))
        assert r.status_code == 201, r.text
    for body in special_groups():
        r = http.post("/v1/registry/groups", json=body)
        assert r.status_code == 201, r.text
        cat.registered[f"{body['name']}@{body['version']}"] = r.json()
    r = http.post(f"/v1/registry/groups/{GROUP}/versions/1/retire")
    assert r.status_code == 200, r.text
    cat.register_seconds = time.perf_counter() - start
    cat.groups = GENERATED + 4


def _write_rows(http: httpx.Client, cat: Catalog) -> None:
    for lane, n, age in (("batch", BATCH_ROWS, 3600.0), ("stream", STREAM_ROWS, 60.0)):
        rows = [
            {
                "group": GROUP,
                "version": 2,
                "entity_id": f"r{i}",
                "values": {"trips_7d": i, "avg_fare": 10.0 + i, "home_city": "sf"},
                "event_time": ago(age - i),
            }
            for i in range(n)
        ]
        r = http.post("/v1/features/write", json={"lane": lane, "writer": "ui-tests", "rows": rows})
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == ["WRITTEN"] * n
        cat.rows[lane] = n


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """A daemon holding 2,004 groups, and rows of GROUP v2 from the batch and stream lanes."""
    with running_daemon(tmp_path_factory.mktemp("dsf-ui")) as d:
        cat = Catalog(daemon=d, url=d.url, groups=0, register_seconds=0.0)
        with httpx.Client(base_url=d.url, timeout=30.0) as http:
            _register_all(http, cat)
            _write_rows(http, cat)
        yield cat


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each test's call report on its item, so fixtures can see whether it failed."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]


@pytest.fixture
def api(catalog: Catalog) -> Iterator[httpx.Client]:
    """Raw HTTP to the catalog daemon."""
    proc = catalog.daemon.proc
    assert proc is not None
    assert proc.poll() is None, f"the catalog daemon exited; output:\n{catalog.daemon.output()}"
    with httpx.Client(base_url=catalog.url, timeout=10.0) as c:
        yield c
