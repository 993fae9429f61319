"""``postloc experiments PREPARED --out DIR``: the paper's studies (see :mod:`postloc.experiments`).

Parses its options into an ``ExperimentConfig`` (or ``quick_config`` with ``--quick``) and calls
``run_experiments``.
"""

from __future__ import annotations

from pathlib import Path

from postloc.cli._args import add_engine_flags, add_flags, cell_executor
from postloc.errors import PostlocError
from postloc.io.escape import term


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise PostlocError(f"expected comma-separated integers, got {text!r}") from None


def _seeds(args) -> tuple[int, ...]:
    """``--seeds``, or its default: one seed per fold when cross-validating, else the config's."""
    from postloc.experiments.config import ExperimentConfig

    if args.seeds is not None:
        return _ints(args.seeds)
    return (0,) if args.folds else ExperimentConfig().seeds


def _joined(values) -> str:
    return ",".join(str(v) for v in values)


def add_parser(sub) -> None:
    """Register ``experiments``."""
    from postloc.experiments.config import STUDIES, ExperimentConfig, quick_config

    d, quick = ExperimentConfig(), quick_config()
    p = sub.add_parser(
        "experiments",
        help="run the paper's studies (Table II, Fig. 2-4, Table III) on a prepared dataset; resumable",
        description="Train and score every applicable method and variant over seeds; write "
        "report.md, results.json and PNG plots into --out. Finished cells are "
        "stored in --out/cells and skipped on a re-run.",
    )
    p.add_argument("prepared", type=Path, metavar="PREPARED", help="prepared dataset folder")
    p.add_argument("--out", type=Path, required=True, help="report folder (e.g. reports/NAME)")
    # the seeds' and the epochs' defaults depend on --folds and --quick: given or not, they are decided in run
    p.add_argument(
        "--seeds", help=f"comma-separated seeds (default {_joined(d.seeds)}; with --folds: 0, one seed per fold)"
    )
    add_flags(p, ExperimentConfig, "folds", "fold_seed")
    p.add_argument(
        "--epochs", type=int, help=f"maximum epochs of neural models (default {d.epochs}; --quick: {quick.epochs})"
    )
    # the lists are comma-separated texts on the command line
    add_flags(
        p,
        ExperimentConfig,
        "early_stopping",
        "studies",
        "thresholds",
        "fig4_models",
        "fig4_seeds",
        "raw_input",
        "threads",
        "keep_runs",
        "report_only",
        studies={"default": _joined(STUDIES)},
        thresholds={"default": _joined(d.thresholds)},
        fig4_models={"default": _joined(d.fig4_models)},
        fig4_seeds={"default": _joined(d.fig4_seeds)},
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny models, {quick.epochs} epochs, {len(quick.seeds)} seed: for tests and smoke runs",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_engine_flags(
        p,
        "the cells (one per method, variant, seed and fold)",
        "one after another in this process",
        "each cell a task of --threads CPUs; several machines need --out on a filesystem they all mount; "
        "the same results",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc.experiments import ExperimentConfig, run_experiments
    from postloc.experiments.config import quick_config
    from postloc.experiments.folder import report_path

    executor = cell_executor(args, args.threads)
    studies = tuple(s.strip() for s in args.studies.split(",") if s.strip())
    common = dict(
        studies=studies,
        thresholds=_ints(args.thresholds),
        raw_input=args.raw,
        threads=args.threads,
        fig4_models=tuple(m.strip() for m in args.fig4_models.split(",") if m.strip()),
        fig4_seeds=_ints(args.fig4_seeds),
        progress=not args.quiet,
        keep_runs=args.keep_runs,
        report_only=args.report_only,
        folds=args.folds,
        fold_seed=args.fold_seed,
    )
    try:
        if args.epochs is not None:
            common["epochs"] = args.epochs
        config = (
            quick_config(**common)
            if args.quick
            else ExperimentConfig(seeds=_seeds(args), early_stopping=args.early_stopping, **common)
        )
    except ValueError as error:
        raise PostlocError(str(error)) from None
    results = run_experiments(args.prepared, args.out, config, executor=executor)
    print(f"wrote {report_path(args.out)} ({len(results['rows'])} rows, {results['cells_run_now']} cells run now)")
    for study, verdict in results.get("verdicts", {}).items():
        print(f"verdict ({study}): " + term(verdict["sentence"]))
    return 0
