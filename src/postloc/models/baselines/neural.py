"""A base for the small PyTorch baselines: the shared trainer, prior fallback, safetensors + JSON.

DeepGeo, LocTwi and the image heads differ only in how posts become arrays and in the network;
fitting (the project's epoch trainer: RMSprop, plateau decay, early stopping, checkpoints,
resume), prediction and saving are the same, so they live here once. Every network keeps a
``log_prior`` buffer (the trainer reads the class count from it) and answers the training prior
for a post with no usable input, like MRLF does.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from postloc.errors import PostlocError
from postloc.models.base import Estimator, read_manifest, trainer_from_manifest, write_manifest
from postloc.nn import checkpoints as ck
from postloc.settings import make_dataclass_config
from postloc.nn.trainer import Trainer, TrainState, deterministic, predict_proba_batches

WEIGHTS = "weights.safetensors"
STATE = "state.json"


class ArrayData:
    """Posts as named numpy arrays; integer id matrices are cut to the batch's longest row."""

    def __init__(self, arrays: Mapping[str, np.ndarray], y: np.ndarray, cut: Sequence[str] = ()):
        self.arrays = dict(arrays)
        self.y = y
        self.cut = tuple(cut)

    def __len__(self) -> int:
        return len(self.y)

    def lengths(self) -> np.ndarray:
        if not self.cut:
            return np.zeros(len(self.y), dtype=np.int64)
        return sum((self.arrays[k] != 0).sum(axis=1) for k in self.cut)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        for key, array in self.arrays.items():
            part = array[index]
            if key in self.cut:
                used = (part != 0).any(axis=0)
                width = int(np.nonzero(used)[0].max()) + 1 if used.any() else 1
                out[key] = torch.from_numpy(np.ascontiguousarray(part[:, :width])).long()
            else:
                out[key] = torch.from_numpy(np.ascontiguousarray(part))
        out["y"] = torch.from_numpy(self.y[index])
        return out


class PriorHead(nn.Module):
    """Mixin module: holds the training prior and swaps it in for posts without input."""

    def init_prior(self, n_classes: int) -> None:
        self.register_buffer("log_prior", torch.full((n_classes,), -float(np.log(max(n_classes, 1)))))

    def set_prior(self, counts: np.ndarray) -> None:
        counts = torch.as_tensor(counts, dtype=torch.float32) + 1.0
        self.log_prior.copy_(torch.log(counts / counts.sum()))

    def with_prior(self, logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.where(present[:, None], logits, self.log_prior.expand_as(logits))


class NeuralBaseline(Estimator):
    """Subclasses implement :meth:`_build_state`, :meth:`_build_net` and :meth:`_encode`."""

    epoch_based = True

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.state_: dict[str, Any] = {}  # JSON-able vocabularies / sizes learned from the training posts
        self.net: nn.Module | None = None
        self.state: TrainState | None = None

    @abstractmethod
    def _build_state(self, train: pd.DataFrame) -> dict[str, Any]:
        """Vocabularies and input sizes from the training posts (saved as JSON)."""

    @abstractmethod
    def _build_net(self) -> nn.Module:
        """The network for ``self.state_`` and ``self.classes_`` (a :class:`PriorHead`)."""

    @abstractmethod
    def _encode(self, posts: pd.DataFrame, y: np.ndarray) -> ArrayData:
        """Arrays of ``posts``; ``y`` are the class indices (-1: unknown)."""

    def _train_rows(self, train: pd.DataFrame) -> pd.DataFrame:
        """Which training posts to learn from (all; image heads keep only posts with an image)."""
        return train

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, classes: Sequence[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, callbacks: Iterable[Any] = (),
            progress: bool | None = None) -> "NeuralBaseline":
        cfg = self.trainer
        if resume and run_dir is not None:
            ck.recover_run(run_dir)
        resume_from = ck.latest_checkpoint(run_dir) if (resume and run_dir is not None) else None
        with deterministic(cfg.threads):
            torch.manual_seed(cfg.seed)
            np.random.seed(cfg.seed % 2**32)
            if resume_from is not None:
                ck.verify_checkpoint(resume_from)
                self._read_folder(resume_from, keep_trainer=True)
            else:
                self.classes_ = self._resolve_classes(train, classes)
                self.state_ = self._build_state(train)
                self.net = self._build_net()
                self.net.set_prior(np.bincount(self._labels(train), minlength=len(self.classes_)))
            rows = self._train_rows(train)
            if not len(rows):
                raise PostlocError(f"{self.name}: no training post has the input this model needs")
            train_data = self._encode(rows, self._labels(rows))
            val_rows = self._train_rows(val) if val is not None and len(val) else None
            val_data = self._encode(val_rows, self._labels(val_rows)) if val_rows is not None and len(val_rows) else None
            trainer = Trainer(cfg, run_dir=run_dir, callbacks=callbacks, progress=progress)
            self.state = trainer.fit(self.net, train_data, val_data, export=self._write_folder,
                                     restore=self._restore_weights, resume_from=resume_from)
        return self

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        data = self._encode(posts, np.full(len(posts), -1, dtype=np.int64))
        with deterministic(self.trainer.threads):
            return predict_proba_batches(self.net, data, self.trainer.eval_batch_size)

    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_folder(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "NeuralBaseline":
        model = cls()
        model._read_folder(Path(directory), keep_trainer=False)
        return model

    # --- internals -------------------------------------------------------------------------

    def _labels(self, posts: pd.DataFrame) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes_)}
        return np.array([index.get(str(p), -1) for p in posts["poi"]], dtype=np.int64)

    def _write_folder(self, folder: Path) -> None:
        write_manifest(folder, self._manifest())
        ck.save_tensors(self.net.state_dict(), folder / WEIGHTS)
        (folder / STATE).write_text(json.dumps(self.state_, ensure_ascii=False) + "\n", encoding="utf-8")

    def _read_folder(self, folder: Path, *, keep_trainer: bool) -> None:
        manifest = read_manifest(folder)
        if manifest["model"] != self.name:
            raise PostlocError(f"{folder} holds a {manifest['model']!r} model, not {self.name!r}")
        self.config = make_dataclass_config(self.Config, manifest["config"], "params")
        if not keep_trainer:
            self.trainer = trainer_from_manifest(manifest)
        self.classes_ = list(manifest["classes"])
        self.state_ = ck.read_json(folder / STATE)
        self.net = self._build_net()
        self._restore_weights(folder)

    def _restore_weights(self, folder: Path) -> None:
        ck.load_state_into(self.net, folder / WEIGHTS)


def post_texts(posts: pd.DataFrame) -> list[str]:
    return [t if isinstance(t, str) else "" for t in posts["text"]] if "text" in posts else [""] * len(posts)


def post_tags(posts: pd.DataFrame) -> list[list[str]]:
    if "hashtags" not in posts:
        return [[] for _ in range(len(posts))]
    return [[] if v is None or isinstance(v, float) else [str(t) for t in v] for v in posts["hashtags"]]
