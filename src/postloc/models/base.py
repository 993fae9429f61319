"""The one interface every location model implements, in the manner of scikit-learn estimators.

``fit`` learns from a DataFrame of prepared posts (columns ``text``, ``hashtags``, ``poi`` and,
when image features exist, ``image_vector``), ``predict_proba`` returns one probability row per
post over ``classes_`` (POI labels), ``save``/``load`` use a folder holding ``model.json`` plus
model-specific files (safetensors and JSON; never pickle, so a saved model cannot run code).
Keeping the interface this small lets the training CLI, the evaluation, the benchmark and the
prediction API treat MRLF and the baselines alike.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
import pandas as pd

from postloc.errors import PostlocError
from postloc.training.config import TrainerConfig, make_dataclass_config

MODEL_FILE = "model.json"
FORMAT_VERSION = 1


class Estimator(ABC):
    """Base class of the registered models.

    Subclasses set ``name`` (the registry key) and ``Config`` (a frozen dataclass of their
    hyperparameters), and implement the four abstract methods.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    #: whether ``fit`` runs epochs through the trainer (checkpoints, resume, curves)
    epoch_based: ClassVar[bool] = False

    def __init__(self, config: Any = None, trainer: TrainerConfig | None = None):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = make_dataclass_config(self.Config, config, "params")
        self.config = config
        self.trainer = trainer or TrainerConfig()
        self.classes_: list[str] = []

    @abstractmethod
    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, classes: Sequence[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, callbacks: Iterable[Any] = (),
            progress: bool | None = None) -> "Estimator":
        """Learn from ``train`` (``val`` steers early stopping where the model has epochs)."""

    @abstractmethod
    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        """``[len(posts), len(classes_)]`` probabilities, rows summing to 1."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write the fitted model into ``directory`` (created if needed)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> "Estimator":
        """Read a model written by :meth:`save`."""

    def predict(self, posts: pd.DataFrame) -> list[str]:
        """The most probable POI label per post."""
        proba = self.predict_proba(posts)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    # --- helpers shared by subclasses -------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self.classes_:
            raise PostlocError(f"{self.name} model is not fitted yet; call fit() or load()")

    def _manifest(self, **extra: Any) -> dict[str, Any]:
        return {"model": self.name, "format": FORMAT_VERSION, "config": asdict(self.config),
                "trainer": asdict(self.trainer), "classes": list(self.classes_), **extra}

    @classmethod
    def _from_manifest(cls, directory: str | Path) -> tuple["Estimator", dict[str, Any]]:
        """A model with the saved config, trainer settings and classes; the caller restores its weights."""
        manifest = read_manifest(directory)
        model = cls(manifest.get("config"), trainer_from_manifest(manifest))
        model.classes_ = list(manifest["classes"])
        return model, manifest

    @staticmethod
    def _resolve_classes(train: pd.DataFrame, classes: Sequence[str] | None) -> list[str]:
        """The class list: given (e.g. every POI of the prepared table) or the sorted training labels."""
        labels = train["poi"].astype(str)
        if classes is None:
            found = sorted(labels.unique().tolist())
        else:
            found = [str(c) for c in classes]
            unknown = sorted(set(labels) - set(found))
            if unknown:
                raise PostlocError(f"training posts have POIs outside the class list: {unknown[:5]}")
        if not found:
            raise PostlocError("no training posts: cannot fit a model")
        return found


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise PostlocError(f"{directory} holds no saved model ({MODEL_FILE} is missing)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT_VERSION:
        raise PostlocError(f"{path}: model format {manifest.get('format')!r} is not supported (expected {FORMAT_VERSION})")
    return manifest


def trainer_from_manifest(manifest: dict[str, Any]) -> TrainerConfig:
    return make_dataclass_config(TrainerConfig, manifest.get("trainer") or {}, "trainer")
