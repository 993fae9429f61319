"""The Parquet reader's column-at-a-time validation gives exactly what record-by-record validation gives.

:func:`postloc.data.columnar.posts_from_batch` either returns the posts ``Post.from_record``
would build for every row, or ``None`` (the reader then validates row by row). Hypothesis builds
batches with every kind of value each column can hold, good and bad; the regular tests pin that
the fast path is taken for ordinary files and that bad UTF-8 is a clear error.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postloc.data.columnar import posts_from_batch
from postloc.data.readers import SkipReport, read_posts
from postloc.data.readers.parquet import _with_extra
from postloc.data.schema import Post
from postloc.errors import BadInputError

N = 4  # rows per generated batch

texts = st.one_of(
    st.sampled_from(["", " ", "a", "#", "##x", "café", "x\x00y", "  12 ", "2023-01-01T12:00:00", "/abs/p.jpg"]),
    st.text(max_size=12),
)
dates = st.sampled_from(
    [
        "2023-01-01T12:00:00",
        "2023-01-01T12:00:00Z",
        "2023-01-01 12:00:00+02:00",
        "1700000000",
        "1700000000000",
        "Wed, 25 Feb 2015 00:26:16 +0000",
        "Wed Feb 25 00:26:16 +0000 2015",
        "not a date",
        "",
        "   ",
        "2023-13-01",
    ]
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 90.0, -90.0, 180.0, 90.000001, 45.5]),
)


def column(strategy, kind: pa.DataType):
    """A column of ``N`` values of ``strategy`` (or nulls) as an Arrow array of type ``kind``."""
    return st.lists(st.one_of(st.none(), strategy), min_size=N, max_size=N).map(lambda v: pa.array(v, type=kind))


ID_COLUMNS = st.one_of(
    column(texts, pa.string()),
    column(st.integers(-(2**63), 2**63 - 1), pa.int64()),
    column(floats, pa.float64()),
    column(texts, pa.string()).map(lambda a: pa.array([f"id{i}" for i in range(N)])),  # always good
)
OPTIONAL_ID = st.one_of(
    column(texts, pa.string()), column(st.integers(-5, 5), pa.int32()), column(st.booleans(), pa.bool_())
)
STRING_LISTS = st.one_of(
    column(st.lists(st.one_of(texts, st.none()), max_size=3), pa.list_(pa.string())),
    column(st.lists(texts, max_size=3), pa.large_list(pa.large_string())),
    column(texts, pa.string()),
)
COORDINATE = st.one_of(
    column(floats, pa.float64()),
    column(floats, pa.float32()),
    column(st.integers(-200, 200), pa.int16()),
    column(st.sampled_from(["1.5", "x"]), pa.string()),
)
EXTRA_JSON = st.sampled_from(
    [
        '{"a": 1}',
        '{"poi_name": "P"}',
        '{"lat": 5}',
        "[1, 2]",
        "not json",
        "",
        '{"s": "\\ud800"}',
        '{"image_vector": [1]}',
    ]
)
OPTIONAL_COLUMNS = {
    "text": column(texts, pa.string()),
    "hashtags": STRING_LISTS,
    "image": STRING_LISTS,
    "lat": COORDINATE,
    "lon": COORDINATE,
    "poi": OPTIONAL_ID,
    "user": OPTIONAL_ID,
    "created": st.one_of(column(dates, pa.string()), column(st.integers(0, 2**40), pa.int64())),
    "poi_name": column(texts, pa.string()),
    "extra": column(EXTRA_JSON, pa.string()),
    "image_vector": column(st.lists(floats, min_size=1, max_size=2), pa.list_(pa.float64())),
}


#: Columns that record-by-record validation accepts whole (with nulls and values it cleans up):
#: drawn most of the time, so that most batches are valid and the fast path's answers are compared.
GOOD_COLUMNS = {
    "id": st.just(pa.array([f"id{i}" for i in range(N)])) | st.just(pa.array(range(N), type=pa.uint64())),
    "text": column(texts, pa.string()),
    "hashtags": column(st.lists(texts, max_size=3), pa.list_(pa.string())),
    "image": column(st.lists(texts.filter(lambda t: "\x00" not in t), max_size=3), pa.list_(pa.string())),
    "lat": st.lists(st.floats(-90, 90), min_size=N, max_size=N).map(pa.array),
    "lon": st.lists(st.floats(-180, 180), min_size=N, max_size=N).map(pa.array),
    "poi": column(texts, pa.string()),
    "user": column(st.integers(0, 9), pa.int64()),
    "created": column(dates.filter(lambda d: d in ("", "   ") or d[0].isdigit() and "13" not in d), pa.string()),
    "poi_name": column(texts, pa.string()),
    "extra": column(st.sampled_from(['{"a": 1}', '{"poi_name": "P"}', "[1, 2]", "not json", ""]), pa.string()),
    "image_vector": st.just(pa.nulls(N)),
}


@st.composite
def batches(draw) -> pa.RecordBatch:
    names = ["id"] + [name for name in OPTIONAL_COLUMNS if draw(st.booleans())]
    arrays = []
    for name in names:
        nasty = ID_COLUMNS if name == "id" else OPTIONAL_COLUMNS[name]
        arrays.append(draw(nasty if draw(st.integers(0, 9)) == 0 else GOOD_COLUMNS[name]))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def one_by_one(batch: pa.RecordBatch, base_dir: str) -> list[Post] | None:
    """What the record-by-record path gives: the posts, or None when any row raises or warns."""
    posts = []
    for row, record in enumerate(batch.to_pylist(), start=1):
        warnings: list[BadInputError] = []
        try:
            posts.append(
                Post.from_record(_with_extra(record), line=row, base_dir=base_dir, folders={}, warn=warnings.append)
            )
        except BadInputError:
            return None
        if warnings:
            return None
    return posts


def same(a: list[Post], b: list[Post]) -> bool:
    """Posts equal field by field, with the types too (``1`` is not ``1.0``); NaN equals NaN."""

    def fields(post: Post) -> list:
        values = [post.id, post.text, post.hashtags, post.images, post.poi, post.lat, post.lon, post.user, post.created]
        return [(type(v), "nan" if isinstance(v, float) and math.isnan(v) else v) for v in values] + [repr(post.extra)]

    return [fields(p) for p in a] == [fields(p) for p in b]


@settings(max_examples=400, deadline=None)
@given(batch=batches())
def test_columns_at_once_equal_records_one_by_one(batch, tmp_path_factory):
    base_dir = str(tmp_path_factory.getbasetemp())
    fast = posts_from_batch(batch, base_dir=base_dir, folders={})
    if fast is None:
        return  # the reader takes the record-by-record path: equal by construction
    reference = one_by_one(batch, base_dir)
    assert reference is not None, "the fast path accepted a batch that record-by-record validation refuses"
    assert same(fast, reference)


def test_ordinary_batches_take_the_fast_path(tmp_path):
    """The path is not dead code: the types writers produce go through it, with the same posts."""
    batch = pa.RecordBatch.from_pydict(
        {
            "id": ["a", "b", "c"],
            "text": ["hello #x", None, "straße"],
            "hashtags": [["#x", ""], None, []],
            "image": [["img/a.jpg"], [], None],
            "poi": ["p1", "", None],
            "lat": [51.0, None, float("nan")],
            "lon": [13.7, None, float("nan")],
            "user": ["u1", "u2", None],
            "created": ["2023-01-01T12:00:00Z", None, "1700000000"],
            "poi_name": ["Frauenkirche", None, None],
            "extra": ['{"likes": 3}', None, "plain"],
        }
    )
    fast = posts_from_batch(batch, base_dir=str(tmp_path), folders={})
    assert fast is not None
    assert same(fast, one_by_one(batch, str(tmp_path)))
    assert fast[0].hashtags == ["x"] and fast[0].images == [str((tmp_path / "img" / "a.jpg").resolve())]
    assert fast[0].extra == {"poi_name": "Frauenkirche", "likes": 3}
    assert fast[2].extra == {"poi_name": None, "extra": "plain"}


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("id", ["a", ""]),  # an empty id
        ("lat", [1.0, 95.0]),  # out of range
        ("created", ["2023-01-01", "yesterday"]),  # a warning
        ("image", [["a\x00b"], []]),  # NUL in a path
    ],
)
def test_a_bad_value_sends_the_batch_row_by_row(tmp_path, column, values):
    data = {"id": ["a", "b"], "lat": [1.0, 2.0], "lon": [3.0, 4.0], column: values}
    assert posts_from_batch(pa.RecordBatch.from_pydict(data), base_dir=str(tmp_path), folders={}) is None


def test_text_that_is_not_utf8_is_a_clear_error_naming_the_row(tmp_path):
    raw = pa.array([b"ok", b"\xed\xa0\x80", b"fine"], type=pa.binary())
    text = pa.Array.from_buffers(pa.string(), 3, raw.buffers())  # Arrow does not check UTF-8 here; Parquet keeps it
    path = tmp_path / "posts.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": text}), path)
    with pytest.raises(BadInputError, match=r"posts\.parquet:2.*not valid UTF-8"):
        list(read_posts(path))
    report = SkipReport()
    posts = list(read_posts(path, skip_bad=True, report=report))
    assert [p.id for p in posts] == ["a", "c"] and report.skipped == 1
