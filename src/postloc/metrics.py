"""Every evaluation number in one place: accuracy, Acc@k, distance errors, macro-F1, per-POI table.

The paper reports Acc and "Mean" (the error between the predicted cluster centre and the
ground-truth location). Ground truth here is the post's own coordinates when the post has them
and otherwise the centre of its true POI; the two give different numbers (a correct prediction
has 0 km error against the centre, but some hundred metres against the post), so every report
names which one it used in ``distance_reference``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from postloc.data.labels import label_indices
from postloc.data.pois import EARTH_RADIUS_KM
from postloc.data.schema import is_missing
from postloc.io.escape import csv_guard_columns, md_text

REFERENCE_POST = "post coordinates"
REFERENCE_CENTRE = "POI centre"


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (vectorised; NaN in, NaN out).

    The haversine form stays accurate for the sub-kilometre distances between POIs of one
    city, where the spherical law of cosines loses digits.
    """
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    return float((truth == predicted).mean()) if len(truth) else float("nan")


def top_k_accuracy(y_true: ArrayLike, proba: np.ndarray, k: int) -> float:
    """Share of posts whose true class is among the ``k`` most probable (ties: lower index first)."""
    truth = np.asarray(y_true)
    if len(truth) == 0:
        return float("nan")
    top = top_k_indices(proba, k)
    return float((top == truth[:, None]).any(axis=1).mean())


def top_k_indices(proba: np.ndarray, k: int) -> np.ndarray:
    """Class indices by decreasing probability, ``k`` per row; a stable sort keeps ties deterministic."""
    proba = np.asarray(proba)
    k = min(k, proba.shape[1])
    return np.argsort(-proba, axis=1, kind="stable")[:, :k]


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> float:
    """Unweighted mean F1 over the classes present in truth or prediction (so rare POIs count as much as big ones)."""
    from sklearn.metrics import f1_score

    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    labels = sorted(set(truth[truth >= 0].tolist()) | set(predicted.tolist()))
    if not labels:
        return float("nan")
    return float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0))


def expected_calibration_error(y_true: ArrayLike, proba: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence: the post-weighted mean |accuracy - confidence| over ``bins`` equal-width bins.

    15 equal-width bins as in Guo et al. (2017), so figures compare with the calibration
    literature. Posts whose truth is outside the classes (-1) count as wrong.
    """
    truth = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if len(truth) == 0 or proba.shape[1] == 0:
        return float("nan")
    return ece_of_confidences(proba.max(axis=1), proba.argmax(axis=1) == truth, bins)


def ece_of_confidences(confidence: ArrayLike, correct: ArrayLike, bins: int = 15) -> float:
    """The ECE of :func:`expected_calibration_error` from each post's top confidence and whether it was right."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if not len(confidence):
        return float("nan")
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(confidence))


def reliability_bins(y_true: ArrayLike, proba: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Per confidence bin: posts, mean confidence and accuracy (the reliability diagram's data)."""
    truth = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    confidence = proba.max(axis=1) if len(truth) else np.zeros(0)
    correct = (proba.argmax(axis=1) == truth) if len(truth) else np.zeros(0, dtype=bool)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "posts": n,
                "confidence": float(confidence[inside].mean()) if n else float("nan"),
                "accuracy": float(correct[inside].mean()) if n else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def accuracy_at_coverage(y_true: ArrayLike, proba: np.ndarray, coverage: float) -> float:
    """Accuracy on the ``coverage`` share of posts the model is most confident about (selective prediction).

    The posts are ranked by top-class probability (ties in input order) and the first
    ``ceil(coverage * n)`` kept: what a user who abstains on the rest would see.
    """
    truth = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if len(truth) == 0 or not 0 < coverage <= 1:
        return float("nan")
    keep = max(1, int(np.ceil(coverage * len(truth))))
    order = np.argsort(-proba.max(axis=1), kind="stable")[:keep]
    return float((proba[order].argmax(axis=1) == truth[order]).mean())


def coverage_curve(y_true: ArrayLike, proba: np.ndarray, points: int = 50) -> pd.DataFrame:
    """Accuracy against coverage from 1/points to 1 (the accuracy-coverage curve's data)."""
    coverages = np.linspace(1.0 / points, 1.0, points)
    return pd.DataFrame(
        {"coverage": coverages, "accuracy": [accuracy_at_coverage(y_true, proba, float(c)) for c in coverages]}
    )


#: the coverages of the report's table (share of posts answered, most confident first)
COVERAGES = (1.0, 0.8, 0.5, 0.2)


def coverage_table(
    y_true: ArrayLike, proba: np.ndarray, coverages: Sequence[float] = COVERAGES
) -> list[dict[str, Any]]:
    """Per coverage: posts kept, their accuracy and the lowest confidence kept (the ``min_confidence`` giving it)."""
    truth = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    confidence = np.sort(proba.max(axis=1))[::-1] if len(truth) else np.zeros(0)
    rows = []
    for c in coverages:
        keep = max(1, int(np.ceil(c * len(truth)))) if len(truth) else 0
        rows.append(
            {
                "coverage": float(c),
                "posts": keep,
                "accuracy": accuracy_at_coverage(truth, proba, float(c)),
                "min_confidence": float(confidence[keep - 1]) if keep else float("nan"),
            }
        )
    return rows


def calibration_curves(y_true: ArrayLike, proba: np.ndarray, uncalibrated: np.ndarray | None) -> dict[str, Any]:
    """The reliability diagram's and the accuracy-coverage curve's data, calibrated and (if given) not."""
    sets = {"calibrated": proba} if uncalibrated is None else {"uncalibrated": uncalibrated, "calibrated": proba}
    return {
        "reliability": {
            name: reliability_bins(y_true, p)[["lower", "upper", "posts", "confidence", "accuracy"]].to_dict(
                orient="list"
            )
            for name, p in sets.items()
        },
        "coverage_curve": {
            name: coverage_curve(y_true, p, points=20).to_dict(orient="list") for name, p in sets.items()
        },
    }


def distance_reference(has_post_coordinates: np.ndarray) -> str:
    """Which ground truth the distances used, in words (see the module docstring)."""
    has = np.asarray(has_post_coordinates, dtype=bool)
    n_post, n_centre = int(has.sum()), int((~has).sum())
    if n_centre == 0:
        return REFERENCE_POST
    if n_post == 0:
        return REFERENCE_CENTRE
    return f"mixed ({n_post} post / {n_centre} centre)"


def truth_coordinates(
    posts: pd.DataFrame, poi_lat: pd.Series, poi_lon: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lat, lon, from_post)``: the post's own coordinates when known, else its POI's centre."""
    lat = (
        pd.to_numeric(posts["lat"], errors="coerce").to_numpy(dtype=float)
        if "lat" in posts
        else np.full(len(posts), np.nan)
    )
    lon = (
        pd.to_numeric(posts["lon"], errors="coerce").to_numpy(dtype=float)
        if "lon" in posts
        else np.full(len(posts), np.nan)
    )
    from_post = ~(np.isnan(lat) | np.isnan(lon))
    centre_lat = posts["poi"].map(poi_lat).to_numpy(dtype=float)
    centre_lon = posts["poi"].map(poi_lon).to_numpy(dtype=float)
    return np.where(from_post, lat, centre_lat), np.where(from_post, lon, centre_lon), from_post


def confusion(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``; truths outside the class list (-1) are left out."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    ok = truth >= 0
    np.add.at(matrix, (truth[ok], predicted[ok]), 1)
    return matrix


def post_errors(
    proba: np.ndarray, classes: Sequence[str], posts: pd.DataFrame, pois: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per post: true class index (-1: outside ``classes``), predicted index, km from the predicted
    POI's centre to the truth (NaN when unknown), and whether the truth was the post's own coordinates.

    The one place both :func:`evaluate` and the experiments' per-post outcomes get them from.
    """
    classes = [str(c) for c in classes]
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (len(posts), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected {(len(posts), len(classes))}")
    y_true = label_indices(posts["poi"], classes)
    y_pred = proba.argmax(axis=1) if len(classes) else np.zeros(len(posts), dtype=np.int64)
    table = pois.set_index(pois["poi"].astype(str))
    poi_lat = pd.to_numeric(table["lat"], errors="coerce")
    poi_lon = pd.to_numeric(table["lon"], errors="coerce")
    truth_lat, truth_lon, from_post = truth_coordinates(posts.assign(poi=posts["poi"].astype(str)), poi_lat, poi_lon)
    pred_lat = poi_lat.reindex(classes).to_numpy(dtype=float)[y_pred] if len(posts) else np.zeros(0)
    pred_lon = poi_lon.reindex(classes).to_numpy(dtype=float)[y_pred] if len(posts) else np.zeros(0)
    return y_true, y_pred, haversine_km(pred_lat, pred_lon, truth_lat, truth_lon), from_post


def evaluate(
    proba: np.ndarray,
    classes: Sequence[str],
    posts: pd.DataFrame,
    pois: pd.DataFrame,
    *,
    ks: Sequence[int] = (3, 5),
    within_km: float = 1.0,
    uncalibrated: np.ndarray | None = None,
) -> dict[str, Any]:
    """The full report for predicted probabilities ``proba[n, len(classes)]`` of ``posts``.

    ``pois`` is the POI table (``poi, lat, lon[, name]``) giving centres and names.
    ``uncalibrated``: the model's probabilities before calibration, when ``proba`` is calibrated;
    the report then also has ``ece_uncalibrated`` and both curves (``calibration_curves``).
    Returns a JSON-ready dict; ``report["per_poi"]`` is a list of rows and
    ``report["confusion"]`` the matrix as nested lists.
    """
    classes = list(classes)
    proba = np.asarray(proba, dtype=float)
    y_true, y_pred, km, from_post = post_errors(proba, classes, posts, pois)
    table = pois.set_index(pois["poi"].astype(str))
    known = ~np.isnan(km)

    report: dict[str, Any] = {
        "posts": int(len(posts)),
        "classes": len(classes),
        "unknown_truth": int((y_true < 0).sum()),
        "accuracy": accuracy(y_true, y_pred),
        **{f"acc@{k}": top_k_accuracy(y_true, proba, k) for k in ks},
        "macro_f1": macro_f1(y_true, y_pred, len(classes)),
        "mean_km": float(km[known].mean()) if known.any() else float("nan"),
        "median_km": float(np.median(km[known])) if known.any() else float("nan"),
        f"acc@{within_km:g}km": float((km[known] <= within_km).mean()) if known.any() else float("nan"),
        "ece": expected_calibration_error(y_true, proba),
        **(
            {"ece_uncalibrated": expected_calibration_error(y_true, np.asarray(uncalibrated, dtype=float))}
            if uncalibrated is not None
            else {}
        ),
        "acc@cov50": accuracy_at_coverage(y_true, proba, 0.5),
        "distance_reference": distance_reference(from_post[known]),
        "distance_posts": int(known.sum()),
    }
    report["per_poi"] = per_poi_table(y_true, y_pred, km, classes, table).to_dict(orient="records")
    report["confusion"] = confusion(y_true, y_pred, len(classes)).tolist()
    report["labels"] = classes
    report["coverage"] = coverage_table(y_true, proba)
    report["calibration_curves"] = calibration_curves(
        y_true, proba, None if uncalibrated is None else np.asarray(uncalibrated, dtype=float)
    )
    return _clean(report)


def per_poi_table(
    y_true: np.ndarray, y_pred: np.ndarray, km: np.ndarray, classes: Sequence[str], pois: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per POI: support, precision, recall, F1 and mean error of its posts."""
    names = pois["name"].fillna("") if pois is not None and "name" in pois else None
    rows = []
    for i, poi in enumerate(classes):
        truth, predicted = y_true == i, y_pred == i
        tp = int((truth & predicted).sum())
        precision = tp / predicted.sum() if predicted.sum() else 0.0
        recall = tp / truth.sum() if truth.sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        errors = km[truth & ~np.isnan(km)]
        name = str(names.loc[poi]) if names is not None and poi in names.index else ""
        rows.append(
            {
                "poi": poi,
                "name": name,
                "support": int(truth.sum()),
                "predicted": int(predicted.sum()),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "mean_km": float(errors.mean()) if len(errors) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["poi", "name", "support", "predicted", "precision", "recall", "f1", "mean_km"])


def report_markdown(report: dict[str, Any], title: str = "Evaluation") -> str:
    """A human summary of :func:`evaluate`'s report (headline numbers, then the per-POI table).

    The title (it names the data folder) and the POI ids and names are data: escaped as Markdown text."""
    named = ("accuracy", "macro_f1", "ece", "ece_uncalibrated", "temperature", "mean_km", "median_km")
    keys = [k for k in report if k.startswith("acc") or k in named]
    lines = [
        f"# {md_text(title)}",
        "",
        f"Posts: {report['posts']:,}; classes: {report['classes']}; "
        f"distances against: **{report['distance_reference']}** ({report['distance_posts']:,} posts)",
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    for key in keys:
        lines.append(f"| {key} | {_fmt(report[key])} |")
    if report.get("coverage"):
        lines += [
            "",
            "Selective prediction: answer only the most confident posts (calibrated confidence).",
            "",
            "| coverage | posts | accuracy | min confidence |",
            "|---:|---:|---:|---:|",
        ]
        for row in report["coverage"]:
            lines.append(
                f"| {row['coverage']:.0%} | {row['posts']} | {_fmt(row['accuracy'])} | {_fmt(row['min_confidence'])} |"
            )
    lines += [
        "",
        "| POI | name | support | predicted | precision | recall | F1 | mean km |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.get("per_poi", []):
        lines.append(
            f"| {md_text(row['poi'])} | {md_text(row['name'])} | {row['support']} | {row['predicted']} | "
            f"{_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['f1'])} | {_fmt(row['mean_km'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (rows: truth), so small POIs are as readable as large ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted POI")
    ax.set_ylabel("true POI")
    ax.set_title(title or "confusion (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(curves: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, one line per curve set, and the diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for (name, bins), style in zip(curves.items(), ("o--", "s-"), strict=False):
        points = [(c, a) for c, a in zip(bins["confidence"], bins["accuracy"], strict=True) if c is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, style, label=name)
    _accuracy_axes(ax, "confidence (top POI probability)", 1, title or "reliability", "upper left")
    return _save(fig, plt, path)


def plot_coverage(curves: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Accuracy against coverage (the most confident share of posts answered), one line per curve set."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (name, curve), style in zip(curves.items(), ("--", "-"), strict=False):
        ax.plot(curve["coverage"], [a if a is not None else float("nan") for a in curve["accuracy"]], style, label=name)
    _accuracy_axes(ax, "coverage (share of posts answered)", 1.02, title or "accuracy-coverage", "lower left")
    return _save(fig, plt, path)


def _accuracy_axes(ax: Any, xlabel: str, top: float, title: str, legend: str) -> None:
    """Accuracy (0 to ``top``) against a share (0 to 1): the frame of the reliability and coverage plots."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc=legend)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: str | Path) -> Path:
    """The figure as a PNG written atomically (a reader never sees half a file)."""
    from postloc.io.atomic import atomic_path

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], out_dir: str | Path, stem: str, title: str) -> dict[str, Path]:
    """``<stem>.json``, ``.md``, ``-per-poi.csv``, ``-confusion.png``, and with calibration curves in the report
    ``-reliability.png`` and ``-coverage.png``, in ``out_dir``."""
    from postloc.io.atomic import atomic_open

    out_dir = Path(out_dir)
    paths = {
        "json": out_dir / f"{stem}.json",
        "md": out_dir / f"{stem}.md",
        "csv": out_dir / f"{stem}-per-poi.csv",
        "png": out_dir / f"{stem}-confusion.png",
    }
    with atomic_open(paths["json"]) as handle:
        handle.write(json.dumps(report, indent=2, allow_nan=False) + "\n")
    with atomic_open(paths["md"]) as handle:
        handle.write(report_markdown(report, title))
    with atomic_open(paths["csv"]) as handle:
        per_poi = csv_guard_columns(pd.DataFrame(report["per_poi"]))  # ids, names: no formulas; numbers stay
        per_poi.to_csv(handle, index=False, lineterminator="\n")
    plot_confusion(report["confusion"], report["labels"], paths["png"], title)
    curves = report.get("calibration_curves")
    if curves:
        paths["reliability"] = plot_reliability(curves["reliability"], out_dir / f"{stem}-reliability.png", title)
        paths["coverage"] = plot_coverage(curves["coverage_curve"], out_dir / f"{stem}-coverage.png", title)
    return paths


def _fmt(value: Any) -> str:
    if is_missing(value):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _clean(value: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, so the report is strict JSON."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
