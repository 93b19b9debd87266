"""Authentication middleware: who is calling, and the route-level part of authorization.

Off unless the config names a tokens file. Group-level write permissions are
checked by the service, which knows each group's owner team.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

from dsfeatures.api.keys import SERVICE
from dsfeatures.errors import Forbidden
from dsfeatures.service.auth import Principal, Tokens

__all__ = ["PRINCIPAL", "TOKENS", "auth_middleware", "principal_of"]

TOKENS: web.AppKey[Tokens] = web.AppKey("tokens", Tokens)
PRINCIPAL = "principal"

Policy = Literal["open", "read", "write", "admin"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: (method, route) -> what it needs; every route not listed needs ``read``.
_POLICY: dict[tuple[str, str], Policy] = {
    ("GET", "/healthz"): "open",
    ("GET", "/readyz"): "open",
    ("GET", "/metrics"): "open",
    ("GET", "/openapi.json"): "open",
    # The catalog page's own files hold no data; its JSON calls need ``read``.
    ("GET", "/ui"): "open",
    ("GET", "/ui/"): "open",
    ("GET", "/ui/static/{name}"): "open",
    ("POST", "/v1/features/write"): "write",
    ("POST", "/v1/features/delete"): "write",
    ("DELETE", "/v1/entities/{entity_type}/{entity_id}"): "admin",
    ("GET", "/v1/entities/{entity_type}/{entity_id}/erasures"): "admin",
    ("POST", "/v1/registry/groups"): "admin",
    ("POST", "/v1/registry/groups/{name}/versions/{version}/retire"): "admin",
    ("GET", "/v1/audit"): "admin",
}


def principal_of(request: web.Request) -> Principal | None:
    """The authenticated caller, or None when authentication is off."""
    p: Principal | None = request.get(PRINCIPAL)
    return p


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the bearer token and apply the route's policy (401/403 otherwise)."""
    tokens = request.app.get(TOKENS)
    if tokens is None:
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    policy = _POLICY.get((request.method, route), "read")
    if policy == "open" or request.method == "OPTIONS":
        return await handler(request)
    principal = tokens.authenticate(request.headers.get("Authorization"))
    denied = False
    try:
        if policy == "admin":
            principal.require_admin(f"{request.method} {route}")
        else:
            principal.require_read()
        request[PRINCIPAL] = principal
        request["actor"] = principal.name
        return await handler(request)
    except Forbidden:
        denied = True
        raise
    finally:
        # Counted in memory, appended to the audit log once a minute (never per request).
        request.app[SERVICE].audit.token_used(principal.name, policy, denied=denied)
