"""Parquet, read in record batches so a large file never sits in memory whole.

Row numbers (1-based) stand in for line numbers in error messages. Batches are validated a
column at a time where the column types allow it (:mod:`postloc.data.columnar`), else record by
record, with the same outcome. A string column named ``extra`` holding JSON objects (what
:func:`postloc.data.writers.write_posts` writes) is expanded back into the record's extra keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from postloc.data.columnar import extra_object, posts_from_batch
from postloc.data.readers.base import RawRecord, check_mapping, renamer
from postloc.errors import BadInputError

BATCH_ROWS = 8192


def iter_parquet(
    path: Path, *, columns: Mapping[str, str], folders: dict[tuple[str, str], str] | None = None
) -> Iterator[RawRecord]:
    """The file's records, batch by batch.

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
    missing = [f"{key}<-{col}" for key, col in columns.items() if col not in header]
    if missing:
        raise BadInputError(
            path, None, None, f"mapped columns not in the file: {', '.join(missing)} (columns: {', '.join(header)})"
        )
    name = renamer(columns) if columns else None
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            if name is not None:
                batch = batch.rename_columns([name(column) for column in batch.schema.names])
            posts = None
            if folders is not None:
                try:
                    posts = posts_from_batch(batch, base_dir=base_dir, folders=folders)
                except UnicodeDecodeError:  # text that is not UTF-8: the rows below name it
                    posts = None
            if posts is not None:
                for post in posts:
                    row += 1
                    yield RawRecord(source, row, base_dir=base_dir, post=post)
                continue
            for raw in _rows(batch, path, row):
                row += 1
                if isinstance(raw, BadInputError):
                    yield RawRecord(source, row, error=raw)
                    continue
                yield RawRecord(source, row, record=_with_extra(raw), base_dir=base_dir)
    except (pa.ArrowException, OSError) as error:
        raise BadInputError(path, row + 1, None, f"cannot be read: {error}") from None


def _rows(batch, path: Path, row: int) -> list[dict | BadInputError]:
    """The batch's records; a row holding text that is not valid UTF-8 is an error naming it."""
    try:
        return batch.to_pylist()
    except UnicodeDecodeError:
        pass
    rows: list[dict | BadInputError] = []
    for i in range(batch.num_rows):
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
