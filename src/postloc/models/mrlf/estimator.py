"""MRLF as an estimator: vocabularies + network on the shared torch-estimator base.

Saved folder (also the content of every checkpoint and of ``RUN/best``)::

    model.json          name, format, MRLFConfig, TrainerConfig, classes, image_dim
    weights.safetensors the network's state dict (including the class prior buffer)
    vocab.json          character, word and hashtag vocabularies
"""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from postloc.data.image_features import image_dim as data_image_dim
from postloc.errors import PostlocError
from postloc.models.base import ModelInputs
from postloc.models.mrlf.config import MRLFConfig
from postloc.models.mrlf.encoding import EncodedPosts, Vocabularies, encode_posts
from postloc.models.mrlf.net import MRLFNet
from postloc.models.registry import register
from postloc.models.soft_targets import class_centres, geo_soft_targets
from postloc.models.torch_estimator import TorchEstimator
from postloc.models.user_weights import user_sample_weights
from postloc.nn.trainer import LossFn, cross_entropy_loss


@register
class MRLF(TorchEstimator):
    """The paper's multi-modal representation learning framework (see :mod:`postloc.models.mrlf.net`)."""

    name = "mrlf"
    Config = MRLFConfig
    requires = ("text|hashtags|image",)
    quick_params = {
        "filters": 16,
        "heads": 2,
        "hidden": 16,
        "char_dim": 8,
        "word_dim": 8,
        "max_text_chars": 60,
        "max_hashtag_chars": 40,
    }
    state_file = "vocab.json"

    def __init__(self, config: MRLFConfig | dict | None = None, trainer=None):
        super().__init__(config, trainer)
        self.state_: Vocabularies | None = None
        self.image_dim = 0

    @property
    def inputs_used(self) -> ModelInputs:
        """The configured modalities; the photo only where training had image vectors (``image_dim`` > 0)."""
        text = [m for m in self.config.modalities if m != "image"]
        return ModelInputs.reading(*text, image_dim=self.image_dim)

    @property
    def vocabs(self) -> Vocabularies | None:
        """The character, word and hashtag vocabularies (this model's learned state)."""
        return self.state_

    def _build_state(self, train: pd.DataFrame) -> Vocabularies:
        self.image_dim = data_image_dim(train) if "image" in self.config.modalities else 0
        return Vocabularies.build(train, self.config)

    def _state_to_json(self, state: Vocabularies) -> dict[str, Any]:
        return state.to_dict()

    def _state_from_json(self, data: Any) -> Vocabularies:
        return Vocabularies.from_dict(data)

    def _manifest_extra(self) -> dict[str, Any]:
        return {"image_dim": self.image_dim}

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.image_dim = int(manifest.get("image_dim", 0))
        super()._read_files(folder, manifest)

    def _fitted_vocabs(self) -> Vocabularies:
        """The vocabularies, built by ``fit`` or read by ``load``; before either, the not-fitted error."""
        if self.state_ is None:
            raise PostlocError(f"{self.name} model is not fitted yet; call fit() or load()")
        return self.state_

    def _build_net(self) -> MRLFNet:
        vocabs = self._fitted_vocabs()
        return MRLFNet(
            self.config,
            n_chars=len(vocabs.chars),
            n_words=len(vocabs.words),
            n_hashtags=len(vocabs.hashtags),
            image_dim=self.image_dim,
            n_classes=len(self.classes_),
        )

    def _sample_weights(self, rows: pd.DataFrame) -> np.ndarray | None:
        """``user_weight_power`` > 0: ``1 / n_user ** power`` per training post, mean 1 (off in the paper)."""
        power = self.config.user_weight_power
        return user_sample_weights(rows, power) if power > 0 else None

    def _loss(self, rows: pd.DataFrame, y: np.ndarray) -> LossFn | None:
        """Plain or geo-aware label smoothing when asked for; None (the paper's cross-entropy) otherwise."""
        cfg = self.config
        if cfg.geo_smoothing_km > 0:
            lat, lon = class_centres(rows, self.classes_)
            targets = geo_soft_targets(lat, lon, cfg.label_smoothing, cfg.geo_smoothing_km)
            return partial(cross_entropy_loss, soft_targets=torch.from_numpy(targets).float())
        if cfg.label_smoothing > 0:
            return partial(cross_entropy_loss, label_smoothing=cfg.label_smoothing)
        return None

    def _encode(self, posts: pd.DataFrame, y: np.ndarray) -> EncodedPosts:
        return replace(encode_posts(posts, self._fitted_vocabs(), self.config, self.image_dim), y=y)

    def describe(self) -> dict[str, Any]:
        """Sizes worth printing: parameters, vocabularies, active fusion."""
        return {
            "parameters": sum(p.numel() for p in self.net.parameters()) if self.net else 0,
            "chars": len(self.vocabs.chars) if self.vocabs else 0,
            "words": len(self.vocabs.words) if self.vocabs else 0,
            "hashtags": len(self.vocabs.hashtags) if self.vocabs else 0,
            "image_dim": self.image_dim,
            "fusion": self.config.active_fusion,
            "modalities": list(self.config.modalities),
            "config": asdict(self.config),
        }
