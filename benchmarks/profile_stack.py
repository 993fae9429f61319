"""Where a ``stack`` fit spends its seconds, step by step, and scikit-learn's solver against the one stack uses.

Run: ``.venv/bin/python benchmarks/profile_stack.py PREPARED [--name stack-profile]``. Writes
``benchmarks/results/NAME.{json,md}``. On the prepared folder's train + val posts (what
``postloc train`` fits stack on), one thread, it times each step of ``Stack.fit`` as the estimator
runs them: each learner's vectorising, the inner folds' C paths (each learner, every fold), the
refits on every post, the combiner and the context weights. Then, on one regression per learner
(the inner sample, C = 3), scikit-learn's ``LogisticRegression`` (lbfgs, what stack used before
issue 27) against :func:`postloc.models.stack.fits.fit_logreg` (torch L-BFGS, float32): seconds,
iterations and the largest difference in probability.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results
from postloc.data.prepared import load_prepared
from postloc.models import create_model
from postloc.models.stack.combiner import combine, fit_combiner
from postloc.models.stack.fits import PathTask, c_path, fit_logreg, log_proba
from postloc.models.stack.learners import LEARNERS
from postloc.models.user_weights import user_sample_weights


def clock(steps: list[dict], step: str, fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    steps.append({"step": step, "seconds": round(time.perf_counter() - start, 2)})
    print(steps[-1], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--name", default="stack-profile")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    prepared = load_prepared(args.prepared)
    posts = pd.concat([prepared.split("train"), prepared.split("val")], ignore_index=True)
    model = create_model("stack")
    cfg = model.config
    model.classes_ = list(prepared.poi_names)
    n_classes = len(model.classes_)
    y, weights = model._class_index(posts), user_sample_weights(posts, cfg.user_weight_power)
    sample = model._inner_sample(posts)
    folds = model._inner_folds(posts.iloc[sample])
    steps: list[dict] = []
    kinds = [kind for kind in cfg.learners if LEARNERS[kind].usable(posts)]
    matrices, oof, solvers = [], [], []
    for i, kind in enumerate(kinds):
        learner = LEARNERS[kind](n_classes)
        clock(steps, f"{kind}: vectorise (vocabulary + IDF)", learner.fit_features, posts, cfg)
        X = clock(steps, f"{kind}: features of every post", learner.features, posts)
        matrices.append(X)
        held = np.zeros((len(sample), n_classes))
        position = np.full(len(posts), -1)
        position[sample] = np.arange(len(sample))
        for f, (fit_idx, held_idx) in enumerate(folds):
            task = PathTask(i, f, sample[fit_idx], sample[held_idx])
            grid = sorted(cfg.c_grid)
            step = f"{kind}: inner fold {f + 1}, C path {grid}"
            paths = clock(steps, step, c_path, matrices, y, weights, task, grid, cfg.max_iter, n_classes)
            held[position[task.held_idx]] = paths[-1]
        oof.append(held)
        clock(steps, f"{kind}: refit on {len(posts):,} posts", fit_logreg, X, y, weights, 3.0, cfg.max_iter, n_classes)
        solvers.append(compare_solvers(kind, X[sample], y[sample], weights[sample], n_classes, cfg.max_iter))
    y_s, w_s = y[sample], weights[sample]
    combined = clock(steps, "combiner", lambda: combine(oof, fit_combiner(oof, y_s, w_s)))
    clock(steps, "context weights", model._fit_context, posts.iloc[sample], combined, y_s, w_s)
    total = sum(s["seconds"] for s in steps)
    payload = {
        "machine": machine(),
        "prepared": str(args.prepared),
        "posts": len(posts),
        "pois": n_classes,
        "inner_sample": len(sample),
        "steps": steps,
        "total_seconds": round(total, 1),
        "solvers": solvers,
    }
    write_results(args.name, payload, markdown(payload))


def compare_solvers(kind: str, X, y, weights, n_classes: int, max_iter: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    theirs = LogisticRegression(C=3.0, max_iter=max_iter).fit(X, y, sample_weight=weights)
    sklearn_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = fit_logreg(X, y, weights, 3.0, max_iter, n_classes)
    torch_seconds = time.perf_counter() - start
    p_ours = np.exp(log_proba(X, ours, n_classes))[:, theirs.classes_]
    row = {
        "learner": kind,
        "posts": X.shape[0],
        "features": X.shape[1],
        "sklearn_lbfgs_seconds": round(sklearn_seconds, 2),
        "sklearn_iterations": int(theirs.n_iter_[0]),
        "torch_lbfgs_seconds": round(torch_seconds, 2),
        "max_probability_difference": round(float(np.abs(p_ours - theirs.predict_proba(X)).max()), 4),
    }
    print(row, flush=True)
    return row


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        f"# Where a stack fit spends its seconds: {payload['prepared']}",
        "",
        f"`python benchmarks/profile_stack.py {payload['prepared']}`: {payload['posts']:,} train + val posts, "
        f"{payload['pois']} POIs, inner folds on {payload['inner_sample']:,} of them; one torch thread. "
        f"Machine: {m['cpu']}, {m['cores']} cores, load {m['load_average_1_5_15']}.",
        "",
        "| step | seconds | share |",
        "|---|---:|---:|",
    ]
    for s in payload["steps"]:
        lines.append(f"| {s['step']} | {s['seconds']} | {100 * s['seconds'] / payload['total_seconds']:.0f} % |")
    lines += [
        f"| **total** | **{payload['total_seconds']}** | |",
        "",
        "One regression on the inner sample, C = 3: scikit-learn's lbfgs (stack's solver before issue 27) "
        "against torch's L-BFGS on the same objective (stack's now).",
        "",
        "| learner | posts | features | scikit-learn s (iterations) | torch s | max Δ probability |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in payload["solvers"]:
        lines.append(
            f"| {r['learner']} | {r['posts']:,} | {r['features']:,} | {r['sklearn_lbfgs_seconds']} "
            f"({r['sklearn_iterations']}) | {r['torch_lbfgs_seconds']} | {r['max_probability_difference']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
