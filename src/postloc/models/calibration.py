"""Temperature scaling (Guo et al. 2017) on any model's probabilities, and the run's calibration file.

A model's probabilities are often over- or under-confident. Temperature scaling divides the
log-probabilities by one number ``T`` and renormalises: ``softmax(log p / T)``. ``T > 1`` softens
(less confident), ``T < 1`` sharpens. The most probable POI never changes, only how sure the
model says it is. ``T`` is fitted on the validation split by minimising the negative
log-likelihood, after the best model is chosen (``postloc.training.api.train``), and stored in
``RUN/calibration.json``; prediction and ``evaluate`` apply it. A run without the file (written
before calibration existed) reads as ``T = 1``: its probabilities are used as they are. The file
is sealed: :func:`write_calibration`, its one writer, records its digest in the run's manifest,
and loading a run refuses an edited one (:func:`postloc.io.run_folder.verify_run_files`).

Works on probabilities rather than logits, so every registered model (neural or not) gets it;
probabilities are clipped at :data:`EPS` first, so a hard 0 (e.g. the majority baseline) stays finite.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import ArrayLike

from postloc.errors import PostlocError
from postloc.io.inputs import read_small_json
from postloc.io.run_folder import CALIBRATION, RunFolder

#: probabilities are clipped to at least this before the log
EPS = 1e-12
#: the file in a run folder (named by :mod:`postloc.io.run_folder`)
CALIBRATION_FILE = CALIBRATION
#: ``T`` is searched in this range (log-uniformly)
T_BOUNDS = (0.05, 20.0)


def apply_temperature(proba: ArrayLike, temperature: float) -> np.ndarray:
    """``softmax(log(clip(p, EPS)) / T)`` row by row; ``T = 1`` returns the rows renormalised."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"proba must be 2-dimensional [posts, classes], got shape {p.shape}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if p.size == 0:
        return p.copy()
    logits = np.log(np.clip(p, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def negative_log_likelihood(proba: ArrayLike, y_true: ArrayLike, temperature: float = 1.0) -> float:
    """Mean NLL of the true classes after scaling by ``temperature``; posts with truth -1 are left out."""
    p = np.asarray(proba, dtype=float)
    y = np.asarray(y_true, dtype=np.int64)
    known = y >= 0
    if not known.any():
        return float("nan")
    scaled = apply_temperature(p[known], temperature)
    return float(-np.log(np.clip(scaled[np.arange(int(known.sum())), y[known]], EPS, 1.0)).mean())


def fit_temperature(proba: ArrayLike, y_true: ArrayLike) -> float:
    """The ``T`` in :data:`T_BOUNDS` minimising the NLL of ``proba`` (``[posts, classes]``) on ``y_true``.

    ``y_true`` holds class indices; posts whose truth is outside the classes (-1) are ignored.
    With no usable post, or a single class, returns 1.0 (nothing to fit).
    """
    from scipy.optimize import minimize_scalar

    p = np.asarray(proba, dtype=float)
    y = np.asarray(y_true, dtype=np.int64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"proba has shape {p.shape} but there are {len(y)} labels")
    known = y >= 0
    if not known.any() or p.shape[1] < 2:
        return 1.0
    p, y = p[known], y[known]
    log_p = np.log(np.clip(p, EPS, 1.0))
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = log_p / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float((log_norm - z[rows, y]).mean())

    low, high = (math.log(b) for b in T_BOUNDS)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    best = float(result.x)
    # the bounded search can stop a hair worse than T = 1 on a flat objective: keep 1 then
    return float(math.exp(best)) if nll(best) < nll(0.0) else 1.0


def read_calibration(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/calibration.json`` as a dict; a run without one (or a model folder) gives ``{"temperature": 1.0}``.

    A file that is unreadable or holds no positive finite temperature raises ``ValueError``: a
    run must not silently predict uncalibrated when it says it is calibrated.
    """
    path = RunFolder(run_dir).calibration_path
    if not path.is_file():
        return {"temperature": 1.0, "reason": f"no {CALIBRATION_FILE} (a run from before calibration): T = 1"}
    try:
        data = read_small_json(path)
    except (OSError, ValueError, PostlocError) as error:
        raise ValueError(f"{path}: not readable JSON ({error})") from None
    temperature = data.get("temperature") if isinstance(data, dict) else None
    if not is_temperature(temperature):
        raise ValueError(f"{path}: 'temperature' must be a positive number, got {temperature!r}")
    return {**data, "temperature": float(temperature)}


def write_calibration(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Write ``RUN/calibration.json`` and record its digest in the run's manifest.

    The only way postloc (re)writes the file, after training or in a later calibrate step: a
    calibration written any other way is refused when the run is loaded, as a hand edit is.
    """
    temperature = record.get("temperature")
    if not is_temperature(temperature):
        raise ValueError(f"'temperature' must be a positive number, got {temperature!r}")
    RunFolder(run_dir).write_calibration(record)


def is_temperature(value: Any) -> TypeGuard[float]:
    """A positive finite number (not a bool): what ``calibration.json`` may hold as ``temperature``."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0
