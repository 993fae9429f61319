"""``postloc quickstart``: settings chosen from the data, every step run and resumed, the report, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import instaloader_fixtures as fx
from postloc.data.schema import Post
from postloc.errors import BadInputError, OutputPathError, PostlocError
from postloc.quickstart import QuickstartConfig, quickstart
from postloc.quickstart.choices import FULL_SCALE_POSTS, choose, prepare_config, profile_posts
from quickstart_posts import quickstart_config as _config
from quickstart_posts import three_poi_posts as _posts
from quickstart_posts import write_jsonl as _write_jsonl

# -- the choices ------------------------------------------------------------------------------


def test_small_data_gets_scaled_thresholds_and_folds():
    choices = {c.name: c for c in choose(profile_posts(_posts()))}
    assert choices["min_hashtag_count"].value == 2  # 50 * 90 / 10,000 rounds below the floor of 2
    assert choices["min_poi_posts"].value == 10
    assert choices["poi_method"].value == "labels"
    assert choices["languages"].value == "en"
    assert choices["folds"].value == 5
    assert all(c.why for c in choices.values())
    config = prepare_config(choices.values(), seed=3)
    assert (config.min_hashtag_count, config.min_poi_posts, config.languages, config.seed) == (2, 10, ("en",), 3)


def test_full_scale_data_gets_the_papers_thresholds():
    profile = profile_posts(_posts(n_per_poi=FULL_SCALE_POSTS // 3 + 1, users=400))
    choices = {c.name: c.value for c in choose(profile)}
    assert choices["min_hashtag_count"] == 50 and choices["min_poi_posts"] == 100
    assert choices["poi_min_samples"] == 10


def test_mostly_foreign_captions_keep_every_language():
    german = "Ein wunderschöner Nachmittag am Hafen mit Freunden, wir haben die Boote und den Pier geliebt"
    choices = {c.name: c for c in choose(profile_posts(_posts(text=german)))}
    assert choices["languages"].value == "any"
    assert "de" in choices["languages"].why
    assert prepare_config(choices.values()).languages == ()


def test_two_pois_remain_when_labelled_pois_are_small():
    posts = _posts(n_per_poi=4, users=3)
    choices = {c.name: c.value for c in choose(profile_posts(posts))}
    assert choices["min_poi_posts"] <= 4  # lowered from the floor of 10 so that two POIs pass
    assert choices["min_poi_users"] <= 3


def test_no_labels_and_no_coordinates_is_a_clear_error():
    posts = [Post(id=str(i), text="hello there", user=f"u{i}") for i in range(20)]
    with pytest.raises(PostlocError, match="neither POI labels nor coordinates"):
        choose(profile_posts(posts))


# -- the whole run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """One quickstart on a small JSONL with a bad line and a hostile caption."""
    root = tmp_path_factory.mktemp("quickstart")
    posts = _posts()
    posts[0].text = "<script>alert('x')</script> at the harbour with the boats and the pier, lovely"
    source = _write_jsonl(posts, root / "posts.jsonl", poison=True)
    out = root / "out"
    quickstart(source, out, _config())
    return source, out


def test_every_step_runs_and_the_manifest_keeps_the_choices(finished):
    _, out = finished
    manifest = json.loads((out / "quickstart.json").read_text())
    assert set(manifest["steps"]) == {"prepare", "images", "evaluate", "train", "names", "report"}
    assert manifest["steps"]["names"] == {"pois": 0, "file": None}  # every POI was trained on
    assert manifest["steps"]["images"] == {"computed": False, "why": "--no-images"}
    assert manifest["skipped_in_scan"] == 1  # the bad line is skipped and counted, not a stop
    assert {c["name"] for c in manifest["choices"]} >= {"min_hashtag_count", "languages", "folds"}
    assert (out / "run" / "run.json").exists() and (out / "run" / "eval-test.json").exists()
    scores = manifest["scores"]
    assert set(scores) == {"tfidf-logreg", "majority"}
    assert scores["tfidf-logreg"]["accuracy"] > scores["majority"]["accuracy"]


def test_report_is_self_contained_and_escapes_the_posts(finished):
    _, out = finished
    page = (out / "report.html").read_text()
    for section in ("How well it places posts", "Map of the POIs", "Confusions", "Examples", "Settings chosen"):
        assert section in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # a caption is text, never markup
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing fetched from the network
    assert page.count("<circle") == 3  # one per POI on the map


def test_a_rerun_resumes_and_keeps_finished_steps(finished, capsys):
    source, out = finished
    model = out / "run" / "best"
    before = model.stat().st_mtime_ns
    quickstart(source, out, _config(progress=True))
    err = capsys.readouterr().err
    assert "resuming" in err and "train: done earlier, kept" in err
    assert model.stat().st_mtime_ns == before


def test_a_changed_input_starts_over(tmp_path):
    source = _write_jsonl(_posts(), tmp_path / "posts.jsonl")
    out = tmp_path / "out"
    quickstart(source, out, _config())
    first = json.loads((out / "quickstart.json").read_text())["input"]["sha256"]
    _write_jsonl(_posts(n_per_poi=25), source)
    quickstart(source, out, _config())
    manifest = json.loads((out / "quickstart.json").read_text())
    assert manifest["input"]["sha256"] != first
    assert manifest["steps"]["prepare"]["posts"] == 75


def test_refuses_a_foreign_folder_and_an_output_inside_the_input(tmp_path):
    source = _write_jsonl(_posts(), tmp_path / "posts.jsonl")
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputPathError, match="not a quickstart folder"):
        quickstart(source, foreign, _config())
    assert (foreign / "thesis.tex").read_text() == "years of work"
    with pytest.raises(OutputPathError):
        quickstart(tmp_path, tmp_path / "inside", _config())
    with pytest.raises(BadInputError, match="is a device"):
        quickstart("/dev/zero", tmp_path / "new", _config())
    with pytest.raises(PostlocError, match="unknown model"):
        quickstart(source, tmp_path / "new", _config(model="nope"))
    assert not (tmp_path / "new").exists()  # refused before anything was written


@pytest.mark.slow
def test_instaloader_download_with_a_stray_json_runs_without_options(tmp_path):
    with fx.no_network():
        tree = fx.build_location_pages(tmp_path / "download")
    (tree / "notes.json").write_text('{"todo": "look at these later"}')
    out = tmp_path / "out"
    result = quickstart(tree, out, QuickstartConfig(quick=True, progress=False))
    manifest = result.manifest
    assert manifest["profile"]["labelled_pois"] == len(fx.PLACES) + 1
    assert manifest["steps"]["prepare"]["pois"] == len(fx.PLACES)  # the two-post place is too small to train on
    # ... but it is known by name: the served model answers it when a post names it
    assert manifest["steps"]["names"] == {"pois": 1, "file": "places.csv"}
    from postloc.inference.predictor import load

    predictor = load(result.run_dir, names=result.name_only_places)
    answer = predictor.answers([{"text": "Meeting under the clock at Grand Central Terminal"}])[0]
    assert answer["poi"] == str(fx.SMALL_PLACE["pk"]) and answer["predictions"][0]["source"] == "names"
    assert manifest["steps"]["images"]["computed"] in (True, False)  # photos: computed when the extra is there
    assert "stack" in result.scores and (out / "report.html").exists()
    page = (out / "report.html").read_text()
    assert "Brooklyn Bridge" in page  # POIs are shown by their Instagram location names


def test_cli_prints_scores_and_the_serve_command(tmp_path, capsys):
    from postloc.cli import main

    source = _write_jsonl(_posts(), tmp_path / "posts.jsonl")
    out = tmp_path / "out"
    code = main(["quickstart", str(source), "--out", str(out), "--quick", "--quiet", "--no-serve", "--no-images"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "stack: accuracy" in printed and "majority: accuracy" in printed
    assert f"serve it with: postloc serve {out / 'run'} --host 127.0.0.1 --port 8000" in printed
    assert main(["quickstart", str(source), "--out", str(out), "--folds", "1", "--no-serve"]) == 2


def test_without_folds_the_report_scores_the_test_split(tmp_path):
    """Large data (or --folds 0): one training per model, scored on the prepared test users, still paired."""
    source = _write_jsonl(_posts(), tmp_path / "posts.jsonl")
    out = tmp_path / "out"
    result = quickstart(source, out, _config(folds=0, model="majority"))  # paired to tfidf-logreg
    choices = {c.name: c for c in result.choices}
    assert choices["folds"].value == 0 and choices["folds"].why == "given on the command line"
    results = json.loads((out / "cv" / "results.json").read_text())
    assert results["config"]["folds"] == 0 and results["paired"]["cv"]["rows"]  # bootstrap over test users
    page = (out / "report.html").read_text()
    assert "the user-disjoint test split" in page and "Map of the POIs" in page


def test_many_posts_with_captions_get_three_folds():
    from postloc.quickstart.choices import MAX_FIVE_FOLD_HEAVY

    posts = _posts(n_per_poi=MAX_FIVE_FOLD_HEAVY // 3 + 10, users=300)
    choice = next(c for c in choose(profile_posts(posts)) if c.name == "folds")
    assert choice.value == 3 and "captions or photos" in choice.why
    for post in posts:
        post.text = ""
    assert next(c for c in choose(profile_posts(posts)) if c.name == "folds").value == 5  # tags only: cheap


def test_a_pois_table_names_small_pois_and_one_without_names_is_only_centres(tmp_path):
    source = _write_jsonl(_posts(), tmp_path / "posts.jsonl")
    named = tmp_path / "named.csv"
    named.write_text("poi,lat,lon,name\nharbor,51.05,13.73,Old Harbour\nzoo,51.03,13.76,City Zoo\n")
    result = quickstart(source, tmp_path / "a", _config(pois_csv=str(named)))
    assert result.manifest["steps"]["names"] == {"pois": 1, "file": "places.csv"}  # the zoo: no posts at all
    assert "City Zoo" in (tmp_path / "a" / "places.csv").read_text()
    centres = tmp_path / "centres.csv"
    centres.write_text("poi,lat,lon\nharbor,51.05,13.73\n")
    result = quickstart(source, tmp_path / "b", _config(pois_csv=str(centres)))
    assert result.manifest["steps"]["names"] == {"pois": 0, "file": None}
