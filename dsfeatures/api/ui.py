"""The catalog page (``/ui``) and the JSON endpoints it reads (``/v1/catalog/...``).

The page is plain HTML, CSS and JavaScript shipped in the package
(``dsfeatures/api/static``): no build step, nothing fetched from elsewhere. The
files are read once at import and served from memory with an ETag, so a browser
revalidates them with a 304 and never runs stale code after an upgrade.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Final, NamedTuple

from aiohttp import web

from dsfeatures.api.keys import CONFIG, SERVICE
from dsfeatures.errors import InvalidRequest, NotFound
from dsfeatures.service.freshness import WINDOWS
from dsfeatures.wire.codec import JSON_ENCODER

__all__ = ["ui_routes"]

ui_routes = web.RouteTableDef()

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
#: The page loads only its own files and talks only to this daemon.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HOST: Final = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


class _Asset(NamedTuple):
    body: bytes
    content_type: str
    etag: str


def _load_assets() -> dict[str, _Asset]:
    out: dict[str, _Asset] = {}
    folder = resources.files("dsfeatures.api").joinpath("static")
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if not item.is_file() or suffix not in _TYPES:
            continue
        body = item.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        out[item.name] = _Asset(body, _TYPES[suffix], etag)
    return out


#: Read at import, before any event loop runs.
_ASSETS: Final = _load_assets()


def _serve(request: web.Request, name: str) -> web.Response:
    asset = _ASSETS.get(name)
    if asset is None:
        raise NotFound(f"no file {name!r} in the catalog page")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if name.endswith(".html"):
        headers["Content-Security-Policy"] = _CSP
        headers["Referrer-Policy"] = "no-referrer"
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = asset.content_type
    return web.Response(body=asset.body, headers=headers)


@ui_routes.get("/ui")
async def ui_page(request: web.Request) -> web.Response:
    """The catalog page (a single page; the hash names the view)."""
    return _serve(request, "index.html")


@ui_routes.get("/ui/")
async def ui_page_slash(request: web.Request) -> web.Response:
    """The catalog page, also at ``/ui/``."""
    return _serve(request, "index.html")


@ui_routes.get("/ui/static/{name}")
async def ui_asset(request: web.Request) -> web.Response:
    """A file of the page (CSS, JavaScript)."""
    return _serve(request, request.match_info["name"])


def _json(obj: object) -> web.Response:
    return web.Response(
        body=JSON_ENCODER.encode(obj),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _int_param(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest(f"{name}: expected a non-negative integer, got {raw!r}")
    return int(raw)


def _base_url(request: web.Request) -> str:
    """The URL the caller reached the daemon at (for snippets), if it looks like one."""
    host = request.host
    if _HOST.match(host):
        return f"{request.scheme}://{host}"
    server = request.app[CONFIG].server
    return f"http://{server.host}:{server.port}"


@ui_routes.get("/v1/catalog/search")
async def catalog_search(request: web.Request) -> web.Response:
    """Search groups (``q``, ``entity_type``, ``owner``, ``tag``, ``limit``, ``offset``)."""
    q = request.query
    resp = await request.app[SERVICE].catalog_search(
        q.get("q", ""),
        entity_type=q.get("entity_type") or None,
        owner=q.get("owner") or None,
        tag=q.get("tag") or None,
        limit=_int_param(request, "limit", 50) or 0,
        offset=_int_param(request, "offset", 0) or 0,
    )
    return _json(resp)


@ui_routes.get("/v1/catalog/groups/{name}")
async def catalog_group(request: web.Request) -> web.Response:
    """A group's page (``version``, ``window`` seconds of the write-volume chart)."""
    version = _int_param(request, "version", None)
    if version == 0:
        raise InvalidRequest("version: expected a positive integer, got '0'")
    window = _int_param(request, "window", WINDOWS[0])
    resp = await request.app[SERVICE].catalog_group(
        request.match_info["name"],
        version,
        window_seconds=window or 0,
        base_url=_base_url(request),
    )
    return _json(resp)
