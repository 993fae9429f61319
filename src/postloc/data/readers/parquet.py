"""Parquet, read in record batches so a large file never sits in memory whole.

Row numbers (1-based) stand in for line numbers in error messages. Batches are validated a
column at a time where the column types allow it (:mod:`postloc.data.columnar`), else record by
record, with the same outcome.

A few kB of zstd can hold a cell of hundreds of MB, so reads are bounded like a JSONL line
(``max_record_bytes``): a row group whose uncompressed size (from the file's metadata, before
anything is decoded) is more than that per row is refused as a whole, and a row over it in a
decoded batch is a bad record that never becomes Python objects.

A string column named ``extra`` holding JSON objects (what :func:`postloc.data.writers.write_posts`
writes) is expanded back into the record's extra keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from postloc.data.columnar import extra_object, posts_from_batch
from postloc.data.readers.base import (
    MAX_COLUMNS,
    MAX_RECORD_BYTES,
    RawRecord,
    check_mapping,
    check_unique_columns,
    renamer,
    too_many,
)
from postloc.errors import BadInputError

BATCH_ROWS = 8192


def iter_parquet(
    path: Path,
    *,
    columns: Mapping[str, str],
    folders: dict[tuple[str, str], str] | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_columns: int = MAX_COLUMNS,
) -> Iterator[RawRecord]:
    """The file's records, batch by batch, no row over ``max_record_bytes`` (see the module's doc).

    A file of more than ``max_columns`` columns is refused; a row whose ``extra`` JSON takes it
    over that many keys is a bad record.

    With ``folders`` (the image-folder cache of one pass, see :func:`postloc.data.schema.resolve_image`)
    a batch that :func:`postloc.data.columnar.posts_from_batch` can check column by column comes as
    validated posts; any other batch comes record by record, for :meth:`Post.from_record`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, base_dir = str(path), str(path.resolve().parent)
    check_mapping(path, columns)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise BadInputError(path, None, None, f"is not a readable Parquet file: {error}") from None
    header = parquet.schema_arrow.names
    if len(header) > max_columns:
        raise BadInputError(path, None, None, f"has {too_many(len(header), max_columns, 'columns')}")
    missing = [f"{key}<-{col}" for key, col in columns.items() if col not in header]
    if missing:
        raise BadInputError(
            path, None, None, f"mapped columns not in the file: {', '.join(missing)} (columns: {', '.join(header)})"
        )
    check_unique_columns(path, None, header, columns)
    name = renamer(columns) if columns else None
    row = 0
    try:
        for group in range(parquet.num_row_groups):
            meta = parquet.metadata.row_group(group)
            if meta.num_rows and meta.total_byte_size > max_record_bytes * meta.num_rows:
                yield RawRecord(source, row + 1, error=_group_too_big(path, row, meta, max_record_bytes))
                row += meta.num_rows
                continue
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
                if name is not None:
                    batch = batch.rename_columns([name(column) for column in batch.schema.names])
                # no row can be over the bound when the whole batch is not (the usual case: a few MB)
                too_big = (
                    row_bytes(batch) > max_record_bytes
                    if batch.nbytes > max_record_bytes
                    else np.zeros(batch.num_rows, dtype=bool)
                )
                posts = None
                if folders is not None and not too_big.any():
                    try:
                        posts = posts_from_batch(batch, base_dir=base_dir, folders=folders, max_keys=max_columns)
                    except UnicodeDecodeError:  # text that is not UTF-8: the rows below name it
                        posts = None
                if posts is not None:
                    for post in posts:
                        row += 1
                        yield RawRecord(source, row, base_dir=base_dir, post=post)
                    continue
                for raw in _rows(batch, path, row, too_big, max_record_bytes):
                    row += 1
                    if isinstance(raw, BadInputError):
                        yield RawRecord(source, row, error=raw)
                        continue
                    record = _with_extra(raw)
                    if len(record) > max_columns:
                        problem = f"has {too_many(len(record), max_columns, 'keys (columns and extra JSON)')}"
                        yield RawRecord(source, row, error=BadInputError(path, row, None, problem))
                        continue
                    yield RawRecord(source, row, record=record, base_dir=base_dir)
    except (pa.ArrowException, OSError) as error:
        raise BadInputError(path, row + 1, None, f"cannot be read: {error}") from None


def _group_too_big(path: Path, row: int, meta, limit: int) -> BadInputError:
    """The error for a row group too large per row to be posts (one error for all its rows: it is never decoded)."""
    return BadInputError(
        path,
        row + 1,
        None,
        f"rows {row + 1:,}-{row + meta.num_rows:,} hold {meta.total_byte_size:,} bytes uncompressed, more than "
        f"{limit:,} bytes a row; a post record is a few kB, so these are not posts (limit: max_record_bytes)",
    )


def row_bytes(batch) -> np.ndarray:
    """Per row, the bytes its variable-size values take (strings, binaries, list items); fixed-size ones count 8."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        total += _value_bytes(column)
    return total


def _value_bytes(array) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_dictionary(kind):
        array, kind = array.cast(kind.value_type), kind.value_type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        return pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_map(kind)
    ):
        inner = _value_bytes(array.flatten())
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        return np.bincount(parents, weights=inner, minlength=len(array)).astype(np.int64)
    if pa.types.is_struct(kind):
        return sum((_value_bytes(field) for field in array.flatten()), np.zeros(len(array), dtype=np.int64))
    return np.full(len(array), 8, dtype=np.int64)


def _rows(batch, path: Path, row: int, too_big: np.ndarray, limit: int) -> list[dict | BadInputError]:
    """The batch's records; a row over ``limit`` bytes or with text that is not valid UTF-8 is an error naming it."""
    if not too_big.any():
        try:
            return batch.to_pylist()
        except UnicodeDecodeError:
            pass
    rows: list[dict | BadInputError] = []
    for i in range(batch.num_rows):
        if too_big[i]:
            rows.append(
                BadInputError(
                    path,
                    row + i + 1,
                    None,
                    f"row is longer than {limit:,} bytes; a post record is a few kB, so this is not one "
                    f"(limit: max_record_bytes)",
                )
            )
            continue
        try:
            rows.append(batch.slice(i, 1).to_pylist()[0])
        except UnicodeDecodeError as error:
            rows.append(BadInputError(path, row + i + 1, None, f"holds text that is not valid UTF-8 ({error.reason})"))
    return rows


def _with_extra(record: dict) -> dict:
    """A string column named ``extra`` holding a JSON object gives the record its keys (not over
    the columns'); any other ``extra`` value stays the record's ``extra``."""
    extra = record.pop("extra", None)
    decoded = extra_object(extra)
    if decoded is not None:
        for key, value in decoded.items():
            record.setdefault(key, value)
    elif extra is not None:
        record["extra"] = extra
    return record
