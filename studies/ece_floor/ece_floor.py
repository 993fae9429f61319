"""How far each method's ECE on user-disjoint folds is from what sampling noise alone would give.

    python studies/ece_floor/ece_floor.py EXPERIMENT_DIR [--name ece-floor] [--draws 200]

EXPERIMENT_DIR is the output of ``postloc experiments --folds K``, ``postloc crossval`` or one
variant of ``studies/stack_ablation/stack_ablation.py``: its ``cells/*.json`` name each cell's method and its
``predictions/KEY.parquet`` hold the per-post outcomes (confidence, correct).

ECE over 15 bins is biased upwards on a few hundred posts: even a perfectly calibrated model
shows a positive ECE. The *floor* here is the mean ECE of such a model, with the same
confidences, whose correctness is drawn as Bernoulli(confidence) (``--draws`` times). An ECE
well above its floor is miscalibration; one near it is noise. Also written: the pooled
reliability (10 bins) of each method over all folds, which shows the shape of the error
(over-confident where it says little, under-confident where it says much, or one way throughout),
and each cell's ECE after a Platt map of the confidence fitted on the other cells' outcomes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # _common: the machine and the results files
from _common import machine, write_results  # noqa: E402
from postloc.metrics import ece_of_confidences  # noqa: E402


def floor(confidence: np.ndarray, draws: int, rng: np.random.Generator) -> float:
    """The mean ECE of a calibrated model with these confidences on this many posts."""
    return float(
        np.mean([ece_of_confidences(confidence, rng.random(len(confidence)) < confidence) for _ in range(draws)])
    )


def read_cells(folder: Path) -> dict[str, list[pd.DataFrame]]:
    """method -> the per-post outcomes of its cells (one per fold and seed)."""
    methods: dict[str, list[pd.DataFrame]] = {}
    for path in sorted((folder / "cells").glob("*.json")):
        cell = json.loads(path.read_text())
        outcomes = folder / "predictions" / f"{cell['key']}.parquet"
        if not outcomes.is_file():
            continue
        spec = cell.get("cell") or {}
        method = str(spec.get("model") or spec.get("method") or "?")
        methods.setdefault(method, []).append(pd.read_parquet(outcomes, columns=["confidence", "correct"]))
    return methods


def _logit(confidence: np.ndarray) -> np.ndarray:
    c = np.clip(confidence, 1e-6, 1 - 1e-6)
    return np.log(c / (1 - c))


def platt_elsewhere(frames: list[pd.DataFrame]) -> list[float]:
    """Per cell, its ECE after a Platt map of the top confidence fitted on the *other* cells' outcomes.

    ``sigmoid(a * logit(c) + b)`` can lower the confidence where it is low and raise it where it is
    high, which one temperature cannot. Fitted on other folds' test users, it is the best any
    held-out fit could hope for: if it does not help, the shift is the fold's own users.
    """
    from scipy.optimize import minimize

    out = []
    for i, frame in enumerate(frames):
        rest = pd.concat([f for j, f in enumerate(frames) if j != i])
        z, y = _logit(rest["confidence"].to_numpy()), rest["correct"].to_numpy(dtype=float)

        def nll(ab: np.ndarray, z: np.ndarray = z, y: np.ndarray = y) -> float:
            p = 1 / (1 + np.exp(-(ab[0] * z + ab[1])))
            return float(-(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)).mean())

        a, b = minimize(nll, np.array([1.0, 0.0])).x
        mapped = 1 / (1 + np.exp(-(a * _logit(frame["confidence"].to_numpy()) + b)))
        out.append(ece_of_confidences(mapped, frame["correct"]))
    return out


def reliability(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.ceil(confidence * 10).astype(int) - 1, 0, 9)
    return [
        {
            "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
            "posts": int((which == b).sum()),
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
        }
        for b in range(10)
        if (which == b).any()
    ]


def _platt_cell(row: dict) -> str:
    after = row["ece_per_cell_after_platt_elsewhere"]
    return "–" if not after else f"{np.mean(after):.3f} ± {np.std(after):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--name", default="ece-floor", help="results file name under studies/ece_floor/results/")
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    methods = read_cells(args.experiment)
    if not methods:
        raise SystemExit(f"{args.experiment}: no cells with per-post outcomes (cells/*.json, predictions/*.parquet)")
    rows, shapes = [], {}
    for method, frames in methods.items():
        per_fold = [ece_of_confidences(f["confidence"], f["correct"]) for f in frames]
        floors = [floor(f["confidence"].to_numpy(), args.draws, rng) for f in frames]
        pooled = pd.concat(frames)
        conf, correct = pooled["confidence"].to_numpy(), pooled["correct"].to_numpy(dtype=float)
        rows.append(
            {
                "method": method,
                "cells": len(frames),
                "posts": len(pooled),
                "ece_per_cell_mean": float(np.mean(per_fold)),
                "ece_per_cell_std": float(np.std(per_fold)),
                "floor_per_cell_mean": float(np.mean(floors)),
                "ece_pooled": ece_of_confidences(conf, correct),
                "floor_pooled": floor(conf, args.draws, rng),
                "ece_per_cell_after_platt_elsewhere": platt_elsewhere(frames) if len(frames) > 1 else None,
                "mean_confidence": float(conf.mean()),
                "accuracy": float(correct.mean()),
            }
        )
        shapes[method] = reliability(conf, correct)
    payload = {
        "experiment": args.experiment.name,
        "draws": args.draws,
        "machine": machine(),
        "methods": rows,
        "reliability": shapes,
    }
    lines = [
        "# ECE against its sampling floor",
        "",
        f"`python studies/ece_floor/ece_floor.py {args.experiment.name} --draws {args.draws}`; machine: "
        f"{payload['machine']['cpu']}, {payload['machine']['cores']} cores. The floor is the ECE a perfectly "
        "calibrated model with the same confidences would show on as many posts (mean of the draws).",
        "",
        "| method | cells | posts | ECE per cell | its floor | ECE per cell, Platt map from the other cells |"
        " ECE pooled | its floor | mean confidence | accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['cells']} | {r['posts']:,}"
            f" | {r['ece_per_cell_mean']:.3f} ± {r['ece_per_cell_std']:.3f}"
            f" | {r['floor_per_cell_mean']:.3f} | {_platt_cell(r)}"
            f" | {r['ece_pooled']:.3f} | {r['floor_pooled']:.3f}"
            f" | {r['mean_confidence']:.3f} | {r['accuracy']:.3f} |"
        )
    for method, bins in shapes.items():
        lines += [
            "",
            f"Pooled reliability of {method}:",
            "",
            "| confidence | posts | mean confidence | accuracy |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {b['bin']} | {b['posts']:,} | {b['confidence']:.3f} | {b['accuracy']:.3f} |" for b in bins]
    json_path, md_path = write_results(args.name, payload, "\n".join(lines) + "\n", folder=HERE / "results")
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
