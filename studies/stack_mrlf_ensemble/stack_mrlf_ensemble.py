"""Would ``stack`` gain from MRLF's probabilities? A fixed 50/50 blend of the two, on user-disjoint folds.

    python studies/stack_mrlf_ensemble/stack_mrlf_ensemble.py PREPARED --out DIR [--folds 5]

Issue 13 lists "MRLF's probabilities" among the inputs a stacked model could combine. Before
building that into ``stack`` (it would train MRLF 5 times per fit: 4 inner folds and the whole),
this script measures the most it could give with no fitting at all: it trains stack, mrlf,
mrlf-plus and tfidf-logreg on the same K folds (``postloc crossval`` machinery, runs kept), scores
each fold's test posts with every run (calibrated, the whole fold in one batch so stack reads its
same-day context as ``evaluate`` does) and blends stack with mrlf or mrlf-plus by a product
(geometric mean, weight 0.5) and by a mean of probabilities. A fixed weight of 0.5 is chosen
before looking, so no number here is tuned on the test folds. Writes ``DIR/ensemble.{md,json}``:
accuracy per fold and the difference to stack and to mrlf-plus (mean, and its smallest fold).
Finished cells are reused (the experiment folder is resumable). docs/winning-model.md quotes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from postloc.experiments.fold_frames import folds_parser

MODELS = ("stack", "mrlf-plus", "mrlf", "tfidf-logreg")
EPS = 1e-9


def main() -> None:
    from postloc.experiments import ExperimentConfig, run_experiments

    parser = folds_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    config = ExperimentConfig(
        studies=("cv",),
        folds=args.folds,
        seeds=(0,),
        cv_model="stack",
        cv_reference="mrlf-plus",
        cv_also=("mrlf", "tfidf-logreg"),
        threads=1,
        progress=False,
        keep_runs=True,
    )
    run_experiments(args.prepared, args.out, config)
    accuracy = blend_accuracies(args.out)
    lines = [
        f"# stack blended with MRLF on `{args.prepared.name}` ({args.folds} user-disjoint folds)",
        "",
        "Fixed weight 0.5, no fitting. Δ: the blend minus stack, and minus mrlf-plus (mean over folds; "
        "in brackets the smallest per-fold difference).",
        "",
        "| probabilities | accuracy | per fold | Δ vs stack (smallest) | Δ vs mrlf-plus (smallest) |",
        "|---|---:|---|---:|---:|",
    ]
    stack, reference = np.array(accuracy["stack"]), np.array(accuracy["mrlf-plus"])
    rows = []
    for name, values in accuracy.items():
        v = np.array(values)
        d_stack, d_ref = v - stack, v - reference
        rows.append({"name": name, "per_fold": values, "d_stack": d_stack.tolist(), "d_ref": d_ref.tolist()})
        lines.append(
            f"| {name} | {v.mean():.3f} | {' '.join(f'{x:.3f}' for x in v)} | {d_stack.mean():+.3f} "
            f"({d_stack.min():+.3f}) | {d_ref.mean():+.3f} ({d_ref.min():+.3f}) |"
        )
    (args.out / "ensemble.md").write_text("\n".join(lines) + "\n")
    (args.out / "ensemble.json").write_text(json.dumps({"folds": args.folds, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


def blend_accuracies(out: Path) -> dict[str, list[float]]:
    """Accuracy per fold of each model and of each blend, from the kept runs of the experiment in ``out``."""
    from postloc.data.prepared import load_prepared
    from postloc.inference.predictor import load

    probs: dict[tuple[str, int], tuple[list[str], np.ndarray, np.ndarray]] = {}
    for path in sorted((out / "cells").glob("*.json")):
        record = json.loads(path.read_text())
        model, fold = record["cell"]["model"], record["cell"]["fold"]
        folder = next((out / "data" / "folds").glob(f"*/fold-{fold}"))
        test = load_prepared(folder).split("test")
        predictor = load(out / "runs" / record["key"])
        proba = predictor.predict_proba(test, batch_size=len(test))
        probs[(model, fold)] = (list(predictor.classes), proba, test["poi"].to_numpy())
    accuracy: dict[str, list[float]] = {}
    for fold in sorted({f for _, f in probs}):
        classes, _, truth = probs[("stack", fold)]

        def aligned(model: str, fold: int = fold, classes: list[str] = classes) -> np.ndarray:
            own, proba, _ = probs[(model, fold)]
            return proba[:, [own.index(k) for k in classes]]

        p = {m: aligned(m) for m in MODELS}
        blends = dict(p)
        for other in ("mrlf-plus", "mrlf"):
            blends[f"stack x {other} (product)"] = np.exp(0.5 * np.log(p["stack"] + EPS) + 0.5 * np.log(p[other] + EPS))
            blends[f"stack + {other} (mean)"] = (p["stack"] + p[other]) / 2
        for name, proba in blends.items():
            hit = np.asarray(classes)[proba.argmax(axis=1)] == truth
            accuracy.setdefault(name, []).append(float(hit.mean()))
    return accuracy


if __name__ == "__main__":
    main()
