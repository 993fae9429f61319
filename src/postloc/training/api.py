"""``train`` and ``evaluate``: a prepared folder in, a self-describing run folder out.

Run folder layout::

    RUN/config.json        RunConfig + which prepared data (path, fingerprint, synthetic flag); the
                           run's manifest: the SHA-256 of data.json, density.json and calibration.json, and its own
                           (loading refuses an edited one; a run of an older version, without them,
                           loads with a warning: io.model_files.verify_run_files)
    RUN/data.json          POI table (names, centres) and the prepared hashtag vocabulary,
                           so prediction needs only the run folder
    RUN/density.json       where the training posts were made: post counts on a grid (cells of one
                           person left out; training.density), the served page's map background
    RUN/checkpoints/epoch-NNNN/   newest epoch checkpoints (neural models)
    RUN/best/              the best-on-validation model (loadable with postloc.models.load_model)
    RUN/metrics.csv, metrics.jsonl, curves.png   per-epoch log and curves
    RUN/run.json           summary written when training ends (status, epochs, timings); after a
                           failure, its status ("diverged" or "failed") and reason: a plain retry
                           then starts the run again, and ``--resume`` of a diverged run is refused
    RUN/calibration.json   the temperature fitted on the val split after the best model is chosen
                           (with the val ECE before/after and how many val posts); prediction and
                           evaluate apply it. A run without it (older versions) predicts with T = 1
    RUN/eval-<split>.json/.md/-per-poi.csv/-confusion.png/-reliability.png/-coverage.png
                           written by evaluate
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.image_features import attach_image_features, load_image_features
from postloc.data.modalities import available_modalities, unmet_needs
from postloc.data.prepared import PreparedData, load_prepared
from postloc.errors import DiskFullError, PostlocError
from postloc.io.atomic import write_folder_atomically
from postloc.io.escape import csv_unguard
from postloc.io.inputs import read_small_json
from postloc.io.locks import folder_lock
from postloc.io.model_files import RUN_MANIFEST, record_run_files, verify_run_files
from postloc.io.ownership import RUN, check_output_folder
from postloc.metrics import evaluate as evaluate_predictions
from postloc.metrics import expected_calibration_error, write_report
from postloc.models.calibration import (
    apply_temperature,
    fit_temperature,
    negative_log_likelihood,
    read_calibration,
    write_calibration,
)
from postloc.models.registry import load_model
from postloc.nn import checkpoints as ck
from postloc.nn import distributed as dist
from postloc.nn.trainer import BEST, DivergedError, json_safe, write_metrics
from postloc.training.config import RunConfig, read_run_config
from postloc.training.density import DENSITY_FILE, density_grid, extent

RUN_CONFIG = RUN_MANIFEST
DATA_INFO = "data.json"
RUN_INFO = "run.json"
SYNTHETIC_LABEL = "SYNTHETIC DATA"
#: ``run.json`` statuses of a run whose training raised: a plain retry may start it again
FAILED, DIVERGED = "failed", "diverged"


@dataclass
class TrainResult:
    run_dir: Path
    model: Any
    summary: dict[str, Any]


def train(
    prepared_dir: str | Path,
    out_dir: str | Path,
    config: RunConfig | None = None,
    *,
    resume: bool = False,
    callbacks: Iterable[Any] = (),
    progress: bool | None = None,
    backend: str | None = None,
    executor: Any = None,
) -> TrainResult:
    """Train ``config.model`` on a prepared folder's train split (val split for early stopping).

    ``resume=True`` continues an interrupted run in ``out_dir`` from its newest checkpoint; the
    model and its params must be those the run started with (trainer settings such as
    ``epochs`` may change, e.g. to train longer).

    Launched by ``torchrun``, every process calls this and they train one model data-parallel
    (``backend``: ``gloo``, ``nccl`` or None for NCCL when CUDA is available, else gloo); rank 0
    alone reads and writes ``out_dir``. Every rank returns the same trained model.

    ``executor`` runs the independent regressions of a model that has them (``stack``; its
    ``fit_options``), e.g. :class:`postloc.scale.ray_fits.RayExecutor` for ``--engine ray``.
    """
    with dist.session(backend) as ctx:
        main = ctx is None or ctx.is_main
        # one writer per run folder for the whole command (docs/reliability.md, "concurrent writers")
        with folder_lock(out_dir) if main else contextlib.nullcontext():
            return _train(prepared_dir, out_dir, config or RunConfig(), resume, callbacks, progress, ctx, executor)


def _train(
    prepared_dir: str | Path,
    out_dir: str | Path,
    config: RunConfig,
    resume: bool,
    callbacks: Iterable[Any],
    progress: bool | None,
    ctx: dist.DistContext | None,
    executor: Any = None,
) -> TrainResult:
    from postloc.models.registry import create_model

    out = Path(out_dir)
    main = ctx is None or ctx.is_main
    prepared = load_prepared(prepared_dir)
    model = create_model(config.model, config.params, config.trainer)  # bad params fail before any file is written
    if executor is not None and "executor" not in model.fit_options:
        raise PostlocError(
            f"--engine ray runs the independent regressions of a model that has them (stack); "
            f"model {config.model!r} has none: train it with the local engine"
        )
    if ctx is not None and not model.epoch_based:
        raise PostlocError(
            f"model {config.model!r} is not trained epoch by epoch, so it has nothing to run "
            "data-parallel; train it without torchrun"
        )
    missing = unmet_needs(model.requires, available_modalities(prepared.path))
    if missing:  # before any file is written: a retry must not find a half-made run in the way
        raise PostlocError(
            f"model {config.model!r} needs {' and '.join(n.replace('|', ' or ') for n in missing)}, which "
            f"{prepared.path} does not have"
            + (" (run `postloc images` on it first)" if "image" in missing else "")
            + "; see `postloc train --list-models`"
        )
    dist.on_main(lambda: _check_run_folder(out, config, resume, prepared.path), ctx)
    fresh = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    try:
        return _fit_and_summarise(
            out, prepared_dir, prepared, config, model, resume, callbacks, progress, ctx, executor
        )
    except BaseException as error:
        if main:
            _after_failure(out, error, fresh and not resume)
        raise


def _after_failure(out: Path, error: BaseException, fresh: bool) -> None:
    """Leave the run folder so that a plain retry is never refused without a reason.

    A diverged run keeps its files (``metrics.jsonl`` shows the epoch) with ``run.json`` saying
    so: resuming would diverge again, a plain retry starts over (:func:`_check_run_folder`). A fresh
    run that failed before its first checkpoint leaves nothing. Any other error after that marks
    the run failed, so that both a retry and ``--resume`` work; an interruption (Ctrl-C, a kill)
    or a full disk leaves a run to resume as it was, and ``train`` without ``--resume`` says so.
    """
    if isinstance(error, DivergedError):
        _mark_failed(out, DIVERGED, error)
        return
    if fresh:
        _forget_failed_start(out)
    if isinstance(error, Exception) and not isinstance(error, DiskFullError):
        _mark_failed(out, FAILED, error)


def _mark_failed(out: Path, status: str, error: BaseException) -> None:
    """``run.json`` with the failure, when the folder is a run; best effort (the disk may be full)."""
    if not (out / RUN_CONFIG).is_file():
        return
    record = {"status": status, "reason": str(error), "finished": datetime.now(UTC).isoformat(timespec="seconds")}
    with contextlib.suppress(OSError, PostlocError):
        _write_json(out / RUN_INFO, record)


def _forget_failed_start(out: Path) -> None:
    """A fresh run that failed before its first checkpoint leaves nothing, so a plain retry works.

    Only this command's own files are there (the folder was new or empty, and the lock is held);
    once a checkpoint or ``best/`` exists the run is resumable and is left as it is.
    """
    if not out.is_dir() or ck.latest_checkpoint(out) is not None or (out / BEST).exists():
        return
    _empty_folder(out)
    with contextlib.suppress(OSError):
        out.rmdir()


def _empty_folder(out: Path) -> None:
    """Remove what ``out`` holds (a run folder of postloc's own, which the caller made sure of)."""
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _fit_and_summarise(
    out: Path,
    prepared_dir: str | Path,
    prepared: PreparedData,
    config: RunConfig,
    model: Any,
    resume: bool,
    callbacks: Iterable[Any],
    progress: bool | None,
    ctx: dist.DistContext | None,
    executor: Any = None,
) -> TrainResult:
    main = ctx is None or ctx.is_main
    if main:
        _start_run_folder(out, prepared_dir, prepared, config)
    features = load_image_features(prepared.path)
    train_df = attach_image_features(prepared.split("train"), features)
    val_df = attach_image_features(prepared.split("val"), features)

    with contextlib.ExitStack() as stack:
        run_dir: Path | None = out if model.epoch_based else None
        if ctx is not None and not main:
            # The other ranks never touch the run folder: they resume from a private copy of
            # rank 0's newest checkpoint and write nothing (the trainer checks the rank too).
            mirror = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="postloc-rank-")))
            run_dir = mirror
            if resume:
                dist.mirror_latest_checkpoint(out, mirror, ctx)
        elif ctx is not None and resume:
            dist.mirror_latest_checkpoint(out, out, ctx)  # rank 0's half of the exchange
        # only models trained in epochs take the run's arguments (see postloc.models.base)
        run_args: dict[str, Any] = (
            {"run_dir": run_dir, "resume": resume, "callbacks": callbacks, "progress": progress}
            if model.epoch_based
            else {}
        )
        if not model.epoch_based:
            options = {
                "progress": progress if progress is not None else config.trainer.progress,
                "executor": executor,
            }
            run_args = {key: value for key, value in options.items() if key in model.fit_options}
        started = time.perf_counter()
        model.fit(train_df, val_df, classes=prepared.poi_names, **run_args)
    seconds = time.perf_counter() - started
    if model.epoch_based:
        state = model.state
        history = state.history
        summary = {
            "epochs_run": state.epoch,
            "best_epoch": state.best_epoch,
            "stop_reason": state.stop_reason,
            "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])) if history else None,
        }
    else:
        write_folder_atomically(out / BEST, model.save)
        row = {"epoch": 1, "seconds": round(seconds, 3)}
        if len(val_df):
            proba = model.predict_proba(val_df)
            index = {c: i for i, c in enumerate(model.classes_)}
            y = np.array([index.get(str(p), -1) for p in val_df["poi"]])
            ok = y >= 0
            row.update(
                val_loss=float(-np.log(np.clip(proba[ok, y[ok]], 1e-12, 1)).mean()),
                val_acc=float((proba.argmax(axis=1) == y).mean()),
            )
        write_metrics(out, [row])
        summary = {"epochs_run": 1, "best_epoch": 1, "stop_reason": "not epoch-based", "seconds_per_epoch": seconds}
        history = [row]
    last = [r for r in history if r.get("best")] or history
    summary.update(
        {
            "status": "complete",
            "model": config.model,
            "train_posts": len(train_df),
            "val_posts": len(val_df),
            "classes": len(model.classes_),
            "seconds": round(seconds, 3),
            "val_acc": last[-1].get("val_acc") if last else None,
            "val_in_training": bool(getattr(model, "trains_on_val", False)),
            "val_loss": last[-1].get("val_loss") if last else None,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "synthetic": bool(prepared.manifest.get("synthetic", False)),
        }
    )
    if hasattr(model, "describe"):
        summary["model_info"] = {k: v for k, v in model.describe().items() if k != "config"}
    if ctx is not None:
        summary["processes"] = ctx.world_size
        summary["backend"] = ctx.backend
    if main:
        calibration = fit_calibration(load_model(out / BEST) if model.epoch_based else model, val_df)
        write_calibration(out, calibration)
        summary["temperature"] = calibration["temperature"]
        _write_json(out / RUN_INFO, summary)
    return TrainResult(run_dir=out, model=model, summary=summary)


def _start_run_folder(out: Path, prepared_dir: str | Path, prepared: PreparedData, config: RunConfig) -> None:
    """Write the run's manifest (``config.json``) and ``data.json``, and record the latter's digest.

    A resumed run keeps the digests recorded before (its ``calibration.json``) until it rewrites them.
    """
    out.mkdir(parents=True, exist_ok=True)
    recorded = _recorded_files(out)
    manifest = {
        "config": config.to_dict(),
        "data": str(Path(prepared_dir).resolve()),
        "data_sha256": prepared.manifest.get("input", {}).get("sha256"),
        "synthetic": bool(prepared.manifest.get("synthetic", False)),
    }
    _write_json(out / RUN_CONFIG, {**manifest, "files": recorded} if recorded else manifest)
    _write_json(out / DATA_INFO, data_info(prepared))
    sealed = [DATA_INFO]
    if _write_density(out, prepared):
        sealed.append(DENSITY_FILE)
    record_run_files(out, sealed)


def _write_density(out: Path, prepared: PreparedData) -> bool:
    """``RUN/density.json``: where the training posts were made (the map's background); False without coordinates.

    The extent holds the training posts and every POI centre, so that the served map shows both."""
    train = prepared.split("train")
    if not {"lat", "lon"} <= set(train.columns):
        return False
    lat = pd.to_numeric(train["lat"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(train["lon"], errors="coerce").to_numpy(float)
    pois = prepared.pois
    bounds = extent(
        np.concatenate([lat, pd.to_numeric(pois["lat"], errors="coerce").to_numpy(float)]),
        np.concatenate([lon, pd.to_numeric(pois["lon"], errors="coerce").to_numpy(float)]),
    )
    if bounds is None or not np.isfinite(lat).any():
        return False
    users = train["user"].tolist() if "user" in train else None
    from postloc.io.atomic import atomic_open

    with atomic_open(out / DENSITY_FILE) as handle:  # compact: thousands of [row, col, count] cells
        handle.write(json.dumps(density_grid(lat, lon, users, bounds), separators=(",", ":")) + "\n")
    return True


def _recorded_files(out: Path) -> dict[str, str]:
    """The digests the run's manifest recorded so far (none for a new run or an older version's)."""
    if not (out / RUN_CONFIG).is_file():
        return {}
    with contextlib.suppress(OSError, ValueError, PostlocError):
        files = read_small_json(out / RUN_CONFIG).get("files")
        if isinstance(files, dict):
            return {str(k): str(v) for k, v in files.items()}
    return {}


def fit_calibration(model: Any, val_df: pd.DataFrame) -> dict[str, Any]:
    """Fit the temperature of ``model`` (the chosen best model) on the val posts; the calibration.json content."""
    index = {c: i for i, c in enumerate(model.classes_)}
    y = np.array([index.get(str(p), -1) for p in val_df["poi"]], dtype=np.int64) if len(val_df) else np.zeros(0, int)
    known = int((y >= 0).sum())
    record: dict[str, Any] = {
        "method": "temperature scaling (Guo et al. 2017) on the model's probabilities",
        "fitted_on": "val",
        "val_posts": int(len(val_df)),
        "val_posts_used": known,
    }
    if getattr(model, "calibrates_itself", False):
        return {
            **record,
            "temperature": 1.0,
            "reason": f"{model.name} calibrates itself on out-of-fold training users (and may have trained "
            "on the val posts): T = 1",
        }
    if known == 0:
        reason = "no val posts" if not len(val_df) else "no val post has a POI among the model's classes"
        return {**record, "temperature": 1.0, "reason": f"{reason}: T = 1 (probabilities as the model gives them)"}
    proba = np.asarray(model.predict_proba(val_df), dtype=float)
    temperature = fit_temperature(proba, y)
    calibrated = apply_temperature(proba, temperature)
    return {
        **record,
        "temperature": temperature,
        "val_ece_before": expected_calibration_error(y, proba),
        "val_ece_after": expected_calibration_error(y, calibrated),
        "val_nll_before": negative_log_likelihood(proba, y),
        "val_nll_after": negative_log_likelihood(proba, y, temperature),
        "reason": None,
    }


def evaluate(run_dir: str | Path, split: str = "test", data: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``RUN/best`` on a split, with the run's temperature applied (``RUN/calibration.json``).

    Writes ``eval-<split>.json/.md/-per-poi.csv/-confusion.png/-reliability.png/-coverage.png``
    into the run. ``ece`` is the calibrated ECE, ``ece_uncalibrated`` the model's own; the
    coverage table gives the accuracy on the 100/80/50/20 % most confident posts.
    """
    run = Path(run_dir)
    if not (run / BEST).exists():
        raise PostlocError(f"{run} has no trained model (no best/ folder); train first")
    verify_run_files(run)  # an edited data.json, calibration.json or config.json is refused, naming it
    info = read_small_json(run / RUN_CONFIG) if (run / RUN_CONFIG).exists() else {}
    data = data or info.get("data")
    if data is None:
        raise PostlocError(f"{run}: no prepared data recorded; pass --data")
    try:
        calibration = read_calibration(run)
    except ValueError as error:
        raise PostlocError(str(error)) from None
    temperature = float(calibration["temperature"])
    prepared = load_prepared(data)
    model = load_model(run / BEST)
    posts = attach_image_features(prepared.split(split), load_image_features(prepared.path))
    if posts.empty:
        raise PostlocError(f"{data}: the {split} split is empty")
    started = time.perf_counter()
    raw = model.predict_proba(posts)
    seconds = time.perf_counter() - started
    proba = apply_temperature(raw, temperature)
    report = evaluate_predictions(proba, model.classes_, posts, prepared.pois, uncalibrated=raw)
    synthetic = bool(prepared.manifest.get("synthetic", False))
    report = {
        "split": split,
        "model": model.name,
        "run": str(run),
        "data": str(data),
        "synthetic": synthetic,
        "predict_seconds": round(seconds, 3),
        "temperature": temperature,
        "calibration_note": calibration.get("reason"),
        **report,
    }
    title = f"{model.name} on {Path(str(data)).name}, {split} split" + (f" ({SYNTHETIC_LABEL})" if synthetic else "")
    write_report(report, run, f"eval-{split}", title)
    return report


def data_info(prepared: PreparedData) -> dict[str, Any]:
    """What prediction needs from the prepared folder: POI names and centres, kept hashtags."""
    rows: Iterable[Any] = prepared.pois.itertuples(index=False)  # named tuples: columns as attributes
    pois = [
        {
            "poi": str(r.poi),
            "name": "" if pd.isna(r.name) else str(r.name),
            "lat": None if pd.isna(r.lat) else float(r.lat),
            "lon": None if pd.isna(r.lon) else float(r.lon),
        }
        for r in rows
    ]
    vocabulary = None
    path = prepared.path / "hashtags.csv"
    if path.exists():
        table = pd.read_csv(path, dtype={"hashtag": str}, keep_default_na=False)
        if "kept" in table:
            kept = table["kept"].astype(str).str.lower().isin(["true", "1"])
            vocabulary = sorted(table.loc[kept, "hashtag"].map(csv_unguard).tolist())  # prepare guards formulas
    return {
        "pois": pois,
        "hashtag_vocabulary": vocabulary,
        "min_hashtag_count": prepared.manifest.get("config", {}).get("min_hashtag_count"),
        "synthetic": bool(prepared.manifest.get("synthetic", False)),
    }


def _check_run_folder(out: Path, config: RunConfig, resume: bool, prepared: Path) -> None:
    # never into someone else's folder, the prepared data, or a folder holding it
    check_output_folder(out, RUN, inputs=[prepared])
    started = (out / RUN_CONFIG).exists() or ck.latest_checkpoint(out) is not None
    failure = _failure(out) if started else None
    if resume:
        if not started:
            raise PostlocError(f"nothing to resume in {out}: no config.json there")
        if failure is not None and failure["status"] == DIVERGED:
            raise PostlocError(
                f"{out}: its training {failure['reason']}; resuming would diverge again: "
                f"start it again without --resume (it replaces this run)"
            )
        saved = read_run_config(out)
        if (saved.model, _plain(saved.params)) != (config.model, _plain(config.params)):
            raise PostlocError(
                f"{out} was started with model {saved.model!r} params {dict(saved.params)}; "
                f"resume must use the same (got {config.model!r} {dict(config.params)})"
            )
    elif started and failure is not None:
        _empty_folder(out)  # postloc's own run (checked above), whose training failed: start it again
    elif started:
        raise PostlocError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")


def _failure(out: Path) -> dict[str, str] | None:
    """``run.json``'s status and reason when the run's training failed (see :func:`_mark_failed`), else None."""
    with contextlib.suppress(OSError, ValueError, PostlocError):
        info = read_small_json(out / RUN_INFO) if (out / RUN_INFO).is_file() else None
        if isinstance(info, dict) and info.get("status") in (FAILED, DIVERGED):
            return {"status": str(info["status"]), "reason": str(info.get("reason") or "failed")}
    return None


def _plain(params: Any) -> Any:
    """Params as JSON sees them (tuples become lists), so a saved config compares equal to the original."""
    return json.loads(json.dumps(dict(params), sort_keys=True, default=str))


def _write_json(path: Path, data: Any) -> None:
    from postloc.io.atomic import atomic_open

    with atomic_open(path) as handle:
        handle.write(json.dumps(json_safe(data), indent=2, sort_keys=True, default=str) + "\n")
