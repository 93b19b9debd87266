"""Feature value types: parsing type names and checking values against them.

A stored value is a plain Python object that msgpack and JSON both carry:
``bool``, ``int``, ``float``, ``str``, ``bytes``, an aware ``datetime``, a
``list`` of those, or a ``list[float]`` for a vector.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = ["FeatureType", "InvalidValue", "parse_type"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_FLOAT32_MAX = 3.4028234663852886e38


class InvalidValue(ValueError):
    """A value does not fit its feature's type; the message says why."""


Coerce = Callable[[Any], Any]


def _bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise InvalidValue(f"expected bool, got {_kind(v)}")


def _int64(v: Any) -> Any:
    if type(v) is int:
        if _INT64_MIN <= v <= _INT64_MAX:
            return v
        raise InvalidValue("integer out of int64 range")
    raise InvalidValue(f"expected int64, got {_kind(v)}")


def _float64(v: Any) -> Any:
    t = type(v)
    if t is float:
        if math.isfinite(v):
            return v
        raise InvalidValue("expected a finite float64")
    if t is int:
        return float(v)
    raise InvalidValue(f"expected float64, got {_kind(v)}")


def _string(v: Any) -> Any:
    if type(v) is str:
        return v
    raise InvalidValue(f"expected string, got {_kind(v)}")


def _bytes(v: Any) -> Any:
    t = type(v)
    if t is bytes:
        return v
    if t is str:  # JSON carries bytes as base64
        try:
            return binascii.a2b_base64(v, strict_mode=True)
        except (binascii.Error, ValueError):
            raise InvalidValue("expected base64-encoded bytes") from None
    raise InvalidValue(f"expected bytes (base64 in JSON), got {_kind(v)}")


def _timestamp(v: Any) -> Any:
    # Stored in UTC, so a value reads back the same from every store and cache.
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise InvalidValue("timestamp needs a time zone")
        return v.astimezone(UTC)
    if type(v) is str:
        try:
            dt = msgspec.convert(v, datetime)
        except msgspec.ValidationError:
            raise InvalidValue("expected an RFC 3339 timestamp") from None
        if dt.tzinfo is None:
            raise InvalidValue("timestamp needs a time zone (for example a trailing Z)")
        return dt.astimezone(UTC)
    raise InvalidValue(f"expected an RFC 3339 timestamp string, got {_kind(v)}")


_SCALARS: dict[str, Coerce] = {
    "bool": _bool,
    "int64": _int64,
    "float64": _float64,
    "string": _string,
    "bytes": _bytes,
    "timestamp": _timestamp,
}


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


class FeatureType:
    """A parsed feature type with its value checker.

    Attributes:
        name: the type as written, for example ``list<int64>``.
        is_vector: whether this is a float32 vector.
        dimension: vector length (vectors only).
    """

    __slots__ = ("_coerce", "dimension", "is_vector", "name")

    def __init__(self, name: str, coerce: Coerce, *, is_vector: bool = False, dimension: int = 0):
        self.name = name
        self._coerce = coerce
        self.is_vector = is_vector
        self.dimension = dimension

    def check(self, value: Any) -> Any:
        """Return the stored form of ``value``.

        Raises:
            InvalidValue: the value does not fit this type.
        """
        return self._coerce(value)


def _list_of(item: Coerce) -> Coerce:
    def coerce(v: Any) -> Any:
        if type(v) is not list:
            raise InvalidValue(f"expected a list, got {_kind(v)}")
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except InvalidValue as e:
                raise InvalidValue(f"item {i}: {e}") from None
        return out

    return coerce


def _vector(dimension: int, nonzero: bool) -> Coerce:
    def coerce(v: Any) -> Any:
        if type(v) is not list:
            raise InvalidValue(f"expected a vector (list of numbers), got {_kind(v)}")
        if len(v) != dimension:
            raise InvalidValue(f"expected a vector of dimension {dimension}, got {len(v)}")
        out = []
        for x in v:
            t = type(x)
            if t is not float and t is not int:
                raise InvalidValue(f"vector items must be numbers, got {_kind(x)}")
            f = float(x)
            if not math.isfinite(f) or abs(f) > _FLOAT32_MAX:
                raise InvalidValue("vector items must be finite float32 numbers")
            out.append(f)
        if nonzero and not any(out):
            raise InvalidValue("a cosine vector must not be all zeros (it has no direction)")
        return out

    return coerce


def parse_type(name: str, dimension: int | None = None, metric: str | None = None) -> FeatureType:
    """Parse a feature type name.

    Args:
        name: ``bool``, ``int64``, ``float64``, ``string``, ``bytes``,
            ``timestamp``, ``list<T>`` or ``vector``.
        dimension: the vector length, required for ``vector``.
        metric: the vector metric; ``cosine`` vectors must not be all zeros.

    Returns:
        The parsed type.

    Raises:
        InvalidValue: unknown type name, or a vector without a dimension.
    """
    if name in _SCALARS:
        return FeatureType(name, _SCALARS[name])
    if name.startswith("list<") and name.endswith(">"):
        inner = name[5:-1]
        if inner not in _SCALARS:
            raise InvalidValue(f"unknown list item type {inner!r}")
        return FeatureType(name, _list_of(_SCALARS[inner]))
    if name == "vector":
        if dimension is None:
            raise InvalidValue("a vector feature needs a dimension")
        vec = _vector(dimension, nonzero=metric == "cosine")
        return FeatureType(name, vec, is_vector=True, dimension=dimension)
    raise InvalidValue(
        f"unknown type {name!r} (bool, int64, float64, string, bytes, timestamp, list<T>, vector)"
    )
