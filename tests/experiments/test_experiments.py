"""``postloc experiments --quick`` end to end on a tiny prepared set, and resuming skips finished cells."""

from __future__ import annotations

import json

import pytest

from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.experiments import run_experiments
from postloc.experiments.config import quick_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_synthetic_prepared(
        tmp_path_factory.mktemp("data") / "tiny",
        SyntheticFeaturesConfig(n_posts=160, n_pois=3, n_users=40, image_dim=8),
    )


def test_quick_run_end_to_end_and_resume(tiny, tmp_path, capsys):
    out = tmp_path / "report"
    config = quick_config(epochs=1, studies=("table2", "table3", "fig4"), thresholds=(3,), progress=True)
    first = run_experiments(tiny, out, config)
    assert first["cells_run_now"] > 0
    assert "to run" in capsys.readouterr().err  # the progress display
    report = (out / "report.md").read_text()
    assert "SYNTHETIC DATA" in report and "Table II" in report and "Fig. 4" in report
    assert (out / "table2.png").exists() and (out / "fig4.png").exists()
    rows = {(r["study"], r["row"], r["column"]): r for r in first["rows"]}
    assert rows[("table2", "MRLF (paper)", "")]["accuracy"]["mean"] is not None
    assert any("substitute: synthetic" in r["row"] for r in first["rows"] if r["model"] == "resnet50")
    assert all(r["na"] for r in first["rows"] if r["study"] == "table3")  # no image files: n/a with a reason
    assert {r["column"] for r in first["rows"] if r["study"] == "fig4"} == {"1", "3"}
    assert len(list((out / "cells").glob("*.json"))) == first["cells_run_now"]

    # re-running (through the CLI) finds every cell done and trains nothing
    assert (
        main(
            [
                "experiments",
                str(tiny),
                "--out",
                str(out),
                "--quick",
                "--studies",
                "table2,table3,fig4",
                "--thresholds",
                "3",
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    again = json.loads((out / "results.json").read_text())
    assert again["cells_run_now"] == 0
    assert again["rows"] == json.loads(json.dumps(first["rows"]))


def test_missing_modality_rows_are_na():
    from postloc.experiments.config import Method
    from postloc.experiments.methods import missing_needs

    assert missing_needs(Method("x", "knn-image", needs=("image",)), {"hashtags"}) == ["image"]
    assert missing_needs(Method("x", "deepgeo", needs=("text|hashtags",)), {"hashtags"}) == []


def test_table2_needs_and_quick_params_are_the_model_classes_facts():
    from postloc.experiments.methods import quick_params, table2_methods
    from postloc.models import get_model

    methods = {m.model: m for m in table2_methods()}
    assert methods["tagvisor"].needs == ("hashtags",) and methods["knn-image"].needs == ("image",)
    assert methods["majority"].needs == () and methods["mrlf"].needs == ("text|hashtags|image",)
    for method in methods.values():
        assert method.needs == tuple(get_model(method.model).requires)
    assert quick_params("mrlf-plus") == quick_params("mrlf") and quick_params("majority") == {}
    assert quick_params("loctwi") == {"buckets": 1009, "dim": 8}


def _row(study: str, row: str, column: str = "", accuracy: float | None = None, na: str | None = None) -> dict:
    stat = {
        "mean": accuracy,
        "std": 0.0 if accuracy is not None else None,
        "values": [accuracy] if accuracy is not None else [],
    }
    metrics = {
        k: stat
        for k in ("accuracy", "acc@5", "mean_km", "median_km", "acc@1km", "macro_f1", "train_seconds", "epochs_run")
    }
    return {
        "study": study,
        "row": row,
        "column": column,
        "model": "m",
        "variant": "base",
        "na": na,
        "test_posts": None if na else 10,
        **({} if na else metrics),
    }


def test_report_links_only_the_plots_it_wrote(tmp_path):
    """Table III all n/a and a Fig. 4 without points: no table3.png / fig4.png, and no link to one."""
    import re

    from postloc.experiments.report import write_report

    (tmp_path / "table3.png").write_bytes(b"a plot of an earlier run")
    rows = [
        _row("table2", "majority", accuracy=0.4),
        _row("table2", "knn-image", na="needs image"),
        _row("fig2", "MRLF text", accuracy=0.5),
        _row("table3", "MRLF image only", "keep", na="no image files"),
        _row("table3", "MRLF image only", "drop", na="no image files"),
        _row("fig4", "mrlf", "1", na="the data has no hashtags"),
    ]
    results = {
        "prepared": str(tmp_path / "prepared"),
        "synthetic": True,
        "label": None,
        "rows": rows,
        "notes": {},
        "config": {"seeds": [0], "epochs": 2, "early_stopping": 0, "threads": 1, "quick": True},
    }
    assert write_report(results, tmp_path) == ["table2", "fig2"]
    report = (tmp_path / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links == ["table2.png", "fig2.png"]
    assert all((tmp_path / link).is_file() for link in links)
    assert not (tmp_path / "table3.png").exists() and not (tmp_path / "fig4.png").exists()
    assert "## Table III" in report and "## Fig. 4" in report  # the n/a tables stay, with their reasons


def test_captions_follow_the_code(tiny, tmp_path):
    """A caption naming a setting shows the value the model really uses; capped epochs are said."""
    from dataclasses import replace

    from postloc.experiments.methods import table2_methods
    from postloc.experiments.runner import build_plan, caption
    from postloc.models.baselines.knn_image import KnnImageConfig

    knn = next(m for m in table2_methods() if m.model == "knn-image")
    assert caption(knn, {}) == f"knn-image (cosine, k={KnnImageConfig().k})"
    assert caption(knn, {"k": 3}) == "knn-image (cosine, k=3)"
    assert all("{" not in caption(m, {}) for m in table2_methods())

    deepgeo = next(m for m in table2_methods() if m.model == "deepgeo")
    config = replace(quick_config(studies=("table2",)), epochs=deepgeo.max_epochs + 5)
    plan = build_plan(tiny.resolve(), tmp_path, config)
    assert any(r["row"] == caption(knn, {}) for r in plan.rows)
    capped = [c for c in plan.cells if c.model == "deepgeo"]
    assert capped and all(c.trainer["epochs"] == deepgeo.max_epochs for c in capped)
    assert f"{deepgeo.label}: at most {deepgeo.max_epochs} epochs" in " ".join(plan.notes["table2"])


# 13 methods x 3 folds: 68 s here under load; test_crossval_one_model_against_a_reference is the fast guard
@pytest.mark.slow
def test_quick_folds_report_per_fold_values_and_paired_differences(tiny, tmp_path):
    """--folds 3: every post scored once, by user-disjoint folds; per-fold values and the paired section."""
    import pandas as pd

    from postloc.data.folds import read_folds, user_keys
    from postloc.data.prepared import load_prepared

    out = tmp_path / "cv"
    args = ["experiments", str(tiny), "--out", str(out), "--quick", "--folds", "3", "--studies", "table2", "--quiet"]
    args += ["--epochs", "1"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()

    # the stored folds: every user of the data in one of 3 folds, each fold's test posts are its users'
    known, config = read_folds(out / "folds.parquet")
    posts = load_prepared(tiny).posts
    users = user_keys(posts)
    assert config.k == 3 and set(known) == set(users) and set(known.values()) == {0, 1, 2}
    tested = []
    for k in range(3):
        fold = load_prepared(out / "data" / "folds" / "base" / f"fold-{k}").posts
        test_users = set(user_keys(fold[fold["split"] == "test"]))
        assert test_users == {u for u, f in known.items() if f == k}
        assert not test_users & set(user_keys(fold[fold["split"] != "test"]))  # user-disjoint
        assert (fold["split"] == "val").any() and (fold["split"] == "train").any()
        tested += fold.loc[fold["split"] == "test", "id"].tolist()
    assert sorted(tested) == sorted(posts["id"])  # every post tested exactly once

    rows = {r["row"]: r for r in results["rows"] if r["study"] == "table2"}
    logreg = rows["tfidf-logreg (text+hashtags)"]
    assert logreg["folds"] == [0, 1, 2] and logreg["test_posts"] == len(posts)
    assert sorted(int(f) for f in logreg["accuracy"]["per_fold"]) == [0, 1, 2]
    assert logreg["ece"]["mean"] is not None and logreg["acc@cov50"]["mean"] is not None
    assert "| ECE | Acc@50%cov |" in report and "3 user-disjoint folds" in report
    assert "Accuracy per fold:" in report and "| fold 0 | fold 1 | fold 2 |" in report

    paired = results["paired"]["table2"]
    paper = ("tfidf-logreg", "tagvisor", "loctwi", "deepgeo", "mrlf-plus")
    baselines = [r for r in rows.values() if r["model"] in paper]
    best = max(baselines, key=lambda r: r["accuracy"]["mean"])
    assert paired["reference"] == best["row"]
    assert f"**Paired differences to the reference: {best['row']}**" in report
    mrlf = next(r for r in paired["rows"] if r["model"] == "mrlf")
    assert mrlf["pooled_posts"] == len(posts) and mrlf["d_acc_folds"] == 3
    lo, hi = mrlf["d_acc_t"]
    assert lo <= mrlf["d_acc"] <= hi
    lo, hi = mrlf["d_acc_boot"]
    assert lo <= mrlf["d_acc_pooled"] <= hi
    per_fold = rows["MRLF (paper)"]["accuracy"]["per_fold"]
    ref_fold = best["accuracy"]["per_fold"]
    assert abs(mrlf["d_acc"] - sum(per_fold[f] - ref_fold[f] for f in per_fold) / 3) < 1e-9
    outcome = pd.read_parquet(next((out / "predictions").glob("*.parquet")))
    assert list(outcome.columns) == ["id", "correct", "p_true", "km", "predicted", "confidence"]
    truth = posts.set_index(posts["id"].astype(str))["poi"].astype(str).reindex(outcome["id"]).to_numpy()
    assert ((outcome["predicted"].to_numpy() == truth) == outcome["correct"].to_numpy()).all()
    assert outcome["confidence"].between(outcome["p_true"] - 1e-6, 1.0).all()  # the top probability

    # resuming reuses the folds and every cell; other fold settings are refused, not mixed in
    assert main(args) == 0
    assert json.loads((out / "results.json").read_text())["cells_run_now"] == 0
    assert main([*args[:6], "4", *args[7:]]) == 2


def test_crossval_one_model_against_a_reference(tiny, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["crossval", str(tiny), "--model", "tfidf-logreg", "--reference", "majority", "--folds", "3"]
    assert main([*args, "--out", str(out), "--quick", "--quiet"]) == 0
    assert "tfidf-logreg over 3 folds: acc" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    rows = [r for r in results["rows"] if r["study"] == "cv"]
    assert [r["model"] for r in rows] == ["tfidf-logreg", "majority"]
    assert all(len(r["accuracy"]["per_fold"]) == 3 for r in rows)
    paired = results["paired"]["cv"]
    assert paired["reference_model"] == "majority"
    assert [r["model"] for r in paired["rows"]] == ["tfidf-logreg"]
    assert "**Paired differences to the reference: majority**" in (out / "report.md").read_text()
    assert (out / "folds.parquet").exists()
    assert main(["crossval", str(tiny), "--model", "no-such-model", "--out", str(tmp_path / "x")]) == 2
    assert main([*args[:-1], "1", "--out", str(tmp_path / "y")]) == 2


class _LastFirst:
    """An executor (``stack``'s ``Executor`` shape) that runs the calls last first: cells finishing in any order."""

    def __init__(self) -> None:
        self.calls = 0

    def map(self, fn, shared, calls, done):
        results = {}
        for i in reversed(range(len(calls))):
            results[i] = fn(*shared, *calls[i])
            self.calls += 1
            done(i)
        return [results[i] for i in range(len(calls))]


def test_cells_through_an_executor_give_the_local_results(tiny, tmp_path, capsys):
    """The path of ``--engine ray`` without Ray: every cell a call of ``run_stored_cell``, finished in any order."""
    from postloc.errors import PostlocError
    from postloc.experiments import folder as layout
    from postloc.experiments.cells import Cell
    from postloc.experiments.runner import run_stored_cell

    config = quick_config(
        studies=("cv",), folds=3, cv_model="tfidf-logreg", cv_reference="majority", threads=1, progress=True
    )
    local = run_experiments(tiny, tmp_path / "local", config)
    executor = _LastFirst()
    elsewhere = run_experiments(tiny, tmp_path / "elsewhere", config, executor=executor)
    assert executor.calls == 6 and "[1/6 done, 5 left] cv: majority fold 2 seed 0: acc" in capsys.readouterr().err
    for results in (local, elsewhere):
        results.pop("seconds_this_run")
        for row in results["rows"]:
            row.pop("train_seconds")
    assert elsewhere == local and local["paired"]["cv"]["rows"]
    keys = [p.stem for p in layout.cells_dir(tmp_path / "local").glob("*.json")]
    for key in keys:
        paths = [layout.outcomes_path(tmp_path / out, key) for out in ("local", "elsewhere")]
        assert paths[0].read_bytes() == paths[1].read_bytes()
    resumed = run_experiments(tiny, tmp_path / "elsewhere", config, executor=_LastFirst())
    assert resumed["cells_run_now"] == 0  # the cells the calls stored count as done
    # a worker that does not see the head's folder (another machine, no shared filesystem) refuses
    record = json.loads((layout.cells_dir(tmp_path / "local") / f"{keys[0]}.json").read_text())
    marker = layout.marker_text(tmp_path / "local")
    with pytest.raises(PostlocError, match="cannot see the experiment folder"):
        run_stored_cell(str(tmp_path / "nowhere"), config, marker, Cell(**record["cell"]), str(tiny))


def test_a_variant_keeps_every_known_user_in_their_fold(tiny, tmp_path):
    """Fig. 4's re-prepared variants: the stored user -> fold map decides, new users get a fold too."""
    import shutil

    import pandas as pd

    from postloc.data.folds import FoldConfig, user_keys
    from postloc.data.prepared import load_prepared
    from postloc.experiments import cv

    config = FoldConfig(k=3, seed=1)
    known = cv.ensure_folds(tiny, tmp_path, config)
    assert cv.ensure_folds(tiny, tmp_path, config) == known  # read back, not re-made
    with pytest.raises(Exception, match="k=3"):
        cv.ensure_folds(tiny, tmp_path, FoldConfig(k=4, seed=1))
    # a variant: half of the posts, and posts of users the prepared folder never had
    variant = tmp_path / "variant"
    shutil.copytree(tiny, variant)
    posts = load_prepared(tiny).posts
    extra = posts.head(12).assign(user=[f"newcomer{i % 4}" for i in range(12)], id=[f"new{i}" for i in range(12)])
    pd.concat([posts.iloc[::2], extra]).to_parquet(variant / "posts.parquet", index=False)
    folders = cv.FoldFolders(tmp_path, known, config)
    seen = set()
    for k in range(3):
        fold = load_prepared(folders.folder("tags-min9", variant, k)).posts
        test = fold[fold["split"] == "test"]
        users = user_keys(test)
        old = users.isin(known.keys())
        assert (users[old].map(known) == k).all()
        assert not set(users) & set(user_keys(fold[fold["split"] != "test"]))
        seen |= set(users[~old])
    assert seen == {f"newcomer{i}" for i in range(4)}  # every new user tested in exactly one fold
