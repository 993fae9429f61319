"""`prepare` end to end: the filters' exact effects, outputs, idempotence, errors, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

import postloc
from postloc import EmptyDatasetError, PrepareConfig, datasets, load_prepared, prepare
from postloc.cli import main
from postloc.data.prepare import ReadOptions
from prepare_posts import SMALL, labelled_posts


def test_prepare_applies_each_filter(jsonl_file, tmp_path):
    result = prepare(jsonl_file(labelled_posts()), tmp_path / "out", SMALL)
    funnel = result.summary["funnel"]
    assert funnel["read"] == 29
    assert funnel["dropped_language"] == 1  # german
    assert funnel["dropped_duplicate"] == 1  # same user, text (case-insensitive), tags, place
    assert funnel["dropped_no_poi_label"] == 1
    assert funnel["dropped_empty"] == 1  # 'rare' lost its only hashtag
    assert funnel["kept"] == 25
    data = load_prepared(tmp_path / "out")
    posts = data.posts.set_index("id")
    assert "short" in posts.index and "language_undetermined" in posts.loc["short", "flags"]
    assert list(posts.loc["bridge0", "hashtags"]) == ["bridge", "nyc"]  # lowercased, from the text
    vocab = pd.read_csv(tmp_path / "out/hashtags.csv")
    assert set(vocab[vocab.kept].hashtag) == {"bridge", "square", "nyc"}
    assert vocab.set_index("hashtag").loc["onlyonce", "posts"] == 1
    assert set(data.pois.poi) == {"bridge", "square"}
    assert data.pois.set_index("poi").loc["bridge", "lat"] == pytest.approx(40.70)
    for _, group in data.posts.groupby("user"):
        assert group["split"].nunique() == 1
    assert set(data.posts.split) <= {"train", "val", "test"}
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["config"]["min_hashtag_count"] == 3 and len(manifest["input"]["sha256"]) == 64
    # posts.jsonl is readable by the exchange-format reader, with split/flags as extra keys
    again = list(postloc.read_posts(tmp_path / "out/posts.jsonl"))
    assert len(again) == 25 and {p.extra["split"] for p in again} <= {"train", "val", "test"}
    assert again[0].images[0].endswith(".jpg")


def test_min_poi_posts_threshold_is_inclusive(jsonl_file, tmp_path):
    records = [r for r in labelled_posts() if r.get("poi") == "bridge" and r["id"].startswith("bridge")]
    records += [dict(r, id=f"s{i}", poi="square", user=f"s{i % 2}") for i, r in enumerate(records[:10])]
    path = jsonl_file(records)
    keep10 = prepare(path, tmp_path / "a", PrepareConfig(min_hashtag_count=1, min_poi_posts=10, min_poi_users=2))
    assert keep10.summary["all"]["pois"] == 2
    keep11 = prepare(path, tmp_path / "b", PrepareConfig(min_hashtag_count=1, min_poi_posts=11, min_poi_users=2))
    assert keep11.summary["all"]["pois"] == 1 and keep11.summary["funnel"]["dropped_small_poi"] == 10
    fewer_users = prepare(path, tmp_path / "c", PrepareConfig(min_hashtag_count=1, min_poi_posts=10, min_poi_users=3))
    assert fewer_users.summary["all"]["pois"] == 1


def test_rerun_is_idempotent_and_replaces_atomically(jsonl_file, tmp_path):
    path = jsonl_file(labelled_posts())
    out = tmp_path / "out"
    prepare(path, out, SMALL)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    prepare(path, out, SMALL)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    # a failing run (everything filtered out) leaves the previous result untouched and no temp folders
    with pytest.raises(EmptyDatasetError, match="no posts left after the POI filters"):
        prepare(path, out, PrepareConfig(min_poi_posts=1000))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "posts0.jsonl"]


def test_refuses_to_replace_a_folder_that_is_not_a_prepared_dataset(jsonl_file, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/thesis.tex").write_text("precious")
    with pytest.raises(postloc.PostlocError, match="not a prepared dataset"):
        prepare(jsonl_file(labelled_posts()), tmp_path / "mine", SMALL)
    assert (tmp_path / "mine/thesis.tex").read_text() == "precious"


def test_foreign_manifest_and_input_inside_the_output_are_refused(jsonl_file, tmp_path, capsys):
    """Issue 17, item 2: a folder with someone else's manifest.json was replaced whole, and
    ``prepare proj/raw/posts.jsonl --out proj`` deleted the input; ``--out`` the input file was a traceback."""
    from postloc.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text('{"name": "my-app", "version": "1.0"}')
    (mine / "index.js").write_text("precious")
    with pytest.raises(postloc.PostlocError, match="not a prepared dataset written by postloc"):
        prepare(jsonl_file(labelled_posts()), mine, SMALL)
    assert (mine / "index.js").read_text() == "precious"

    project = tmp_path / "proj"
    (project / "raw").mkdir(parents=True)
    source = project / "raw" / "posts.jsonl"
    source.write_bytes(jsonl_file(labelled_posts()).read_bytes())
    with pytest.raises(postloc.PostlocError, match="contains the input"):
        prepare(source, project, SMALL)
    assert source.exists()
    for out in (project, source):
        assert main(["prepare", str(source), "--out", str(out), "--quiet", "--min-poi-posts", "1"]) == 2
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err
    assert source.exists() and sorted(p.name for p in project.rglob("*")) == ["posts.jsonl", "raw"]


def test_one_user_gives_a_note_about_the_empty_splits(jsonl_file, tmp_path, capsys):
    """Issue 17, item 11: one user only gave empty val/test splits with no warning."""
    from postloc.cli import main

    records = [dict(r, user="only-me") for r in labelled_posts()]
    path = jsonl_file(records)
    result = prepare(path, tmp_path / "one", replace(SMALL, min_poi_users=1))
    assert result.summary["test"]["posts"] == 0
    assert any("test split is empty" in note and "1 user" in note for note in result.notes)
    assert (
        main(
            [
                "prepare",
                str(path),
                "--out",
                str(tmp_path / "cli"),
                "--quiet",
                "--min-poi-users",
                "1",
                "--min-poi-posts",
                "1",
                "--min-hashtag-count",
                "1",
            ]
        )
        == 0
    )
    assert "note: the val split is empty" in capsys.readouterr().err
    assert prepare(jsonl_file(labelled_posts()), tmp_path / "many", SMALL).notes == []


def test_empty_input_and_bad_lines(jsonl_file, tmp_path):
    with pytest.raises(EmptyDatasetError, match="the input holds no posts"):
        prepare(jsonl_file([]), tmp_path / "out", SMALL)
    records = labelled_posts() + ['{"id": "bad", "lat": "abc", "lon": 1}']
    path = jsonl_file(records, name="withbad.jsonl")
    with pytest.raises(postloc.BadInputError, match='withbad.jsonl:30: "lat" must be a number'):
        prepare(path, tmp_path / "out", SMALL)
    result = prepare(path, tmp_path / "out", SMALL, ReadOptions(skip_bad=True))
    assert result.summary["funnel"]["skipped_bad"] == 1 and result.summary["funnel"]["kept"] == 25


def test_derived_pois_from_coordinates(jsonl_file, tmp_path):
    records = []
    for k, (lat, lon) in enumerate([(51.0526, 13.7415), (51.0600, 13.7600)]):
        for i in range(40):
            records.append(
                {
                    "id": f"{k}-{i}",
                    "hashtags": [f"place{k}", "city"],
                    "user": f"u{i % 5}-{k}",
                    "lat": lat + (i % 7) * 1e-5,
                    "lon": lon + (i % 5) * 1e-5,
                }
            )
    config = PrepareConfig(
        min_hashtag_count=1, min_poi_posts=20, min_poi_users=2, poi_min_samples=5, drop_duplicates=False
    )
    result = prepare(jsonl_file(records), tmp_path / "out", config)
    assert result.summary["poi_method"] == "hdbscan" and result.summary["all"]["pois"] == 2
    data = load_prepared(tmp_path / "out")
    assert (
        data.posts.groupby("poi")["hashtags"]
        .apply(lambda s: {t for tags in s for t in tags if t != "city"})
        .map(len)
        .eq(1)
        .all()
    )
    assert sorted(data.pois["name"].str.split().str[0]) == ["#place0", "#place1"]  # named by their own tag


def test_dresden_end_to_end(tmp_path):
    result = prepare(datasets.path("dresden"), tmp_path / "dresden", PrepareConfig(), datasets.read_options("dresden"))
    summary = result.summary
    assert summary["funnel"]["read"] == 17879
    assert 10 <= summary["all"]["pois"] <= 60
    assert summary["all"]["posts"] > 3000
    assert summary["all"]["share_hashtags"] == 1.0 and summary["all"]["posts_with_text"] == 0
    data = load_prepared(tmp_path / "dresden")
    assert data.posts.groupby("user")["split"].nunique().max() == 1
    assert set(data.pois.poi) == set(data.posts.poi)
    assert data.pois["lat"].between(50.9, 51.2).all() and data.pois["lon"].between(13.5, 14.0).all()
    assert "| #Posts |" in (tmp_path / "dresden/summary.md").read_text()


def test_embedded_dataset_loads_with_attribution():
    posts = datasets.load("dresden")
    first = next(posts)
    assert first.lat and first.user and first.hashtags
    assert "CC-BY" in datasets.attribution("dresden") and "TagMaps" in datasets.attribution("dresden")
    with pytest.raises(KeyError, match="available: dresden"):
        datasets.path("paris")


def test_cli_prepare_and_errors(jsonl_file, tmp_path, capsys):
    path = jsonl_file(labelled_posts())
    code = main(
        [
            "prepare",
            str(path),
            "--out",
            str(tmp_path / "out"),
            "--min-hashtag-count",
            "3",
            "--min-poi-posts",
            "10",
            "--min-poi-users",
            "2",
            "--split",
            "0.5,0.25,0.25",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| #Posts | 25 |" in out and "#Locations (POIs)" in out
    code = main(["prepare", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "missing.jsonl: no such file or folder" in err
    with pytest.raises(SystemExit):
        main(["prepare", str(path), "--out", str(tmp_path / "x"), "--split", "0.5,0.5"])


def test_cli_prepare_maps_jsonl_columns_and_warns_on_bad_dates(jsonl_file, tmp_path, capsys):
    """`--columns` renames JSONL keys as it does CSV columns; an unreadable date stops nothing."""
    renamed = [
        {("pid" if k == "id" else "caption" if k == "text" else k): v for k, v in r.items()} for r in labelled_posts()
    ]
    renamed[0]["created"] = "yesterday"
    renamed[1]["created"] = "Wed Feb 25 00:26:16 +0000 2015"
    out = tmp_path / "out"
    argv = ["prepare", str(jsonl_file(renamed)), "--out", str(out), "--columns", "id=pid,text=caption", "--quiet"]
    argv += ["--min-hashtag-count", "3", "--min-poi-posts", "10", "--min-poi-users", "2", "--split", "0.5,0.25,0.25"]
    assert main(argv) == 0
    assert "1 warnings" in capsys.readouterr().err
    posts = load_prepared(out).posts.set_index("id")
    assert list(posts.loc["bridge0", "hashtags"]) == ["bridge", "nyc"]  # text came from "caption"
    assert posts.loc["bridge1", "created"] == "2015-02-25T00:26:16+00:00"
    assert pd.isna(posts.loc["bridge0", "created"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["columns"] == {"id": "pid", "text": "caption"} and manifest["skipped"]["warned"] == 1


def test_paper_defaults_on_small_data_say_which_option_to_change(jsonl_file, tmp_path):
    """Issue 15: the paper's thresholds on a small set leave an empty vocabulary or most posts dropped."""
    records = labelled_posts() * 1
    result = prepare(jsonl_file(records), tmp_path / "out", replace(SMALL, min_hashtag_count=50, drop_empty=False))
    assert any("hashtag vocabulary is empty" in n and "--min-hashtag-count" in n for n in result.notes)
    unlabelled = [dict(r, poi=None) if i % 3 else r for i, r in enumerate(labelled_posts())]
    result = prepare(jsonl_file(unlabelled), tmp_path / "few", replace(SMALL, min_poi_posts=1, min_poi_users=1))
    assert any("posts were kept" in n and "no poi label" in n and "--poi-method hdbscan" in n for n in result.notes)


def test_skip_bad_that_skips_every_record_blames_the_records(jsonl_file, tmp_path):
    path = jsonl_file(['{"id": "a", "lat": "x", "lon": 1}', '{"id": "b", "lat": "y", "lon": 2}'])
    with pytest.raises(EmptyDatasetError, match="every one of the 2 records was bad") as caught:
        prepare(path, tmp_path / "out", SMALL, ReadOptions(skip_bad=True))
    assert "thresholds are not the problem" in str(caught.value)
