"""Open set: does the calibrated confidence tell a post "not at any known POI" from one that is?

``postloc open-set PREPARED --out DIR`` leaves ``leave_out`` POIs out of training (chosen
reproducibly by ``seed`` among the mid-sized POIs, those between the 1/3 and 2/3 quantiles of
post counts that have test posts), trains the model on the other POIs' train posts (val for
early stopping and for the temperature, as ``postloc train`` does), and scores the test split:
posts of known POIs are the positives, posts of the removed POIs the "novel" ones. The report
gives the AUROC of the calibrated top-1 confidence for known vs novel (1.0: every novel post is
less confident than every known one; 0.5: no better than chance), the same before calibration,
the accuracy on known posts, and the share of novel posts rejected at the confidence that keeps
90 % / 95 % of the known posts.

Output folder: ``open-set.json`` (the report, also the folder's ownership marker),
``open-set.md`` and ``open-set-confidence.png`` (confidence histograms, known vs novel). The
folder is checked and locked like a run folder (:mod:`postloc.io.ownership`,
:mod:`postloc.io.locks`): a folder postloc did not write is never written into.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.image_features import attach_image_features, load_image_features
from postloc.data.labels import label_indices
from postloc.data.modalities import available_modalities, unmet_needs
from postloc.data.prepared import load_prepared
from postloc.errors import PostlocError
from postloc.io.atomic import atomic_open, atomic_path
from postloc.io.escape import md_text
from postloc.io.locks import folder_lock
from postloc.io.ownership import OPEN_SET, check_output_folder
from postloc.metrics import expected_calibration_error
from postloc.models.base import FitOptions
from postloc.models.calibration import apply_temperature
from postloc.settings import setting, setting_error
from postloc.training.config import RunConfig

REPORT = "open-set.json"
REPORT_MD = "open-set.md"
PLOT = "open-set-confidence.png"
#: the share of known test posts kept by the thresholds of the report's rejection table
KEEP_KNOWN = (0.9, 0.95)


@dataclass(frozen=True)
class OpenSetConfig:
    """``leave_out`` POIs (chosen by ``seed``) held out of training; ``run`` is the model to train."""

    leave_out: int = setting(3, help="POIs left out (default %(default)s)")
    seed: int = setting(0, help="chooses the left-out POIs (default %(default)s)")
    run: RunConfig = field(default_factory=lambda: RunConfig(model="tfidf-logreg"))

    def __post_init__(self) -> None:
        if isinstance(self.leave_out, bool) or self.leave_out < 1:
            raise setting_error(self, "leave_out", "must be at least 1", self.leave_out)


def choose_left_out(posts: pd.DataFrame, leave_out: int, seed: int) -> list[str]:
    """``leave_out`` POIs among the mid-sized ones (by post count) that have test posts, drawn with ``seed``.

    Mid-sized: ranked by post count, the middle third; when that third is smaller than
    ``leave_out``, all POIs with test posts are candidates. At least two POIs must stay known.
    """
    counts = posts.groupby(posts["poi"].astype(str)).size()
    with_test = set(posts.loc[posts["split"] == "test", "poi"].astype(str))
    ranked = sorted((poi for poi in counts.index if poi in with_test), key=lambda p: (int(counts[p]), p))
    if leave_out < 1:
        raise PostlocError(f"--leave-out must be at least 1, got {leave_out}")
    if len(counts) - leave_out < 2:
        raise PostlocError(f"the data has {len(counts)} POIs; leaving {leave_out} out leaves fewer than 2 to train on")
    if len(ranked) < leave_out:
        raise PostlocError(f"only {len(ranked)} POIs have test posts; cannot leave {leave_out} out")
    middle = ranked[len(ranked) // 3 : (2 * len(ranked)) // 3]
    candidates = middle if len(middle) >= leave_out else ranked
    rng = np.random.default_rng(seed)
    return sorted(str(p) for p in rng.choice(np.array(candidates, dtype=object), size=leave_out, replace=False))


def open_set(prepared_dir: str | Path, out_dir: str | Path, config: OpenSetConfig | None = None) -> dict[str, Any]:
    """Run the open-set evaluation (see the module docstring) and write its report into ``out_dir``."""
    config = config or OpenSetConfig()
    out = Path(out_dir)
    with folder_lock(out):
        check_output_folder(out, OPEN_SET, inputs=[prepared_dir])
        return _open_set(Path(prepared_dir), out, config)


def _open_set(prepared_dir: Path, out: Path, config: OpenSetConfig) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from postloc.models.registry import create_model

    run = config.run
    prepared = load_prepared(prepared_dir)
    model = create_model(run.model, run.params, run.trainer)
    missing = unmet_needs(model.requires, available_modalities(prepared.path))
    if missing:
        raise PostlocError(
            f"model {run.model!r} needs {' and '.join(n.replace('|', ' or ') for n in missing)}, which "
            f"{prepared.path} does not have; see `postloc train --list-models`"
        )
    posts = prepared.posts.assign(poi=prepared.posts["poi"].astype(str))
    left_out = choose_left_out(posts, config.leave_out, config.seed)
    known_pois = [str(p) for p in prepared.poi_names if str(p) not in set(left_out)]
    features = load_image_features(prepared.path)

    def split(name: str) -> pd.DataFrame:
        return attach_image_features(posts[posts["split"] == name].reset_index(drop=True), features)

    train, val, test = split("train"), split("val"), split("test")
    train_known = train[train["poi"].isin(known_pois)].reset_index(drop=True)
    val_known = val[val["poi"].isin(known_pois)].reset_index(drop=True)
    if train_known.empty:
        raise PostlocError(f"{prepared_dir}: no training post is left once {', '.join(left_out)} are removed")
    test = test[test["poi"].isin(known_pois) | test["poi"].isin(left_out)].reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    # no run folder: nothing of the fit is kept but the model (progress: the model's own default)
    model.fit(train_known, val_known, classes=known_pois, options=FitOptions())
    seconds = time.perf_counter() - started
    from postloc.training.api import fit_calibration  # here: the CLI imports this module to build its parser

    calibration = fit_calibration(model, val_known)
    temperature = float(calibration["temperature"])

    raw = np.asarray(model.predict_proba(test), dtype=float)
    proba = apply_temperature(raw, temperature)
    y = label_indices(test["poi"], model.classes_)
    known = y >= 0
    confidence = proba.max(axis=1)
    raw_confidence = raw.max(axis=1)
    both = bool(known.any() and (~known).any())
    rejection = []
    for keep in KEEP_KNOWN:
        threshold = float(np.quantile(confidence[known], 1 - keep)) if known.any() else float("nan")
        rejection.append(
            {
                "keep_known": keep,
                "min_confidence": threshold,
                "novel_rejected": float((confidence[~known] < threshold).mean()) if (~known).any() else None,
            }
        )
    names = prepared.pois.assign(poi=prepared.pois["poi"].astype(str)).set_index("poi")["name"]
    counts = posts.groupby("poi").size()
    report: dict[str, Any] = {
        "postloc_open_set": 1,
        "model": run.model,
        "config": run.to_dict(),
        "data": str(prepared_dir.resolve()),
        "synthetic": prepared.synthetic,
        "seed": config.seed,
        "left_out": [
            {
                "poi": p,
                "name": "" if pd.isna(names.get(p, "")) else str(names.get(p, "")),
                "posts": int(counts.get(p, 0)),
                "test_posts": int((test["poi"] == p).sum()),
            }
            for p in left_out
        ],
        "known_pois": len(known_pois),
        "train_posts": len(train_known),
        "val_posts": len(val_known),
        "test_known_posts": int(known.sum()),
        "test_novel_posts": int((~known).sum()),
        "temperature": temperature,
        "calibration_note": calibration.get("reason"),
        "auroc": float(roc_auc_score(known, confidence)) if both else None,
        "auroc_uncalibrated": float(roc_auc_score(known, raw_confidence)) if both else None,
        "known_accuracy": float((proba[known].argmax(axis=1) == y[known]).mean()) if known.any() else None,
        "known_ece": expected_calibration_error(y[known], proba[known]) if known.any() else None,
        "mean_confidence_known": float(confidence[known].mean()) if known.any() else None,
        "mean_confidence_novel": float(confidence[~known].mean()) if (~known).any() else None,
        "rejection": rejection,
        "train_seconds": round(seconds, 3),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report = _clean(report)
    _plot(confidence[known], confidence[~known], out / PLOT, run.model)
    with atomic_open(out / REPORT_MD) as handle:
        handle.write(markdown(report))
    with atomic_open(out / REPORT) as handle:  # last: the marker says the folder is complete and ours
        handle.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report for people: which POIs were left out, AUROC, accuracy, rejection at fixed recall."""
    label = " (SYNTHETIC DATA)" if report.get("synthetic") else ""
    lines = [
        f"# Open set: {md_text(report['model'])}{label}",
        "",
        f"Left out of training (seed {report['seed']}): "
        + ", ".join(
            f"{md_text(p['poi'])} {md_text(repr(p['name']))} ({p['posts']} posts, {p['test_posts']} test)"
            for p in report["left_out"]
        ),
        "",
        f"Trained on {report['known_pois']} known POIs ({report['train_posts']} train / {report['val_posts']} val "
        f"posts); test: {report['test_known_posts']} known and {report['test_novel_posts']} novel posts. "
        f"Temperature {report['temperature']:.3f}.",
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    for key in (
        "auroc",
        "auroc_uncalibrated",
        "known_accuracy",
        "known_ece",
        "mean_confidence_known",
        "mean_confidence_novel",
    ):
        lines.append(f"| {key} | {_fmt(report.get(key))} |")
    lines += ["", "| keep known | min confidence | novel rejected |", "|---:|---:|---:|"]
    for row in report["rejection"]:
        lines.append(f"| {row['keep_known']:.0%} | {_fmt(row['min_confidence'])} | {_fmt(row['novel_rejected'])} |")
    return "\n".join(lines) + "\n"


def _plot(known: np.ndarray, novel: np.ndarray, path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    bins = np.linspace(0, 1, 21).tolist()
    if len(known):
        ax.hist(known, bins=bins, density=True, alpha=0.6, label=f"known POIs ({len(known)})")
    if len(novel):
        ax.hist(novel, bins=bins, density=True, alpha=0.6, label=f"left-out POIs ({len(novel)})")
    ax.set_xlabel("calibrated confidence (top POI probability)")
    ax.set_ylabel("density")
    ax.set_title(f"open set: {model}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
