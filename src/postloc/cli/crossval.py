"""``postloc crossval PREPARED --model NAME --out DIR``: one model scored over K user-disjoint folds.

The experiments' machinery with one study, ``cv``: the model (``--params`` JSON) trained once per
fold on the other folds and scored on its fold, mean ± std over folds, per-fold values, and,
with ``--reference MODEL``, the paired differences to that model (t-interval over folds,
bootstrap over users). The output folder is an experiment folder: resumable, one writer.
"""

from __future__ import annotations

import json
from pathlib import Path

from postloc.cli._args import add_engine_flags, add_flags, cell_executor
from postloc.errors import PostlocError
from postloc.io.escape import term


def add_parser(sub) -> None:
    """Register ``crossval``."""
    from postloc.experiments.config import ExperimentConfig

    p = sub.add_parser(
        "crossval",
        help="score one model over K user-disjoint folds (mean ± std, per fold, paired to a reference)",
        description="Train MODEL once per fold on the other folds and score it on its fold; write "
        "report.md, results.json and folds.parquet into --out (resumable, like `postloc experiments`).",
    )
    p.add_argument("prepared", type=Path, metavar="PREPARED", help="prepared dataset folder")
    p.add_argument("--model", required=True, help="registered model (see `postloc train --list-models`)")
    p.add_argument("--params", default="{}", help="model params as JSON, e.g. '{\"hidden\": 64}'")
    p.add_argument("--reference", default="", help="a second model to compare with, paired over folds and users")
    p.add_argument("--also", default="", help="more models, comma-separated, scored on the same folds (e.g. majority)")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    # ExperimentConfig's flags; cross-validation has folds (five unless told), no single split
    add_flags(
        p,
        ExperimentConfig,
        "folds",
        "fold_seed",
        folds={"default": 5, "help": "number of folds (default %(default)s)"},
        fold_seed={"help": "seed of the fold assignment"},
    )
    p.add_argument("--seeds", default="0", help="comma-separated training seeds per fold (default %(default)s)")
    add_flags(
        p,
        ExperimentConfig,
        "epochs",
        "early_stopping",
        "threads",
        early_stopping={"help": "patience (default %(default)s)"},
        threads={"help": "torch threads (default %(default)s)"},
    )
    p.add_argument("--quick", action="store_true", help="tiny model settings, 2 epochs: for tests")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_engine_flags(
        p,
        "the folds' cells (one per fold, model and seed)",
        "one after another in this process",
        "each cell a task of --threads CPUs; several machines need --out on a filesystem they all mount; "
        "the same results",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc.experiments import ExperimentConfig, run_experiments
    from postloc.experiments.config import quick_config
    from postloc.experiments.folder import report_path
    from postloc.models.registry import get_model

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as error:
        raise PostlocError(f"--params is not JSON: {error}") from None
    if not isinstance(params, dict):
        raise PostlocError("--params must be a JSON object")
    executor = cell_executor(args, args.threads)
    also = tuple(name.strip() for name in args.also.split(",") if name.strip())
    for name in filter(None, (args.model, args.reference, *also)):
        get_model(name)  # an unknown name: one line listing the registered ones
    if args.folds < 2:
        raise PostlocError(f"--folds must be at least 2, got {args.folds}")
    try:
        seeds = tuple(int(v) for v in args.seeds.split(",") if v.strip())
    except ValueError:
        raise PostlocError(f"expected comma-separated integers, got {args.seeds!r}") from None
    common = dict(
        studies=("cv",),
        folds=args.folds,
        fold_seed=args.fold_seed,
        cv_model=args.model,
        cv_params=params,
        cv_reference=args.reference,
        cv_also=also,
        threads=args.threads,
        progress=not args.quiet,
    )
    try:
        config = (
            quick_config(**common)
            if args.quick
            else ExperimentConfig(seeds=seeds, epochs=args.epochs, early_stopping=args.early_stopping, **common)
        )
    except ValueError as error:
        raise PostlocError(str(error)) from None
    results = run_experiments(args.prepared, args.out, config, executor=executor)
    row = next(r for r in results["rows"] if r["study"] == "cv")
    if row["na"]:
        raise PostlocError(f"{args.model} cannot run on {args.prepared}: {row['na']}")
    acc = row["accuracy"]
    print(
        f"{args.model} over {args.folds} folds: acc {acc['mean']:.3f} ± {acc['std']:.3f} "
        f"(± is the standard deviation over the folds; folds: {', '.join(f'{v:.3f}' for v in acc['values'])}); "
        f"wrote {report_path(args.out)}"
    )
    if results.get("verdict"):
        print("verdict: " + term(results["verdict"]["sentence"]))
    return 0
