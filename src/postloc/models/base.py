"""The one interface every location model implements, in the manner of scikit-learn estimators.

``fit`` learns from a DataFrame of prepared posts (columns ``text``, ``hashtags``, ``poi`` and,
when image features exist, ``image_vector``), ``predict_proba`` returns one probability row per
post over ``classes_`` (POI labels), ``save``/``load`` use a folder holding ``model.json`` plus
model-specific files (safetensors and JSON; never pickle, so a saved model cannot run code).
Keeping the interface this small lets the training CLI, the evaluation, the benchmark and the
prediction API treat MRLF and the baselines alike.

Compatibility of saved models: ``model.json`` holds ``format`` (an integer, :data:`FORMAT_VERSION`)
and the ``postloc_version`` that wrote it. ``format`` changes only when a saved folder can no
longer be read the old way; a postloc reads exactly its own format, whatever package version wrote
it, and refuses any other format with a message naming both versions. A ``model.json`` without
``format`` (none was ever written without it, but hand-made files exist) is read as format 1.
Every ``load`` (and the resume path ``_read_folder``) turns a damaged, truncated, edited or missing
file into a :class:`~postloc.errors.ModelFileError` naming the file or folder, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from postloc.errors import ModelFileError, PostlocError
from postloc.nn.config import TrainerConfig
from postloc.settings import make_dataclass_config

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap each subclass's ``load`` and ``_read_folder`` so damaged files give clear errors.

        Done once here rather than in every model, so a new model cannot forget it.
        """
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("load"), classmethod):
            original_load = cls.__dict__["load"].__func__

            @functools.wraps(original_load)
            def load(klass, directory, *args, **kw):
                with model_file_errors(directory, getattr(klass, "name", klass.__name__)):
                    model = original_load(klass, directory, *args, **kw)
                    _self_test(model, directory)
                    return model

            cls.load = classmethod(load)  # type: ignore[method-assign]
        read_folder = cls.__dict__.get("_read_folder")
        if callable(read_folder):
            @functools.wraps(read_folder)
            def _read_folder(self, folder, *args, **kw):
                with model_file_errors(folder, getattr(self, "name", type(self).__name__)):
                    return read_folder(self, folder, *args, **kw)

            cls._read_folder = _read_folder  # type: ignore[attr-defined]

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
        return {"model": self.name, "format": FORMAT_VERSION, "postloc_version": _package_version(),
                "config": asdict(self.config),
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
    """``model.json`` of a saved model, checked for a supported format (see the module docstring)."""
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise ModelFileError(f"{directory} holds no saved model ({MODEL_FILE} is missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelFileError(f"{path}: not valid JSON, the file is damaged or truncated ({error})") from None
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    check_format(manifest, path)
    if not isinstance(manifest.get("model"), str):
        raise ModelFileError(f"{path}: no model name (\"model\") in it")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ModelFileError(f"{path}: \"classes\" must be a non-empty list of POI labels")
    if not isinstance(manifest.get("config", {}), dict) or not isinstance(manifest.get("trainer") or {}, dict):
        raise ModelFileError(f"{path}: \"config\" and \"trainer\" must be JSON objects")
    return manifest


def check_format(manifest: dict[str, Any], path: str | Path) -> None:
    """Refuse a ``model.json`` of another format, saying which postloc wrote it and which this is."""
    found = manifest.get("format", 1)
    if found == FORMAT_VERSION and not isinstance(found, bool):
        return
    writer = manifest.get("postloc_version") or "an unknown version"
    if isinstance(found, int) and not isinstance(found, bool) and found > FORMAT_VERSION:
        advice = "it was written by a newer postloc; upgrade postloc to load it"
    else:
        advice = "it is not a format this postloc can read; retrain the model with this version"
    raise ModelFileError(f"{path}: model format {found!r} (written by postloc {writer}) is incompatible with "
                         f"postloc {_package_version()}, which reads format {FORMAT_VERSION}: {advice}")


@contextlib.contextmanager
def model_file_errors(directory: str | Path, name: str = "model") -> Iterator[None]:
    """Whatever goes wrong while reading a saved model becomes a :class:`ModelFileError` naming the folder."""
    try:
        yield
    except PostlocError:
        raise
    except FileNotFoundError as error:
        raise ModelFileError(f"{error.filename or directory}: missing; the saved {name} model in {directory} "
                             f"is incomplete") from None
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, OSError) as error:
        raise ModelFileError(f"{directory}: the saved {name} model is damaged or its files do not fit together "
                             f"({type(error).__name__}: {str(error)[:300]})") from None


def _self_test(model: "Estimator", directory: str | Path) -> None:
    """One empty post through the loaded model: it must give one probability per class in ``model.json``.

    Catches files that are each well formed but do not belong together (an edited class list, a
    weights file from another run) for every model alike, at the cost of one tiny prediction.
    """
    post = pd.DataFrame([{"id": "self-test", "text": "", "hashtags": [], "image_vector": None}])
    proba = np.asarray(model.predict_proba(post))
    if proba.shape != (1, len(model.classes_)) or not np.isfinite(proba).all():
        raise ModelFileError(f"{Path(directory) / MODEL_FILE} lists {len(model.classes_)} classes but the saved "
                             f"{model.name} model gives {proba.shape[-1] if proba.ndim else 0} scores per post "
                             f"(or non-finite ones); the folder's files do not belong together")


@functools.lru_cache(maxsize=1)
def _package_version() -> str:
    from postloc import __version__

    return __version__


def trainer_from_manifest(manifest: dict[str, Any]) -> TrainerConfig:
    return make_dataclass_config(TrainerConfig, manifest.get("trainer") or {}, "trainer")
