"""API tokens and scopes.

Tokens are random strings handed to callers; the daemon keeps only their
sha256 (a token is high-entropy, so a fast hash is enough; no token is ever
stored, logged or echoed). A tokens file (TOML) lists them::

    [[tokens]]
    name = "pricing-writer"          # who: shown in audit records and logs
    sha256 = "9f86d0..."             # sha256 hex of the token
    scopes = ["read", "write:team:pricing"]

Scopes:

* ``read``: every read (features, search, registry, catalog, Feast endpoint);
* ``write:*``, ``write:group:NAME``, ``write:team:TEAM``: writes and deletes of
  every group, of one group, or of the groups a team owns (``owner.team``);
  any write scope also allows reads;
* ``admin``: everything, including registry changes and GDPR erasure.

``dsfeatures token new`` makes a token and prints its file entry. The daemon
looks at the file every ``auth.reload_seconds`` and re-reads it when it changed,
so tokens are added, rotated and revoked without a restart; a file that turns bad
is refused (logged, counted) and the tokens loaded before stay in force.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta, Struct
from prometheus_client import Counter

from dsfeatures.errors import Forbidden, InvalidRequest, Unauthorized
from dsfeatures.registry.catalog import CompiledGroup

__all__ = [
    "Principal",
    "TokenEntry",
    "Tokens",
    "TokensFile",
    "hash_token",
    "is_scope",
    "load_tokens",
    "new_token",
]

log = logging.getLogger(__name__)

TOKEN_RELOADS = Counter(
    "dsf_tokens_reloads_total",
    "Re-reads of a changed tokens file, by result (ok, or error: the old tokens stay)",
    ["result"],
)

_SCOPE = re.compile(r"^(read|admin|write:\*|write:group:[a-z_][a-z0-9_]*|write:team:[^\s]{1,128})$")


class TokenEntry(Struct, frozen=True, forbid_unknown_fields=True):
    """One entry of the tokens file."""

    name: Annotated[str, Meta(min_length=1, max_length=128)]
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    scopes: Annotated[list[str], Meta(min_length=1)]


class _TokensFile(Struct, frozen=True, forbid_unknown_fields=True):
    tokens: list[TokenEntry] = []


class Principal:
    """An authenticated caller and what it may do."""

    __slots__ = ("admin", "name", "read", "write_all", "write_groups", "write_teams")

    def __init__(self, name: str, scopes: Iterable[str]) -> None:
        self.name = name
        s = set(scopes)
        self.admin = "admin" in s
        self.write_all = self.admin or "write:*" in s
        self.write_groups = {x[12:] for x in s if x.startswith("write:group:")}
        self.write_teams = {x[11:] for x in s if x.startswith("write:team:")}
        self.read = bool(s)  # every scope includes reading

    def can_write(self, group: CompiledGroup) -> bool:
        """Whether this caller may write or delete rows of ``group``."""
        return (
            self.write_all
            or group.name in self.write_groups
            or group.definition.owner.team in self.write_teams
        )

    def require_read(self) -> None:
        """Raises Forbidden unless reads are allowed."""
        if not self.read:
            raise Forbidden(f"token {self.name!r} may not read")

    def require_admin(self, what: str) -> None:
        """Raises Forbidden unless this is an admin token."""
        if not self.admin:
            raise Forbidden(f"{what} needs the admin scope (token {self.name!r})")

    def require_write(self, groups: Iterable[CompiledGroup]) -> None:
        """Raises Forbidden naming the first group this caller may not write."""
        for g in groups:
            if not self.can_write(g):
                raise Forbidden(
                    f"token {self.name!r} may not write group {g.name!r} "
                    f"(needs write:group:{g.name}, write:team:{g.definition.owner.team}, "
                    "write:* or admin)"
                )


def is_scope(scope: str) -> bool:
    """Whether ``scope`` is one this daemon understands."""
    return _SCOPE.match(scope) is not None


def hash_token(token: str) -> str:
    """The sha256 hex the tokens file keeps for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random token (256 bits, URL-safe)."""
    return "dsf_" + secrets.token_urlsafe(32)


class Tokens:
    """The loaded tokens: turns an ``Authorization`` header into a Principal."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._by_hash: dict[str, Principal] = {}
        for e in entries:
            if e.sha256 in self._by_hash:
                raise InvalidRequest(f"tokens file: the token of {e.name!r} is listed twice")
            self._by_hash[e.sha256] = Principal(e.name, e.scopes)

    def __len__(self) -> int:
        return len(self._by_hash)

    def replace(self, other: Tokens) -> None:
        """Take ``other``'s tokens in place (one reference swap: callers keep this object)."""
        self._by_hash = other._by_hash

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller presenting ``Authorization: Bearer TOKEN``.

        Raises:
            Unauthorized: no header, a malformed one, or an unknown token.
        """
        if not authorization:
            raise Unauthorized("missing Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected Authorization: Bearer token")
        principal = self._by_hash.get(hash_token(token.strip()))
        if principal is None:
            raise Unauthorized("unknown or revoked token")
        return principal


def load_tokens(path: str | Path) -> Tokens:
    """Read a tokens file.

    Raises:
        InvalidRequest: unreadable file, bad TOML, an unknown field or a bad scope,
            naming the entry.
    """
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InvalidRequest(f"tokens file {path}: {e}") from None
    try:
        parsed = msgspec.convert(raw, _TokensFile)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"tokens file {path}: {e}") from None
    for i, entry in enumerate(parsed.tokens):
        for scope in entry.scopes:
            if not is_scope(scope):
                raise InvalidRequest(
                    f"tokens file {path}: tokens[{i}] ({entry.name}): unknown scope {scope!r} "
                    "(read, admin, write:*, write:group:NAME, write:team:TEAM)"
                )
    if not parsed.tokens:
        raise InvalidRequest(f"tokens file {path}: no tokens (authentication would refuse all)")
    seen: dict[str, str] = {}
    for i, entry in enumerate(parsed.tokens):
        if entry.sha256 in seen:
            raise InvalidRequest(
                f"tokens file {path}: tokens[{i}] ({entry.name}): the same token as "
                f"{seen[entry.sha256]!r} is listed twice"
            )
        seen[entry.sha256] = entry.name
    return Tokens(parsed.tokens)


_Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class TokensFile:
    """A tokens file and the tokens read from it, re-read when the file changes.

    A change is a different inode, modification time or size (an edit in place, or a
    new file renamed over the old one, as secret mounts do).

    Args:
        path: the TOML tokens file.

    Raises:
        InvalidRequest: the file is bad at start (the daemon does not start).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen = _stamp(self.path)
        self.tokens = load_tokens(self.path)

    def check(self) -> bool:
        """Re-read the file if it changed since the last look.

        Returns:
            True if new tokens are in force. A missing or bad file keeps the tokens
            loaded before (an error is logged, ``dsf_tokens_reloads_total{result="error"}``
            counts it) and is read again once it changes again.
        """
        now = _stamp(self.path)
        if now == self._seen:
            return False
        self._seen = now
        try:
            fresh = load_tokens(self.path)
        except InvalidRequest as e:
            TOKEN_RELOADS.labels("error").inc()
            log.error("%s; keeping the %d tokens loaded before", e.message, len(self.tokens))
            return False
        self.tokens.replace(fresh)
        TOKEN_RELOADS.labels("ok").inc()
        log.info("tokens file %s re-read: %d tokens (pid %d)", self.path, len(fresh), os.getpid())
        return True
