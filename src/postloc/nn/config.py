"""Optimisation settings of the epoch trainer that every neural model's ``fit`` runs.

They live beside the trainer (not with the run configuration of :mod:`postloc.training`) because
a model carries them: an estimator is built with them, saves them in ``model.json`` and reads
them back, without knowing anything about run folders or TOML files.
"""

from __future__ import annotations

from dataclasses import dataclass

from postloc.errors import PostlocError

MONITORS = ("val_loss", "val_acc")


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation settings of the epoch-based trainer (the paper's Sec. IV-A where it has numbers).

    The paper: RMSprop, learning rate x0.8 when the validation score stops improving for
    ``lr_patience`` epochs; the numbers it gave for the rate, the patience and the epochs were
    lost, so the defaults here are argued in docs/mrlf.md.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3  # Keras' RMSprop default; the paper used TensorFlow
    lr_factor: float = 0.8  # paper
    lr_patience: int = 2  # epochs without improvement before the rate is multiplied by lr_factor
    min_lr: float = 1e-5
    early_stopping: int = 6  # epochs without improvement before training stops; 0: never
    monitor: str = "val_loss"  # what "improvement" means; also picks the best/ weights
    min_delta: float = 1e-4
    grad_clip: float = 5.0  # max gradient norm; 0: no clipping
    seed: int = 0
    threads: int = 2  # torch intra-op threads; results are bit-identical for a seed at a fixed thread count
    eval_batch_size: int = 256
    keep_checkpoints: int = 2  # epoch checkpoints kept on disk (the newest ones)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise PostlocError(f"trainer.monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "threads", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise PostlocError(f"trainer.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr_factor <= 1:
            raise PostlocError(f"trainer.lr_factor must be in (0, 1], got {self.lr_factor}")
        if self.lr <= 0:
            raise PostlocError(f"trainer.lr must be positive, got {self.lr}")
