"""Issue 29 (output): data in Markdown reports, terminal messages and CSV files stays inert.

POI ids and names, file names and bad values come from input files anyone may write: in a report
they must not inject HTML or break a table, on a terminal they must not send escape sequences or
forge lines, in a spreadsheet they must not run formulas. Ordinary data must come out unchanged.
"""

from __future__ import annotations

import errno
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from postloc import load_prepared, metrics, prepare
from postloc.cli import main
from postloc.io.escape import csv_guard, csv_unguard, md_code, md_text, term, term_lines
from prepare_posts import SMALL, labelled_posts

EVIL_NAME = '<img src=x onerror="alert(1)">| forged | cell |\n\n# heading [link](javascript:alert(1)) *em* `code`'
EVIL_POI = "P|1\x1b[31m"


def render(text: str) -> str:
    """HTML as a CommonMark renderer with GFM tables and raw HTML allowed shows it."""
    return MarkdownIt("commonmark").enable("table").render(text)


# --- the helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize("plain", ["P1", "dresden", "Frauenkirche", "flickr_dresden_cc-by.csv.gz", "Zwinger (Dresden)"])
def test_plain_text_passes_unchanged(plain):
    assert md_text(plain) == plain and md_code(plain) == f"`{plain}`" and term(plain) == plain
    assert csv_guard(plain) == plain


def test_md_text_is_one_inert_cell():
    cell = md_text(EVIL_NAME)
    assert "\n" not in cell
    html = render(f"| a | b |\n|---|---|\n| {cell} | x |\n")
    assert "<img" not in html and "<a " not in html and "<em>" not in html and "<code>" not in html
    assert html.count("<td>") == 2 and "<h1>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;| forged | cell |" in html  # shown as text
    assert md_text("_x_ a_b") == "\\_x\\_ a_b"  # emphasis markers escaped, an inner underscore left alone


@pytest.mark.parametrize(
    "name", ["a`b", "``x``", "`", "x`", " a ", "a\nb", "$(rm -rf) `whoami`"], ids=lambda n: repr(n)
)
def test_md_code_holds_any_backticks(name):
    html = render(f"input: {md_code(name)}.\n")
    inner = html.split("<code>", 1)[1].split("</code>", 1)[0]
    assert html.count("<code>") == 1
    assert inner == name.replace("\n", " ").replace("&", "&amp;").replace('"', "&quot;")


def test_term_escapes_controls_and_bidi():
    assert term("ok\x1b[2J\x07\nread 5 posts, skipped none\u202e\x9b\x7f") == (
        "ok\\x1b[2J\\x07\\x0aread 5 posts, skipped none\\u202e\\x9b\\x7f"
    )
    assert term_lines("line one \x1b\nline two") == "line one \\x1b\nline two"


def test_csv_guard_round_trips():
    for text in ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=x", "''-x"]:
        guarded = csv_guard(text)
        assert guarded.startswith("'") and csv_unguard(guarded) == text
    for text in ["'s Hertogenbosch", "plain", "", "'"]:
        assert csv_guard(text) == text and csv_unguard(text) == text
    assert csv_guard(-3.5) == -3.5 and csv_guard(None) is None


# --- item 5: Markdown reports -------------------------------------------------------------------


def _eval_report(poi: str, name: str) -> dict:
    pois = pd.DataFrame({"poi": [poi, "b"], "lat": [0.0, 0.0], "lon": [0.0, 0.01], "name": [name, "Beta"]})
    posts = pd.DataFrame({"poi": [poi, "b"], "lat": [0.0, 0.0], "lon": [0.0, 0.01]})
    return metrics.evaluate(np.array([[0.9, 0.1], [0.2, 0.8]]), [poi, "b"], posts, pois)


def test_eval_markdown_escapes_poi_ids_and_names(tmp_path):
    report = _eval_report(EVIL_POI, EVIL_NAME)
    paths = metrics.write_report(report, tmp_path, "eval-test", "model on <b>data</b>, test split")
    text = paths["md"].read_text()
    html = render(text)
    assert "<img" not in html and "<b>" not in html and "\x1b" not in text
    rows = [line for line in text.splitlines() if line.startswith("| P\\|")]
    assert len(rows) == 1 and rows[0].startswith("| P\\|1\\x1b\\[31m | &lt;img src=x")
    table = html.split("<th>POI</th>", 1)[1]
    assert table.count("<tr>") == 2 and all(row.count("<td") == 8 for row in table.split("<tr>")[1:])


def test_eval_markdown_unchanged_for_ordinary_data(tmp_path):
    text = metrics.report_markdown(_eval_report("P1", "Frauenkirche"), "stack on dresden_min10, test split")
    assert text.startswith("# stack on dresden_min10, test split\n")
    assert "| P1 | Frauenkirche | 1 | 1 | 1.000 | 1.000 | 1.000 | 0.000 |" in text


def _results(prepared: str, input_path: str, row: str = "majority") -> dict:
    stat = {"mean": 0.5, "std": 0.0, "values": [0.5]}
    return {
        "prepared": prepared,
        "input": {"path": input_path},
        "config": {"seeds": [0], "epochs": 2, "early_stopping": 1, "threads": 1},
        "rows": [{"study": "cv", "row": row, "column": "", "na": None, "accuracy": stat, "test_posts": 10}],
        "notes": {"all": [f"raw input: {input_path}"]},
    }


def test_cv_report_code_spans_and_cells_hold_any_name():
    from postloc.experiments.report import markdown

    text = markdown(_results("/data/x`y", "in`put` <img src=x onerror=1>.csv", row="a | b <i>x</i>"))
    html = render(text)
    assert "<code>/data/x`y</code>" in html and "<code>in`put` &lt;img src=x onerror=1&gt;.csv</code>" in html
    assert "<img" not in html and "<i>" not in html
    assert "<td>a | b &lt;i&gt;x&lt;/i&gt;</td>" in html


def test_cv_report_unchanged_for_ordinary_data():
    from postloc.experiments.report import markdown

    text = markdown(_results("prepared/dresden", "flickr_dresden_cc-by.csv.gz"))
    assert text.startswith("# Experiments on dresden\n")
    assert "Prepared data: `prepared/dresden` (input: `flickr_dresden_cc-by.csv.gz`)." in text
    assert "- raw input: flickr_dresden_cc-by.csv.gz\n" in text and "| majority | 0.500 |" in text


def test_open_set_and_diagnose_markdown_escape_names():
    from postloc.experiments.diagnose import markdown as diagnose_markdown
    from postloc.training.open_set import markdown as open_set_markdown

    report = {
        "model": "majority",
        "seed": 0,
        "left_out": [{"poi": EVIL_POI, "name": EVIL_NAME, "posts": 3, "test_posts": 1}],
        "known_pois": 2,
        "train_posts": 1,
        "val_posts": 1,
        "test_known_posts": 1,
        "test_novel_posts": 1,
        "temperature": 1.0,
        "rejection": [],
    }
    text = open_set_markdown(report)
    plain = open_set_markdown(
        {**report, "left_out": [{"poi": "P1", "name": "Frauenkirche", "posts": 3, "test_posts": 1}]}
    )
    assert "<img" not in render(text) and "\x1b" not in text and text.count("\n") == plain.count("\n")
    assert "P1 'Frauenkirche' (3 posts, 1 test)" in plain
    models = {"m|x": dict.fromkeys(["accuracy", "acc_all_generic_posts", "acc_other_posts"], 0.5)}
    models["m|x"].update(
        acc_dominated_pois=None, acc_other_pois=None, its_share_of_predictions=0.5, its_share_of_truth=0.5
    )
    models["m|x"]["distinct_pois_predicted"] = 2
    diag = {"generic_tags": ["<script>", "ok"], "share_all_generic": 0.1, "share_dominated_poi": 0.1}
    text = diagnose_markdown({**diag, "dominated_pois": [], "models": models})
    assert "<script>" not in render(text) and "| m\\|x |" in text


# --- item 12: terminal output -------------------------------------------------------------------


def test_skip_report_on_stderr_holds_no_controls(jsonl_file, tmp_path, capsys):
    records = labelled_posts() + [
        {"id": "evil\x1b[31m", "lat": "x\x1b]0;title\x07\nread 29 posts, skipped none", "lon": 1},
        {"id": "e2", "user": "u", "lat": 40.7, "lon": -73.99, "text": "hi", "created": "bad\u202edate\nforged"},
    ]
    argv = ["prepare", str(jsonl_file(records)), "--out", str(tmp_path / "out"), "--skip-bad", "--quiet"]
    argv += ["--min-hashtag-count", "3", "--min-poi-posts", "10", "--min-poi-users", "2", "--split", "0.5,0.25,0.25"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert not any(line.startswith("read 29 posts") for line in err.splitlines())
    assert '"x\\x1b]0;title\\x07\\x0aread 29 posts, skipped none"' in err


def test_error_line_holds_no_controls(tmp_path, capsys):
    missing = tmp_path / "no\x1b[2Jsuch\nfile.jsonl"
    assert main(["prepare", str(missing), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "no\\x1b[2Jsuch\\x0afile.jsonl" in err


# --- item 13: CSV files for spreadsheets --------------------------------------------------------


def test_eval_per_poi_csv_guards_text_cells(tmp_path):
    report = _eval_report('=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0")
    report["per_poi"][0]["mean_km"] = -3.5  # a number stays a number
    path = metrics.write_report(report, tmp_path, "eval-test", "t")["csv"]
    frame = pd.read_csv(path, dtype={"poi": str, "name": str})
    assert frame.loc[0, "poi"] == '\'=HYPERLINK("http://evil","x")' and frame.loc[0, "name"] == "'+cmd|' /C calc'!A0"
    assert frame.loc[0, "mean_km"] == -3.5 and frame.loc[1, "poi"] == "b"


@pytest.mark.parametrize("engine", ["memory", "duckdb"])
def test_prepared_pois_csv_guards_and_round_trips(jsonl_file, tmp_path, engine):
    records = [
        dict(r, poi={"bridge": "=1+1", "square": "-square"}.get(r.get("poi"), r.get("poi"))) for r in labelled_posts()
    ]
    out = tmp_path / "out"
    prepare(jsonl_file(records), out, replace(SMALL, engine=engine))
    raw = (out / "pois.csv").read_text()
    assert "\n'=1+1," in raw and "\n'-square," in raw
    data = load_prepared(out)
    assert sorted(data.pois["poi"]) == ["-square", "=1+1"]
    assert set(data.posts["poi"]) == {"-square", "=1+1"}


def test_places_csv_round_trip_through_the_gazetteer(tmp_path):
    from postloc.data.gazetteer import read_gazetteer
    from postloc.quickstart.run import _read_places, write_places

    rows = [{"poi": "=p", "lat": 1.0, "lon": 2.0, "name": "@Bar", "posts": 3}]
    write_places(tmp_path / "places.csv", rows)
    assert "'=p" in (tmp_path / "places.csv").read_text()
    assert _read_places(tmp_path / "places.csv")[0]["poi"] == "=p"
    place = read_gazetteer(tmp_path / "places.csv").places[0]
    assert (place.poi, place.name) == ("=p", "@Bar")


# --- item 10 (part): any OSError with a path is one line --------------------------------------


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENAMETOOLONG, errno.ENOENT])
def test_os_error_with_a_path_is_one_line(monkeypatch, tmp_path, capsys, code):
    import postloc.data.prepare as api

    def fail(*args, **kwargs):
        raise OSError(code, "as the OS says", str(tmp_path / "out\x1b" / "posts.jsonl"))

    monkeypatch.setattr(api, "prepare", fail)
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    assert main(["prepare", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("postloc prepare: error: ") and "out\\x1b/posts.jsonl" in err and "as the OS says" in err


def test_read_only_file_system_without_a_path_names_the_output(monkeypatch, tmp_path, capsys):
    import postloc.data.prepare as api

    def fail(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(api, "prepare", fail)
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    assert main(["prepare", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"postloc prepare: error: {tmp_path / 'out'}: Read-only file system\n"


def test_os_error_without_a_path_still_raises(monkeypatch, tmp_path):
    import postloc.data.prepare as api

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(api, "prepare", fail)
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    with pytest.raises(OSError):
        main(["prepare", str(src), "--out", str(tmp_path / "out")])
