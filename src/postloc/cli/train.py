"""``postloc train`` and ``postloc evaluate``: argparse front ends of :mod:`postloc.training`.

``postloc.cli`` calls :func:`add_parsers` with its subparsers; each subcommand sets
``run=function(args) -> int`` and raises :class:`PostlocError` for mistakes the user can fix.

``postloc train`` also runs data-parallel when started by torchrun, e.g.
``torchrun --nproc_per_node 2 -m postloc train --data D --out R`` (docs/scale-training.md).
"""

from __future__ import annotations

from pathlib import Path

from postloc.errors import PostlocError


def add_parsers(subparsers) -> None:
    """Register ``train`` and ``evaluate``."""
    _add_train(subparsers)
    _add_evaluate(subparsers)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (mrlf or a baseline) on a prepared dataset",
                       description="Train on the train split, early-stop on val, write checkpoints, best/ and "
                                   "curves into --out. Settings: defaults < --config TOML < --set < --epochs/--seed.")
    p.add_argument("--model", help="registered model name (default: the config's, else mrlf); see --list-models")
    p.add_argument("--data", type=Path, help="prepared dataset folder (output of `postloc prepare`)")
    p.add_argument("--out", type=Path, help="run folder to create (or to continue with --resume)")
    p.add_argument("--config", type=Path, help="TOML file with model = ..., [params] and [trainer] tables")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set trainer.lr=5e-4 --set params.fusion=concat (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out from its newest checkpoint")
    p.add_argument("--epochs", type=int, help="maximum epochs (trainer.epochs)")
    p.add_argument("--seed", type=int, help="random seed (trainer.seed)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"),
                   help="process-group backend when launched by torchrun (default auto: nccl with CUDA GPUs, "
                        "else gloo); an error without torchrun")
    p.add_argument("--list-models", action="store_true", help="print the registered model names and exit")
    p.set_defaults(run=run_train)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on a split (JSON + Markdown into the run folder)")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="run folder written by `postloc train`")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--data", type=Path, help="prepared dataset (default: the one the run was trained on)")
    p.set_defaults(run=run_evaluate)


def run_train(args) -> int:
    from postloc.models.registry import list_models
    from postloc.nn import distributed as dist

    if args.list_models:
        print("\n".join(list_models()))
        return 0
    if args.data is None or args.out is None:
        raise PostlocError("--data and --out are required")
    with dist.session(args.backend) as ctx:
        # Under torchrun only rank 0 reads the run folder (for --resume's saved config); the others get its result.
        config = dist.on_main(lambda: _train_config(args), ctx)
        return _run_train(args, config, ctx)


def _train_config(args):
    """The run's settings: defaults < --config (or the run's saved config on --resume) < --set < flags."""
    from postloc.training.config import RunConfig, apply_overrides, load_config, read_run_config, with_trainer

    if args.config is not None:
        config = load_config(args.config)
    elif args.resume and (args.out / "config.json").exists():
        config = read_run_config(args.out)
    else:
        config = RunConfig()
    overrides = list(args.overrides)
    if args.model:
        overrides.insert(0, f"model={args.model}")
    config = apply_overrides(config, overrides)
    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    if args.quiet:
        changes["progress"] = False
    if changes:
        config = with_trainer(config, **changes)
    return config


def _run_train(args, config, ctx) -> int:
    from postloc.training.api import train

    result = train(args.data, args.out, config, resume=args.resume, backend=args.backend)
    if ctx is not None and not ctx.is_main:
        return 0
    s = result.summary
    acc = "n/a" if s.get("val_acc") is None else f"{s['val_acc']:.4f}"
    processes = f" on {ctx.world_size} process(es) ({ctx.backend})" if ctx is not None else ""
    print(f"{s['model']}: {s['epochs_run']} epoch(s), best epoch {s['best_epoch']} (val acc {acc}); "
          f"{s['stop_reason']}; {s['seconds']:.1f} s{processes}")
    print(f"wrote {args.out}/ (best/, metrics.csv, metrics.jsonl, run.json"
          f"{', curves.png, checkpoints/' if s['stop_reason'] != 'not epoch-based' else ''})")
    return 0


def run_evaluate(args) -> int:
    from postloc.training.api import evaluate

    report = evaluate(args.run_dir, args.split, args.data)
    label = " (SYNTHETIC DATA)" if report.get("synthetic") else ""
    print(f"{report['model']} on {args.split}{label}: acc {_f(report['accuracy'])}, acc@3 {_f(report['acc@3'])}, "
          f"acc@5 {_f(report['acc@5'])}, macro-F1 {_f(report['macro_f1'])}, mean {_f(report['mean_km'])} km, "
          f"median {_f(report['median_km'])} km, acc@1km {_f(report['acc@1km'])} "
          f"(distances against {report['distance_reference']})")
    print(f"wrote {args.run_dir}/eval-{args.split}.json, .md, -per-poi.csv, -confusion.png")
    return 0


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
