"""``create_app``: builds the aiohttp application once; the service lives in a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

import orjson
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from dsfeatures.api.auth import TOKENS, auth_middleware
from dsfeatures.api.handlers import routes
from dsfeatures.api.keys import CONFIG, METRICS, OPENAPI, SERVICE
from dsfeatures.api.middleware import INFLIGHT, Inflight, error_middleware
from dsfeatures.api.openapi import openapi_document
from dsfeatures.api.ui import ui_routes
from dsfeatures.config import Config
from dsfeatures.service.auth import TokensFile
from dsfeatures.service.core import Service
from dsfeatures.service.registry import ChangeSignal

__all__ = ["create_app", "package_version"]


def package_version() -> str:
    """The installed dsfeatures version."""
    try:
        return dist_version("dsfeatures")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def _metrics_renderer() -> Callable[[], bytes]:
    # prometheus-client's multiprocess mode is switched on by this variable,
    # which the server sets before it starts several workers.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        def render() -> bytes:
            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
            return generate_latest(reg)

        return render
    return lambda: generate_latest(REGISTRY)


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def _watch_tokens(tokens_file: TokensFile, interval: float) -> None:
    """Look at the tokens file every ``interval`` seconds; re-read it when it changed."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(tokens_file.check)


def create_app(
    config: Config, *, workers: int = 1, registry_signal: ChangeSignal | None = None
) -> web.Application:
    """Build the application: routes, middleware, and the service's lifecycle.

    Args:
        config: the daemon configuration.
        workers: how many worker processes share the stores.
        registry_signal: the registry change counter shared by this daemon's workers.
    """
    app = web.Application(
        middlewares=[error_middleware, auth_middleware],
        client_max_size=config.limits.max_body_bytes,
    )
    tokens_file = TokensFile(config.auth.tokens_file) if config.auth.tokens_file else None
    if tokens_file is not None:
        app[TOKENS] = tokens_file.tokens
    app[CONFIG] = config
    app[INFLIGHT] = Inflight()
    app[METRICS] = _metrics_renderer()
    app[OPENAPI] = orjson.dumps(openapi_document(package_version()))
    app.add_routes(routes)
    app.add_routes(ui_routes)
    app.router.add_get("/openapi.json", _openapi)

    async def service_ctx(app: web.Application) -> AsyncIterator[None]:
        svc = await Service.open(config, workers=workers, registry_signal=registry_signal)
        app[SERVICE] = svc
        refresher = asyncio.create_task(
            svc.registry.refresh_forever(config.server.registry_refresh_seconds)
        )
        flusher = asyncio.create_task(svc.freshness.flush_forever())
        auditor = asyncio.create_task(svc.audit.flush_forever())
        tasks = [refresher, flusher, auditor]
        if tokens_file is not None and config.auth.reload_seconds > 0:
            tasks.append(
                asyncio.create_task(_watch_tokens(tokens_file, config.auth.reload_seconds))
            )
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await svc.close()  # flushes the last freshness statistics and token use

    app.cleanup_ctx.append(service_ctx)
    return app
