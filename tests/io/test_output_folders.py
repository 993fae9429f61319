"""Output folders (docs/reliability.md, "input inside output"): only postloc's own folders are replaced.

Regression tests of issue 17, item 2: a folder holding someone else's ``manifest.json`` was
replaced whole, and ``prepare proj/raw/posts.jsonl --out proj`` deleted the input.
"""

from __future__ import annotations

import json

import pytest

from postloc.data.prepared import PREPARED
from postloc.errors import OutputPathError
from postloc.io.ownership import RUN, check_not_input, check_output_folder


def test_missing_and_empty_folders_are_fine(tmp_path):
    assert check_output_folder(tmp_path / "new", PREPARED) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", PREPARED)


def test_own_prepared_folder_may_be_replaced(tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"postloc_prepared": 1}))
    (out / "posts.jsonl").write_text("")
    check_output_folder(out, PREPARED)


@pytest.mark.parametrize("manifest", ['{"name": "my-project", "version": 3}', "not json", "[1, 2]", ""])
def test_foreign_manifest_is_refused(tmp_path, manifest):
    out = tmp_path / "work"
    out.mkdir()
    (out / "manifest.json").write_text(manifest)
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputPathError, match="not a prepared dataset written by postloc"):
        check_output_folder(out, PREPARED)


def test_run_folder_kind(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"config": {"model": "mrlf"}}))
    check_output_folder(out, RUN)
    (out / "config.json").write_text(json.dumps({"eslint": True}))
    with pytest.raises(OutputPathError, match="training run"):
        check_output_folder(out, RUN)


def test_output_containing_or_being_the_input_is_refused(tmp_path):
    raw = tmp_path / "proj" / "raw" / "posts.jsonl"
    raw.parent.mkdir(parents=True)
    raw.write_text("{}\n")
    with pytest.raises(OutputPathError, match="contains the input"):
        check_output_folder(tmp_path / "proj", PREPARED, [raw])
    with pytest.raises(OutputPathError, match="is the input"):
        check_not_input(raw, [raw])
    with pytest.raises(OutputPathError, match="inside the input"):
        check_not_input(raw.parent / "out", [raw.parent])
    link = tmp_path / "alias"
    link.symlink_to(tmp_path / "proj")
    with pytest.raises(OutputPathError, match="contains the input"):
        check_output_folder(link, PREPARED, [raw])


def test_file_as_output_folder_is_refused(tmp_path):
    file = tmp_path / "same.jsonl"
    file.write_text("{}\n")
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_folder(file, PREPARED)


def test_experiment_folders_of_this_and_earlier_versions_are_ours(tmp_path):
    from postloc.experiments.folder import REPORT

    now, before, foreign = tmp_path / "now", tmp_path / "before", tmp_path / "foreign"
    for folder in (now, before, foreign):
        folder.mkdir()
        (folder / "report.md").write_text("# a report")
    (now / "experiment.json").write_text(json.dumps({"postloc_experiments": 1}))
    (before / "results.json").write_text(json.dumps({"rows": [], "config": {}}))
    (foreign / "results.json").write_text(json.dumps({"accuracy": 0.9}))
    check_output_folder(now, REPORT)
    check_output_folder(before, REPORT)
    with pytest.raises(OutputPathError, match="experiment report"):
        check_output_folder(foreign, REPORT)


def test_ray_prediction_folder_replaces_only_its_own_parts(tmp_path):
    """`predict --engine ray -o DIR` swaps DIR in whole: a folder with anything else in it is refused."""
    from postloc.scale.ray_predict import check_parts_folder

    source = tmp_path / "posts.parquet"
    source.write_bytes(b"")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "part-000000-abc.parquet").write_bytes(b"")
    check_parts_folder(earlier, [source])
    check_parts_folder(tmp_path / "new", [source])
    (earlier / "notes.txt").write_text("precious")
    with pytest.raises(OutputPathError, match="notes.txt"):
        check_parts_folder(earlier, [source])
    with pytest.raises(OutputPathError, match="contains the input"):
        check_parts_folder(tmp_path, [source])
