"""Validation of a whole Arrow record batch at once: the fast path of the Parquet reader.

:meth:`Post.from_record` checks one record at a time in Python, which was the largest single
cost of ``prepare`` on Parquet input (docs/scale-prepare.md). A Parquet batch already carries
types: a string column holds only strings, and Arrow strings are valid UTF-8, so none holds a
lone surrogate; a double column holds only floats. What is left to check is checked per column
with pyarrow compute (nulls, empty ids, coordinate ranges, NUL in paths), and the posts are
built from the columns' Python lists.

The rule that keeps the two paths equal: this path either returns exactly the posts that
``from_record`` would give for every row, or ``None``. A batch it is not sure of (a column type
it does not handle, any value that ``from_record`` would refuse or warn about, an image vector
to check, known keys hidden in an ``extra`` JSON column, or enough keys there that a row may be
over ``max_keys``) returns ``None``, and the reader validates that batch record by record as
before, so errors, warnings and skip reports read exactly the same.
``tests/support/photos/test_columnar_validation.py`` compares the two paths.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from postloc.data.schema import (
    IMAGE_VECTOR_KEY,
    KNOWN_KEYS,
    Post,
    _lone_surrogate,
    _parse_created,
    is_missing,
    resolve_image,
)


class _Refused(Exception):
    """This batch needs the record-by-record path."""


def posts_from_batch(
    batch: pa.RecordBatch,
    *,
    base_dir: str | None,
    folders: dict[tuple[str, str], str],
    max_keys: int | None = None,
) -> list[Post] | None:
    """The posts of ``batch`` (columns already named as exchange keys), or ``None`` (see the module doc).

    ``base_dir`` and ``folders`` resolve relative image paths as :meth:`Post.from_record` does.
    A row that might hold more than ``max_keys`` keys once its ``extra`` JSON is merged refuses the
    batch: the reader's record path names it.
    """
    names = batch.schema.names
    if len(set(names)) != len(names) or "id" not in names:
        return None
    try:
        column = dict(zip(names, batch.columns, strict=True))
        n = batch.num_rows
        ids = _ids(column["id"])
        texts = _texts(column.get("text"), n)
        hashtags = _tag_lists(column.get("hashtags"), n)
        images = _image_lists(column.get("image"), n)
        lats, lons = _coordinates(column.get("lat"), column.get("lon"), n)
        pois = _optional_ids(column.get("poi"), n)
        users = _optional_ids(column.get("user"), n)
        created = _created_values(column.get("created"), n)
        extras = _extras(names, column, n, max_keys)
    except _Refused:
        return None
    if base_dir is not None:  # only for a batch taken: resolving costs a system call per image
        isabs = os.path.isabs
        images = [[p if isabs(p) else resolve_image(base_dir, p, folders) for p in v] if v else v for v in images]
    return [
        Post(id=i, text=t, hashtags=h, images=im, poi=p, lat=la, lon=lo, user=u, created=c, extra=e)
        for i, t, h, im, p, la, lo, u, c, e in zip(
            ids, texts, hashtags, images, pois, lats, lons, users, created, extras, strict=True
        )
    ]


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _is_whole(kind: pa.DataType) -> bool:
    """An integer type (bool is not one in Arrow)."""
    return pa.types.is_integer(kind)


def _ids(values: pa.Array) -> list[str]:
    """Required ids: non-empty strings, or integers written in decimal."""
    if values.null_count:
        raise _Refused
    if _is_text(values.type):
        if len(values) and pc.min(pc.utf8_length(values)).as_py() == 0:
            raise _Refused
        return values.to_pylist()
    if _is_whole(values.type):
        return [str(v) for v in values.to_pylist()]
    raise _Refused


def _optional_ids(values: pa.Array | None, n: int) -> list[str | None]:
    """``poi`` and ``user``: an empty string or a null is no id."""
    if values is None or pa.types.is_null(values.type):
        return [None] * n
    if _is_text(values.type):
        return [v or None for v in values.to_pylist()]
    if _is_whole(values.type):
        return [None if v is None else str(v) for v in values.to_pylist()]
    raise _Refused


def _texts(values: pa.Array | None, n: int) -> list[str]:
    if values is None or pa.types.is_null(values.type):
        return [""] * n
    if not _is_text(values.type):
        raise _Refused
    return pc.fill_null(values, "").to_pylist() if values.null_count else values.to_pylist()


def _string_lists(values: pa.Array | None, n: int, *, scalar: bool) -> tuple[list[list[str]], pa.Array | None]:
    """A list-of-strings column as Python lists (null -> []), and its flattened strings.

    ``scalar``: a plain string column is accepted too, as one-element lists (``image``).
    """
    if values is None or pa.types.is_null(values.type):
        return [[] for _ in range(n)], None
    kind = values.type
    if scalar and _is_text(kind):
        return [[v] if v else [] for v in values.to_pylist()], values
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
        _is_text(kind.value_type) or pa.types.is_null(kind.value_type)
    ):
        raise _Refused
    flat = pc.list_flatten(values)
    if flat.null_count:  # a null inside a list: from_record says "must contain only strings"
        raise _Refused
    lists = values.to_pylist()
    if values.null_count:
        lists = [[] if v is None else v for v in lists]
    if len(flat) and pc.min(pc.utf8_length(flat)).as_py() == 0:
        lists = [[item for item in v if item] for v in lists]  # empty strings are dropped
    return lists, flat


def _tag_lists(values: pa.Array | None, n: int) -> list[list[str]]:
    lists, flat = _string_lists(values, n, scalar=False)
    if flat is not None and len(flat) and pc.any(pc.starts_with(flat, "#")).as_py():
        lists = [[h.lstrip("#") for h in v if h.lstrip("#")] for v in lists]
    return lists


def _image_lists(values: pa.Array | None, n: int) -> list[list[str]]:
    """Image paths as written (resolved by the caller once the whole batch is taken)."""
    lists, flat = _string_lists(values, n, scalar=True)
    if flat is not None and len(flat) and pc.any(pc.match_substring(flat, "\x00")).as_py():
        raise _Refused  # from_record names the path: no file system takes a NUL
    return lists


def _coordinate_column(values: pa.Array | None, n: int, limit: float) -> tuple[list[float | None], pa.Array]:
    """Floats in [-limit, limit], None where missing (null, or NaN as ``is_missing`` says), and the missing mask."""
    if values is None or pa.types.is_null(values.type):
        return [None] * n, pa.array([True] * n)
    whole = _is_whole(values.type)
    if not whole and (not pa.types.is_floating(values.type) or pa.types.is_float16(values.type)):
        raise _Refused
    missing = pc.is_null(values) if whole else pc.fill_null(pc.is_nan(values), True)
    present = pc.filter(values, pc.invert(missing))
    if len(present):
        low, high = pc.min_max(present).values()
        if not (-limit <= low.as_py() and high.as_py() <= limit):
            raise _Refused
    numbers = values.to_pylist()
    if whole:
        return [None if v is None else float(v) for v in numbers], missing
    if pc.any(missing).as_py():
        numbers = [None if v is None or v != v else v for v in numbers]
    return numbers, missing


def _coordinates(lat: pa.Array | None, lon: pa.Array | None, n: int) -> tuple[list, list]:
    lats, lat_missing = _coordinate_column(lat, n, 90.0)
    lons, lon_missing = _coordinate_column(lon, n, 180.0)
    if not pc.all(pc.equal(lat_missing, lon_missing)).as_py():
        raise _Refused  # one coordinate without the other
    return lats, lons


def _created_values(values: pa.Array | None, n: int) -> list[str | None]:
    """ISO-8601 as ``_created`` gives it (from text, Unix numbers or timestamps); a value it would
    warn about refuses the batch. Each distinct value is parsed once per batch."""
    if values is None or pa.types.is_null(values.type):
        return [None] * n
    parsed: dict[tuple[type, Any], str] = {}
    out: list[str | None] = []
    for value in values.to_pylist():
        if is_missing(value) or (type(value) is str and not value.strip()):
            out.append(None)
            continue
        key = (type(value), value)  # 1, 1.0 and True are equal keys otherwise
        iso = parsed.get(key)
        if iso is None:
            try:
                iso = parsed[key] = _parse_created(value)
            except (ValueError, TypeError, OverflowError, OSError):
                raise _Refused from None
        out.append(iso)
    return out


def _extras(names: list[str], column: dict[str, pa.Array], n: int, max_keys: int | None) -> list[dict[str, Any]]:
    """The record keys that are no exchange key, in column order; an ``extra`` JSON column merged
    in as the Parquet reader does (its keys after the columns', never over them)."""
    others = [name for name in names if name not in KNOWN_KEYS and name != "extra"]
    if IMAGE_VECTOR_KEY in others and column[IMAGE_VECTOR_KEY].null_count < n:
        raise _Refused  # each vector is checked by from_record
    values = [column[name].to_pylist() for name in others]
    extras: list[dict[str, Any]] = [dict(zip(others, row, strict=True)) for row in zip(*values, strict=True)]
    if not others:
        extras = [{} for _ in range(n)]
    encoded = column.get("extra")
    if encoded is None or encoded.null_count == n:
        return extras
    for extra, value in zip(extras, encoded.to_pylist(), strict=True):
        decoded = extra_object(value)
        if decoded is None:
            if value is not None:
                extra["extra"] = value
            continue
        hidden = any(key in KNOWN_KEYS or key == IMAGE_VECTOR_KEY for key in decoded)
        too_wide = max_keys is not None and len(names) + len(decoded) > max_keys
        if hidden or too_wide or _lone_surrogate(decoded) is not None:
            raise _Refused  # a known key hidden in the JSON, or text no writer can encode
        for key, item in decoded.items():
            extra.setdefault(key, item)
    return extras


def extra_object(value: Any) -> dict[str, Any] | None:
    """The keys an ``extra`` column's value carries (a string holding a JSON object, as
    :func:`postloc.data.writers.write_posts` writes it), or None: then the value stays the
    record's ``extra`` as it is. Shared by both paths of the Parquet reader."""
    if not isinstance(value, str) or not value:
        return None
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):  # not JSON, nested too deep, integer too long
        return None
    return decoded if isinstance(decoded, dict) else None
