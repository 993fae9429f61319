"""``postloc train``: the argparse front end of :func:`postloc.training.api.train`.

Settings are layered: defaults < ``--config`` TOML (or the run's saved config on ``--resume``) <
``--set KEY=VALUE`` < ``--epochs``/``--seed``/``--threads``.
``--list-models`` prints the registry's names and what each model needs.

``postloc train`` also runs data-parallel when started by torchrun, e.g.
``torchrun --nproc_per_node 2 -m postloc train --data D --out R`` (docs/scale-training.md).
"""

from __future__ import annotations

from pathlib import Path

from postloc.cli._args import add_engine_flags, add_flags
from postloc.errors import PostlocError
from postloc.nn.config import TrainerConfig, free_cores


def add_parser(sub) -> None:
    """Register ``train``."""
    p = sub.add_parser(
        "train",
        help="train a model (stack, the default; mrlf; or a baseline) on a prepared dataset",
        description="Train on the train split, early-stop on val, write checkpoints, best/ and "
        "curves into --out. Settings: defaults < --config TOML < --set < --epochs/--seed/--threads.",
    )
    p.add_argument(
        "--model", help="registered model name (default: the config's, else stack, postloc's own); see --list-models"
    )
    p.add_argument("--data", type=Path, help="prepared dataset folder (output of `postloc prepare`)")
    p.add_argument("--out", type=Path, help="run folder to create (or to continue with --resume)")
    p.add_argument("--config", type=Path, help="TOML file with model = ..., [params] and [trainer] tables")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set trainer.lr=5e-4 --set params.fusion=concat (repeatable)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --out from its newest checkpoint"
    )
    # the trainer's settings; not given (None), they are the config's (TrainerConfig checks them)
    add_flags(
        p,
        TrainerConfig,
        "epochs",
        "seed",
        "threads",
        epochs={"default": None},
        seed={"default": None},
        threads={
            "default": None,
            "help": "torch threads for training (trainer.threads; default auto: the cores free when the run "
            "starts: cores minus the larger of the 1-minute load average and the tasks running now, at least 1; "
            f"now {free_cores()}). Results are bit-identical for a seed at a given N; the number used is saved "
            "in the run's config",
        },
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (off a terminal: one line per epoch)")
    p.add_argument(
        "--backend",
        choices=("auto", "gloo", "nccl"),
        help="process-group backend when launched by torchrun (default auto: nccl with CUDA GPUs, "
        "else gloo); an error without torchrun",
    )
    p.add_argument(
        "--list-models", action="store_true", help="print the registered models with the inputs each needs, and exit"
    )
    add_engine_flags(p, "stack's independent regressions", "this machine's cores", "the same model")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc.models.registry import describe_models
    from postloc.nn import distributed as dist

    if args.list_models:
        for facts in describe_models():
            needs = " and ".join(n.replace("|", " or ") for n in facts["requires"]) or "nothing (class frequencies)"
            print(f"{facts['name']:<14} needs {needs}")
        return 0
    if args.data is None or args.out is None:
        raise PostlocError("--data and --out are required")
    with dist.session(args.backend) as ctx:
        # Under torchrun only rank 0 reads the run folder (for --resume's saved config); the others get its result.
        config = dist.on_main(lambda: _train_config(args), ctx)
        return _run_train(args, config, ctx)


def _train_config(args):
    """The run's settings: defaults < --config (or the run's saved config on --resume) < --set < flags."""
    from postloc.io.run_folder import RunFolder
    from postloc.training.config import RunConfig, apply_overrides, load_config, read_run_config, with_trainer

    if args.config is not None:
        config = load_config(args.config)
    elif args.resume and RunFolder(args.out).is_started():
        config = read_run_config(args.out)
    else:
        config = RunConfig()
    overrides = list(args.overrides)
    if args.model:
        overrides.insert(0, f"model={args.model}")
    config = apply_overrides(config, overrides)
    changes = {
        k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("threads", args.threads)) if v is not None
    }
    if args.quiet:
        changes["progress"] = False
    if changes:
        config = with_trainer(config, **changes)
    return config


def _run_train(args, config, ctx) -> int:
    from postloc.training.api import train

    executor = None
    if args.engine == "ray":
        from postloc.scale._ray import RaySettings
        from postloc.scale.ray_fits import RayExecutor

        executor = RayExecutor(RaySettings(address=args.ray_address))
    result = train(args.data, args.out, config, resume=args.resume, backend=args.backend, executor=executor)
    if ctx is not None and not ctx.is_main:
        return 0
    s = result.summary
    acc = "n/a" if s.get("val_acc") is None else f"{s['val_acc']:.4f}"
    if s.get("val_in_training") and s.get("val_acc") is not None:
        acc += ", in-sample: the model also trained on the val posts"
    processes = f" on {ctx.world_size} process(es) ({ctx.backend})" if ctx is not None else ""
    print(
        f"{s['model']}: {s['epochs_run']} epoch(s), best epoch {s['best_epoch']} (val acc {acc}); "
        f"{s['stop_reason']}; {s['seconds']:.1f} s{processes}"
    )
    print(
        f"wrote {args.out}/ (best/, metrics.csv, metrics.jsonl, run.json"
        f"{', curves.png, checkpoints/' if result.fit is not None and result.fit.checkpoints else ''})"
    )
    return 0
