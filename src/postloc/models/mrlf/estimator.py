"""MRLF as an estimator: vocabularies + network + trainer behind fit / predict_proba / save / load.

Saved folder (also the content of every checkpoint and of ``RUN/best``)::

    model.json          name, format, MRLFConfig, TrainerConfig, classes, image_dim
    weights.safetensors the network's state dict (including the class prior buffer)
    vocab.json          character, word and hashtag vocabularies
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from postloc.errors import PostlocError
from postloc.data.image_features import image_dim as data_image_dim
from postloc.models.base import Estimator, read_manifest, trainer_from_manifest, write_manifest
from postloc.models.mrlf.encoding import EncodedPosts, Vocabularies, encode_posts
from postloc.models.mrlf.config import MRLFConfig
from postloc.models.mrlf.net import MRLFNet
from postloc.models.registry import register
from postloc.nn import checkpoints as ck
from postloc.settings import make_dataclass_config
from postloc.nn.trainer import Trainer, TrainState, deterministic, predict_proba_batches

WEIGHTS = "weights.safetensors"
VOCAB = "vocab.json"


@register("mrlf")
class MRLF(Estimator):
    """The paper's multi-modal representation learning framework (see :mod:`postloc.models.mrlf.net`)."""

    name = "mrlf"
    Config = MRLFConfig
    epoch_based = True

    def __init__(self, config: MRLFConfig | dict | None = None, trainer=None):
        super().__init__(config, trainer)
        self.vocabs: Vocabularies | None = None
        self.net: MRLFNet | None = None
        self.image_dim = 0
        self.state: TrainState | None = None

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, classes: Sequence[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, callbacks: Iterable[Any] = (),
            progress: bool | None = None) -> "MRLF":
        """Train on ``train``; ``val`` drives the learning-rate schedule, early stopping and best weights.

        With ``run_dir``, a checkpoint is written every epoch and ``resume=True`` continues from
        the newest one (the checkpoint's config and vocabularies win over the arguments).
        """
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
                self.image_dim = data_image_dim(train) if "image" in self.config.modalities else 0
                self.vocabs = Vocabularies.build(train, self.config)
                self.net = self._build_net()
            train_data = self._encode(train)
            if (train_data.y < 0).any():
                raise PostlocError("some training posts have POIs outside the model's classes")
            if resume_from is None:
                self.net.set_prior(torch.from_numpy(np.bincount(train_data.y, minlength=len(self.classes_))))
            val_data = self._encode(val) if val is not None and len(val) else None
            trainer = Trainer(cfg, run_dir=run_dir, callbacks=callbacks, progress=progress)
            self.state = trainer.fit(self.net, train_data, val_data, export=self._write_folder,
                                     restore=self._restore_weights, resume_from=resume_from)
        return self

    # --- prediction ------------------------------------------------------------------------

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        data = self._encode(posts, labels=False)
        return predict_proba_batches(self.net, data, self.trainer.eval_batch_size)

    # --- persistence -----------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_folder(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "MRLF":
        model = cls()
        model._read_folder(Path(directory), keep_trainer=False)
        return model

    def _write_folder(self, folder: Path) -> None:
        write_manifest(folder, self._manifest(image_dim=self.image_dim))
        ck.save_tensors(self.net.state_dict(), folder / WEIGHTS)
        (folder / VOCAB).write_text(json.dumps(self.vocabs.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")

    def _read_folder(self, folder: Path, *, keep_trainer: bool) -> None:
        manifest = read_manifest(folder)
        if manifest["model"] != self.name:
            raise PostlocError(f"{folder} holds a {manifest['model']!r} model, not {self.name!r}")
        self.config = make_dataclass_config(MRLFConfig, manifest["config"], "params")
        if not keep_trainer:
            self.trainer = trainer_from_manifest(manifest)
        self.classes_ = list(manifest["classes"])
        self.image_dim = int(manifest.get("image_dim", 0))
        self.vocabs = Vocabularies.from_dict(ck.read_json(folder / VOCAB))
        self.net = self._build_net()
        self._restore_weights(folder)

    def _restore_weights(self, folder: Path) -> None:
        ck.load_state_into(self.net, folder / WEIGHTS)

    def _build_net(self) -> MRLFNet:
        return MRLFNet(self.config, n_chars=len(self.vocabs.chars), n_words=len(self.vocabs.words),
                       n_hashtags=len(self.vocabs.hashtags), image_dim=self.image_dim, n_classes=len(self.classes_))

    def _encode(self, posts: pd.DataFrame, labels: bool = True) -> EncodedPosts:
        return encode_posts(posts, self.vocabs, self.config, self.image_dim, self.classes_ if labels else None)

    def describe(self) -> dict[str, Any]:
        """Sizes worth printing: parameters, vocabularies, active fusion."""
        return {"parameters": sum(p.numel() for p in self.net.parameters()) if self.net else 0,
                "chars": len(self.vocabs.chars) if self.vocabs else 0,
                "words": len(self.vocabs.words) if self.vocabs else 0,
                "hashtags": len(self.vocabs.hashtags) if self.vocabs else 0,
                "image_dim": self.image_dim, "fusion": self.config.active_fusion,
                "modalities": list(self.config.modalities), "config": asdict(self.config)}
