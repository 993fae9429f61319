"""Hostile inputs to the readers and to language identification (issue 29, items 2, 3, 7, 16, 17).

Each test is the regression test of one red-team finding: an Instaloader caption read without a
bound, language identification whose cost grew with the caption, links that led the Instaloader
reader out of the folder it was given, duplicate columns that silently replaced the caption, and
files with hundreds of thousands of columns.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from postloc.data.prepare import steps
from postloc.data.prepare.config import PrepareConfig
from postloc.data.readers import SkipReport, read_posts
from postloc.data.schema import Post
from postloc.errors import BadInputError
from postloc.text import language

STEM = "2023-05-01_12-30-00_UTC"


def _ids(path: Path, **options) -> list[str]:
    return [post.id for post in read_posts(path, **options)]


# --- item 2: an Instaloader caption file is read with the record bound -------------------------


def test_instaloader_caption_over_the_bound_is_a_bad_record_naming_the_file(tmp_path):
    root = tmp_path / "%123"
    root.mkdir()
    (root / f"{STEM}.txt").write_text("x" * 5000)
    (root / "2023-05-01_13-30-00_UTC.txt").write_text("a fine caption #tag")
    with pytest.raises(BadInputError, match=rf"{STEM}\.txt: is larger than 4,096 bytes"):
        list(read_posts(root, max_record_bytes=4096))
    report = SkipReport()
    assert _ids(root, max_record_bytes=4096, skip_bad=True, report=report) == ["%123_2023-05-01_13-30-00_UTC"]
    assert report.skipped == 1 and f"{STEM}.txt" in report.examples[0]


def test_instaloader_location_file_over_the_bound_is_a_bad_record(tmp_path):
    (tmp_path / f"{STEM}.txt").write_text("caption")
    (tmp_path / f"{STEM}_location.txt").write_text("Somewhere\n" + "y" * 5000)
    with pytest.raises(BadInputError, match=rf"{STEM}_location\.txt: is larger than 4,096 bytes"):
        list(read_posts(tmp_path, max_record_bytes=4096))


def test_sparse_caption_is_refused_without_reading_it(tmp_path):
    """The red-team's 1.5 GB sparse caption drove prepare to 21.7 GB; now it is never read past the bound."""
    with open(tmp_path / f"{STEM}.txt", "wb") as handle:
        handle.truncate(256 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadInputError, match="larger than 10,485,760 bytes"):
        list(read_posts(tmp_path))
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 64


# --- item 3: language identification judges a bounded prefix, and only when asked ---------------


GERMAN = "Heute waren wir im Großen Garten spazieren und haben die Sonne genossen. "
ENGLISH = "We walked along the river this morning and the weather was lovely again. "


def test_language_is_judged_on_a_bounded_prefix():
    """A caption's language is that of its first JUDGED_CHARS characters, however long it is."""
    prefix = (GERMAN * 40)[: language.JUDGED_CHARS]
    caption = prefix + ENGLISH * 2000  # 148 kB of English after the judged part
    assert language.detect_languages([caption]) == language.detect_languages([prefix])
    assert language.detect_languages([caption])[0][0] == "de"
    assert language.detect_language(caption) == language.detect_language(prefix)


def test_no_language_filter_judges_nothing(monkeypatch):
    """``--languages any``: no caption is judged; ``lang`` is null, as for a caption too short to judge."""

    def judge(*args, **kwargs):
        raise AssertionError("language identification ran without a language filter")

    monkeypatch.setattr(steps, "detect_languages", judge)
    posts = [Post(id="a", text=GERMAN), Post(id="b", text=ENGLISH), Post(id="c", text="")]
    chunk = steps.clean_chunk(posts, PrepareConfig(languages=()))
    assert chunk.rows.column("lang").to_pylist() == [None, None, None]
    assert chunk.dropped_language == 0


# --- item 7: the Instaloader reader stays inside the folder it is given ------------------------


def test_caption_link_out_of_the_folder_is_not_followed(tmp_path):
    secret = tmp_path / "home" / "credentials.txt"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key = SHOULD-NOT-LEAK")
    root = tmp_path / "download"
    root.mkdir()
    (root / f"{STEM}.txt").symlink_to(secret)
    (root / "2023-05-01_13-30-00_UTC.txt").write_text("a fine caption")
    report = SkipReport()
    posts = list(read_posts(root, report=report))
    assert [post.text for post in posts] == ["a fine caption"]
    assert report.warned == 1 and f"{STEM}.txt" in report.warning_examples[0]
    assert "outside" in report.warning_examples[0]


def test_folder_link_out_of_the_folder_is_not_walked(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{STEM}.txt").write_text("not under the root")
    root = tmp_path / "download"
    root.mkdir()
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    report = SkipReport()
    assert list(read_posts(root, report=report)) == []
    assert report.warned == 1 and "linked" in report.warning_examples[0]


def test_links_inside_the_folder_are_followed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f"{STEM}.txt").write_text("the caption")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / f"{STEM}.txt").symlink_to(tmp_path / "a" / f"{STEM}.txt")
    report = SkipReport()
    assert [post.text for post in read_posts(tmp_path, report=report)] == ["the caption", "the caption"]
    assert report.warned == 0


def test_root_given_through_a_link_is_read(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / f"{STEM}.txt").write_text("the caption")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert [post.text for post in read_posts(tmp_path / "link")] == ["the caption"]


# --- item 16: a column or key that appears twice is refused -----------------------------------


def test_csv_duplicate_column_is_refused(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,text,lat,lon,text\na,caption,51,13,other\n")
    with pytest.raises(BadInputError, match=r'posts\.csv:1: column "text" appears twice \(columns 2 and 5\)'):
        list(read_posts(path))


def test_csv_mapping_onto_an_existing_column_is_refused(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,caption,text,text_raw\na,one,two,three\n")
    with pytest.raises(BadInputError, match=r'column "text_raw" appears twice \(columns 3 and 4\)'):
        list(read_posts(path, columns={"text": "caption"}))


def test_mapping_one_column_onto_two_keys_is_refused(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("id,place\na,Zwinger\n")
    with pytest.raises(BadInputError, match=r'maps column "place" to both "poi" and "user"'):
        list(read_posts(path, columns={"poi": "place", "user": "place"}))


def test_jsonl_duplicate_key_is_a_bad_record(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text(
        '{"id": "a", "text": "the caption", "text": "replaced"}\n'
        '{"id": "b", "text": "fine", "meta": {"k": 1, "k": 2}}\n'
        '{"id": "c", "text": "fine"}\n'
    )
    with pytest.raises(BadInputError, match=r'posts\.jsonl:1: key "text" appears twice in one object'):
        list(read_posts(path))
    report = SkipReport()
    assert _ids(path, skip_bad=True, report=report) == ["c"]
    assert report.skipped == 2 and 'key "k" appears twice' in report.examples[1]


def test_jsonl_mapping_onto_an_existing_key_is_a_bad_record(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "a", "caption": "one", "text": "two", "text_raw": "three"}\n')
    with pytest.raises(BadInputError, match=r'posts\.jsonl:1: key "text_raw" appears twice'):
        list(read_posts(path, columns={"text": "caption"}))


def test_parquet_duplicate_column_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "posts.parquet"
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["caption"]), pa.array(["other"])], ["id", "text", "text"])
    pq.write_table(table, path)
    with pytest.raises(BadInputError, match=r'posts\.parquet: column "text" appears twice \(columns 2 and 3\)'):
        list(read_posts(path))


# --- item 17: the number of columns is bounded --------------------------------------------------


def test_csv_with_too_many_columns_is_refused(tmp_path):
    from postloc.data.readers.csv import iter_csv

    path = tmp_path / "wide.csv"
    names = ["id", "text"] + [f"c{i}" for i in range(2000)]
    path.write_text(",".join(names) + "\n" + ",".join(["a", "t"] + ["1"] * 2000) + "\n")
    with pytest.raises(BadInputError, match=r"wide\.csv:1: the header has 2,002 columns, more than 1,000"):
        list(read_posts(path))
    assert [item.record["id"] for item in iter_csv(path, columns={}, max_columns=3000)] == ["a"]
    assert _ids(path, max_columns=3000) == ["a"]


def test_jsonl_record_with_too_many_keys_is_a_bad_record(tmp_path):
    from postloc.data.readers.jsonl import iter_jsonl

    path = tmp_path / "wide.jsonl"
    wide = {"id": "a", "text": "t", **{f"k{i}": i for i in range(2000)}}
    path.write_text(json.dumps(wide) + "\n" + json.dumps({"id": "b", "text": "fine"}) + "\n")
    with pytest.raises(BadInputError, match=r"wide\.jsonl:1: has 2,002 keys, more than 1,000"):
        list(read_posts(path))
    report = SkipReport()
    assert _ids(path, skip_bad=True, report=report) == ["b"]
    assert report.skipped == 1
    assert [item.record["id"] for item in iter_jsonl(path, max_keys=3000)] == ["a", "b"]


def test_parquet_with_too_many_columns_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "wide.parquet"
    names = ["id", "text"] + [f"c{i}" for i in range(1200)]
    pq.write_table(pa.Table.from_arrays([pa.array(["a"])] * len(names), names), path)
    with pytest.raises(BadInputError, match=r"wide\.parquet: has 1,202 columns, more than 1,000"):
        list(read_posts(path))


def test_parquet_extra_json_over_the_key_bound_is_a_bad_record(tmp_path):
    """The ``extra`` column's JSON becomes the record's keys: it is bounded like the columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "extra.parquet"
    wide = json.dumps({f"k{i}": i for i in range(1500)})
    table = pa.table({"id": ["a", "b"], "text": ["t", "u"], "extra": [wide, json.dumps({"likes": 3})]})
    pq.write_table(table, path)
    with pytest.raises(BadInputError, match=r"extra\.parquet:1: has 1,502 keys \(columns and extra JSON\)"):
        list(read_posts(path))
    report = SkipReport()
    posts = list(read_posts(path, skip_bad=True, report=report))
    assert [(post.id, post.extra) for post in posts] == [("b", {"likes": 3})] and report.skipped == 1
