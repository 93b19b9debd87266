"""The HTTP API (the only layer that imports aiohttp)."""

from dsfeatures.api.app import create_app, package_version
from dsfeatures.api.openapi import openapi_document

__all__ = ["create_app", "openapi_document", "package_version"]
