"""Calibration: temperature scaling, the run's calibration.json, evaluate's plots, abstention, open set."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import OutputPathError, PostlocError
from postloc.inference.predictor import check_min_confidence, load
from postloc.models.calibration import (
    CALIBRATION_FILE,
    apply_temperature,
    fit_temperature,
    negative_log_likelihood,
    read_calibration,
)
from postloc.training import RunConfig, evaluate, train
from postloc.training.api import fit_calibration
from postloc.training.open_set import OpenSetConfig, choose_left_out, open_set


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sampled(n: int = 3000, classes: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities and labels drawn from them: a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    truth = _softmax(rng.normal(scale=2.0, size=(n, classes)))
    labels = (truth.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return truth, labels


@pytest.mark.parametrize("true_t", [0.5, 3.0])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    truth, y = _sampled()
    # a model that is over- (T=3) or under-confident (T=0.5): its log-probabilities scaled by 1/T
    reported = apply_temperature(truth, 1 / true_t)
    fitted = fit_temperature(reported, y)
    assert fitted == pytest.approx(true_t, rel=0.1)
    assert negative_log_likelihood(reported, y, fitted) < negative_log_likelihood(reported, y)
    # the fitted T undoes the distortion: back to (nearly) the true probabilities
    assert np.abs(apply_temperature(reported, fitted) - truth).max() < 0.1


def test_fit_temperature_ignores_unknown_truth_and_needs_labels():
    truth, y = _sampled(n=2000)
    reported = apply_temperature(truth, 1 / 2.0)
    noise = _softmax(np.random.default_rng(1).normal(scale=8, size=(500, truth.shape[1])))
    with_unknown = fit_temperature(np.vstack([reported, noise]), np.concatenate([y, np.full(500, -1)]))
    assert with_unknown == pytest.approx(fit_temperature(reported, y), rel=1e-6)
    assert fit_temperature(reported, np.full(len(y), -1)) == 1.0
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_apply_temperature_keeps_the_ranking_and_handles_zeros():
    proba = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    for t in (0.3, 1.0, 4.0):
        scaled = apply_temperature(proba, t)
        assert np.isfinite(scaled).all() and np.allclose(scaled.sum(axis=1), 1.0)
        assert (scaled.argmax(axis=1) == proba.argmax(axis=1)).all()
    assert apply_temperature(proba, 4.0)[0, 0] < 0.7 < apply_temperature(proba, 0.3)[0, 0]
    assert np.allclose(apply_temperature(proba, 1.0), proba, atol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(proba, 0.0)


def test_read_calibration_defaults_and_rejects_bad_files(tmp_path):
    assert read_calibration(tmp_path)["temperature"] == 1.0  # a run from before calibration
    (tmp_path / CALIBRATION_FILE).write_text('{"temperature": -2}')
    with pytest.raises(ValueError, match="positive"):
        read_calibration(tmp_path)
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        read_calibration(tmp_path)


# --- a run on a tiny synthetic prepared folder (tfidf-logreg: no torch training, about a second) -------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    config = SyntheticFeaturesConfig(
        n_pois=6, n_posts=420, n_users=50, text_signal=0.3, tag_signal=0.5, caption_words=(3, 8), image_dim=4, seed=3
    )
    return write_synthetic_prepared(tmp_path_factory.mktemp("calib") / "prepared", config)


@pytest.fixture(scope="module")
def run(prepared):
    out = prepared.parent / "run"
    train(prepared, out, RunConfig(model="tfidf-logreg"))
    return out


def test_a_run_has_its_calibration(run):
    data = json.loads((run / CALIBRATION_FILE).read_text())
    assert data["val_posts"] > 0 and data["val_posts_used"] == data["val_posts"]
    assert math.isfinite(data["temperature"]) and data["temperature"] > 0
    assert data["val_ece_before"] >= 0 and data["val_ece_after"] >= 0
    assert data["val_nll_after"] <= data["val_nll_before"] + 1e-9  # NLL is what the fit minimises
    assert load(run).temperature == pytest.approx(data["temperature"])
    assert json.loads((run / "run.json").read_text())["temperature"] == pytest.approx(data["temperature"])


def test_no_val_posts_gives_t_1_with_the_reason(run, prepared):
    from postloc.models import load_model

    model = load_model(run / "best")
    empty = pd.read_parquet(prepared / "posts.parquet").head(0)
    record = fit_calibration(model, empty)
    assert record["temperature"] == 1.0 and "no val posts" in record["reason"] and record["val_posts"] == 0


def test_evaluate_writes_both_plots_and_the_coverage_table(run):
    report = evaluate(run, "test")
    for suffix in ("reliability.png", "coverage.png"):
        path = run / f"eval-test-{suffix}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"ece", "ece_uncalibrated", "acc@cov50", "temperature"} <= set(report)
    saved = json.loads((run / "eval-test.json").read_text())
    assert [row["coverage"] for row in saved["coverage"]] == [1.0, 0.8, 0.5, 0.2]
    assert saved["coverage"][2]["accuracy"] == pytest.approx(report["acc@cov50"])
    assert saved["coverage"][0]["posts"] == report["posts"]
    assert set(saved["calibration_curves"]["reliability"]) == {"uncalibrated", "calibrated"}
    markdown = (run / "eval-test.md").read_text()
    assert "| coverage | posts | accuracy | min confidence |" in markdown and "| 50% |" in markdown
    assert "ece_uncalibrated" in markdown


def test_evaluate_cli_prints_ece_and_coverage(run, capsys):
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "ECE" in out and "acc at 50% coverage" in out and "uncalibrated" in out


def test_an_old_run_without_calibration_predicts_with_t_1(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / CALIBRATION_FILE).unlink()
    config = json.loads((old / "config.json").read_text())
    for key in ("files", "sha256"):  # an older version recorded no digests of the run's files (issue 29)
        config.pop(key)
    (old / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="not checked"):
        predictor = load(old)
    assert predictor.temperature == 1.0
    posts = [{"id": "a", "text": "hello there"}]
    assert np.allclose(predictor.predict_proba(posts), predictor.predict_proba(posts, calibrated=False))
    with pytest.warns(UserWarning, match="not checked"):
        report = evaluate(old, "test")
    assert report["temperature"] == 1.0 and report["ece"] == pytest.approx(report["ece_uncalibrated"])


def test_min_confidence_abstains_with_a_reason(run):
    predictor = load(run)
    posts = [{"id": "a", "text": "hello there"}, {"id": "b", "text": "nothing here"}]
    proba = predictor.predict_proba(posts)
    plain = predictor.answers(posts, top_k=3)
    for answer, row in zip(plain, proba, strict=True):
        assert answer["poi"] == answer["predictions"][0]["poi"] and answer["reason"] is None
        assert answer["confidence"] == pytest.approx(row.max())
    abstained = predictor.answers(posts, top_k=3, min_confidence=1.0)
    for answer in abstained:
        assert answer["poi"] is None and len(answer["predictions"]) == 3  # candidates kept
        assert answer["reason"].startswith("confidence ") and "below min_confidence 1" in answer["reason"]
    assert predictor.answers(posts, min_confidence=0.0)[0]["poi"] is not None


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "0.5", True])
def test_bad_min_confidence_is_refused(run, bad):
    with pytest.raises(PostlocError, match="min_confidence must be a number from 0 to 1"):
        check_min_confidence(bad)
    with pytest.raises(PostlocError, match="min_confidence"):
        load(run).answers([{"text": "x"}], min_confidence=bad)


def test_predict_cli_min_confidence(run, tmp_path, jsonl_file, capsys):
    posts = jsonl_file([{"id": "a", "text": "hello"}, {"id": "b", "text": "there"}])
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(run), str(posts), "-o", str(out), "--quiet", "--min-confidence", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["poi"] for r in rows] == [None, None]
    assert all("below min_confidence" in r["reason"] and r["predictions"] for r in rows)
    assert "2 below --min-confidence" in capsys.readouterr().out
    parquet = tmp_path / "out.parquet"
    assert main(["predict", str(run), str(posts), "-o", str(parquet), "--quiet"]) == 0
    table = pd.read_parquet(parquet)
    assert table["poi"].notna().all() and table["reason"].isna().all()
    assert np.allclose(table["confidence"], [p[0]["probability"] for p in table["predictions"]])
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(run), str(posts), "-o", str(out), "--min-confidence", "1.5"])
    assert exit_info.value.code == 2
    assert "expected a number in [0, 1]" in capsys.readouterr().err


# --- open set ---------------------------------------------------------------------------------------------


def test_left_out_pois_are_reproducible_and_mid_sized(prepared):
    posts = pd.read_parquet(prepared / "posts.parquet")
    first = choose_left_out(posts, 2, seed=0)
    assert first == choose_left_out(posts, 2, seed=0) and len(set(first)) == 2
    sizes = posts.groupby(posts["poi"].astype(str)).size().sort_values()
    assert sizes.index[-1] not in first and sizes.index[0] not in first  # neither the biggest nor the smallest
    with pytest.raises(PostlocError, match="fewer than 2"):
        choose_left_out(posts, 5, seed=0)


def test_open_set_cli_writes_its_report(prepared, tmp_path, capsys):
    out = tmp_path / "open"
    assert main(["open-set", str(prepared), "--out", str(out), "--leave-out", "2", "--seed", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "open-set.json").read_text())
    assert report["postloc_open_set"] and report["model"] == "tfidf-logreg" and len(report["left_out"]) == 2
    assert 0 <= report["auroc"] <= 1 and 0 <= report["known_accuracy"] <= 1
    assert report["test_novel_posts"] == sum(p["test_posts"] for p in report["left_out"]) > 0
    assert report["known_pois"] == 4
    for p in report["left_out"]:
        assert p["poi"] in printed
    assert "AUROC" in printed and (out / "open-set.md").exists() and (out / "open-set-confidence.png").exists()
    # its own folder may be written again
    again = open_set(prepared, out, OpenSetConfig(leave_out=2, seed=1))
    assert again["left_out"] == report["left_out"]


def test_open_set_refuses_a_foreign_folder(prepared, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    with pytest.raises(OutputPathError, match=r"not a leave-out \(open-set\) report written by postloc"):
        open_set(prepared, foreign)
    assert main(["open-set", str(prepared), "--out", str(foreign), "--quiet"]) == 2
    assert "refusing" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputPathError, match="inside the input"):
        open_set(prepared, prepared / "report")
