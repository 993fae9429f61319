"""``postloc open-set``: the argparse front end of :func:`postloc.training.open_set.open_set`.

Leaves N POIs out of training and reports how well the calibrated confidence separates test
posts of known POIs from posts of the left-out ones (AUROC), plus the accuracy on known POIs.
"""

from __future__ import annotations

from pathlib import Path

from postloc.cli._args import add_flags, from_args
from postloc.io.escape import term


def add_parser(sub) -> None:
    """Register ``open-set``."""
    from postloc.training.open_set import OpenSetConfig

    p = sub.add_parser(
        "open-set",
        help="leave POIs out of training; AUROC of the calibrated confidence for known vs unknown POIs",
        description="Train on all but --leave-out POIs (mid-sized ones, chosen by --seed) and report how well "
        "the calibrated confidence tells test posts of known POIs from posts of the left-out ones.",
    )
    p.add_argument("prepared", type=Path, metavar="PREPARED", help="prepared dataset folder")
    p.add_argument("--out", type=Path, required=True, help="report folder to create (open-set.json, .md, .png)")
    p.add_argument("--model", default=OpenSetConfig().run.model, help="registered model name (default %(default)s)")
    add_flags(p, OpenSetConfig, "leave_out", "seed")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model or trainer setting, as in `postloc train` (repeatable)",
    )
    p.add_argument("--threads", help="torch threads for training (trainer.threads)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc.training.config import RunConfig, apply_overrides, with_trainer
    from postloc.training.open_set import OpenSetConfig, open_set

    config = apply_overrides(RunConfig(), [f"model={args.model}", *args.overrides])
    changes: dict[str, object] = {}
    if args.threads is not None:
        changes["threads"] = args.threads
    if args.quiet:
        changes["progress"] = False
    if changes:
        config = with_trainer(config, **changes)
    report = open_set(args.prepared, args.out, from_args(OpenSetConfig, args, "leave_out", "seed", run=config))
    left = ", ".join(f"{p['poi']} ({p['name'] or 'unnamed'}, {p['test_posts']} test posts)" for p in report["left_out"])
    label = " (SYNTHETIC DATA)" if report.get("synthetic") else ""
    print(f"left out (seed {args.seed}): {term(left)}")
    print(
        f"{report['model']}{label}: AUROC known vs left-out {_f(report['auroc'])} "
        f"(uncalibrated {_f(report['auroc_uncalibrated'])}), accuracy on known POIs {_f(report['known_accuracy'])}, "
        f"T = {report['temperature']:.3f}; {report['test_known_posts']} known / {report['test_novel_posts']} "
        "left-out test posts"
    )
    print(f"wrote {args.out}/open-set.json, open-set.md, open-set-confidence.png")
    return 0


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
