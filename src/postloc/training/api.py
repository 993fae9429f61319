"""``train`` and ``evaluate``: a prepared folder in, a self-describing run folder out.

The run folder's layout, its file names, and how its files are read, written and sealed belong
to :mod:`postloc.io.run_folder`; this module decides what goes in them. ``run.json`` holds the
summary written when training ends (status, epochs, timings); after a failure, its status
("diverged" or "failed") and reason: a plain retry then starts the run again, and ``--resume`` of
a diverged run is refused. ``calibration.json`` holds the temperature fitted on the val split
after the best model is chosen (with the val ECE before/after and how many val posts); prediction
and evaluate apply it. A run without it (older versions) predicts with T = 1.

Every model is fitted the same way (:class:`postloc.models.base.FitOptions` in,
:class:`postloc.models.base.FitResult` out): the run folder, resume, callbacks, progress and the
executor travel in one options object, and the model writes ``best/`` and its metrics there.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.image_features import attach_image_features, load_image_features
from postloc.data.labels import label_indices
from postloc.data.modalities import available_modalities, unmet_needs
from postloc.data.prepared import PreparedData, load_prepared, read_kept_hashtags
from postloc.errors import DiskFullError, PostlocError
from postloc.io.locks import folder_lock
from postloc.io.ownership import RUN, check_output_folder
from postloc.io.run_folder import RunFolder, eval_stem
from postloc.metrics import evaluate as evaluate_predictions
from postloc.metrics import expected_calibration_error, write_report
from postloc.models.base import Estimator, FitOptions, FitResult
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
from postloc.nn.trainer import DivergedError
from postloc.training.config import RunConfig, read_run_config
from postloc.training.density import density_grid, extent

SYNTHETIC_LABEL = "SYNTHETIC DATA"
#: ``run.json`` statuses of a run whose training raised: a plain retry may start it again
FAILED, DIVERGED = "failed", "diverged"


@dataclass
class TrainResult:
    """The run folder, the trained model, ``run.json``'s summary, and the fit's typed record (:class:`FitResult`)."""

    run_dir: Path
    model: Any
    summary: dict[str, Any]
    fit: FitResult | None = None


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
    options = FitOptions(  # the run folder is set where the fit starts (a rank's private copy, or out)
        resume=resume,
        callbacks=tuple(callbacks),
        progress=progress if progress is not None else config.trainer.progress,
        executor=executor,
        data_parallel=ctx is not None,
    )
    model.check_options(options)
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
        return _fit_and_summarise(out, prepared_dir, prepared, config, model, options, ctx)
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
    run = RunFolder(out)
    if not run.manifest_path.is_file():
        return
    record = {"status": status, "reason": str(error), "finished": datetime.now(UTC).isoformat(timespec="seconds")}
    with contextlib.suppress(OSError, PostlocError):
        run.write_run_info(record)


def _forget_failed_start(out: Path) -> None:
    """A fresh run that failed before its first checkpoint leaves nothing, so a plain retry works.

    Only this command's own files are there (the folder was new or empty, and the lock is held);
    once a checkpoint or ``best/`` exists the run is resumable and is left as it is.
    """
    if not out.is_dir() or ck.latest_checkpoint(out) is not None or RunFolder(out).has_model():
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
    model: Estimator,
    options: FitOptions,
    ctx: dist.DistContext | None,
) -> TrainResult:
    main = ctx is None or ctx.is_main
    if main:
        _start_run_folder(out, prepared_dir, prepared, config)
    features = load_image_features(prepared.path)
    train_df = attach_image_features(prepared.split("train"), features)
    val_df = attach_image_features(prepared.split("val"), features)

    with contextlib.ExitStack() as stack:
        run_dir = out
        if ctx is not None and not main:
            # The other ranks never touch the run folder: they resume from a private copy of
            # rank 0's newest checkpoint and write nothing (the trainer checks the rank too).
            mirror = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="postloc-rank-")))
            run_dir = mirror
            if options.resume:
                dist.mirror_latest_checkpoint(out, mirror, ctx)
        elif ctx is not None and options.resume:
            dist.mirror_latest_checkpoint(out, out, ctx)  # rank 0's half of the exchange
        options = replace(options, run_dir=run_dir)
        fit = model.fit(train_df, val_df, classes=prepared.poi_names, options=options).fit_result_
    if fit is None:  # a model that overrides fit itself and records nothing
        raise PostlocError(f"model {config.model!r} recorded no fit result (its fit must set fit_result_)")
    summary = fit.summary()
    summary.update(
        {
            "status": "complete",
            "model": config.model,
            "train_posts": len(train_df),
            "val_posts": len(val_df),
            "classes": len(model.classes_),
            "seconds": round(fit.seconds, 3),
            "val_acc": fit.val_acc,
            "val_in_training": bool(model.trains_on_val),
            "val_loss": fit.val_loss,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "synthetic": prepared.synthetic,
        }
    )
    info = model.describe()
    if info is not None:
        summary["model_info"] = {k: v for k, v in info.items() if k != "config"}
    if ctx is not None:
        summary["processes"] = ctx.world_size
        summary["backend"] = ctx.backend
    if main:
        calibration = fit_calibration(model, val_df)  # the model as RUN/best holds it (see FitOptions)
        write_calibration(out, calibration)
        summary["temperature"] = calibration["temperature"]
        RunFolder(out).write_run_info(summary)
    return TrainResult(run_dir=out, model=model, summary=summary, fit=fit)


def _start_run_folder(out: Path, prepared_dir: str | Path, prepared: PreparedData, config: RunConfig) -> None:
    """Write the run's manifest (``config.json``) and ``data.json``, and record the latter's digest.

    A resumed run keeps the digests recorded before (its ``calibration.json``) until it rewrites them.
    """
    out.mkdir(parents=True, exist_ok=True)
    run = RunFolder(out)
    run.write_manifest(
        {
            "config": config.to_dict(),
            "data": str(Path(prepared_dir).resolve()),
            "data_sha256": prepared.manifest.get("input", {}).get("sha256"),
            "synthetic": prepared.synthetic,
        }
    )
    run.write_data(data_info(prepared))
    sealed = [run.data_path.name]
    grid = _density(prepared)
    if grid is not None:
        run.write_density(grid)
        sealed.append(run.density_path.name)
    run.seal(sealed)


def _density(prepared: PreparedData) -> dict[str, Any] | None:
    """Where the training posts were made (``RUN/density.json``, the map's background); None without coordinates.

    The extent holds the training posts and every POI centre, so that the served map shows both."""
    train = prepared.split("train")
    if not {"lat", "lon"} <= set(train.columns):
        return None
    lat = pd.to_numeric(train["lat"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(train["lon"], errors="coerce").to_numpy(float)
    pois = prepared.pois
    bounds = extent(
        np.concatenate([lat, pd.to_numeric(pois["lat"], errors="coerce").to_numpy(float)]),
        np.concatenate([lon, pd.to_numeric(pois["lon"], errors="coerce").to_numpy(float)]),
    )
    if bounds is None or not np.isfinite(lat).any():
        return None
    users = train["user"].tolist() if "user" in train else None
    return density_grid(lat, lon, users, bounds)


def fit_calibration(model: Estimator, val_df: pd.DataFrame) -> dict[str, Any]:
    """Fit the temperature of ``model`` (the chosen best model) on the val posts; the calibration.json content."""
    y = label_indices(val_df["poi"], model.classes_) if len(val_df) else np.zeros(0, int)
    known = int((y >= 0).sum())
    record: dict[str, Any] = {
        "method": "temperature scaling (Guo et al. 2017) on the model's probabilities",
        "fitted_on": "val",
        "val_posts": int(len(val_df)),
        "val_posts_used": known,
    }
    if model.calibrates_itself:
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
    folder = RunFolder(run)
    if not folder.has_model():
        raise PostlocError(f"{run} has no trained model (no best/ folder); train first")
    folder.verify()  # an edited data.json, calibration.json or config.json is refused, naming it
    info = folder.read_manifest() if folder.is_started() else {}
    data = data or info.get("data")
    if data is None:
        raise PostlocError(f"{run}: no prepared data recorded; pass --data")
    try:
        calibration = read_calibration(run)
    except ValueError as error:
        raise PostlocError(str(error)) from None
    temperature = float(calibration["temperature"])
    prepared = load_prepared(data)
    model = load_model(folder.best)
    posts = attach_image_features(prepared.split(split), load_image_features(prepared.path))
    if posts.empty:
        raise PostlocError(f"{data}: the {split} split is empty")
    started = time.perf_counter()
    raw = model.predict_proba(posts)
    seconds = time.perf_counter() - started
    proba = apply_temperature(raw, temperature)
    report = evaluate_predictions(proba, model.classes_, posts, prepared.pois, uncalibrated=raw)
    synthetic = prepared.synthetic
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
    write_report(report, run, eval_stem(split), title)
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
    return {
        "pois": pois,
        "hashtag_vocabulary": read_kept_hashtags(prepared.path),
        "min_hashtag_count": prepared.manifest.get("config", {}).get("min_hashtag_count"),
        "synthetic": prepared.synthetic,
    }


def _check_run_folder(out: Path, config: RunConfig, resume: bool, prepared: Path) -> None:
    # never into someone else's folder, the prepared data, or a folder holding it
    check_output_folder(out, RUN, inputs=[prepared])
    started = RunFolder(out).is_started() or ck.latest_checkpoint(out) is not None
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
    info = RunFolder(out).read_run_info()
    if info is not None and info.get("status") in (FAILED, DIVERGED):
        return {"status": str(info["status"]), "reason": str(info.get("reason") or "failed")}
    return None


def _plain(params: Any) -> Any:
    """Params as JSON sees them (tuples become lists), so a saved config compares equal to the original."""
    return json.loads(json.dumps(dict(params), sort_keys=True, default=str))
