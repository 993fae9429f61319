"""``stack`` at scale (issue 27): its regressions, the inner sample, executors that give the same model, progress."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, make_synthetic
from postloc.models import create_model
from postloc.models.base import FitOptions
from postloc.models.stack.fits import (
    Minibatch,
    PathTask,
    ThreadExecutor,
    c_path,
    fit_logreg,
    fit_logreg_minibatch,
    log_proba,
)

QUICK = {"c_grid": (0.3, 3.0), "inner_folds": 3, "max_iter": 300, "char_ngrams": (3, 3)}


@pytest.fixture(scope="module")
def splits():
    data = make_synthetic(SyntheticFeaturesConfig(n_pois=5, n_posts=600, seed=3, text_signal=0.3, tag_signal=0.5))
    return {s: data.posts[data.posts["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}


def _problem(n: int = 600, d: int = 40, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(0, 1, (n, d)) + np.eye(k, d)[y] * 1.5
    return X, y, rng.uniform(0.5, 2.0, n)


def test_fit_logreg_reaches_scikit_learns_optimum():
    """The same objective as LogisticRegression(C, sample_weight): the same probabilities, to the solvers' tolerance."""
    from sklearn.linear_model import LogisticRegression

    X, y, w = _problem()
    ours = fit_logreg(X, y, w, 0.5, 1000, 4)
    theirs = LogisticRegression(C=0.5, max_iter=1000, tol=1e-8).fit(X, y, sample_weight=w)
    assert np.allclose(np.exp(log_proba(X, ours, 4)), theirs.predict_proba(X), atol=2e-3)


def test_fit_logreg_keeps_unseen_classes_finite_and_handles_one_class():
    X, y, w = _problem(k=3)
    regression = fit_logreg(X, y, w, 1.0, 300, 5)  # classes 3 and 4 never seen
    proba = np.exp(log_proba(X, regression, 5))
    assert regression.seen == [0, 1, 2] and np.allclose(proba.sum(axis=1), 1.0) and proba[:, 3:].max() < 1e-5
    constant = fit_logreg(X, np.zeros(len(y), dtype=int), w, 1.0, 300, 5)
    assert np.exp(log_proba(X[:2], constant, 5))[:, 0].min() > 0.99


def test_columns_no_row_uses_are_left_out_with_coefficients_of_zero():
    """An inner fold's rows use part of the run's vocabulary: the rest is not solved for, and the answer is the same."""
    from scipy.sparse import csr_matrix, hstack

    X, y, w = _problem(seed=3)
    narrow = csr_matrix(X)
    wide = hstack([csr_matrix((len(y), 7)), narrow, csr_matrix((len(y), 5))]).tocsr()  # 12 empty columns
    a, b = fit_logreg(narrow, y, w, 1.0, 1000, 4), fit_logreg(wide, y, w, 1.0, 1000, 4)
    assert b.coef.shape == (4, X.shape[1] + 12) and not b.coef[:, :7].any() and not b.coef[:, -5:].any()
    assert np.allclose(b.coef[:, 7:-5], a.coef, atol=1e-5)
    assert np.allclose(np.exp(log_proba(wide, b, 4)), np.exp(log_proba(narrow, a, 4)), atol=1e-6)
    warm = fit_logreg(wide, y, w, 2.0, 1000, 4, init=b)  # a warm start of the full width
    assert np.allclose(
        np.exp(log_proba(wide, warm, 4)),
        np.exp(log_proba(narrow, fit_logreg(narrow, y, w, 2.0, 1000, 4), 4)),
        atol=5e-3,
    )


def test_warm_started_path_lands_where_cold_fits_do():
    X, y, w = _problem(seed=1)
    task = PathTask(0, 0, np.arange(400), np.arange(400, 600))
    warm = c_path((X,), y, w, task, [0.1, 1.0, 10.0], 1000, 4)
    for C, held in zip([0.1, 1.0, 10.0], warm, strict=True):
        cold = log_proba(X[400:], fit_logreg(X[:400], y[:400], w[:400], C, 1000, 4), 4)
        assert np.allclose(np.exp(held), np.exp(cold), atol=5e-3)


def test_thread_counts_give_the_same_model(splits):
    one = create_model("stack", {**QUICK, "n_jobs": 1}).fit(splits["train"], splits["val"])
    two = create_model("stack", {**QUICK, "n_jobs": 2}).fit(splits["train"], splits["val"])
    assert [ln.C for ln in one.learners_] == [ln.C for ln in two.learners_]
    assert np.array_equal(one.weights_, two.weights_)
    assert np.allclose(one.predict_proba(splits["test"]), two.predict_proba(splits["test"]), atol=1e-6)


def test_default_threads_follow_torchs_count():
    """Inside a Ray task of N CPUs torch has N threads: the fit's thread pool takes that, not the machine's cores."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert ThreadExecutor.sized(0).n_jobs == 1 and ThreadExecutor.sized(3).n_jobs == 3
    finally:
        torch.set_num_threads(before)
    assert ThreadExecutor.sized(0).n_jobs == before


def test_inner_sample_takes_whole_users_up_to_its_size():
    users = [f"u{i}" for i in range(50) for _ in range(i % 7 + 1)] + ["heavy"] * 400
    posts = pd.DataFrame({"user": users})
    model = create_model("stack", {"c_sample_posts": 60})
    sample = model._inner_sample(posts)
    chosen = posts.iloc[sample]
    assert 60 <= len(sample) <= 90 and "heavy" not in set(chosen["user"])
    counts = chosen["user"].value_counts()
    assert all(counts[u] == (posts["user"] == u).sum() for u in counts.index)  # whole users only
    assert np.array_equal(sample, model._inner_sample(posts))  # seeded
    assert len(create_model("stack", {"c_sample_posts": 0})._inner_sample(posts)) == len(posts)


def test_a_sampled_fit_uses_every_post_for_the_refit(splits):
    everyone = len(splits["train"]) + len(splits["val"])
    model = create_model("stack", {**QUICK, "c_sample_posts": everyone // 3, "learners": ["words"]})
    model.fit(splits["train"], splits["val"])
    full = create_model("stack", {**QUICK, "learners": ["words"]}).fit(splits["train"], splits["val"])
    accuracy = [
        (m.predict_proba(splits["test"]).argmax(axis=1) == m._class_index(splits["test"])).mean() for m in (model, full)
    ]
    assert accuracy[0] > 0.5 and abs(accuracy[0] - accuracy[1]) < 0.1


def _objective(X, y, w, regression, k):
    share = w / w.sum()
    fit = -(share * log_proba(X, regression, k)[np.arange(len(y)), y]).sum()
    return fit + 0.5 / (regression.C * w.sum()) * (regression.coef**2).sum()


def test_minibatch_refit_lands_near_the_full_batch_optimum():
    """Adam over mini-batches minimises the same objective: near L-BFGS's optimum, the same answers; seeded."""
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    X, y, w = _problem(n=4000, d=60, k=5, seed=2)
    X = normalize(csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0)))  # sparse rows of unit length, as TF-IDF's
    schedule = Minibatch(epochs=5, min_batch=256)
    for scale in (1.0, 20.0):  # the step follows the rows' length (z-scored image vectors are long)
        exact = fit_logreg(X * scale, y, w, 1.0, 1000, 6)  # class 5 never seen
        approx = fit_logreg_minibatch(X * scale, y, w, 1.0, 6, schedule)
        assert approx.seen == exact.seen == [0, 1, 2, 3, 4]
        best = _objective(X * scale, y, w, exact, 6)
        assert 0 <= _objective(X * scale, y, w, approx, 6) - best < 0.03 * best
        agree = (log_proba(X * scale, approx, 6).argmax(axis=1) == log_proba(X * scale, exact, 6).argmax(axis=1)).mean()
        assert agree > 0.93
    once, again = (fit_logreg_minibatch(X, y, w, 1.0, 6, schedule) for _ in range(2))
    assert np.array_equal(once.coef, again.coef)
    other = fit_logreg_minibatch(X, y, w, 1.0, 6, Minibatch(epochs=5, min_batch=256, seed=1))
    assert not np.array_equal(once.coef, other.coef)
    assert Minibatch().batch_rows(10) == 1024 and Minibatch().batch_rows(1_000_000) == 15_625
    assert Minibatch().passes(1_000_000) == 5 and Minibatch().passes(65_557) == 5  # 64 steps a pass
    assert Minibatch().passes(7_000) == 46  # 7 steps a pass: passed over until 320 steps


def test_refit_past_full_batch_cells_uses_mini_batches(splits, capsys):
    everyone = len(splits["train"]) + len(splits["val"])
    small = {**QUICK, "learners": ["words"], "refit_epochs": 8}
    model = create_model("stack", {**small, "full_batch_cells": everyone * 5 - 1})  # 5 POIs: one cell short
    model.fit(splits["train"], splits["val"], options=FitOptions(progress=True))
    passes = Minibatch(epochs=8).passes(everyone)
    assert passes >= 8 and f"({passes} passes of mini-batches)" in capsys.readouterr().err
    exact = create_model("stack", {**small, "full_batch_cells": everyone * 5}).fit(splits["train"], splits["val"])
    assert model.learners_[0].C == exact.learners_[0].C  # C is chosen before the refit, the same way
    assert not np.array_equal(model.learners_[0].coef, exact.learners_[0].coef)
    y = model._class_index(splits["test"])
    accuracy = [(m.predict_proba(splits["test"]).argmax(axis=1) == y).mean() for m in (model, exact)]
    assert accuracy[0] > 0.5 and abs(accuracy[0] - accuracy[1]) < 0.05


def test_progress_lines_off_a_terminal(splits, capsys):
    create_model("stack", {**QUICK, "learners": ["words"]}).fit(
        splits["train"], splits["val"], options=FitOptions(progress=True)
    )
    lines = capsys.readouterr().err.splitlines()
    assert any("inner fold 1/3" in line for line in lines) and any("refit on" in line for line in lines)
    create_model("stack", {**QUICK, "learners": ["words"]}).fit(splits["train"], splits["val"])
    assert capsys.readouterr().err == ""  # library callers stay quiet by default


def test_executor_sees_every_call_in_order(splits):
    seen = []

    class Recording(ThreadExecutor):
        def map(self, fn, shared, calls, done):
            seen.append((fn.__name__, len(calls)))
            return super().map(fn, shared, calls, done)

    create_model("stack", QUICK).fit(splits["train"], splits["val"], options=FitOptions(executor=Recording(2)))
    assert seen == [("c_path", 3 * 3), ("refit", 3)]  # words, chars and image x 3 inner folds, then 3 refits


def test_engine_ray_with_a_model_without_regressions_is_one_line(tmp_path, capsys):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "dresden", "--out", str(prepared), "--quiet"]) == 0
    run = ["train", "--data", str(prepared), "--out", str(tmp_path / "run"), "--model", "majority"]
    code = main([*run, "--engine", "ray"])
    assert code == 2
    assert "--engine ray" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_executor_gives_the_local_model(splits):
    ray = pytest.importorskip("ray")
    from postloc.scale._ray import RaySettings
    from postloc.scale.ray_fits import RayExecutor

    local = create_model("stack", QUICK).fit(splits["train"], splits["val"])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = create_model("stack", QUICK).fit(
            splits["train"], splits["val"], options=FitOptions(executor=RayExecutor(RaySettings()))
        )
    finally:
        ray.shutdown()
    assert [ln.C for ln in local.learners_] == [ln.C for ln in remote.learners_]
    assert np.allclose(local.weights_, remote.weights_, atol=1e-6)
    assert np.allclose(local.predict_proba(splits["test"]), remote.predict_proba(splits["test"]), atol=1e-6)


def test_solver_memory_is_bounded_by_fewer_history_steps():
    from postloc.models.stack.fits import history_size

    assert history_size(200_000 * 40) == 10  # the paper's 40 POIs: scikit-learn's default memory
    assert history_size(200_000 * 500) == 3  # 500 POIs: 3 steps (2.4 GB) rather than 10 (8 GB)
    assert 3 <= history_size(50_000_000) < 10
