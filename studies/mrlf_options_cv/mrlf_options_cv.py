"""MRLF's options beyond the paper vs TF-IDF + logistic regression, on user-disjoint folds (issue 13).

Takes a prepared folder (it prepares nothing itself)::

    python -m postloc prepare dresden --out /tmp/mrlfopts/prep
    python studies/mrlf_options_cv/mrlf_options_cv.py /tmp/mrlfopts/prep --out /tmp/mrlfopts/cv

Folds: scikit-learn ``StratifiedGroupKFold(5, shuffle=True, random_state=0)`` over users,
stratified by POI. In each fold a user-disjoint 1/8 of the training users is the validation split
(``GroupShuffleSplit(test_size=0.125, random_state=0)``), which drives early stopping. Every model
is fitted with ``TrainerConfig(epochs=20, early_stopping=4, threads=1, progress=False, seed=0)``
and scored with :func:`postloc.metrics.evaluate` (accuracy, mean great-circle error in km).

Each (row, fold) result is kept as ``OUT/<row>/fold<k>.json``, so rows can run in separate
processes (``--rows``) and an interrupted run continues; ``--report`` prints the table: mean ±
std over folds and the paired difference to ``tfidf-logreg`` with a 95 % t-interval (4 d.o.f.).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from postloc.data.prepared import load_prepared
from postloc.metrics import evaluate
from postloc.models.registry import create_model
from postloc.nn.config import TrainerConfig

UW = {"user_weight_power": 0.5}
#: row name -> (model, params); the first MRLF rows add one option at a time
ROWS: dict[str, tuple[str, dict]] = {
    "tfidf-logreg": ("tfidf-logreg", {}),
    "mrlf": ("mrlf", {}),
    "mrlf+uw0.5": ("mrlf", dict(UW)),
    "mrlf+uw0.5+ls0.1": ("mrlf", {**UW, "label_smoothing": 0.1}),
    "mrlf+uw0.5+ls0.1+geo0.5": ("mrlf", {**UW, "label_smoothing": 0.1, "geo_smoothing_km": 0.5}),
    # the smoothing options without the user weights, to tell the effects apart
    "mrlf+ls0.1": ("mrlf", {"label_smoothing": 0.1}),
    "mrlf+ls0.1+geo0.5": ("mrlf", {"label_smoothing": 0.1, "geo_smoothing_km": 0.5}),
}
BASELINE = "tfidf-logreg"
FOLDS = 5


def folds(posts):
    users = posts["user"].astype(str).to_numpy()
    outer = StratifiedGroupKFold(FOLDS, shuffle=True, random_state=0)
    for k, (train_idx, test_idx) in enumerate(outer.split(posts, posts["poi"].astype(str), users)):
        inner = GroupShuffleSplit(n_splits=1, test_size=0.125, random_state=0)
        fit_rel, val_rel = next(inner.split(train_idx, groups=users[train_idx]))
        yield k, train_idx[fit_rel], train_idx[val_rel], test_idx


def run_row(name: str, data, out: Path) -> None:
    model_name, params = ROWS[name]
    classes = sorted(data.posts["poi"].astype(str).unique())
    trainer = TrainerConfig(epochs=20, early_stopping=4, threads=1, progress=False, seed=0)
    for k, fit_idx, val_idx, test_idx in folds(data.posts):
        path = out / name / f"fold{k}.json"
        if path.exists():
            continue
        posts = data.posts
        train, val, test = (posts.iloc[i].reset_index(drop=True) for i in (fit_idx, val_idx, test_idx))
        started = time.perf_counter()
        model = create_model(model_name, params, trainer).fit(train, val, classes=classes)
        report = evaluate(model.predict_proba(test), model.classes_, test, data.pois)
        row = {
            "row": name,
            "fold": k,
            "accuracy": report["accuracy"],
            "mean_km": report["mean_km"],
            "seconds": round(time.perf_counter() - started, 1),
            "epochs": len(model.state.history) if getattr(model, "state", None) else None,
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row))
        print(json.dumps(row), flush=True)


def _ci(diff: np.ndarray) -> tuple[float, float]:
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean() - half), float(diff.mean() + half)


def report(out: Path) -> str:
    results = {}
    for name in ROWS:
        rows = [json.loads(p.read_text()) for p in sorted((out / name).glob("fold*.json"))]
        if len(rows) == FOLDS:
            results[name] = rows
    base = results.get(BASELINE)
    lines = [
        "| model | accuracy | mean km | Δ acc vs tfidf-logreg (95 % CI) | Δ km vs tfidf-logreg (95 % CI) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        acc = np.array([r["accuracy"] for r in rows])
        km = np.array([r["mean_km"] for r in rows])
        cells = [name, f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}", f"{km.mean():.2f} ± {km.std(ddof=1):.2f}"]
        if base is not None and name != BASELINE:
            d_acc = acc - np.array([r["accuracy"] for r in base])
            d_km = km - np.array([r["mean_km"] for r in base])
            lo, hi = _ci(d_acc)
            cells.append(f"{d_acc.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")
            lo, hi = _ci(d_km)
            cells.append(f"{d_km.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]")
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for per-fold results")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--report", action="store_true", help="only print the table of what is there")
    parser.add_argument(
        "--save",
        action="store_true",
        help="also write studies/mrlf_options_cv/results/mrlf_options_cv.{json,md} (all folds)",
    )
    args = parser.parse_args(argv)
    if not args.report:
        data = load_prepared(args.prepared)
        for name in [r.strip() for r in args.rows.split(",") if r.strip()]:
            if name not in ROWS:
                parser.error(f"unknown row {name!r}")
            run_row(name, data, args.out)
    table = report(args.out)
    print(table)
    if args.save:
        _save(args.out, table)
    return 0


def _save(out: Path, table: str) -> None:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parents[1] / "benchmarks"))  # _common: the machine description
    from _common import machine

    results = here / "results"
    folds_done = [json.loads(p.read_text()) for name in ROWS for p in sorted((out / name).glob("fold*.json"))]
    results.mkdir(exist_ok=True)
    info = {"machine": machine(), "rows": {k: {"model": m, "params": v} for k, (m, v) in ROWS.items()}}
    (results / "mrlf_options_cv.json").write_text(json.dumps({**info, "folds": folds_done}, indent=1) + "\n")
    (results / "mrlf_options_cv.md").write_text(
        "# MRLF options vs tfidf-logreg: Dresden, user-disjoint 5-fold CV\n\n"
        f"Machine: {json.dumps(info['machine'])}\n\n{table}\n"
    )


if __name__ == "__main__":
    sys.exit(main())
