"""Plan the studies' cells, run the missing ones (with a done/remaining display), then report."""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from postloc.data.prepared import is_synthetic, read_manifest, read_pois
from postloc.errors import PostlocError
from postloc.experiments import data as datamod
from postloc.experiments import folder as layout
from postloc.experiments.cells import Cell, CellStore
from postloc.experiments.config import ExperimentConfig, Method
from postloc.experiments.methods import (
    CV_EPOCH_CAPS,
    fig2_methods,
    fig3_methods,
    missing_needs,
    quick_params,
    table2_methods,
)
from postloc.experiments.noisy_images import noise_variants
from postloc.io.locks import folder_lock
from postloc.io.ownership import check_output_folder

if TYPE_CHECKING:
    from postloc.models.stack.fits import Executor

DROP_KEYS = ("per_poi", "confusion", "labels", "coverage", "calibration_curves")


def _row(study: str, row: str, column: str, model: str, variant: str, na: str | None = None) -> dict[str, Any]:
    """One row of a study's table: its cells' keys are added when they are planned; ``na`` says why it has none.

    One constructor, so every row has the same keys in the same order (``results.json`` keeps it)."""
    return {"study": study, "row": row, "column": column, "model": model, "keys": [], "na": na, "variant": variant}


class Plan:
    """Cells to run and n/a rows, per study, in display order."""

    def __init__(self) -> None:
        self.cells: list[Cell] = []
        self.rows: list[dict[str, Any]] = []  # {"study", "row", "column", "model", "na": reason|None, "keys": [...]}
        self.variants: dict[str, str] = {}  # variant -> prepared folder
        self.notes: dict[str, list[str]] = {}
        self.fold_folders: Any = None  # cv.FoldFolders when cross-validating
        self.fold_summary: list[dict[str, int]] = []

    def folder(self, cell: Cell) -> str:
        """The prepared folder ``cell`` trains and is scored on (its fold's copy when cross-validating)."""
        if cell.fold < 0:
            return self.variants[cell.variant]
        return str(self.fold_folders.folder(cell.variant, self.variants[cell.variant], cell.fold))

    def note(self, study: str, text: str) -> None:
        self.notes.setdefault(study, []).append(text)


def run_experiments(
    prepared: str | Path,
    out: str | Path,
    config: ExperimentConfig | None = None,
    *,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume) every study on ``prepared``; returns the results written to ``out/results.json``.

    ``config`` defaults to ``ExperimentConfig()``: every study, three seeds. ``out`` must be new,
    empty or an experiment folder of postloc's (resumed: finished cells are kept); one command at
    a time writes it.

    ``executor`` (None: the cells one after another in this process) runs the missing cells as
    independent calls of :func:`run_stored_cell`, in any order and possibly on other machines
    (:class:`postloc.scale.ray_folds.RayFoldExecutor` for ``--engine ray``); the results are the same.
    """
    config = config or ExperimentConfig()
    prepared, out = Path(prepared).resolve(), Path(out)
    check_output_folder(out, layout.REPORT, inputs=[prepared])  # never someone else's folder, nor the data's
    with folder_lock(out):
        out.mkdir(parents=True, exist_ok=True)
        layout.mark(out, prepared)
        return _run(prepared, out, config, executor)


def _run(prepared: Path, out: Path, config: ExperimentConfig, executor: Executor | None = None) -> dict[str, Any]:
    from postloc.experiments.report import write_report

    started = time.perf_counter()
    plan = build_plan(prepared, out, config)
    store = CellStore(out)
    unique: dict[str, Cell] = {}
    for cell in plan.cells:
        unique.setdefault(cell.key, cell)
    todo = [c for k, c in unique.items() if store.get(k) is None]
    if config.report_only:
        _echo(config, f"--report-only: {len(todo)} of {len(unique)} cells are not done and stay empty in the report")
        todo = []
    done_before = len(unique) - len(todo)
    _echo(config, f"{len(unique)} cells: {done_before} already done, {len(todo)} to run")
    if executor is not None and todo:
        _run_elsewhere(plan, todo, store, out, config, executor, done_before, len(unique))
    else:
        for i, cell in enumerate(todo, start=1):
            t0 = time.perf_counter()
            record = run_cell(cell, plan.folder(cell), out, config)
            store.put(cell.key, record)
            acc = record["metrics"].get("accuracy")
            _echo(
                config,
                f"[{done_before + i}/{len(unique)} done, {len(todo) - i} left] {cell.describe()}: "
                f"acc {acc:.3f} ({time.perf_counter() - t0:.0f} s)",
            )
    results = collect(plan, store, prepared, config)
    results["seconds_this_run"] = round(time.perf_counter() - started, 1)
    results["cells_run_now"] = len(todo)
    results["cells_total"] = len(unique)
    results["cells_missing"] = sum(store.get(k) is None for k in unique)
    write_report(results, out)
    return results


def _run_elsewhere(
    plan: Plan,
    todo: list[Cell],
    store: CellStore,
    out: Path,
    config: ExperimentConfig,
    executor: Executor,
    done_before: int,
    total: int,
) -> None:
    """Run ``todo`` through ``executor``: each cell an independent :func:`run_stored_cell` call.

    What the calls share is made here first, by this one process: the folds' prepared copies
    (``plan.folder``, written atomically) and the marker. Each call then writes only files named by
    its own cell's key (its run folder, its outcomes, its cell record, each written atomically), so
    calls finishing in any order, or at once, never write the same file; ``results.json`` and the
    report are written here once every call has returned. A call that fails stops the run; the
    cells finished before it stay stored, and the next run resumes after them.
    """
    folders = [plan.folder(cell) for cell in todo]
    marker = layout.marker_text(out)
    started = time.perf_counter()
    finished = 0

    def done(i: int) -> None:
        nonlocal finished
        finished += 1
        record = store.get(todo[i].key)
        acc = record["metrics"].get("accuracy") if record else None
        _echo(
            config,
            f"[{done_before + finished}/{total} done, {len(todo) - finished} left] {todo[i].describe()}: "
            + (f"acc {acc:.3f} " if acc is not None else "")
            + f"({time.perf_counter() - started:.0f} s since the start)",
        )

    calls = [(cell, folder) for cell, folder in zip(todo, folders, strict=True)]
    records = executor.map(run_stored_cell, (str(out), config, marker), calls, done)
    unseen = [
        cell.key
        for cell, record in zip(todo, records, strict=True)
        if (store.get(cell.key) or {}).get("finished") != record["finished"]
    ]
    if unseen:
        raise PostlocError(
            f"{len(unseen)} cell(s) finished on a worker, but their records are not in {store.root} as seen from "
            "here: with workers on other machines, --out must be on a filesystem every node mounts at the same path"
        )


def run_stored_cell(out: str, config: ExperimentConfig, marker: str, cell: Cell, prepared: str) -> dict[str, Any]:
    """:func:`run_cell` where an executor runs it (another process, another machine): the cell's record
    stored in ``out/cells`` as the local loop stores it, and returned.

    ``marker`` is the head's text of the folder's marker: a worker that does not see the same folder at
    ``out`` refuses in one line before it writes anything (:func:`postloc.experiments.folder.check_reachable`).
    """
    folder = Path(out)
    layout.check_reachable(folder, marker, prepared)
    record = run_cell(cell, prepared, folder, config)
    CellStore(folder).put(cell.key, record)
    return record


def build_plan(prepared: Path, out: Path, config: ExperimentConfig) -> Plan:
    plan = Plan()
    plan.variants["base"] = str(prepared)
    available = datamod.available_modalities(prepared)
    trainer = _trainer(config)
    fold_spec: dict[str, Any] = {}
    folds: list[int] = [-1]
    if config.folds:
        from postloc.data.folds import FoldConfig
        from postloc.experiments import cv

        fold_config = FoldConfig(k=config.folds, seed=config.fold_seed)
        known = cv.ensure_folds(prepared, out, fold_config)
        plan.fold_folders = cv.FoldFolders(out, known, fold_config)
        plan.fold_summary = cv.fold_summary(prepared, known, config.folds)
        fold_spec = asdict(fold_config)
        folds = list(range(config.folds))
        plan.note(
            "all",
            f"{config.folds} user-disjoint folds (seed {config.fold_seed}; stored in folds.parquet): each cell "
            f"trains on the other folds (validation: a user-disjoint {fold_config.val_fraction:.3g} of them) and "
            "is scored on its fold",
        )

    def add(study: str, method: Method, variant: str, avail: set[str], column: str = "") -> None:
        seeds = config.fig4_seeds if (study == "fig4" and config.fig4_seeds) else config.seeds
        missing = missing_needs(method, avail)
        params = _params(method, avail, config)
        label = caption(method, params)
        row = _row(study, label, column, method.model, variant)
        if missing:
            row["na"] = (
                "needs "
                + " and ".join(m.replace("|", " or ") for m in missing)
                + f"; the data has {', '.join(sorted(avail)) or 'nothing'}"
            )
        else:
            epochs = min(config.epochs, method.max_epochs) if method.max_epochs else config.epochs
            cv_cap = CV_EPOCH_CAPS.get(method.model, epochs) if config.folds and study != "cv" else epochs
            why = "a cap for its cost" + (f" with {config.folds} folds" if cv_cap < epochs else "")
            epochs = min(epochs, cv_cap)
            if epochs < config.epochs:
                note = f"{label}: at most {epochs} epochs ({why}; the others: {config.epochs})"
                if note not in plan.notes.get(study, []):
                    plan.note(study, note)
            for fold in folds:
                for seed in seeds:
                    cell = Cell(
                        study,
                        label,
                        method.model,
                        dict(params),
                        variant,
                        seed,
                        column,
                        {**trainer, "seed": seed, "epochs": epochs},
                        fold,
                        fold_spec,
                    )
                    plan.cells.append(cell)
                    row["keys"].append(cell.key)
        plan.rows.append(row)

    if "table2" in config.studies:
        backbone = datamod.image_backbone(prepared)
        for method in table2_methods():
            if (
                method.model in ("resnet50", "resnet101", "densenet121", "vgg16")
                and backbone
                and backbone != method.model
            ):
                method = Method(
                    f"{method.model} (substitute: {backbone} features)",
                    method.model,
                    method.params,
                    method.needs,
                    method.max_epochs,
                )
            add("table2", method, "base", available)
    if "cv" in config.studies:
        for name, params in (
            [(config.cv_model, config.cv_params)]
            + ([(config.cv_reference, {})] if config.cv_reference else [])
            + [(other, {}) for other in config.cv_also if other not in (config.cv_model, config.cv_reference)]
        ):
            add("cv", Method(name, name, dict(params), needs=_requires(name)), "base", available)
    if "fig2" in config.studies:
        for method in fig2_methods():
            add("fig2", method, "base", available)
    if "fig3" in config.studies:
        for method in fig3_methods():
            add("fig3", method, "base", available)
    if "table3" in config.studies:
        _plan_table3(plan, prepared, out, config, add)
    if "fig4" in config.studies:
        _plan_fig4(plan, prepared, out, config, available, add)
    plan.note("all", f"modalities in the data: {', '.join(sorted(available)) or 'none'}")
    return plan


def _plan_table3(plan: Plan, prepared: Path, out: Path, config: ExperimentConfig, add) -> None:
    info = noise_variants(prepared, layout.variant_dir(out, "table3"))
    methods = [
        Method("MRLF image only", "mrlf", {"modalities": ["image"], "fusion": "concat"}, ("image",)),
        Method(
            f"resnet50 head (substitute: {info.get('backbone') or 'pipeline'} features)", "resnet50", {}, ("image",)
        ),
    ]
    if not info.get("ok"):
        for m in methods:
            for mode in ("keep", "drop"):
                plan.rows.append(_row("table3", m.label, mode, m.model, "", na=info["reason"]))
        return
    plan.note(
        "table3", f"features: {info.get('backbone')}; keep: {info.get('keep_status')}; drop: {info.get('drop_status')}"
    )
    for mode in ("keep", "drop"):
        plan.variants[f"images-{mode}"] = info[mode]
        avail = datamod.available_modalities(info[mode])
        for m in methods:
            add("table3", m, f"images-{mode}", avail, column={"keep": "before removal", "drop": "after removal"}[mode])


def _plan_fig4(plan: Plan, prepared: Path, out: Path, config: ExperimentConfig, available: set[str], add) -> None:
    own = datamod.prepared_threshold(prepared)
    raw, how = datamod.resolve_raw_input(prepared, config.raw_input)
    plan.note("fig4", f"prepared folder's own threshold: {own}; raw input: {how}")
    if "hashtags" not in available:
        for t in config.thresholds:
            for model in config.fig4_models:
                plan.rows.append(_row("fig4", model, str(t), model, "", na="the data has no hashtags"))
        return
    synthetic = is_synthetic(prepared)
    info: dict[str, Any]
    for t in sorted(set(config.thresholds) | {own}):
        if t == own:
            variant, info = "base", {"ok": True, "method": "the prepared folder itself"}
        else:
            variant = f"tags-min{t}"
            info = datamod.hashtag_variant(prepared, t, layout.variant_dir(out, variant), None if synthetic else raw)
            if info.get("ok"):
                plan.variants[variant] = str(layout.variant_dir(out, variant))
                plan.note(
                    "fig4",
                    f"threshold {t}: {info['method']}; {info.get('posts')} posts "
                    + ("(split into the stored folds), " if config.folds else f"({info.get('test_posts')} test), ")
                    + f"{info.get('pois')} POIs, "
                    f"{info.get('vocabulary')} distinct tags",
                )
        for model in config.fig4_models:
            method = Method(model, model, {}, ("text|hashtags",) if model != "mrlf" else ())
            if not info.get("ok"):
                plan.rows.append(_row("fig4", model, str(t), model, variant, na=info["reason"]))
            else:
                avail = available if variant == "base" else datamod.available_modalities(plan.variants[variant])
                add("fig4", method, variant, avail, column=str(t))


def _requires(model: str) -> tuple[str, ...]:
    from postloc.models.registry import get_model

    return tuple(get_model(model).requires)


def _params(method: Method, available: set[str], config: ExperimentConfig) -> dict[str, Any]:
    params = quick_params(method.model) if config.quick else {}
    params.update(method.params)
    if method.model.startswith("mrlf"):
        # one spelling per setting, so that equal cells of different studies share one key
        params["modalities"] = sorted(params.get("modalities") or available)
        params.setdefault("fusion", "mrlf")
    return params


def _trainer(config: ExperimentConfig) -> dict[str, Any]:
    return {
        "epochs": config.epochs,
        "early_stopping": config.early_stopping,
        "threads": config.threads,
        "progress": False,
    }


def caption(method: Method, params: dict[str, Any]) -> str:
    """The method's row label, its ``{field}`` placeholders filled from the model's effective settings
    (the model's config defaults overlaid with ``params``): "knn-image (cosine, k={k})" shows the
    k the run really uses, so a caption cannot drift from the code."""
    if "{" not in method.label:
        return method.label
    from postloc.models.registry import get_model
    from postloc.settings import make_dataclass_config

    model_class: Any = get_model(method.model)
    settings = make_dataclass_config(model_class.Config, params, "params")
    return method.label.format_map(asdict(settings))


def run_cell(cell: Cell, prepared: str, out: Path, config: ExperimentConfig) -> dict[str, Any]:
    """Train one cell, score it on the test split, return the record to store."""
    from postloc.data.image_features import attach_image_features, load_image_features
    from postloc.data.prepared import load_prepared
    from postloc.metrics import evaluate
    from postloc.training.api import train
    from postloc.training.config import RunConfig, TrainerConfig

    run_dir = layout.run_dir(out, cell.key)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted cell restarts from scratch
    trainer = TrainerConfig(**cell.trainer)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(prepared, run_dir, RunConfig(cell.model, cell.params, trainer), progress=False)
    seconds = time.perf_counter() - started
    data = load_prepared(prepared)
    test = attach_image_features(data.split("test"), load_image_features(prepared))
    proba = result.model.predict_proba(test)
    metrics = {k: v for k, v in evaluate(proba, result.model.classes_, test, data.pois).items() if k not in DROP_KEYS}
    if cell.fold >= 0 or config.per_post_outcomes:  # per-post outcomes for the pooled, paired comparisons
        # (written before the cell counts as done)
        from postloc.experiments import cv

        cv.write_outcomes(out, cell.key, cv.outcomes(proba, result.model.classes_, test, data.pois))
    if not config.keep_runs:
        shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "cell": asdict(cell),
        "key": cell.key,
        "metrics": metrics,
        "train_seconds": round(seconds, 2),
        "epochs_run": result.summary.get("epochs_run"),
        "best_epoch": result.summary.get("best_epoch"),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


METRICS = ("accuracy", "acc@5", "mean_km", "median_km", "acc@1km", "macro_f1", "ece", "acc@cov50")


def collect(plan: Plan, store: CellStore, prepared: Path, config: ExperimentConfig) -> dict[str, Any]:
    """Mean and std of every row over seeds, or over folds when cross-validating (a fold's value is
    the mean over its seeds); n/a rows keep their reason."""
    from postloc.experiments.verdict import verdicts

    manifest = read_manifest(prepared)
    rows = []
    for row in plan.rows:
        entry = {k: row[k] for k in ("study", "row", "column", "model", "variant", "na")}
        if not row["na"]:
            records = [r for r in (store.get(k) for k in row["keys"]) if r is not None]
            entry["keys"] = list(row["keys"])
            entry["seeds"] = sorted({r["cell"]["seed"] for r in records})
            groups = [_fold(r) if _fold(r) >= 0 else i for i, r in enumerate(records)]
            if config.folds:
                entry["folds"] = sorted({_fold(r) for r in records})
                first = {f: r for f, r in reversed(list(zip(groups, records, strict=True)))}
                entry["test_posts"] = sum(r["metrics"]["posts"] for r in first.values()) if records else None
            else:
                entry["test_posts"] = records[0]["metrics"]["posts"] if records else None
            entry["distance_reference"] = records[0]["metrics"].get("distance_reference") if records else None
            for metric in METRICS + ("train_seconds", "epochs_run"):
                by_group: dict[int, list[float]] = {}
                for group, r in zip(groups, records, strict=True):
                    v = r["metrics"].get(metric) if metric in METRICS else r.get(metric)
                    if v is not None:
                        by_group.setdefault(group, []).append(float(v))
                per = {g: float(np.mean(v)) for g, v in sorted(by_group.items())}
                values = list(per.values())
                entry[metric] = {
                    "mean": float(np.mean(values)) if values else None,
                    "std": float(np.std(values)) if values else None,
                    "values": values,
                }
                if config.folds:
                    entry[metric]["per_fold"] = per
        rows.append(entry)
    results = {
        "prepared": str(prepared),
        "synthetic": is_synthetic(prepared),
        "label": manifest.get("label"),
        "config": asdict(config),
        "rows": rows,
        "notes": plan.notes,
        "variants": plan.variants,
        "input": manifest.get("input", {}),
        "funnel": manifest.get("funnel"),
    }
    if config.folds:
        results["fold_summary"] = plan.fold_summary
    results["pois"] = _count_pois(prepared)  # for the note on acc@k with k >= the POIs
    if config.folds or config.per_post_outcomes:
        results["paired"] = _paired(rows, store.root.parent, prepared, config)
        found = verdicts(
            rows,
            results["paired"],
            store.root.parent,
            prepared,
            folds=config.folds,
            cv_model=config.cv_model,
            seed=config.fold_seed,
        )
        if found:
            results["verdicts"] = found
            results["verdict"] = found.get("cv") or found.get("table2")
    return results


def _count_pois(prepared: Path) -> int:
    """The POIs of the prepared folder (its ``pois.csv``, already read once by every cell)."""
    return int(len(read_pois(prepared)))


def _fold(record: dict[str, Any]) -> int:
    return int(record["cell"].get("fold", -1))


def _paired(rows: list[dict[str, Any]], out: Path, prepared: Path, config: ExperimentConfig) -> dict[str, Any]:
    """Table II (and ``crossval``): every method against the reference, paired over folds and users."""
    from postloc.data.folds import user_keys
    from postloc.data.prepared import load_prepared
    from postloc.experiments import cv
    from postloc.experiments.methods import PAPER_BASELINES

    posts = load_prepared(prepared).posts
    user_of_post = dict(zip(posts["id"].astype(str), user_keys(posts), strict=True))
    paired: dict[str, Any] = {}
    for study in ("table2", "cv"):
        done = [r for r in rows if r["study"] == study and not r["na"] and r["accuracy"]["mean"] is not None]
        if study == "table2":
            candidates = [r for r in done if r["model"] in PAPER_BASELINES]
            why = "the best of the paper's baselines (" + ", ".join(PAPER_BASELINES) + ") by mean accuracy"
        else:
            candidates = [r for r in done if config.cv_reference and r["model"] == config.cv_reference]
            why = "the reference model asked for"
        if not candidates:
            continue
        reference = max(candidates, key=lambda r: r["accuracy"]["mean"])
        paired[study] = {
            "reference": reference["row"],
            "reference_model": reference["model"],
            "why": why,
            "level": cv.LEVEL,
            "bootstrap_resamples": cv.BOOTSTRAP_RESAMPLES,
            "rows": cv.paired_differences(done, reference, out, user_of_post, seed=config.fold_seed),
        }
    return paired


def _echo(config: ExperimentConfig, message: str) -> None:
    if config.progress:
        print(message, file=sys.stderr, flush=True)
