"""``postloc predict``/``explain`` on the command line: streaming round trips in JSONL and Parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from postloc.cli import main
from postloc.inference import batch
from postloc.inference.predictor import load
from serve_support import decisive_tag, mean_colour_featurizer, png_bytes, small_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_run(tmp_path_factory)


def _posts(n: int, tag: str) -> list[dict]:
    return [{"id": f"p{i}", "text": f"caption {i}", "hashtags": [tag] if i % 2 else []} for i in range(n)]


def test_jsonl_round_trip_streams_in_batches(run, tmp_path, monkeypatch):
    tag, _ = decisive_tag(run)
    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in _posts(23, tag)))
    predictor = load(run)
    seen = []
    original, answers = predictor.predict, predictor.answers
    monkeypatch.setattr(predictor, "answers", lambda posts, **kw: seen.append(len(posts)) or answers(posts, **kw))
    out = tmp_path / "out.jsonl"
    counts = batch.predict_file(run, source, out, top_k=2, batch_size=5, progress=False, predictor=predictor)
    assert counts["posts"] == 23 and seen == [5, 5, 5, 5, 3]  # never more than one batch in memory
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(23)]
    expected = original([{"text": p["text"], "hashtags": p["hashtags"]} for p in _posts(23, tag)], top_k=2)
    for row, exp in zip(rows, expected, strict=True):
        assert [p["poi"] for p in row["predictions"]] == [e["poi"] for e in exp]
        assert np.allclose([p["probability"] for p in row["predictions"]], [e["probability"] for e in exp])
        assert set(row["predictions"][0]) == {"poi", "name", "probability", "lat", "lon"}
        assert row["poi"] == exp[0]["poi"] and row["reason"] is None
        assert row["confidence"] == pytest.approx(exp[0]["probability"], abs=1e-6)


def test_parquet_round_trip_via_the_command_line(run, tmp_path, capsys):
    tag, _ = decisive_tag(run)
    source = tmp_path / "posts.parquet"
    pd.DataFrame(_posts(12, tag)).to_parquet(source)
    out = tmp_path / "out.parquet"
    code = main(["predict", str(run), str(source), "-o", str(out), "--top-k", "3", "--batch-size", "4", "--quiet"])
    assert code == 0 and "12 posts" in capsys.readouterr().out
    table = pd.read_parquet(out)
    assert list(table["id"]) == [f"p{i}" for i in range(12)]
    assert all(len(p) == 3 for p in table["predictions"])
    first = table["predictions"][1][0]
    assert first["poi"] == decisive_tag(run)[1] and 0 < first["probability"] <= 1


def test_photos_are_read_from_disk_through_the_featurizer(run, tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    source = tmp_path / "posts.jsonl"
    source.write_text(
        json.dumps({"id": "1", "text": "x", "image": ["a.png", "bad.jpg"]})
        + "\n"
        + json.dumps({"id": "2", "text": "y", "image": "bad.jpg"})
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    counts = batch.predict_file(run, source, out, progress=False, featurizer=mean_colour_featurizer().featurizer)
    assert counts["with_images"] == 2 and counts["images_used"] == 1
    # the synthetic run records no backbone: photos are reported unused, predictions still made
    counts = batch.predict_file(run, source, out, progress=False)
    assert counts["images_used"] == 0 and "not used" in counts["image_note"]


def test_bad_input_is_a_user_error_and_leaves_no_output(run, tmp_path, capsys):
    source = tmp_path / "posts.jsonl"
    source.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "hashtags": "notalist"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(run), str(source), "-o", str(out), "--quiet", "--batch-size", "1"]) == 2
    assert "hashtags" in capsys.readouterr().err and not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*"))
    assert main(["predict", str(run), str(source), "-o", str(out), "--quiet", "--skip-bad"]) == 0
    assert len(out.read_text().splitlines()) == 1


def test_explain_command_prints_a_table(run, tmp_path, capsys):
    tag, poi = decisive_tag(run)
    photo = tmp_path / "p.png"
    photo.write_bytes(png_bytes())
    code = main(
        ["explain", str(run), "--text", "sunny afternoon", "--hashtags", f"#{tag} other", "--image", str(photo)]
    )
    captured = capsys.readouterr()
    assert code == 0 and poi in captured.out and tag in captured.out and "contribution" in captured.out
    assert "not used" in captured.err  # no backbone recorded for the synthetic run
    assert main(["explain", str(run), "--text", "x", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target_poi"]
    (tmp_path / "fake.png").write_text("hello")
    assert main(["explain", str(run), "--image", str(tmp_path / "fake.png")]) == 2


def test_output_targets_are_never_destroyed(run, tmp_path, capsys):
    """Issue 17, items 1, 2 and 10: -o /dev/null, -, a directory, the input itself, a file of the run."""
    import os
    import stat

    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in _posts(3, "x")))
    before = os.stat("/dev/null")
    assert main(["predict", str(run), str(source), "-o", "/dev/null", "--quiet"]) == 0
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    capsys.readouterr()

    assert main(["predict", str(run), str(source), "-o", "-", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == ["p0", "p1", "p2"]
    assert "wrote -: 3 posts" in captured.err

    original = source.read_bytes()
    for out, problem in (
        (tmp_path, "is a directory"),
        (source, "is the input"),
        (run / "best" / "model.json", "inside the input"),
    ):
        assert main(["predict", str(run), str(source), "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert source.read_bytes() == original
    assert load(run).classes  # the run still loads


@pytest.mark.parametrize(
    "vector,problem",
    [
        ([float("nan")] * 8, "finite"),
        ([1e39] * 8, "finite"),
        ("abc", "list of numbers"),
        ([[1.0, 2.0]], "only numbers"),
        ([True] * 8, "only numbers"),
        ([1.0, 2.0], "8 finite numbers"),
    ],
)
def test_bad_image_vectors_are_file_line_errors(run, tmp_path, capsys, vector, problem):
    """Issue 17, item 8: NaN/1e39 vectors gave bare NaN in the JSON output; "abc" a traceback."""
    source = tmp_path / "posts.jsonl"
    good = {"id": "ok", "text": "caption"}
    source.write_text(
        json.dumps(good) + "\n" + json.dumps({"id": "bad", "text": "x", "image_vector": vector}, allow_nan=True) + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(run), str(source), "-o", str(out), "--quiet", "--no-images"]) == 2
    err = capsys.readouterr().err
    assert problem in err and "image_vector" in err and "Traceback" not in err
    assert not out.exists()
    if problem != "8 finite numbers":  # the record itself is bad: the reader names file and line
        assert "posts.jsonl:2" in err
