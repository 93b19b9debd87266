"""The HTTP API (the only layer that imports aiohttp)."""

from dsfeatures.api.app import create_app, package_version
from dsfeatures.api.middleware import INFLIGHT, REQUEST_ID, Inflight
from dsfeatures.api.openapi import openapi_document
from dsfeatures.api.runner import DaemonRunner

__all__ = [
    "INFLIGHT",
    "REQUEST_ID",
    "DaemonRunner",
    "Inflight",
    "create_app",
    "openapi_document",
    "package_version",
]
