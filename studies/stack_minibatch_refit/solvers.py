"""Full-batch L-BFGS against Adam over mini-batches for ``stack``'s final refit, learner by learner.

    python studies/stack_minibatch_refit/solvers.py PREPARED [--run RUN] [--variants 5,0.5,64 ...]

On a prepared folder's train + val posts (what ``postloc train`` refits ``stack`` on), for each
text learner (``words``, ``chars``) at the C a trained ``stack`` run chose (``--run``: its
``best/model.json``; else words 10, chars 3), it fits the refit's regression both ways and
scores each on the test split's posts: seconds, the objective both minimise (weighted
cross-entropy + penalty), test accuracy, and the share of test posts where the two answers agree.
The variants are ``EPOCHS,LR,STEPS_PER_EPOCH`` of :class:`postloc.models.stack.fits.Minibatch`
(the first one listed should be the default). Writes ``results/NAME.{json,md}`` beside itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import machine, write_results
from postloc.data.prepared import load_prepared
from postloc.models import create_model
from postloc.models.stack.fits import Minibatch, fit_logreg, fit_logreg_minibatch, log_proba
from postloc.models.stack.learners import LEARNERS
from postloc.models.user_weights import user_sample_weights

HERE = Path(__file__).resolve().parent


def objective(X, y: np.ndarray, weights: np.ndarray, regression, n_classes: int) -> float:
    share = weights / weights.sum()
    fit = -(share * log_proba(X, regression, n_classes)[np.arange(len(y)), y]).sum()
    return float(fit + 0.5 / (regression.C * weights.sum()) * (regression.coef**2).sum())


def chosen_c(run: Path | None) -> dict[str, float]:
    if run is None:
        return {"words": 10.0, "chars": 3.0}
    manifest = json.loads((run / "best" / "model.json").read_text())
    return {entry["kind"]: float(entry["C"]) for entry in manifest["learners"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--run", type=Path, help="a stack run on PREPARED: the C its learners chose")
    parser.add_argument("--variants", nargs="+", default=["5,0.5,64", "3,0.5,64", "10,0.5,64", "5,1.0,64", "5,0.5,16"])
    parser.add_argument("--name", default="solvers")
    args = parser.parse_args()
    prepared = load_prepared(args.prepared)
    posts = pd.concat([prepared.split("train"), prepared.split("val")], ignore_index=True)
    test = prepared.split("test")
    model = create_model("stack")
    model.classes_ = list(prepared.poi_names)
    n_classes = len(model.classes_)
    y, y_test = model._class_index(posts), model._class_index(test)
    weights = user_sample_weights(posts, model.config.user_weight_power)
    rows = []
    for kind, C in chosen_c(args.run).items():
        if kind not in ("words", "chars"):
            continue
        learner = LEARNERS[kind](n_classes)
        X = learner.fit_transform(posts, model.config)
        X_test = learner.features(test)
        schedules: list[tuple[str, Minibatch | None]] = [("full-batch L-BFGS", None)]
        for variant in args.variants:
            epochs, lr, steps = variant.split(",")
            schedule = Minibatch(epochs=int(epochs), lr=float(lr), steps_per_epoch=int(steps))
            # the passes it makes: a set too small for min_steps at this many steps a pass gets more
            passes, batch = schedule.passes(len(y)), schedule.batch_rows(len(y))
            label = f"Adam, epochs {epochs} ({passes} passes), lr {lr}, {steps} steps a pass (batch {batch:,})"
            schedules.append((label, schedule))
        reference = None
        for label, schedule in schedules:
            started = time.perf_counter()
            if schedule is None:
                regression = fit_logreg(X, y, weights, C, model.config.max_iter, n_classes)
            else:
                regression = fit_logreg_minibatch(X, y, weights, C, n_classes, schedule)
            seconds = time.perf_counter() - started
            answers = log_proba(X_test, regression, n_classes).argmax(axis=1)
            reference = answers if reference is None else reference
            row = {
                "learner": kind,
                "C": C,
                "features": X.shape[1],
                "solver": label,
                "seconds": round(seconds, 1),
                "objective": round(objective(X, y, weights, regression, n_classes), 4),
                "test_acc": round(float((answers == y_test).mean()), 4),
                "agree_with_lbfgs": round(float((answers == reference).mean()), 4),
            }
            rows.append(row)
            print(row, flush=True)
    payload = {
        "machine": machine(),
        "synthetic": bool(prepared.synthetic),
        "prepared": str(args.prepared),
        "posts": len(posts),
        "test_posts": len(test),
        "pois": n_classes,
        "rows": rows,
    }
    write_results(args.name, payload, markdown(payload, args), folder=HERE / "results")


def markdown(payload: dict, args: argparse.Namespace) -> str:
    m = payload["machine"]
    lines = [
        "# stack's final refit: full-batch L-BFGS against Adam over mini-batches",
        "",
        f"`python studies/stack_minibatch_refit/solvers.py {args.prepared}"
        f"{f' --run {args.run}' if args.run else ''} --variants {' '.join(args.variants)}`",
        f"Data: {'SYNTHETIC' if payload['synthetic'] else 'real'}, {payload['posts']:,} train + val posts, "
        f"{payload['test_posts']:,} test posts, {payload['pois']} POIs. Machine: {m['cpu']}, {m['cores']} cores, "
        f"load average at the start {m['load_average_1_5_15']}.",
        "",
        "| learner | C | solver | seconds | objective | test acc | same answer as L-BFGS |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        lines.append(
            f"| {r['learner']} ({r['features']:,} features) | {r['C']:g} | {r['solver']} | {r['seconds']} | "
            f"{r['objective']} | {r['test_acc']} | {r['agree_with_lbfgs']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
