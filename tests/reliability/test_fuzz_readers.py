"""Fuzz the post readers (JSONL, CSV, Parquet, Instaloader): a clear error or valid posts, never a crash.

Random bytes, truncated and corrupt (compressed) files, wrong encodings, 1 MB captions, deep JSON,
NaN/inf/out-of-range coordinates and duplicate ids, in every format. The regular tests at the end
pin the minimal examples Hypothesis found (each was a crash or a wrong answer before its fix).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from fuzz_strategies import (
    COORDINATES,
    assert_clear_error,
    assert_valid_posts,
    budget,
    expected_problem,
    huge_text,
    json_values,
    nasty_text,
    post_records,
    time_limit,
)
from postloc.data.readers import SkipReport, read_posts
from postloc.data.schema import Post
from postloc.errors import BadInputError

_COMPRESS = {".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress}
SUFFIXES = [".jsonl", ".csv", ".tsv", ".parquet", ".jsonl.gz", ".jsonl.xz", ".csv.bz2"]


def _fresh(tmp_path_factory, name: str) -> Path:
    """A new file per Hypothesis example (function-scoped tmp_path is shared by all examples)."""
    return tmp_path_factory.mktemp("fuzz") / name


def read_all(path: Path, **kwargs) -> list[Post] | BadInputError:
    """The posts, or the BadInputError; anything else propagates and fails the test (a crash)."""
    with time_limit(30):
        try:
            return list(read_posts(path, **kwargs))
        except BadInputError as error:
            return error


def check(path: Path, *, line_required: bool = False, **kwargs) -> list[Post] | BadInputError:
    """Clear error or valid answer, with and without --skip-bad."""
    result = read_all(path, **kwargs)
    if isinstance(result, BadInputError):
        assert_clear_error(result, path, line_required=line_required)
    else:
        assert_valid_posts(result)
    report = SkipReport()
    skipped = read_all(path, skip_bad=True, report=report, **kwargs)
    if isinstance(skipped, BadInputError):  # only what spoils the whole file may stop --skip-bad
        assert_clear_error(skipped, path)
    else:
        assert_valid_posts(skipped)
        assert report.read == len(skipped)
        assert all(example.startswith(str(path)) for example in report.examples), report.examples
        if not isinstance(result, BadInputError):
            assert report.skipped == 0 and [p.id for p in skipped] == [p.id for p in result]
    return result


# ------------------------------------------------------------------------------------ writers


def jsonl_bytes(records: list) -> bytes:
    """UTF-8 JSON lines; lone surrogates (which UTF-8 cannot hold) as JSON "\\ud800" escapes."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(json.dumps(r) + "\n" for r in records).encode("ascii")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def csv_bytes(records: list[dict], delimiter: str = ",") -> bytes:
    keys = sorted({k for r in records for k in r}) or ["id"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(keys)
    for r in records:
        writer.writerow([_cell(r.get(k)) for k in keys])
    return buffer.getvalue().encode("utf-8", "surrogatepass")  # a lone surrogate makes invalid UTF-8 there


def parquet_bytes(columns: dict[str, pa.Array | list]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    for suffix, compress in _COMPRESS.items():
        if path.name.endswith(suffix):
            data = compress(data)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------ any bytes, any format


@st.composite
def file_bytes(draw) -> bytes:
    """Random bytes, or a plausible file mangled: truncated, a byte flipped, a chunk inserted."""
    base = draw(
        st.one_of(
            st.binary(max_size=400),
            post_records().map(lambda r: jsonl_bytes([r])),
            st.lists(post_records(), max_size=3).map(lambda rs: csv_bytes(rs)),
            st.just(parquet_bytes({"id": ["a", "b"], "lat": [1.0, 2.0], "lon": [3.0, 4.0]})),
        )
    )
    if base and draw(st.booleans()):
        cut = draw(st.integers(0, len(base)))
        base = base[:cut]
    if base and draw(st.booleans()):
        at = draw(st.integers(0, len(base) - 1))
        base = base[:at] + bytes([draw(st.integers(0, 255))]) + base[at + 1 :]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(base)))
        base = base[:at] + draw(st.binary(min_size=1, max_size=40)) + base[at:]
    return base


@given(suffix=st.sampled_from(SUFFIXES), data=file_bytes(), compressed=st.booleans(), cut=st.floats(0, 1))
@example(suffix=".jsonl.xz", data=b"junk", compressed=False, cut=1.0)
def test_any_bytes_in_any_format(tmp_path_factory, suffix, data, compressed, cut):
    """Random or mangled bytes (raw or inside a truncated compressed stream) in every reader format."""
    path = _fresh(tmp_path_factory, "posts" + suffix)
    compress = next((c for s, c in _COMPRESS.items() if suffix.endswith(s)), None)
    if compress is not None and compressed:
        packed = compress(data)
        path.write_bytes(packed[: max(1, int(len(packed) * cut))])
    else:
        path.write_bytes(data)
    check(path)


# ------------------------------------------------------------- records: the exact expected answer


def expected_failure(records: list) -> tuple[int, str] | None:
    """(index, key) of the first record the reader must refuse, as the schema and id rule say."""
    seen: set[str] = set()
    for index, record in enumerate(records):
        key = expected_problem(record)
        if key is not None:
            return index, key
        post_id = Post.from_record(record).id
        if post_id in seen:
            return index, "id"
        seen.add(post_id)
    return None


@given(records=st.lists(post_records(), min_size=1, max_size=6))
def test_jsonl_records_give_exactly_the_expected_answer(tmp_path_factory, records):
    """Wild values, NaN/inf/out-of-range coordinates and repeated ids: the first bad line is named."""
    path = write(_fresh(tmp_path_factory, "posts.jsonl"), jsonl_bytes(records))
    result = check(path)
    failure = expected_failure(records)
    if failure is None:
        assert not isinstance(result, BadInputError), result
        assert len(result) == len(records)
    else:
        assert isinstance(result, BadInputError), f"expected an error about {failure}"
        assert (result.line, result.key or "") == (failure[0] + 1, failure[1]), str(result)


@given(records=st.lists(post_records(), min_size=1, max_size=6), tsv=st.booleans())
def test_csv_records(tmp_path_factory, records, tsv):
    path = write(
        _fresh(tmp_path_factory, "posts.tsv" if tsv else "posts.csv"), csv_bytes(records, "\t" if tsv else ",")
    )
    result = check(path)
    if isinstance(result, BadInputError):
        assert result.line is not None and result.line >= 2, str(result)  # a record's line, header is line 1


BAD_COORDINATES = st.sampled_from([math.nan, math.inf, -math.inf, 90.5, -91.0, 180.5, -1e308, 1e308])


@given(
    lat=BAD_COORDINATES | st.floats(-90, 90),
    lon=BAD_COORDINATES | st.floats(-180, 180),
    fmt=st.sampled_from(["jsonl", "csv", "parquet", "instaloader"]),
    position=st.integers(0, 2),
)
def test_nan_inf_and_out_of_range_coordinates_in_every_format(tmp_path_factory, lat, lon, fmt, position):
    """A clear error naming "lat"/"lon" (and the line), or, for NaN (= missing) in both, no coordinates."""
    rows = [{"id": f"p{i}", "lat": 10.0, "lon": 20.0} for i in range(3)]
    rows[position] = {"id": f"p{position}", "lat": lat, "lon": lon}
    folder = tmp_path_factory.mktemp("coords")
    if fmt == "jsonl":
        path = write(folder / "posts.jsonl", jsonl_bytes(rows))
    elif fmt == "csv":
        path = write(
            folder / "posts.csv",
            csv_bytes([{k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows]),
        )
    elif fmt == "parquet":
        path = write(folder / "posts.parquet", parquet_bytes({k: [r[k] for r in rows] for k in ("id", "lat", "lon")}))
    else:
        path = folder / "%123"
        path.mkdir()
        for i, r in enumerate(rows):
            node = {"shortcode": r["id"], "location": {"id": "9", "lat": r["lat"], "lng": r["lon"]}}
            (path / f"2023-05-01_12-30-0{i}_UTC.json").write_text(
                json.dumps({"node": node, "instaloader": {"node_type": "Post", "version": "4.16"}})
            )
    result = check(path)
    nan_lat, nan_lon = math.isnan(lat), math.isnan(lon)

    def valid(v: float, limit: float) -> bool:
        return math.isfinite(v) and -limit <= v <= limit

    # A NaN number means "missing" (pandas' convention, JSON and Parquet); the text "nan" in a CSV
    # cell is no number and is refused like any other text.
    nan_is_missing = fmt != "csv"
    if (nan_is_missing and nan_lat and nan_lon) or (valid(lat, 90) and valid(lon, 180)):
        assert not isinstance(result, BadInputError), str(result)
        post = next(p for p in result if p.id == f"p{position}")
        assert (post.lat, post.lon) == ((None, None) if nan_lat else (lat, lon))
    else:
        assert isinstance(result, BadInputError)
        assert result.key in ("lat", "lon"), str(result)
        if fmt != "instaloader":
            assert result.line == position + (2 if fmt == "csv" else 1), str(result)


@given(n=st.integers(2, 6), data=st.data(), fmt=st.sampled_from(["jsonl", "csv", "parquet", "instaloader"]))
def test_duplicate_ids_in_every_format(tmp_path_factory, n, data, fmt):
    """The second use of an id is refused, naming both places; --skip-bad keeps the first."""
    first = data.draw(st.integers(0, n - 2))
    second = data.draw(st.integers(first + 1, n - 1))
    ids = [f"id{i}" for i in range(n)]
    ids[second] = ids[first]
    folder = tmp_path_factory.mktemp("dups")
    if fmt == "jsonl":
        path = write(folder / "posts.jsonl", jsonl_bytes([{"id": i} for i in ids]))
    elif fmt == "csv":
        path = write(folder / "posts.csv", csv_bytes([{"id": i} for i in ids]))
    elif fmt == "parquet":
        path = write(folder / "posts.parquet", parquet_bytes({"id": ids}))
    else:
        path = folder
        for i, shortcode in enumerate(ids):  # same shortcode in two location folders: the same post twice
            sub = folder / f"%{i}"
            sub.mkdir()
            (sub / "2023-05-01_12-30-00_UTC.json").write_text(
                json.dumps({"node": {"shortcode": shortcode}, "instaloader": {"node_type": "Post"}})
            )
    result = check(path)
    assert isinstance(result, BadInputError) and result.key == "id" and "already used at" in result.problem
    if fmt != "instaloader":
        offset = 2 if fmt == "csv" else 1
        assert result.line == second + offset and f"{path}:{first + offset}" in result.problem, str(result)
    skipped = list(read_posts(path, skip_bad=True))
    assert sorted(p.id for p in skipped) == sorted(set(ids))


# ---------------------------------------------------------------- truncation and wrong encodings


@given(
    records=st.lists(
        post_records(ids=st.text("abcdef", min_size=1, max_size=4)), min_size=1, max_size=5, unique_by=lambda r: r["id"]
    ),
    suffix=st.sampled_from([".jsonl", ".jsonl.gz", ".jsonl.xz", ".csv", ".csv.bz2", ".parquet"]),
    cut=st.floats(0, 1, exclude_max=True),
)
def test_truncated_files_give_an_error_or_a_prefix(tmp_path_factory, records, suffix, cut):
    records = [r for r in records if expected_problem(r) is None]
    assume(records)
    full = _fresh(tmp_path_factory, "full" + suffix)
    if ".jsonl" in suffix:
        write(full, jsonl_bytes(records))
    elif ".csv" in suffix:
        write(full, csv_bytes(records))
    else:
        write(full, parquet_bytes({"id": [r["id"] for r in records]}))
    whole = read_all(full)
    if isinstance(whole, BadInputError):  # CSV loses types (e.g. a list of one ";"): judged on its own
        assert_clear_error(whole, full)
        return
    data = full.read_bytes()
    cut_path = _fresh(tmp_path_factory, "cut" + suffix)
    cut_path.write_bytes(data[: int(len(data) * cut)])
    result = check(cut_path)
    if not isinstance(result, BadInputError):
        got = [p.id for p in result]
        complete = [p.id for p in whole]
        # a cut inside the last CSV cell can shorten that cell's value (still a valid post)
        assert got == complete[: len(got)] or ".csv" in suffix and got[:-1] == complete[: len(got) - 1], (got, complete)


@given(
    records=st.lists(
        post_records(ids=st.text("abc", min_size=1, max_size=3)), min_size=1, max_size=4, unique_by=lambda r: r["id"]
    ),
    codec=st.sampled_from(
        ["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "shift_jis", "utf-8-sig", "gb18030", "koi8-r"]
    ),
    fmt=st.sampled_from(["jsonl", "csv"]),
)
def test_wrong_encodings(tmp_path_factory, records, codec, fmt):
    """Files saved in another encoding: a clear error naming the line, or the text read right."""
    text = (jsonl_bytes(records) if fmt == "jsonl" else csv_bytes(records)).decode("utf-8", "surrogatepass")
    try:
        data = text.encode(codec)
    except UnicodeEncodeError:
        data = text.encode(codec, errors="replace")
    path = _fresh(tmp_path_factory, f"posts.{fmt}")
    path.write_bytes(data)
    check(path)


# -------------------------------------------------------------------- huge lines and deep JSON


@settings(max_examples=budget(0.3))
@given(caption=huge_text(), fmt=st.sampled_from(["jsonl", "csv", "parquet", "instaloader-json", "instaloader-txt"]))
def test_one_megabyte_caption_in_every_format(tmp_path_factory, caption, fmt):
    folder = tmp_path_factory.mktemp("huge")
    if fmt == "jsonl":
        path = write(folder / "posts.jsonl", jsonl_bytes([{"id": "a", "text": caption}, {"id": "b"}]))
    elif fmt == "csv":
        path = write(folder / "posts.csv", csv_bytes([{"id": "a", "text": caption}, {"id": "b", "text": "x"}]))
    elif fmt == "parquet":
        path = write(folder / "posts.parquet", parquet_bytes({"id": ["a", "b"], "text": [caption, "x"]}))
    elif fmt == "instaloader-json":
        path = folder
        (folder / "2023-05-01_12-30-00_UTC.json.xz").write_bytes(
            lzma.compress(
                json.dumps(
                    {"node": {"shortcode": "a", "caption": caption}, "instaloader": {"node_type": "Post"}}
                ).encode()
            )
        )
    else:
        path = folder
        (folder / "2023-05-01_12-30-00_UTC.txt").write_text(caption, encoding="utf-8")
    with time_limit(20):
        result = check(path)
    assert not isinstance(result, BadInputError), str(result)
    text = result[0].text
    if fmt == "instaloader-txt":  # the caption file is stripped (instaloader strips what it writes) and NFC
        import unicodedata

        assert text == unicodedata.normalize("NFC", caption).strip()
    elif fmt == "instaloader-json":
        import unicodedata

        assert text == unicodedata.normalize("NFC", caption)
    elif fmt == "csv" and ("\r" in caption or "\x00" in caption):
        assert len(text) > 0  # csv may normalise bare CRs inside a quoted cell; the record still reads
    else:
        assert text == caption


def _deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


@settings(max_examples=budget(0.5))
@given(
    depth=st.one_of(st.integers(1, 50), st.integers(900, 1200), st.integers(50_000, 200_000)),
    kind=st.sampled_from(["list", "object"]),
    where=st.sampled_from(["jsonl-line", "jsonl-value", "parquet-extra", "instaloader"]),
)
def test_deep_json(tmp_path_factory, depth, kind, where):
    """Nesting far past the interpreter's recursion limit: a clear error or the post, never RecursionError."""
    folder = tmp_path_factory.mktemp("deep")
    nested = _deep(depth, kind)
    if where == "jsonl-line":
        path = write(folder / "posts.jsonl", (nested + "\n").encode())
    elif where == "jsonl-value":
        path = write(folder / "posts.jsonl", ('{"id": "a", "deep": ' + nested + "}\n").encode())
    elif where == "parquet-extra":
        path = write(folder / "posts.parquet", parquet_bytes({"id": ["a"], "extra": ['{"deep": ' + nested + "}"]}))
    else:
        path = folder
        (folder / "2023-05-01_12-30-00_UTC.json").write_text(
            '{"instaloader": {"node_type": "Post"}, "node": {"shortcode": "a", "deep": ' + nested + "}}"
        )
    with time_limit(20):
        result = check(path)
    if isinstance(result, BadInputError):
        assert "nested too deeply" in result.problem or where == "jsonl-line", str(result)


# ------------------------------------------------------------------------------- Instaloader

_NAMES = [
    "2023-05-01_12-30-00_UTC",
    "2023-05-01_12-30-00_UTC_1",
    "2023-05-01_12-30-00_UTC_2",
    "x",
    "id",
    "iterator_abc",
    "2023-05-01_12-30-00_UTC_location",
    "2023-05-01_12-30-00_UTC_old_01",
    "2023-05-01_12-30-00_UTC_profile_pic",
    "profile_123",
    "\u202enot",
    "#tag",
]
_SUFFIXES_IL = [".json", ".json.xz", ".txt", ".jpg", ".png", ".mp4", "_comments.json", ""]


@st.composite
def instaloader_files(draw) -> dict[str, bytes]:
    """File name -> content: real-looking names with random, mangled or wild-structure contents."""
    files: dict[str, bytes] = {}
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(_NAMES)) + draw(st.sampled_from(_SUFFIXES_IL))
        node = draw(
            st.one_of(
                json_values(8),
                st.fixed_dictionaries(
                    {"shortcode": st.one_of(st.just("abc"), json_values(2))},
                    optional={
                        "caption": json_values(3),
                        "date": json_values(1),
                        "owner": json_values(3),
                        "location": st.one_of(
                            json_values(3),
                            st.fixed_dictionaries({"id": json_values(1), "lat": COORDINATES, "lng": COORDINATES}),
                        ),
                        "iphone_struct": json_values(5),
                        "edge_media_to_caption": json_values(5),
                    },
                ),
            )
        )
        envelope = draw(st.sampled_from(["post", "other", "bare", "raw"]))
        if envelope == "post":
            structure = {"node": node, "instaloader": {"node_type": "Post", "version": "4.16"}}
        elif envelope == "other":
            structure = {"node": node, "instaloader": {"node_type": draw(st.sampled_from(["Profile", "Hashtag", 3]))}}
        else:
            structure = node
        text = json.dumps(structure, ensure_ascii=draw(st.booleans()))
        content = draw(
            st.one_of(
                st.just(text.encode()),
                st.binary(max_size=200),
                nasty_text(40).map(lambda t: t.encode("utf-8", "surrogatepass")),
            )
        )
        if name.endswith(".xz") and draw(st.booleans()):
            content = lzma.compress(content)
            content = content[: draw(st.integers(0, len(content)))]
        files[name] = content
    return files


@settings(max_examples=budget(0.5))
@given(files=instaloader_files(), location_folder=st.booleans())
def test_instaloader_folders_with_wild_files(tmp_path_factory, files, location_folder):
    root = tmp_path_factory.mktemp("il")
    folder = root / ("%42" if location_folder else "downloads")
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    check(root)


# ------------------------------------------------- regressions: minimal examples Hypothesis found


def _read(path: Path) -> BadInputError:
    with pytest.raises(BadInputError) as info:
        list(read_posts(path))
    return info.value


def test_regression_deep_json_line_is_a_clear_error(tmp_path):
    path = write(tmp_path / "p.jsonl", b'{"id": "ok"}\n' + b"[" * 100_000 + b"\n")
    error = _read(path)
    assert str(error) == f"{path}:2: invalid JSON: nested too deeply"
    assert [p.id for p in read_posts(path, skip_bad=True)] == ["ok"]


def test_regression_integer_longer_than_4300_digits(tmp_path):
    path = write(tmp_path / "p.jsonl", b'{"id": "a", "n": ' + b"1" * 5000 + b"}\n")
    assert str(_read(path)).startswith(f"{path}:1: invalid JSON: Exceeds the limit (4300 digits)")


def test_regression_coordinate_too_large_for_a_float(tmp_path):
    path = write(tmp_path / "p.jsonl", b'{"id": "a", "lat": 1' + b"0" * 400 + b', "lon": 1}\n')
    error = _read(path)
    assert (error.line, error.key) == (1, "lat") and "must be a number in [-90, 90]" in str(error)


@pytest.mark.parametrize("suffix", [".jsonl.xz", ".csv.xz"])
def test_regression_corrupt_xz_stream(tmp_path, suffix):
    data = lzma.compress(b'{"id": "a"}\n' * 100)
    path = tmp_path / f"p{suffix}"
    path.write_bytes(data[:30] + b"\x00" * 50)
    message = str(_read(path))
    assert message.startswith(str(path)) and "Corrupt input data" in message


def test_regression_corrupt_gzip_deflate_data(tmp_path):
    data = bytearray(gzip.compress(b'{"id": "a"}\n' * 200))
    data[20:30] = b"\xff" * 10  # inside the deflate stream: zlib.error, not OSError
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(bytes(data))
    error = read_all(path)
    assert isinstance(error, BadInputError) and str(error).startswith(str(path)), error


def test_regression_csv_with_byte_order_mark(tmp_path):
    path = write(tmp_path / "p.csv", "\ufeffid,text\n1,hi\n".encode())
    assert [(p.id, p.text) for p in read_posts(path)] == [("1", "hi")]


def test_regression_jsonl_with_byte_order_mark(tmp_path):
    path = write(tmp_path / "p.jsonl", '\ufeff{"id": "1"}\n'.encode())
    assert [p.id for p in read_posts(path)] == ["1"]


def test_regression_csv_cell_of_one_megabyte(tmp_path):
    path = write(tmp_path / "p.csv", b"id,text\n1," + b"a" * (1 << 20) + b"\n2,b\n")
    assert [len(p.text) for p in read_posts(path)] == [1 << 20, 1]


def test_regression_csv_bad_utf8_names_its_own_line_and_the_rest_reads(tmp_path):
    rows = b"".join(b"%d,ok\n" % i for i in range(2000))
    path = write(tmp_path / "p.csv", b"id,text\n" + rows + b"5000,caf\xe9\n5001,fine\n")
    assert str(_read(path)) == f'{path}:2002: "text" is not valid UTF-8'
    report = SkipReport()
    assert len(list(read_posts(path, skip_bad=True, report=report))) == 2001 and report.skipped == 1


def test_regression_parquet_extra_nested_too_deeply_stays_a_string(tmp_path):
    path = write(tmp_path / "p.parquet", parquet_bytes({"id": ["a"], "extra": ["[" * 100_000]}))
    (post,) = read_posts(path)
    assert post.extra["extra"] == "[" * 100_000


def test_regression_parquet_decimal_coordinates(tmp_path):
    from decimal import Decimal

    path = write(
        tmp_path / "p.parquet",
        parquet_bytes({"id": ["a"], "lat": pa.array([Decimal("51.05")]), "lon": pa.array([Decimal("13.74")])}),
    )
    (post,) = read_posts(path)
    assert (post.lat, post.lon) == (51.05, 13.74)


def test_regression_instaloader_deep_json(tmp_path):
    (tmp_path / "2023-05-01_12-30-00_UTC.json").write_text("[" * 100_000)
    error = _read(tmp_path)
    assert str(error) == f"{tmp_path / '2023-05-01_12-30-00_UTC.json'}: invalid JSON: nested too deeply"


def test_regression_image_path_with_nul_is_a_clear_error(tmp_path):
    """Found by test_wrong_encodings (a UTF-16 file read as ...): os.path raised ValueError "embedded null byte"."""
    path = write(tmp_path / "p.jsonl", b'{"id": "a", "image": "x\\u0000.jpg"}\n')
    error = _read(path)
    assert (error.line, error.key) == (1, "image") and "NUL" in str(error)


@pytest.mark.parametrize(
    "line",
    ['{"id": "a", "text": "caf\\udce9"}', '{"id": "a", "note": {"x": ["\\ud800"]}}', '{"id": "a", "\\udfff": 1}'],
)
def test_regression_lone_surrogates_are_refused_where_they_are_read(tmp_path, line):
    """JSON "\\ud800" escapes passed validation and crashed `postloc prepare` later (UnicodeEncodeError
    in the Parquet writer); now the line is refused, naming the key."""
    path = write(tmp_path / "p.jsonl", (line + "\n").encode())
    error = _read(path)
    assert error.line == 1 and "lone surrogate" in str(error)
    str(error).encode("utf-8")  # the message itself can be printed
