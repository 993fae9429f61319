"""Unbounded reads (docs/reliability.md): one record can never fill memory.

Regression tests of issue 17, item 4: a 2 MB ``.jsonl.gz`` holding one 2 GiB line ran for minutes
and grew to 8.7 GB; an Instaloader ``.json.xz`` was read whole. Both are bounded by
``max_record_bytes`` now, with a file:line error.
"""

from __future__ import annotations

import gzip
import lzma
import resource

import pytest

from postloc.data.readers import read_posts
from postloc.data.readers.base import SkipReport, bounded_lines
from postloc.errors import BadInputError

GOOD = b'{"id": "a", "text": "hello", "lat": 51.05, "lon": 13.74, "user": "u1", "poi": "p"}\n'


def _bomb(path, line_bytes: int) -> None:
    """A gzip file whose second line is ``line_bytes`` long (compresses to almost nothing)."""
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(GOOD)
        handle.write(b'{"id": "b", "text": "')
        chunk = b"x" * (1 << 20)
        for _ in range(line_bytes // len(chunk)):
            handle.write(chunk)
        handle.write(b'"}\n')
        handle.write(GOOD.replace(b'"a"', b'"c"'))


def test_long_line_is_a_file_line_error(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    _bomb(path, 64 << 20)
    with pytest.raises(BadInputError, match=r"bomb\.jsonl\.gz:2: line is longer than 1,048,576 bytes"):
        list(read_posts(path, max_record_bytes=1 << 20))


def test_long_line_is_skipped_in_bounded_memory(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    _bomb(path, 256 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = SkipReport()
    posts = list(read_posts(path, skip_bad=True, report=report, max_record_bytes=1 << 20))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [p.id for p in posts] == ["a", "c"], "the lines after the long one keep coming"
    assert report.skipped == 1
    assert grown_mb < 128, f"peak memory grew by {grown_mb:.0f} MB for a 256 MB line"


def test_default_limit_applies(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"id": "x", "text": "' + b"y" * (11 << 20) + b'"}\n')
    with pytest.raises(BadInputError, match=r"one\.jsonl:1: line is longer than 10,485,760 bytes"):
        list(read_posts(path))


def test_line_of_exactly_the_limit_is_kept():
    import io

    lines = list(bounded_lines(io.BytesIO(b"abcd\nabcde\nab"), 4))
    assert lines == [(1, b"abcd\n"), (2, None), (3, b"ab")]


def test_instaloader_structure_bomb_is_refused(tmp_path):
    folder = tmp_path / "loc"
    folder.mkdir()
    with lzma.open(folder / "2023-01-01_12-00-00_UTC.json.xz", "wb", preset=0) as handle:
        handle.write(b'{"node": {"x": "' + b"z" * (4 << 20) + b'"}}')
    with pytest.raises(BadInputError, match="is larger than 1,048,576 bytes"):
        list(read_posts(folder, max_record_bytes=1 << 20))


def test_csv_long_line_is_a_file_line_error(tmp_path):
    path = tmp_path / "posts.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b"id,text\na,hello\nb,")
        chunk = b"x" * (1 << 20)
        for _ in range(32):
            handle.write(chunk)
        handle.write(b"\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadInputError, match=r"posts\.csv\.gz:3: line is longer than 1,048,576 characters"):
        list(read_posts(path, max_record_bytes=1 << 20))
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 24


def test_devices_and_fifos_are_refused_as_inputs(tmp_path):
    """`prepare /dev/zero --format jsonl`, a FIFO (read twice: hashed, then parsed), `--pois /dev/zero`,
    `train --config /dev/zero`: refused before any byte is read, naming what the path is."""
    import os

    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.errors import PostlocError
    from postloc.training.config import load_config

    fifo = tmp_path / "posts.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="is a FIFO"):
        list(read_posts(fifo))
    with pytest.raises(BadInputError, match="is a device"):
        list(read_posts("/dev/zero", format="jsonl"))
    good = tmp_path / "good.jsonl"
    good.write_bytes(GOOD)
    with pytest.raises(BadInputError, match="is a device"):
        prepare(good, tmp_path / "out", PrepareConfig(min_poi_posts=1, min_poi_users=1), pois_csv="/dev/zero")
    with pytest.raises(PostlocError, match="is a device"):
        load_config("/dev/zero")
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 << 20))
    with pytest.raises(PostlocError, match="larger than"):
        load_config(big)


def _parquet(path, texts: list[str], row_group_size: int | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [f"p{i}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": texts, "lat": [51.05] * len(texts), "lon": [13.74] * len(texts)})
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)


def test_parquet_row_group_bomb_is_refused_before_decoding(tmp_path):
    """A few kB of zstd holding a 64 MB caption: refused from the metadata, in bounded memory."""
    path = tmp_path / "bomb.parquet"
    _parquet(path, ["x" * (64 << 20), "ok"])
    assert path.stat().st_size < 64 << 10
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadInputError, match=r"bomb\.parquet:1: rows 1-2 hold 67,1\d\d,\d\d\d bytes uncompressed"):
        list(read_posts(path, max_record_bytes=1 << 20))
    report = SkipReport()
    assert list(read_posts(path, skip_bad=True, report=report, max_record_bytes=1 << 20)) == []
    assert report.skipped == 1
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 32, "the caption was decoded"


@pytest.mark.parametrize("via_read_posts", [True, False])
def test_parquet_long_row_among_short_ones_is_a_row_error(tmp_path, via_read_posts):
    """One 2 MB cell among 199 short rows passes the row group's mean but not the row bound; the others stay."""
    path = tmp_path / "posts.parquet"
    texts = ["hello"] * 200
    texts[150] = "y" * (2 << 20)
    _parquet(path, texts)
    with pytest.raises(BadInputError, match=r"posts\.parquet:151: row is longer than 1,048,576 bytes"):
        list(read_posts(path, max_record_bytes=1 << 20))
    report = SkipReport()
    if via_read_posts:
        posts = list(read_posts(path, skip_bad=True, report=report, max_record_bytes=1 << 20))
    else:  # the reader alone, without the column-at-a-time path (no image-folder cache): the same outcome
        from postloc.data.readers.parquet import iter_parquet

        raws = list(iter_parquet(path, columns={}, max_record_bytes=1 << 20))
        assert [r.line for r in raws if r.error is not None] == [151]
        posts = [r for r in raws if r.error is None]
        report.skipped = len(raws) - len(posts)
    assert report.skipped == 1 and len(posts) == 199
    ids = [p.id if hasattr(p, "id") else p.record["id"] for p in posts]
    assert "p150" not in ids and ids[150] == "p151", "rows after the long one keep their numbers and order"


def test_parquet_row_bytes_counts_nested_values():
    import pyarrow as pa

    from postloc.data.readers.parquet import row_bytes

    batch = pa.record_batch(
        {
            "text": pa.array(["ab", None, "cdef"]),
            "hashtags": pa.array([["x", "yz"], None, []]),
            "vector": pa.array([[1.0, 2.0], [3.0], None], type=pa.list_(pa.float32())),
            "place": pa.array([{"name": "abc"}, None, {"name": None}]),
            "lang": pa.array(["de", "en", "de"]).dictionary_encode(),
            "lat": pa.array([1.0, 2.0, 3.0]),
        }
    )
    # text + tag chars + 8 per vector item + struct's string + dictionary value + 8 for lat
    assert row_bytes(batch).tolist() == [2 + 3 + 16 + 3 + 2 + 8, 0 + 0 + 8 + 0 + 2 + 8, 4 + 0 + 0 + 0 + 2 + 8]
    assert row_bytes(batch.slice(1, 2)).tolist() == [18, 14]


def test_json_of_a_named_folder_is_read_with_a_bound(tmp_path):
    """`train --data DIR` with DIR/manifest.json a link to /dev/zero read forever (found 2026-12-02).
    Every JSON file postloc reads from a folder a user names goes through one bounded reader."""
    import os

    from postloc.data.prepared import load_prepared
    from postloc.errors import ModelFileError
    from postloc.io.inputs import read_small_json
    from postloc.io.model_files import read_json
    from postloc.training.config import read_run_config

    (tmp_path / "manifest.json").symlink_to("/dev/zero")
    with pytest.raises(BadInputError, match=r"manifest\.json: is a device"):
        load_prepared(tmp_path)
    (tmp_path / "config.json").symlink_to("/dev/zero")
    with pytest.raises(BadInputError, match=r"config\.json: is a device"):
        read_run_config(tmp_path)
    with pytest.raises(ModelFileError, match=r"config\.json: is a device"):
        read_json(tmp_path / "config.json")
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(BadInputError, match="is a FIFO"):
        read_small_json(tmp_path / "fifo.json")
    big = tmp_path / "big.json"
    big.write_bytes(b'{"a": "' + b"x" * 2048 + b'"}')
    with pytest.raises(BadInputError, match="is larger than 1,024 bytes"):
        read_small_json(big, max_bytes=1024)
    assert read_small_json(big)["a"] == "x" * 2048
    with pytest.raises(FileNotFoundError):  # callers tell "not one of postloc's folders" by it
        read_small_json(tmp_path / "absent.json")


def test_prepared_folder_tables_must_be_regular_files(tmp_path):
    import json
    import os

    from postloc.data.prepared import load_prepared

    (tmp_path / "manifest.json").write_text(json.dumps({"postloc_prepared": 1}))
    (tmp_path / "posts.parquet").write_bytes(b"")
    os.mkfifo(tmp_path / "pois.csv")
    with pytest.raises(BadInputError, match=r"pois\.csv: is a FIFO"):
        load_prepared(tmp_path)
