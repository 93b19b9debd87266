"""Input files of the bulk loader: Parquet, CSV and JSON lines, read as rows.

Each reader yields ``dict`` rows in file order (the loader's resume counts chunks, so
the order must be stable); values keep the types the format carries, and CSV cells are
converted by the features' types.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from codegen.errors import LoadError
from codegen.loader import LoadTarget

__all__ = ["count_rows", "csv_rows", "file_rows", "jsonl_rows", "parquet_rows"]


def parquet_rows(path: Path, batch_size: int = 4096) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file (needs pyarrow), in file order.

    Raises:
        LoadError: pyarrow is missing or the file is unreadable.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise LoadError("reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()
    except (OSError, ValueError) as e:
        raise LoadError(f"{path}: {e}") from None


def _csv_value(text: str, ftype: str, column: str, number: int) -> Any:
    if text == "":
        return None
    try:
        if ftype == "int64":
            return int(text)
        if ftype == "float64":
            v = float(text)
            if not math.isfinite(v):
                raise ValueError("not finite")
            return v
        if ftype == "bool":
            low = text.strip().lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError("expected true or false")
        if ftype == "bytes":
            base64.b64decode(text, validate=True)
            return text
        if ftype.startswith("list<") or ftype == "vector":
            return msgspec.json.decode(text)
    except (ValueError, msgspec.DecodeError) as e:
        raise LoadError(f"row {number}: {column}: {text!r} is not a {ftype}: {e}") from None
    return text


def csv_rows(path: Path, target: LoadTarget) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file with a header line, values converted by the features' types.

    Empty cells are missing values; lists and vectors are JSON; bytes are base64.

    Raises:
        LoadError: the file is unreadable or a value does not fit its type.
    """
    types = dict(target.features)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for number, raw in enumerate(csv.DictReader(f)):
                row: dict[str, Any] = {}
                for col, text in raw.items():
                    if col is None or text is None:
                        continue
                    ftype = types.get(col)
                    row[col] = text if ftype is None else _csv_value(text, ftype, col, number)
                yield row
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror or e}") from None


def jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON-lines file (one object per line; blank lines skipped).

    Raises:
        LoadError: the file is unreadable or a line is not a JSON object.
    """
    decoder = msgspec.json.Decoder(dict[str, Any])
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f):
                if line.strip():
                    try:
                        yield decoder.decode(line)
                    except msgspec.MsgspecError as e:
                        raise LoadError(f"{path}:{number + 1}: {e}") from None
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror or e}") from None


def file_rows(path: Path, target: LoadTarget) -> Iterator[dict[str, Any]]:
    """Rows of a file by its extension: ``.parquet``/``.pq``, ``.csv``, ``.jsonl``/``.ndjson``.

    Raises:
        LoadError: an unknown extension, or the reader's errors.
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return parquet_rows(path)
    if suffix == ".csv":
        return csv_rows(path, target)
    if suffix in (".jsonl", ".ndjson"):
        return jsonl_rows(path)
    raise LoadError(f"{path}: unknown file type {suffix!r} (.parquet, .csv, .jsonl)")


def count_rows(path: Path) -> int | None:
    """Rows in a file, cheaply (Parquet metadata, or counting lines); ``None`` if unknown."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        with contextlib.suppress(ImportError, OSError, ValueError):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        return None
    try:
        with path.open("rb") as f:
            lines = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(0, lines - 1) if suffix == ".csv" else lines
