"""Readers: round trips and every error path, with the file, line and key in the message."""

from __future__ import annotations

import gzip
import json

import pytest

from postloc import BadInputError, Post, read_posts, write_posts
from postloc.data.readers import SkipReport, detect_format

GOOD = [
    {
        "id": "a1",
        "text": "Sunset at the bridge #NYC 🌉",
        "hashtags": ["NYC", "#bridge"],
        "image": "img/a1.jpg",
        "poi": "brooklyn-bridge",
        "lat": 40.706,
        "lon": -73.997,
        "user": "u1",
        "created": "2021-06-01T18:00:00Z",
        "likes": 12,
    },
    {"id": "a2", "text": "", "poi": "times-square", "user": 7, "created": 1622570400},
    {"id": 3, "hashtags": [], "image": ["x.jpg", "y.jpg"]},
]


def test_jsonl_reads_exchange_format(jsonl_file, tmp_path):
    posts = list(read_posts(jsonl_file(GOOD)))
    assert [p.id for p in posts] == ["a1", "a2", "3"]
    first = posts[0]
    assert first.hashtags == ["NYC", "bridge"]  # leading '#' removed, case kept
    assert first.images == [str((tmp_path / "img/a1.jpg").resolve())]
    assert (first.lat, first.lon, first.poi, first.user) == (40.706, -73.997, "brooklyn-bridge", "u1")
    assert first.created == "2021-06-01T18:00:00+00:00"
    assert first.extra == {"likes": 12}  # unknown keys are kept
    assert posts[1].user == "7" and posts[1].created == "2021-06-01T18:00:00+00:00"
    assert posts[1].lat is None and posts[1].text == ""
    assert len(posts[2].images) == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_writer_reader_round_trip(jsonl_file, tmp_path, suffix):
    posts = list(read_posts(jsonl_file(GOOD)))
    out = tmp_path / "sub" / f"copy{suffix}"
    assert write_posts(posts, out) == len(posts)
    again = list(read_posts(out))
    assert again == posts  # images are absolute after reading, relative in the file
    assert not list(out.parent.glob(".*.tmp"))  # no temporary left behind


def test_parquet_round_trip_of_empty_file(tmp_path):
    out = tmp_path / "empty.parquet"
    assert write_posts([], out) == 0
    assert list(read_posts(out)) == []


def test_gzip_jsonl(tmp_path):
    path = tmp_path / "posts.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(GOOD[0]) + "\n")
    assert [p.id for p in read_posts(path)] == ["a1"]


BAD_LINES = [
    ('{"id": "x", "lat": "abc", "lon": 1}', 'posts.jsonl:2: "lat" must be a number in [-90, 90], got "abc"'),
    ('{"id": "x", "lat": 91, "lon": 1}', '"lat" must be a number in [-90, 90], got 91'),
    ('{"id": "x", "lat": 10, "lon": -181}', '"lon" must be a number in [-180, 180], got -181'),
    ('{"id": "x", "lat": 10}', '"lon" is missing while the other coordinate is given'),
    ('{"id": "x", "lat": true, "lon": 1}', '"lat" must be a number'),
    ('{"text": "no id"}', '"id" is required'),
    ('{"id": ["x"]}', '"id" must be a string'),
    ('{"id": "x", "hashtags": "nyc"}', '"hashtags" must be a list of strings'),
    ('{"id": "x", "hashtags": ["ok", 5]}', '"hashtags" must contain only strings, got 5'),
    ('{"id": "x", "text": 5}', '"text" must be a string'),
    ('{"id": "x", "image": {"a": 1}}', '"image" must be a list of strings'),
    ('{"id": "a1"}', '"id" "a1" was already used at'),
    ('{"id": "x", ', "posts.jsonl:2: invalid JSON"),
    ("[1, 2]", "posts.jsonl:2: expected a JSON object, got a list"),
]


@pytest.mark.parametrize("line,message", BAD_LINES)
def test_bad_record_names_file_line_and_key(jsonl_file, line, message):
    path = jsonl_file([{"id": "a1"}, line], name="posts.jsonl")
    with pytest.raises(BadInputError) as caught:
        list(read_posts(path))
    assert message in str(caught.value)
    assert caught.value.line == 2


def test_invalid_utf8_costs_one_line(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xff\xfe"}\n{"id": "c"}\n')
    with pytest.raises(BadInputError, match=r"posts.jsonl:2: is not valid UTF-8"):
        list(read_posts(path))
    report = SkipReport()
    assert [p.id for p in read_posts(path, skip_bad=True, report=report)] == ["a", "c"]
    assert report.skipped == 1 and report.read == 2


CREATED = [
    ("2015-02-25T00:26:16Z", "2015-02-25T00:26:16+00:00"),
    ("2015-02-25T01:26:16+01:00", "2015-02-25T01:26:16+01:00"),
    ("2015-02-25T00:26:16", "2015-02-25T00:26:16"),  # no offset given: none invented
    (1424823976, "2015-02-25T00:26:16+00:00"),
    ("1424823976", "2015-02-25T00:26:16+00:00"),
    (1424823976.5, "2015-02-25T00:26:16.500000+00:00"),
    (1424823976123, "2015-02-25T00:26:16.123000+00:00"),  # milliseconds, told apart by magnitude
    ("1424823976123", "2015-02-25T00:26:16.123000+00:00"),
    (99_999_999_999, "5138-11-16T09:46:39+00:00"),  # just below the threshold: still seconds
    (100_000_000_000, "1973-03-03T09:46:40+00:00"),  # at the threshold: milliseconds
    ("Wed, 25 Feb 2015 00:26:16 +0000", "2015-02-25T00:26:16+00:00"),  # RFC 2822
    ("Wed, 25 Feb 2015 00:26:16 -0500", "2015-02-25T00:26:16-05:00"),
    ("Wed Feb 25 00:26:16 +0000 2015", "2015-02-25T00:26:16+00:00"),  # Twitter's created_at
    ("Wed Feb 25 05:56:16 +0530 2015", "2015-02-25T05:56:16+05:30"),
]


@pytest.mark.parametrize("value,stored", CREATED)
def test_created_formats(jsonl_file, value, stored):
    report = SkipReport()
    (post,) = read_posts(jsonl_file([{"id": "x", "created": value}]), report=report)
    assert post.created == stored and report.warned == 0


@pytest.mark.parametrize("value", ["yesterday", 1e20, -1e300, True, {"t": 1}, "Wed Feb 30 00:26:16 +0000 2015"])
@pytest.mark.parametrize("skip_bad", [False, True])
def test_unreadable_created_keeps_the_post_and_warns(jsonl_file, value, skip_bad):
    """No model needs the time: the post stays, without ``created``, counted in the warnings."""
    report = SkipReport()
    lines = [{"id": "a", "created": value}, {"id": "b", "created": 1424823976}]
    posts = list(read_posts(jsonl_file(lines), skip_bad=skip_bad, report=report))
    assert [(p.id, p.created) for p in posts] == [("a", None), ("b", "2015-02-25T00:26:16+00:00")]
    assert report.skipped == 0 and report.warned == 1 and report.read == 2
    assert ':1: "created"' in report.warning_examples[0]
    (reason,) = report.warnings  # counted by the problem, without the value
    assert reason.startswith(('"created" is not a date in a known form (ISO', '"created" is not a valid Unix time'))
    assert "got" not in reason
    assert "1 warnings (posts kept without a field no model needs" in report.summary()
    assert report.to_dict()["warned"] == 1


def test_warning_of_a_skipped_post_is_not_counted(jsonl_file):
    report = SkipReport()
    lines = [{"id": "a"}, {"id": "a", "created": "yesterday"}]
    assert [p.id for p in read_posts(jsonl_file(lines), skip_bad=True, report=report)] == ["a"]
    assert report.skipped == 1 and report.warned == 0
    assert "warned" not in report.to_dict()


def test_skip_bad_counts_reasons(jsonl_file):
    lines = [GOOD[0]] + [line for line, _ in BAD_LINES[:4]] + ['{"id": "z"}', "{broken"]
    report = SkipReport()
    posts = list(read_posts(jsonl_file(lines), skip_bad=True, report=report))
    assert [p.id for p in posts] == ["a1", "z"]
    assert report.skipped == 5 and report.read == 2
    assert sum(report.reasons.values()) == 5
    assert "skipped 5 bad records" in report.summary()
    assert any('"lat"' in reason for reason in report.reasons)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(BadInputError, match="no such file or folder"):
        list(read_posts(tmp_path / "nope.jsonl"))
    with pytest.raises(BadInputError, match="cannot tell the format"):
        detect_format(tmp_path / "posts.txt")
    corrupt = tmp_path / "posts.jsonl.gz"
    corrupt.write_bytes(b"this is not gzip")
    with pytest.raises(BadInputError, match="cannot be read"):
        list(read_posts(corrupt))
    not_parquet = tmp_path / "posts.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(BadInputError, match="not a readable Parquet file"):
        list(read_posts(not_parquet))


def test_csv_with_column_mapping(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text(
        "guid,lat,lng,user_guid,hashtags,post_body\n"
        'g1,51.05,13.73,u1,"water;dresden; elbe",\n'
        'g2,51.06,13.74,u2,,"multi\nline caption"\n'
        "g3,51.06,200,u3,,\n",
        encoding="utf-8",
    )
    mapping = {"id": "guid", "lon": "lng", "user": "user_guid", "text": "post_body"}
    report = SkipReport()
    posts = list(read_posts(path, columns=mapping, skip_bad=True, report=report))
    assert [p.id for p in posts] == ["g1", "g2"]
    assert posts[0].hashtags == ["water", "dresden", "elbe"] and posts[0].lon == 13.73
    assert posts[1].text == "multi\nline caption"
    assert report.skipped == 1
    with pytest.raises(BadInputError, match=r'posts.csv:5: "lon" must be a number in \[-180, 180\], got "200"'):
        list(read_posts(path, columns=mapping))


def test_csv_errors(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,lat,lon\na,1,2\nb,1\n")
    with pytest.raises(BadInputError, match="posts.csv:3: has 2 fields, the header has 3"):
        list(read_posts(path))
    with pytest.raises(BadInputError, match=r"mapped columns not in the header: user<-author"):
        list(read_posts(path, columns={"user": "author"}))
    with pytest.raises(BadInputError, match="unknown keys"):
        list(read_posts(path, columns={"place": "lat"}))


def test_csv_mapped_column_shadows_same_named_column(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,user,author\na,display-name,42\n")
    [post] = read_posts(path, columns={"user": "author"})
    assert post.user == "42" and post.extra == {"user_raw": "display-name"}


def test_parquet_with_column_mapping(tmp_path):
    import pandas as pd

    path = tmp_path / "posts.parquet"
    pd.DataFrame(
        {"pid": ["p1", "p2"], "latitude": [1.5, None], "lon": [2.5, None], "tags": [["a", "b"], []]}
    ).to_parquet(path)
    mapping = {"id": "pid", "lat": "latitude", "hashtags": "tags"}
    posts = list(read_posts(path, columns=mapping))
    assert posts[0] == Post(id="p1", hashtags=["a", "b"], lat=1.5, lon=2.5)
    assert posts[1].lat is None and posts[1].hashtags == []


def test_jsonl_with_column_mapping(jsonl_file):
    lines = [
        {"pid": "p1", "lat": 1.5, "lng": 2.5, "caption": "at #bondi", "text": "old text", "tags": ["a"]},
        {"pid": "p2", "caption": "no place"},  # a mapped key may be absent from a line
    ]
    mapping = {"id": "pid", "lon": "lng", "text": "caption", "hashtags": "tags"}
    posts = list(read_posts(jsonl_file(lines), columns=mapping))
    assert posts[0] == Post(id="p1", text="at #bondi", hashtags=["a"], lat=1.5, lon=2.5, extra={"text_raw": "old text"})
    assert (posts[1].id, posts[1].text, posts[1].lat) == ("p2", "no place", None)
    with pytest.raises(BadInputError, match="unknown keys"):
        list(read_posts(jsonl_file(lines), columns={"place": "lat"}))


def test_parquet_mapping_names_only_exchange_keys(tmp_path):
    import pandas as pd

    path = tmp_path / "posts.parquet"
    pd.DataFrame({"id": ["p1"], "lat": [1.0], "lon": [2.0]}).to_parquet(path)
    with pytest.raises(BadInputError, match="unknown keys"):
        list(read_posts(path, columns={"place": "lat"}))


def test_reader_streams(tmp_path):
    """The reader yields the first post before it has read the rest of the file."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as handle:
        handle.write('{"id": "first"}\n')
        handle.write("{broken\n" * 10)
    stream = read_posts(path)
    assert next(stream).id == "first"
    with pytest.raises(BadInputError):
        next(stream)


@pytest.mark.parametrize("lat", ["5_1", "\u0665\u0661", "51.0\u0660", "inf", "nan", "0x10", "1e400"])
def test_coordinates_accept_only_plain_decimal_text(tmp_path, lat):
    """Issue 17, item 11: Python's float() rules let "5_1" and Arabic-Indic digits through as numbers."""
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x", "lat": lat, "lon": "13.7"}) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match='"lat" must be a number'):
        list(read_posts(path))


def test_coordinates_in_plain_text_still_read(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x", "lat": " 51.05 ", "lon": "-1.5e1"}) + "\n")
    post = next(read_posts(path))
    assert (post.lat, post.lon) == (51.05, -15.0)


def test_boolean_id_is_refused(tmp_path):
    """Issue 17, item 11: ``id: true`` became "1" (a bool is an int in Python)."""
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"id": True, "text": "x"}) + "\n")
    with pytest.raises(BadInputError, match='"id" must be a string'):
        list(read_posts(path))
