"""Reading one attempt's outcome: a response becomes a result or a :class:`DSFError`.

Transport failures (refused connections, resets, timeouts) become
``BackendUnavailable`` or ``DeadlineExceeded`` with the httpx exception as
``__cause__``, which the retry policy inspects.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from dsfeatures.client._calls import Call, bad_response
from dsfeatures.client._settings import MSGPACK_TYPE
from dsfeatures.errors import (
    BackendUnavailable,
    Conflict,
    DeadlineExceeded,
    DSFError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    error_for,
)
from dsfeatures.wire import ErrorBody

__all__ = ["read_response", "transport_error"]

T = TypeVar("T")

_ERROR_JSON = msgspec.json.Decoder(ErrorBody)
_ERROR_MSGPACK = msgspec.msgpack.Decoder(ErrorBody)

# Codes used when an error body is not ours (a proxy's HTML page, an empty 502).
_STATUS_CODES: dict[int, str] = {
    cls.status: cls.code
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        BackendUnavailable,
        DeadlineExceeded,
    )
}
_STATUS_CODES[429] = "RESOURCE_EXHAUSTED"
_STATUS_CODES[502] = "BAD_GATEWAY"

_REQUEST_ID_HEADER = "X-Request-Id"
_SNIPPET = 200


def _is_msgpack(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith(MSGPACK_TYPE)


def _error_body(content: bytes) -> ErrorBody | None:
    # Error bodies are JSON by contract; accept msgpack too rather than lose the message.
    for decoder in (_ERROR_JSON, _ERROR_MSGPACK):
        try:
            return decoder.decode(content)
        except msgspec.DecodeError:
            continue
    return None


def _error(response: httpx.Response, call: Call[Any]) -> DSFError:
    status = response.status_code
    request_id: str = response.headers.get(_REQUEST_ID_HEADER, "")
    body = _error_body(response.content)
    if body is not None:
        return error_for(status, body.code, body.message, body.request_id or request_id)
    text = response.content[:_SNIPPET].decode("utf-8", "replace").strip()
    message = f"{call.method} {call.path} answered HTTP {status}"
    if text:
        message += f": {text}"
    default = "INTERNAL" if status >= 500 else "HTTP_ERROR"
    return error_for(status, _STATUS_CODES.get(status, default), message, request_id)


def read_response(call: Call[T], response: httpx.Response) -> T:
    """The result of ``call`` from its response.

    Raises:
        DSFError: the subclass for the status when the response is not 2xx, or
            ``BAD_RESPONSE`` when a 2xx body does not have the expected shape.
    """
    if not 200 <= response.status_code < 300:
        raise _error(response, call)
    try:
        return call.parse(response.content, _is_msgpack(response))
    except msgspec.DecodeError as exc:  # ValidationError included
        err = bad_response(f"{call.method} {call.path}: {exc}")
        err.status = response.status_code
        raise err from exc


def transport_error(exc: httpx.TransportError, call: Call[T], base_url: str) -> DSFError:
    """The error for a request that got no response."""
    where = f"{call.method} {base_url}{call.path}"
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(f"{where} timed out ({type(exc).__name__}: {exc})")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return BackendUnavailable(f"{where} failed: cannot reach dsfeatures ({exc!r})")
    # A local protocol error or an unsupported URL scheme: repeating will not help.
    return DSFError(f"{where} failed: {exc!r}", code="TRANSPORT_ERROR")
