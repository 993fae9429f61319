"""Training runs: config (TOML + overrides), the epoch trainer, checkpoints, train/evaluate API.

``from postloc.training import train, evaluate, RunConfig, TrainerConfig`` is the public API;
names are imported lazily so that reading a config does not load torch.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "train": "postloc.training.api",
    "evaluate": "postloc.training.api",
    "TrainResult": "postloc.training.api",
    "RunConfig": "postloc.training.config",
    "TrainerConfig": "postloc.training.config",
    "load_config": "postloc.training.config",
    "apply_overrides": "postloc.training.config",
    "Callback": "postloc.nn.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'postloc.training' has no attribute {name!r}")
