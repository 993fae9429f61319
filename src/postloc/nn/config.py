"""Optimisation settings of the epoch trainer that every neural model's ``fit`` runs.

They live beside the trainer (not with the run configuration of :mod:`postloc.training`) because
a model carries them: an estimator is built with them, saves them in ``model.json`` and reads
them back, without knowing anything about run folders or TOML files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from postloc.errors import PostlocError
from postloc.settings import setting

MONITORS = ("val_loss", "val_acc")
#: ``trainer.threads`` value that picks the count from the cores free when the config is made
AUTO = "auto"


def free_cores() -> int:
    """Cores this process may run on minus the busy ones (:func:`busy_cores`), rounded, at least 1.

    Why not "all cores": OpenMP threads that share a core with other busy processes spin at
    every barrier. On the 2-core machine of issue 14, with three busy loops running, an MRLF
    epoch took 7.2 s with 2 threads and 2.2 s with 1 (and a whole run 189 s instead of 12.9 s).
    Under torchrun the free cores are shared among the local ranks.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    load = busy_cores()
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    free = min(float(cores), max(0.0, cores - load)) / local_ranks
    return max(1, math.floor(free + 0.5))


def busy_cores() -> float:
    """How many cores other processes keep busy: the larger of the 1-minute load average and the
    tasks running right now (less this one).

    The load average alone lags: it needs about a minute to see a load that just started, and a
    run started beside two fresh busy loops would still take every core. The running count of
    ``/proc/loadavg`` sees them at once; the average covers loads that come and go.
    """
    try:
        average = os.getloadavg()[0]
    except (AttributeError, OSError):  # not Unix
        average = 0.0
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            running = int(handle.read().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):  # not Linux
        running = 0
    return max(average, float(running))


def resolve_threads(value: int | str) -> int:
    """``trainer.threads`` as a number: ``"auto"`` becomes :func:`free_cores`, ``"3"`` becomes 3."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return free_cores()
        try:
            value = int(text)
        except ValueError:
            raise PostlocError(f"trainer.threads must be a number or {AUTO!r}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PostlocError(f"trainer.threads must be a number or {AUTO!r}, got {value!r}")
    return value


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation settings of the epoch-based trainer (the paper's Sec. IV-A where it has numbers).

    The paper: RMSprop, learning rate x0.8 when the validation score stops improving for
    ``lr_patience`` epochs; the numbers it gave for the rate, the patience and the epochs were
    lost, so the defaults here are argued in docs/mrlf.md.
    """

    epochs: int = setting(40, help="maximum epochs (trainer.epochs)")
    batch_size: int = 64
    lr: float = 1e-3  # Keras' RMSprop default; the paper used TensorFlow
    lr_factor: float = 0.8  # paper
    lr_patience: int = 2  # epochs without improvement before the rate is multiplied by lr_factor
    min_lr: float = 1e-5
    early_stopping: int = 6  # epochs without improvement before training stops; 0: never
    monitor: str = "val_loss"  # what "improvement" means; also picks the best/ weights
    min_delta: float = 1e-4
    grad_clip: float = 5.0  # max gradient norm; 0: no clipping
    seed: int = setting(0, help="random seed (trainer.seed)")
    #: torch intra-op threads; results are bit-identical for a seed at a fixed thread count.
    #: ``"auto"`` (the default) is resolved to :func:`free_cores` when the config is made, so the
    #: saved config (config.json, model.json) always holds a number: a resumed run keeps its count
    #: and older readers, which expect an int, still load it.
    threads: int | str = setting(AUTO, metavar="N|auto")
    eval_batch_size: int = 256
    keep_checkpoints: int = 2  # epoch checkpoints kept on disk (the newest ones)
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "threads", resolve_threads(self.threads))
        if self.monitor not in MONITORS:
            raise PostlocError(f"trainer.monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        for name, bounds in {**INT_RANGES, **FLOAT_RANGES}.items():
            _check_number(name, getattr(self, name), *bounds, integer=name in INT_RANGES)
        if self.lr <= 0:
            raise PostlocError(f"trainer.lr must be a finite number above 0, got {self.lr!r}")
        if self.lr_factor <= 0:
            raise PostlocError(
                f"trainer.lr_factor must be a finite number above 0 and at most 1, got {self.lr_factor!r}"
            )


#: integer settings and their inclusive ranges; ``lr_patience`` 0 would cut the rate after every epoch
INT_RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, 10**6),
    "batch_size": (1, 10**8),
    "eval_batch_size": (1, 10**8),
    "threads": (1, 4096),
    "keep_checkpoints": (1, 10**6),
    "lr_patience": (1, 10**6),
    "early_stopping": (0, 10**6),
    "seed": (0, 2**63 - 1),  # numpy's and torch's generators refuse a negative seed
}
#: float settings: finite and in the range (a NaN passes every ``<`` test and poisons training);
#: ``lr`` and ``lr_factor`` must also be above 0. A finite but huge ``lr`` is allowed: the trainer
#: stops a run whose loss stops being finite ("diverged at epoch N").
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "lr": (0.0, math.inf),
    "lr_factor": (0.0, 1.0),
    "min_lr": (0.0, math.inf),
    "min_delta": (0.0, math.inf),
    "grad_clip": (0.0, math.inf),
}


def _check_number(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    """Refuse a setting that is not a finite number in ``[low, high]``, naming it: one line, never a traceback."""
    kind = "a whole number" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise PostlocError(f"trainer.{name} must be {kind}, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        upper = "" if math.isinf(high) else f" and at most {high:,}"
        positive = " above 0" if name in ("lr", "lr_factor") else f" at least {low:g}"
        raise PostlocError(f"trainer.{name} must be {kind}{positive}{upper}, got {value!r}")
