"""Typed application keys shared by the API modules."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dsfeatures.config import Config
from dsfeatures.service.core import Service

__all__ = ["CONFIG", "METRICS", "OPENAPI", "SERVICE"]

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
METRICS: web.AppKey[Callable[[], bytes]] = web.AppKey("metrics", Callable[[], bytes])  # type: ignore[arg-type]
OPENAPI: web.AppKey[bytes] = web.AppKey("openapi", bytes)
