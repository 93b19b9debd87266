"""The OpenAPI 3.1 document, generated from the wire types."""

from __future__ import annotations

from typing import Any

import msgspec

from dsfeatures.registry.models import (
    FeatureGroup,
    GroupList,
    GroupVersions,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.service.audit import AuditEvents
from dsfeatures.service.discovery import CatalogGroup, CatalogSearch
from dsfeatures.service.freshness import WINDOWS
from dsfeatures.wire.feast import FeastRequest, FeastResponse
from dsfeatures.wire.types import (
    DeleteRequest,
    DeleteResponse,
    EraseResponse,
    ErrorBody,
    GetRequest,
    GetResponse,
    SearchRequest,
    SearchResponse,
    WriteRequest,
    WriteResponse,
)

__all__ = ["openapi_document"]

_TYPES: tuple[type[Any], ...] = (
    GetRequest,
    GetResponse,
    WriteRequest,
    WriteResponse,
    DeleteRequest,
    DeleteResponse,
    EraseResponse,
    SearchRequest,
    SearchResponse,
    FeastRequest,
    FeastResponse,
    FeatureGroup,
    RegisterResponse,
    RegisteredGroup,
    GroupVersions,
    GroupList,
    CatalogSearch,
    CatalogGroup,
    AuditEvents,
    ErrorBody,
)

_REF = "#/components/schemas/{name}"


def _ref(t: type[Any]) -> dict[str, Any]:
    return {"$ref": _REF.format(name=t.__name__)}


def _body(t: type[Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": _ref(t)},
            "application/msgpack": {"schema": _ref(t)},
        },
    }


def _ok(
    t: type[Any] | None, desc: str = "OK", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    content = {"application/json": {"schema": _ref(t) if t else {"type": "object"}}}
    out: dict[str, Any] = {"description": desc, "content": content}
    responses: dict[str, Any] = {"200": out}
    responses.update(extra or {})
    errs = {"$ref": "#/components/responses/Error"}
    for code in ("400", "401", "403", "404", "413", "415", "503", "504"):
        responses.setdefault(code, errs)
    return responses


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": desc,
        "schema": schema or {"type": "string"},
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The whole document as a dict (serve it as JSON)."""
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    ver = {"type": "integer", "minimum": 1}
    paths: dict[str, Any] = {
        "/v1/features/get": {
            "post": {
                "summary": "BatchGet feature values for many entities",
                "operationId": "batchGet",
                "requestBody": _body(GetRequest),
                "responses": _ok(GetResponse),
            }
        },
        "/v1/features/{entity_type}/{entity_id}": {
            "get": {
                "summary": "Get the features of one entity",
                "operationId": "get",
                "parameters": [
                    _path_param("entity_type"),
                    _path_param("entity_id"),
                    _query("features", "comma-separated feature references"),
                    _query(
                        "include_metadata",
                        "also return event and written-at times",
                        {"type": "boolean"},
                    ),
                ],
                "responses": _ok(GetResponse),
            }
        },
        "/v1/features/write": {
            "post": {
                "summary": "Create, upsert or update rows (validated all-or-nothing)",
                "operationId": "write",
                "requestBody": _body(WriteRequest),
                "responses": _ok(WriteResponse),
            }
        },
        "/v1/features/delete": {
            "post": {
                "summary": "Delete rows of some groups for some entities",
                "operationId": "delete",
                "requestBody": _body(DeleteRequest),
                "responses": _ok(DeleteResponse),
            }
        },
        "/v1/entities/{entity_type}/{entity_id}": {
            "delete": {
                "summary": "GDPR erasure of one entity in every group, version and store",
                "operationId": "deleteEntity",
                "parameters": [_path_param("entity_type"), _path_param("entity_id")],
                "responses": _ok(EraseResponse),
            }
        },
        "/v1/entities/{entity_type}/{entity_id}/erasures": {
            "get": {
                "summary": "Audit records of the erasures of one entity",
                "operationId": "erasures",
                "parameters": [_path_param("entity_type"), _path_param("entity_id")],
                "responses": _ok(None),
            }
        },
        "/v1/audit": {
            "get": {
                "summary": "Audit log: registry changes, erasures and token use, newest first "
                "(admin)",
                "operationId": "auditEvents",
                "parameters": [
                    _query(
                        "action",
                        "registry.register, registry.retire, entity.erase or token.use",
                        {"type": "string", "maxLength": 256},
                    ),
                    _query(
                        "actor",
                        "token name (anonymous without authentication)",
                        {"type": "string", "maxLength": 256},
                    ),
                    _query(
                        "since",
                        "RFC 3339 time with a zone",
                        {"type": "string", "format": "date-time"},
                    ),
                    _query(
                        "limit",
                        "most events returned (default 100)",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                    ),
                ],
                "responses": _ok(AuditEvents),
            }
        },
        "/v1/embeddings/search": {
            "post": {
                "summary": "k nearest neighbours within an embedding group",
                "operationId": "search",
                "requestBody": _body(SearchRequest),
                "responses": _ok(SearchResponse),
            }
        },
        "/v1/registry/groups": {
            "post": {
                "summary": "Register a feature group version",
                "operationId": "registerGroup",
                "requestBody": _body(FeatureGroup),
                "responses": _ok(
                    RegisterResponse,
                    "unchanged or updated (descriptive fields)",
                    {
                        "201": {
                            "description": "created",
                            "content": {"application/json": {"schema": _ref(RegisterResponse)}},
                        },
                        "409": {"$ref": "#/components/responses/Error"},
                    },
                ),
            },
            "get": {
                "summary": "Search feature groups",
                "operationId": "listGroups",
                "parameters": [
                    _query("q", "text in names, descriptions, features, tags"),
                    _query("entity_type", "entity type"),
                    _query("owner", "owner team"),
                    _query("tag", "tag"),
                ],
                "responses": _ok(GroupList),
            },
        },
        "/v1/registry/groups/{name}": {
            "get": {
                "summary": "Every version of a group",
                "operationId": "getGroup",
                "parameters": [_path_param("name")],
                "responses": _ok(GroupVersions),
            }
        },
        "/v1/registry/groups/{name}/versions/{version}": {
            "get": {
                "summary": "One version of a group",
                "operationId": "getGroupVersion",
                "parameters": [_path_param("name"), _path_param("version", ver)],
                "responses": _ok(RegisteredGroup),
            }
        },
        "/v1/registry/groups/{name}/versions/{version}/retire": {
            "post": {
                "summary": "Retire a group version",
                "operationId": "retireGroupVersion",
                "parameters": [_path_param("name"), _path_param("version", ver)],
                "responses": _ok(RegisteredGroup),
            }
        },
        "/v1/catalog/search": {
            "get": {
                "summary": "Search the catalog (the /ui page's search)",
                "description": "Words of q must all match a group's name, features, tags, owner, "
                "entity type, lineage or descriptions; owner:, tag:, entity: and feature: words "
                "match one field.",
                "operationId": "catalogSearch",
                "parameters": [
                    _query("q", "words; owner:TEAM, tag:TAG, entity:TYPE, feature:NAME"),
                    _query("entity_type", "entity type"),
                    _query("owner", "owner team"),
                    _query("tag", "tag"),
                    _query("limit", "hits per page", {"type": "integer", "minimum": 1}),
                    _query("offset", "hits to skip", {"type": "integer", "minimum": 0}),
                ],
                "responses": _ok(CatalogSearch),
            }
        },
        "/v1/catalog/groups/{name}": {
            "get": {
                "summary": "A group's catalog page: schema, versions, lineage, freshness, "
                "possible duplicates and code snippets",
                "operationId": "catalogGroup",
                "parameters": [
                    _path_param("name"),
                    _query("version", "version shown (default: newest active)", ver),
                    _query(
                        "window",
                        "seconds of the write-volume chart",
                        {"type": "integer", "enum": list(WINDOWS)},
                    ),
                ],
                "responses": _ok(CatalogGroup),
            }
        },
        "/ui": {
            "get": {
                "summary": "The catalog page (HTML)",
                "operationId": "ui",
                "responses": {
                    "200": {
                        "description": "the page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/get-online-features": {
            "post": {
                "summary": "Feast-compatible online read (unknown request fields are ignored)",
                "operationId": "feastGetOnlineFeatures",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(FeastRequest)}},
                },
                "responses": _ok(FeastResponse),
            }
        },
        "/healthz": {
            "get": {"summary": "Liveness", "operationId": "healthz", "responses": _ok(None)}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: every backend answers",
                "operationId": "readyz",
                "responses": _ok(None, extra={"503": {"$ref": "#/components/responses/Error"}}),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "operationId": "openapi", "responses": _ok(None)}
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dsfeatures",
            "version": version,
            "description": "Online feature store: BatchGet, writes, deletes, GDPR erasure, "
            "embedding search, registry, and a Feast-compatible read.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {
                "Error": {
                    "description": "Error as {code, message, request_id}",
                    "content": {"application/json": {"schema": _ref(ErrorBody)}},
                }
            },
        },
    }
