"""The paper's image classifiers (ResNet-50/101, DenseNet-121, VGG-16) as heads on cached features.

Fine-tuning a CNN on 2 CPU cores is out of reach, and the paper's own image branch uses a frozen
backbone too, so each of these is a classifier (linear, or one hidden layer) on the frozen
backbone vectors of the prepared folder (``image_vector``). The four names exist so that Table II
can list them; which backbone produced the vectors is a property of the data, not of the head:
the experiments read it from ``image_summary.json`` and write e.g.
"resnet50 (substitute: efficientnet-lite0 features)" when the named network's features are not
the ones available. Posts without an image get the training prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from postloc.data.image_features import IMAGE_COLUMN, image_dim, image_matrix
from postloc.data.schema import is_missing
from postloc.errors import PostlocError
from postloc.models.base import ModelInputs
from postloc.models.baselines.neural import ArrayData, PriorHead
from postloc.models.registry import register
from postloc.models.torch_estimator import TorchEstimator
from postloc.settings import check_ranges

#: what a config (or an edited model.json) may ask for; refused on load past it
RANGES = {
    "hidden": (0, 16_384),
    "dropout": (0, 0.99),
}


@dataclass(frozen=True)
class ImageHeadConfig:
    hidden: int = 256  # 0: a linear (logistic-regression) head
    dropout: float = 0.3
    standardize: bool = True  # z-score the features with training means/stds (saved)

    def __post_init__(self) -> None:
        check_ranges(self, RANGES)


class ImageHeadNet(PriorHead):
    mean: torch.Tensor  # buffers: the training means/stds of the features
    std: torch.Tensor

    def __init__(self, config: ImageHeadConfig, dim: int, n_classes: int):
        super().__init__()
        if config.hidden > 0:
            self.head = nn.Sequential(
                nn.Linear(dim, config.hidden),
                nn.ReLU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, n_classes),
            )
        else:
            self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(dim, n_classes))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.init_prior(n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = (batch["image"] - self.mean) / self.std
        return self.with_prior(self.head(x), batch["present"])


def has_image(posts: pd.DataFrame) -> np.ndarray:
    if IMAGE_COLUMN not in posts:
        return np.zeros(len(posts), dtype=bool)
    return np.array([not is_missing(v) for v in posts[IMAGE_COLUMN]], dtype=bool)


class ImageHead(TorchEstimator):
    """Shared implementation; the registered subclasses only differ by name and the backbone they stand for."""

    Config = ImageHeadConfig
    requires = ("image",)
    quick_params = {"hidden": 8}
    backbone: str = ""

    @property
    def inputs_used(self) -> ModelInputs:
        """The photo alone, as a vector of the length it was trained on (none before ``fit``)."""
        return ModelInputs.reading(image_dim=int(self.state_.get("image_dim", 0)) if self.state_ else 0)

    def _train_rows(self, train: pd.DataFrame) -> pd.DataFrame:
        return train[has_image(train)]

    def _build_state(self, train: pd.DataFrame) -> dict[str, Any]:
        """Feature size and (when ``standardize``) the training means/stds, kept in the saved JSON."""
        dim = image_dim(train)
        if dim == 0:
            raise PostlocError(f"{self.name}: the posts have no image vectors (image_features.parquet is missing)")
        vectors, present = image_matrix(train, dim)
        state: dict[str, Any] = {"image_dim": dim, "backbone": self.backbone}
        if self.config.standardize:
            state["mean"] = vectors[present].mean(axis=0).astype(float).tolist()
            state["std"] = (vectors[present].std(axis=0) + 1e-6).astype(float).tolist()
        return state

    def _build_net(self) -> nn.Module:
        net = ImageHeadNet(self.config, int(self.state_["image_dim"]), len(self.classes_))
        if "mean" in self.state_:
            net.mean.copy_(torch.tensor(self.state_["mean"], dtype=torch.float32))
            net.std.copy_(torch.tensor(self.state_["std"], dtype=torch.float32))
        return net

    def _encode(self, posts: pd.DataFrame, y: np.ndarray) -> ArrayData:
        vectors, present = image_matrix(posts, int(self.state_["image_dim"]))
        return ArrayData({"image": vectors, "present": present}, y)


def _head(class_name: str, backbone: str) -> type[ImageHead]:
    """The registered head standing for ``backbone``, named after it."""
    cls = type(
        class_name,
        (ImageHead,),
        {
            "name": backbone,
            "backbone": backbone,
            "__module__": __name__,
            "__doc__": f"Classifier head standing for {backbone} (see the module docstring).",
        },
    )
    return register(cls)


ResNet50Head = _head("ResNet50Head", "resnet50")
ResNet101Head = _head("ResNet101Head", "resnet101")
DenseNet121Head = _head("DenseNet121Head", "densenet121")
VGG16Head = _head("VGG16Head", "vgg16")
