"""The verdict: does the model beat always answering the majority POI (and the reference) by more than noise?

Two small realistic fixtures: labels independent of the posts with one dominant POI (a model can
only learn the majority answer: "cannot be told apart"), and a strong planted signal (it wins).
The verdict reaches results.json, quickstart.json, report.md, report.html, the console and the page.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.experiments.verdict import _clause, wins
from postloc.io.escape import md_text

CV = ["--model", "tfidf-logreg", "--reference", "majority", "--folds", "3", "--quick", "--quiet"]
# captions and tags from a handful of words that every POI shares (like "#love #sunset" under any city)
NO_SIGNAL = dict(text_signal=0.0, confusion=0.0, tag_signal=0.0, common_words=6, generic_hashtags=3)
SIGNAL = dict(text_signal=0.6, tag_signal=0.9, typo_rate=0.0, missing_text=0.0, missing_hashtags=0.0)


def _prepared(root: Path, signal: bool) -> Path:
    """A prepared folder of 240 posts by 60 users at 3 POIs; without signal the POI is drawn
    independently of everything else, 85 % of the posts at the first one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = write_synthetic_prepared(
        root,
        SyntheticFeaturesConfig(n_posts=240, n_pois=3, n_users=60, image_dim=8, **(SIGNAL if signal else NO_SIGNAL)),
    )
    if not signal:
        table = pq.read_table(folder / "posts.parquet")
        posts = table.to_pandas()
        pois = [line.split(",")[0] for line in (folder / "pois.csv").read_text().splitlines()[1:]]
        posts["poi"] = np.random.default_rng(1).choice(pois, size=len(posts), p=[0.85, 0.1, 0.05])
        pq.write_table(pa.Table.from_pandas(posts, schema=table.schema, preserve_index=False), folder / "posts.parquet")
    return folder


@pytest.fixture(scope="module")
def no_signal(tmp_path_factory) -> tuple[Path, dict, str]:
    root = tmp_path_factory.mktemp("verdict")
    out = root / "cv"
    assert main(["crossval", str(_prepared(root / "prepared", signal=False)), *CV, "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text()), ""


def test_a_model_that_learnt_only_the_majority_cannot_be_told_apart(no_signal):
    out, results, _ = no_signal
    verdict = results["verdict"]
    assert verdict["model"] == "tfidf-logreg" and verdict["beats_majority"] is False
    lo, hi = verdict["d_majority_interval"]
    assert lo <= 0 <= hi  # the interval holds 0
    assert verdict["majority"]["accuracy"] > 0.75  # the majority answer is the dominant POI, from training posts
    assert verdict["sentence"].startswith(
        f"tfidf-logreg cannot be told apart from always answering '{verdict['majority']['name']}'"
    )
    assert "do not rely on it" in verdict["sentence"]
    assert verdict["reference"] == "majority" and verdict["beats_reference"] is False
    report = (out / "report.md").read_text()
    assert f"**Verdict**: {md_text(verdict['sentence'])}" in report


def test_the_console_summary_prints_the_verdict(tmp_path, capsys):
    prepared = _prepared(tmp_path / "prepared", signal=True)
    assert main(["crossval", str(prepared), *CV, "--out", str(tmp_path / "cv")]) == 0
    printed = capsys.readouterr().out
    verdict = json.loads((tmp_path / "cv" / "results.json").read_text())["verdict"]
    assert f"verdict: {verdict['sentence']}" in printed
    assert "± is the standard deviation over the folds" in printed
    # a strong signal: better than the majority answer, the whole interval above 0
    assert verdict["beats_majority"] is True and verdict["d_majority_interval"][0] > 0
    assert verdict["sentence"].startswith("tfidf-logreg places posts better than always answering '")
    assert "(95 % interval " in verdict["sentence"] and verdict["beats_reference"] is True
    # the majority answer computed here and the majority model (trained on each fold's training posts) agree
    assert verdict["d_majority"] == pytest.approx(verdict["d_reference"], abs=1e-9)
    report = (tmp_path / "cv" / "report.md").read_text()
    assert "Acc@5 is 1 by construction with 5 POIs or fewer (this data has 3)" in report
    assert "± is the standard deviation over the folds" in report


def test_the_three_outcomes_read_as_sentences():
    assert _clause(0.2, [0.1, 0.3], "always answering 'A'") == (
        "places posts better than always answering 'A' by 20.0 points (95 % interval 10.0 to 30.0)"
    )
    assert _clause(-0.2, [-0.3, -0.1], "always answering 'A'").startswith(
        "places posts worse than always answering 'A' by 20.0 points"
    )
    assert _clause(0.01, [-0.02, 0.04], "tfidf-logreg", trivial=False) == (
        "cannot be told apart from tfidf-logreg (+1.0 points, 95 % interval -2.0 to 4.0)"
    )
    assert wins({"beats_majority": True, "beats_reference": None})  # no reference: the majority decides
    assert not wins({"beats_majority": True, "beats_reference": False})
    assert not wins({"beats_majority": False, "beats_reference": True})


# -- quickstart: quickstart.json, report.html, the console and the served page ---------------------


def _posts_without_signal(path: Path) -> Path:
    """Captions that say nothing of the place; 'harbour' is where most posts are."""
    rng = np.random.default_rng(3)
    places = {"harbour": (51.05, 13.73), "castle": (51.06, 13.75), "garden": (51.04, 13.77)}
    with path.open("w") as handle:
        for i in range(150):
            poi = rng.choice(list(places), p=[0.8, 0.1, 0.1])
            lat, lon = places[poi]
            caption = f"A sunny day out with friends, we loved it so much (day {i % 17})"
            record = {"id": f"p{i}", "text": caption, "hashtags": ["city", "fun"], "poi": str(poi), "lat": lat,
                      "lon": lon, "user": f"u{i % 40}"}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def quick_loser(tmp_path_factory) -> tuple[Path, str]:
    import contextlib
    import io

    root = tmp_path_factory.mktemp("qs")
    source = _posts_without_signal(root / "posts.jsonl")
    args = ["quickstart", str(source), "--out", str(root / "out"), "--quick", "--quiet", "--no-serve", "--no-images"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, "--model", "tfidf-logreg"]) == 0
    return root / "out", printed.getvalue()


def test_quickstart_records_prints_and_reports_the_verdict(quick_loser):
    out, printed = quick_loser
    verdict = json.loads((out / "quickstart.json").read_text())["verdict"]
    assert verdict["beats_majority"] is False and verdict["majority"]["name"] == "harbour"
    assert verdict == json.loads((out / "cv" / "results.json").read_text())["verdict"]
    assert "cannot be told apart from always answering 'harbour'" in verdict["sentence"]
    assert f"verdict: {verdict['sentence']}" in printed
    page = (out / "report.html").read_text()
    assert "Verdict: " + verdict["sentence"].replace("'", "&#x27;") in page
    assert 'class="main"' not in page  # no green row for a model that does not win
    assert "± is the standard deviation over the folds" in page
    assert "acc@5 is 1 by construction with 5 POIs or fewer" in page


def test_the_report_highlights_only_a_winner():
    from postloc.quickstart.report import _scores_section

    stat = {"mean": 0.9, "std": 0.01, "values": [0.9, 0.9]}
    row = {"model": "stack", **{m: stat for m in ("accuracy", "acc@5", "mean_km", "median_km", "ece", "acc@cov50")}}
    winner = {"beats_majority": True, "beats_reference": True, "sentence": "stack places posts better than <b>."}
    html = "".join(_scores_section([row], None, "stack", "3 folds", winner, 12, 3))
    assert '<tr class="main">' in html and "&lt;b&gt;" in html and "acc@5 is 1" not in html
    loser = dict(winner, beats_reference=False)
    assert 'class="main"' not in "".join(_scores_section([row], None, "stack", "3 folds", loser, 12, 3))


def test_the_served_page_shows_the_verdict_of_a_quickstart_run(quick_loser):
    from fastapi.testclient import TestClient

    from postloc.serve.app import build_app

    out, _ = quick_loser
    verdict = json.loads((out / "quickstart.json").read_text())["verdict"]
    with TestClient(build_app(out / "run"), base_url="http://127.0.0.1") as client:
        about = client.get("/v1/about").json()
        page = client.get("/").text
        script = client.get("/static/app.js").text
    assert about["kind"] == "verdict" and verdict["sentence"] in about["text"]
    assert 'id="verdict"' in page
    start = script.index('fetch("/v1/about")')
    block = script[start : script.index("catch", start)]
    assert "textContent = a.text" in block and "innerHTML" not in script  # text, never markup


def test_another_run_shows_its_own_test_score(tmp_path):
    from postloc.serve.about import describe_run

    run = tmp_path / "run"
    run.mkdir()
    assert describe_run(run).kind == "none"
    (run / "eval-test.json").write_text(json.dumps({"accuracy": 0.8125, "posts": 48}))
    about = describe_run(run)
    assert about.kind == "test_score" and "accuracy 0.812 on 48 test posts" in about.text
    (tmp_path / "quickstart.json").write_text(json.dumps({"postloc_quickstart": 1, "verdict": {"sentence": "x <b>"}}))
    assert describe_run(run).text.endswith("x <b>")  # text for textContent; the page never parses it


PAGE_HARNESS = r"""
class El {
  constructor() { this.textContent = ""; this.hidden = true; this.style = {}; this.classList = { add() {} }; }
  set innerHTML(v) { throw new Error("markup written: " + v); }
  addEventListener() {}
}
const byId = {};
global.document = { getElementById: (id) => (byId[id] = byId[id] || new El()), createElement: () => new El() };
const chain = { addTo() { return chain; }, setView() { return chain; } };
global.L = { map: () => chain, layerGroup: () => chain, tileLayer: () => chain };
const answers = { "/v1/config": {}, "/v1/about": { kind: "verdict", text: process.argv[3] } };
global.fetch = async (url) => ({ ok: true, status: 200, json: async () => answers[url] });
require(process.argv[2]);
setTimeout(() => console.log(JSON.stringify({ text: byId.verdict.textContent, hidden: byId.verdict.hidden })), 50);
"""


@pytest.mark.browser
def test_the_page_writes_the_verdict_as_text(tmp_path):
    """app.js under node with a stand-in DOM: the line from /v1/about is shown, as text. Marked ``browser``
    like the page's other node test: it needs ``node`` (Debian's nodejs)."""
    import shutil
    import subprocess

    from postloc.serve.app import STATIC

    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "this test needs node (apt-get install nodejs)"
    harness = tmp_path / "harness.js"
    harness.write_text(PAGE_HARNESS)
    text = "stack cannot be told apart from always answering '<img src=x onerror=alert(1)>': do not rely on it."
    run = subprocess.run(
        [node, str(harness), str(STATIC / "app.js"), text], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(run.stdout) == {"text": text, "hidden": False}
