"""Client settings: validated once at construction, shared by the sync and async clients."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ClientSettings",
]

#: Where ``dsfeatures serve`` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
#: Seconds allowed for each phase (connect, write, read, pool) of one attempt.
DEFAULT_TIMEOUT = 5.0
#: Extra attempts after the first for a retryable failure.
DEFAULT_RETRIES = 3
#: Seconds of the first backoff; it doubles on every retry (with jitter).
DEFAULT_BACKOFF_BASE = 0.05
#: Seconds: the cap of one backoff.
DEFAULT_BACKOFF_MAX = 2.0

JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/msgpack"


def _default_user_agent() -> str:
    try:
        v = version("dsfeatures")
    except PackageNotFoundError:  # running from a source tree
        v = "0+unknown"
    return f"dsfeatures-python/{v}"


_USER_AGENT = _default_user_agent()


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything a client needs to know, checked once.

    Attributes:
        base_url: the daemon's URL, without a trailing slash.
        timeout: seconds allowed for each phase of one attempt.
        retries: extra attempts after the first for a retryable failure.
        token: bearer token sent as ``Authorization``, or ``None``.
        msgpack: send request bodies as msgpack and ask for msgpack answers.
        user_agent: the ``User-Agent`` header.
        backoff_base: seconds of the first backoff.
        backoff_max: seconds: the cap of one backoff.
    """

    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    token: str | None = None
    msgpack: bool = False
    user_agent: str = _USER_AGENT
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://: {self.base_url!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"timeout must be a positive number of seconds: {self.timeout!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0: {self.retries!r}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must be >= 0")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty (pass None to send no token)")

    @classmethod
    def build(
        cls,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        token: str | None,
        msgpack: bool,
        user_agent: str | None,
        backoff_base: float,
        backoff_max: float,
    ) -> ClientSettings:
        """Normalise constructor arguments (trailing slash, default user agent)."""
        return cls(
            base_url=base_url.rstrip("/"),
            timeout=float(timeout),
            retries=int(retries),
            token=token,
            msgpack=msgpack,
            user_agent=user_agent or _USER_AGENT,
            backoff_base=float(backoff_base),
            backoff_max=float(backoff_max),
        )

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of request bodies."""
        return MSGPACK_TYPE if self.msgpack else JSON_TYPE

    def headers(self) -> dict[str, str]:
        """Headers sent with every request."""
        headers = {"User-Agent": self.user_agent, "Accept": self.content_type}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers
