"""The error hierarchy shared by the daemon and the SDKs.

Shallow and coded: each class is chosen by what a caller does about it, carries a
stable ``code`` and an HTTP ``status``, and is mapped to ``{code, message,
request_id}`` in exactly one place (the API middleware). Imports only the
standard library, so the SDKs can raise the same classes.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "Conflict",
    "DSFError",
    "DeadlineExceeded",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "UnknownFeature",
    "error_for",
]


class DSFError(Exception):
    """Root of every dsfeatures error.

    Attributes:
        code: stable machine-readable code, for example ``INVALID_REQUEST``.
        status: the HTTP status this error maps to.
        retryable: whether repeating the same call may succeed.
        request_id: the request id the server gave, when known.
    """

    code: str = "INTERNAL"
    status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidRequest(DSFError):
    """The request is malformed or names something wrong; fix it before retrying."""

    code = "INVALID_REQUEST"
    status = 400


class UnknownFeature(InvalidRequest):
    """A feature group, version or feature named by the request does not exist."""

    code = "UNKNOWN_FEATURE"


class PayloadTooLarge(InvalidRequest):
    """The request body is larger than the server accepts."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class Unauthorized(DSFError):
    """No valid credentials were presented."""

    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(DSFError):
    """The credentials do not allow this operation."""

    code = "FORBIDDEN"
    status = 403


class NotFound(DSFError):
    """A registry object addressed by the URL does not exist."""

    code = "NOT_FOUND"
    status = 404


class Conflict(DSFError):
    """The request conflicts with stored state (for example a changed definition)."""

    code = "CONFLICT"
    status = 409


class BackendUnavailable(DSFError):
    """A store needed to answer is unreachable or failing; retry later."""

    code = "UNAVAILABLE"
    status = 503
    retryable = True


class DeadlineExceeded(DSFError):
    """The request did not finish within its deadline; retry later."""

    code = "DEADLINE_EXCEEDED"
    status = 504
    retryable = True


_BY_STATUS: dict[int, type[DSFError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: BackendUnavailable,
    504: DeadlineExceeded,
}


def error_for(status: int, code: str, message: str, request_id: str = "") -> DSFError:
    """Build the error instance for an error response (used by the SDKs).

    Args:
        status: HTTP status of the response.
        code: the ``code`` field of the body.
        message: the ``message`` field of the body.
        request_id: the ``request_id`` field of the body.

    Returns:
        An instance of the most specific class for ``status`` and ``code``.
    """
    cls = UnknownFeature if code == UnknownFeature.code else _BY_STATUS.get(status, DSFError)
    err = cls(message, code=code, request_id=request_id)
    if status == 429 or status >= 500:
        err.retryable = True
    err.status = status
    return err
