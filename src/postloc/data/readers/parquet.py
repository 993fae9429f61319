"""Parquet, read in record batches so a large file never sits in memory whole.

Row numbers (1-based) stand in for line numbers in error messages. A string column named
``extra`` holding JSON objects (what :func:`postloc.data.writers.write_posts` writes) is
expanded back into the record's extra keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from postloc.data.readers.base import RawRecord, check_mapping, renamer
from postloc.errors import BadInputError

BATCH_ROWS = 8192


def iter_parquet(path: Path, *, columns: Mapping[str, str]) -> Iterator[RawRecord]:
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
            for raw in batch.to_pylist():
                row += 1
                record = raw if name is None else {name(k): v for k, v in raw.items()}
                extra = record.pop("extra", None)
                if isinstance(extra, str) and extra:
                    try:
                        decoded = json.loads(extra)
                    except (ValueError, RecursionError):  # not JSON, nested too deep, integer too long
                        decoded = None  # then it stays the plain string it is
                    if isinstance(decoded, dict):
                        for key, value in decoded.items():
                            record.setdefault(key, value)
                    else:
                        record["extra"] = extra
                elif extra is not None:
                    record["extra"] = extra
                yield RawRecord(source, row, record=record, base_dir=base_dir)
    except (pa.ArrowException, OSError) as error:
        raise BadInputError(path, row + 1, None, f"cannot be read: {error}") from None
