"""The one interface every location model implements, in the manner of scikit-learn estimators.

``fit(train, val=None, *, classes=None)`` learns from a DataFrame of prepared posts (columns
``text``, ``hashtags``, ``poi`` and, when image features exist, ``image_vector``);
``predict_proba`` returns one probability row per post over ``classes_`` (POI labels);
``save``/``load`` use a folder holding ``model.json`` plus model-specific files (safetensors and
JSON; never pickle, so a saved model cannot run code). Keeping the interface this small lets the
training CLI, the evaluation, the benchmark and the prediction API treat MRLF and the baselines alike.

One fit contract: every model's ``fit`` takes the same :class:`FitOptions` (the run folder, resume,
callbacks, progress, an executor; each model uses what it needs) and leaves the same typed
:class:`FitResult` in ``fit_result_`` (epochs, stop reason, the best epoch's val scores), so the
training layer calls every model alike and never asks what kind of model it trains. A subclass
implements :meth:`Estimator._fit`; :meth:`Estimator.fit` times it and records the result. Given a
run folder, a model fitted in one pass (the default :meth:`Estimator._fit_result`) saves itself as
``RUN/best`` and writes its one metrics row; a model trained in epochs
(:class:`~postloc.models.torch_estimator.TorchEstimator`) has its trainer write checkpoints,
``best/`` and curves, and ends the fit as the model ``best/`` holds.

What a model is, written once on its class: ``name`` (the registry key; ``@register`` reads it),
``Config`` (a frozen dataclass of hyperparameters), ``requires`` (the inputs it needs, each item
a modality or ``"a|b"`` for either one) and ``quick_params`` (tiny settings for ``--quick`` runs).

What a *fitted* model reads is one capability, :attr:`Estimator.inputs_used` (a :class:`ModelInputs`:
the modalities and the image vector's length). ``requires`` says what training must offer; a model
may still leave an offered input out (``stack`` drops a learner whose input the posts lack, or that
earned no weight). Prediction, ``explain`` and the server ask it whether to featurize a photo at all
and what length its vector must have; the page shows it.

Saving and loading go one way for every model: :meth:`Estimator.save` writes ``model.json``
(name, format, config, trainer settings, classes and the small fitted facts of
:meth:`~Estimator._manifest_extra`) then :meth:`~Estimator._write_files`; :meth:`Estimator.load`
reads the manifest back into a new instance and hands it to :meth:`~Estimator._read_files`.
The file formats and their compatibility rules live in :mod:`postloc.io.model_files`. Every
``load`` (and the resume path ``_read_folder``) turns a damaged, truncated, edited or missing
file into a :class:`~postloc.errors.ModelFileError` naming the file or folder, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from postloc.data.labels import label_indices
from postloc.errors import ModelFileError, PostlocError
from postloc.io.model_files import (
    FORMAT_VERSION,
    MODEL_FILE,
    check_format,
    file_stamps,
    package_version,
    read_manifest,
    seal_manifest,
    verify_folder,
    write_manifest,
)
from postloc.nn.config import TrainerConfig
from postloc.settings import make_dataclass_config

__all__ = [
    "MODALITIES",
    "NOT_EPOCH_BASED",
    "Estimator",
    "FORMAT_VERSION",
    "FitOptions",
    "FitResult",
    "MODEL_FILE",
    "ModelInputs",
    "check_format",
    "model_file_errors",
    "read_manifest",
    "trainer_from_manifest",
    "write_manifest",
]


#: the parts of a post a model may read, in the order people read them
MODALITIES = ("text", "hashtags", "image")


@dataclass(frozen=True)
class ModelInputs:
    """Which parts of a post a fitted model reads, and the length of the image vector it expects.

    One value answers both questions prediction asks before it spends time on a photo: is the
    photo read at all (``"image" in modalities``), and how long must its vector be (``image_dim``,
    > 0 exactly when it is read). Build one with :meth:`reading`; combine parts with ``|``.
    """

    modalities: frozenset[str] = frozenset()
    image_dim: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise PostlocError(f"unknown modalities {sorted(unknown)}; use some of {', '.join(MODALITIES)}")
        if ("image" in self.modalities) != (self.image_dim > 0):
            raise PostlocError(f"a model reads the image exactly when it expects image_dim > 0, got {self}")

    @classmethod
    def reading(cls, *modalities: str, image_dim: int = 0) -> ModelInputs:
        """The text modalities named (``"text"``, ``"hashtags"``), plus the image when ``image_dim`` > 0."""
        image_dim = max(0, int(image_dim))
        return cls(frozenset(modalities) | ({"image"} if image_dim else set()), image_dim)

    @property
    def image(self) -> bool:
        """Whether the model reads the photo (its feature vector)."""
        return "image" in self.modalities

    def ordered(self) -> list[str]:
        """The modalities in :data:`MODALITIES` order (what the page and ``/healthz`` list)."""
        return [m for m in MODALITIES if m in self.modalities]

    def __or__(self, other: ModelInputs) -> ModelInputs:
        """What a model made of two parts reads (their image vectors must agree in length)."""
        if self.image and other.image and self.image_dim != other.image_dim:
            raise PostlocError(f"parts expect image vectors of {self.image_dim} and {other.image_dim} numbers")
        return ModelInputs(self.modalities | other.modalities, max(self.image_dim, other.image_dim))


#: the stop reason (``run.json``'s ``stop_reason``) of a model fitted in one pass, without epochs
NOT_EPOCH_BASED = "not epoch-based"


@dataclass(frozen=True)
class FitOptions:
    """What a fit inside a training run gets besides the posts; every model's ``fit`` takes it.

    One object rather than keywords some models take and others refuse, so that the training
    layer calls every model the same way; each model reads the fields it needs (its
    :attr:`Estimator.fit_options`) and leaves the others alone.
    """

    #: the run folder: ``best/`` and the metrics (every model), checkpoints and curves (epoch-trained ones);
    #: None: a plain fit that writes nothing
    run_dir: Path | None = None
    #: continue from the newest checkpoint in ``run_dir`` (a model without epochs fits again)
    resume: bool = False
    #: objects seeing every batch and epoch (:mod:`postloc.nn.trainer`'s callbacks)
    callbacks: tuple[Any, ...] = ()
    #: None: the model's own default (a bar on a terminal only, or the trainer setting); True: lines in a log too;
    #: False: silent
    progress: bool | None = None
    #: what runs a model's independent regressions (:mod:`postloc.models.stack.fits`); None: threads here
    executor: Any = None
    #: the fit is one process of several under torchrun (each trains the same model on its share)
    data_parallel: bool = False


@dataclass(frozen=True)
class FitResult:
    """What a fit did, the same record for every model: ``run.json``'s training facts come from it.

    ``history`` holds the per-epoch rows (``metrics.jsonl``); ``checkpoints`` says whether the fit
    wrote epoch checkpoints and curves (a model trained in epochs), so that no caller has to
    recognise a stop reason.
    """

    epochs_run: int
    best_epoch: int
    stop_reason: str
    #: the whole fit, and the mean of the epochs' own times (None without epochs recorded)
    seconds: float
    seconds_per_epoch: float | None
    history: tuple[dict[str, Any], ...] = ()
    checkpoints: bool = False

    @property
    def best_row(self) -> dict[str, Any] | None:
        """The row of the kept epoch (the last one marked best; else the last epoch), None without epochs."""
        rows = [row for row in self.history if row.get("best")] or list(self.history)
        return rows[-1] if rows else None

    @property
    def val_acc(self) -> float | None:
        """Val accuracy of the kept epoch (None without val posts)."""
        row = self.best_row
        return row.get("val_acc") if row else None

    @property
    def val_loss(self) -> float | None:
        """Val cross-entropy of the kept epoch (None without val posts)."""
        row = self.best_row
        return row.get("val_loss") if row else None

    def summary(self) -> dict[str, Any]:
        """The keys ``run.json`` has always held for the fit: epochs, best epoch, stop reason, seconds per epoch."""
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "stop_reason": self.stop_reason,
            "seconds_per_epoch": self.seconds_per_epoch,
        }


class Estimator(ABC):
    """Base class of the registered models.

    Subclasses set the class facts (``name``, ``Config``, ``requires``, ``quick_params``),
    implement ``fit`` and ``predict_proba``, and say what a fitted model keeps:
    :meth:`_manifest_extra` (small values, in ``model.json``), :meth:`_write_files` (files beside
    it) and :meth:`_read_files` (the inverse of both).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    #: inputs the model needs, each a modality or "a|b" (either one); the experiments mark it n/a without them
    requires: ClassVar[tuple[str, ...]] = ()
    #: tiny hyperparameters for ``--quick`` runs (tests, smoke runs)
    quick_params: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: whether ``fit`` runs epochs through the trainer (checkpoints, resume, curves); a fact the registry
    #: lists, never a switch for callers: every model is fitted through the same :class:`FitOptions`
    epoch_based: ClassVar[bool] = False
    #: whether ``predict_proba`` is already calibrated on users the model did not train on (``stack``
    #: fits its combination out of fold); training then fits no temperature on the validation posts,
    #: which such a model may have trained on
    calibrates_itself: ClassVar[bool] = False
    #: the fields of :class:`FitOptions` this model's fit reads (every model writes ``best/`` into ``run_dir``);
    #: :meth:`check_options` refuses an ``executor`` or ``data_parallel`` for a model that does not read it
    fit_options: ClassVar[tuple[str, ...]] = ("run_dir",)

    @property
    def inputs_used(self) -> ModelInputs:
        """The parts of a post this (fitted) model reads; every built-in model says so itself.

        The default suits a model that says nothing (a third-party one): caption and hashtags, no
        photo, since a photo is featurized only for a model that states the vector length it reads.
        """
        return ModelInputs.reading("text", "hashtags")

    @property
    def trains_on_val(self) -> bool:
        """Whether ``fit`` also learns from the ``val`` posts it is given (then a val score is in-sample)."""
        return False

    @property
    def reads_neighbours(self) -> bool:
        """Whether a post's probabilities depend on the other posts of the frame (``stack``: the same user's)."""
        return False

    def describe(self) -> dict[str, Any] | None:
        """Facts about the fitted model worth a line in ``run.json`` (``model_info``); None: nothing to add."""
        return None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's own ``load`` and ``_read_folder`` so damaged files give clear errors.

        The built-in models inherit the guarded ones below; this keeps a model that overrides
        them (a third-party one, say) just as safe, without it having to remember.
        """
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("load"), classmethod):
            # the classmethod descriptor itself is replaced, which mypy's view of ``load`` cannot express
            cls.load = classmethod(  # type: ignore[method-assign,assignment]  # a descriptor, see above
                _guarded_load(cls.__dict__["load"].__func__)
            )
        if callable(cls.__dict__.get("_read_folder")):
            cls._read_folder = _guarded_read_folder(cls.__dict__["_read_folder"])  # type: ignore[method-assign]

    def __init__(self, config: Any = None, trainer: TrainerConfig | None = None):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = make_dataclass_config(self.Config, config, "params")
        self.config = config
        self.trainer = trainer or TrainerConfig()
        self.classes_: list[str] = []
        self.fit_result_: FitResult | None = None  # what the last fit did (see fit)

    def check_options(self, options: FitOptions) -> None:
        """Refuse what this model's fit cannot do with ``options``, before a run writes anything.

        An ``executor`` runs independent regressions, which only some models have; data-parallel
        training splits epochs over processes, which a model fitted in one pass has not.
        """
        if options.executor is not None and "executor" not in self.fit_options:
            raise PostlocError(
                f"--engine ray runs the independent regressions of a model that has them (stack); "
                f"model {self.name!r} has none: train it with the local engine"
            )
        if options.data_parallel and "data_parallel" not in self.fit_options:
            raise PostlocError(
                f"model {self.name!r} is not trained epoch by epoch, so it has nothing to run "
                "data-parallel; train it without torchrun"
            )

    def fit(
        self,
        train: pd.DataFrame,
        val: pd.DataFrame | None = None,
        *,
        classes: Sequence[str] | None = None,
        options: FitOptions | None = None,
    ) -> Self:
        """Learn from ``train`` (``val`` steers model selection where the model has any); ``fit_result_`` says how.

        ``classes``: the class list (e.g. every POI of the prepared table; default: the sorted
        training labels). ``options``: the run's folder and settings (:class:`FitOptions`), the same
        for every model. Returns the model, as scikit-learn's ``fit`` does.
        """
        options = options or FitOptions()
        started = time.perf_counter()
        self._fit(train, val, classes=classes, options=options)
        self.fit_result_ = self._fit_result(val, options, time.perf_counter() - started)
        return self

    @abstractmethod
    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        """The model's own learning (what :meth:`fit` runs); read of ``options`` only what the model needs."""

    def _fit_result(self, val: pd.DataFrame | None, options: FitOptions, seconds: float) -> FitResult:
        """A fit in one pass: given a run folder, save the model as ``RUN/best`` and write its one metrics row.

        The row holds the fit's time and, with val posts, the val loss and accuracy (what an
        epoch-trained model's best epoch records), so every run's ``metrics.jsonl`` reads alike.
        """
        row: dict[str, Any] = {"epoch": 1, "seconds": round(seconds, 3)}
        if options.run_dir is not None:
            from postloc.io.atomic import write_folder_atomically
            from postloc.io.run_folder import RunFolder

            run = RunFolder(options.run_dir)
            write_folder_atomically(run.best, self._write_folder)
            if val is not None and len(val):
                proba = self.predict_proba(val)
                y = label_indices(val["poi"], self.classes_)
                ok = y >= 0
                row.update(
                    val_loss=float(-np.log(np.clip(proba[ok, y[ok]], 1e-12, 1)).mean()),
                    val_acc=float((proba.argmax(axis=1) == y).mean()),
                )
            run.write_metrics([row])
        return FitResult(1, 1, NOT_EPOCH_BASED, seconds, seconds, (row,))

    @abstractmethod
    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        """``[len(posts), len(classes_)]`` probabilities, rows summing to 1."""

    def predict(self, posts: pd.DataFrame) -> list[str]:
        """The most probable POI label per post."""
        proba = self.predict_proba(posts)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    # --- persistence -----------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model into ``directory`` (created if needed)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_folder(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Estimator:
        """Read a model written by :meth:`save`."""
        model = cls()
        model._read_folder(Path(directory))
        return model

    def _write_folder(self, folder: Path) -> None:
        """``model.json`` and the model's files (also what every checkpoint and ``RUN/best`` hold).

        The files are written first, then ``model.json`` with their digests and its own (sealed),
        so any later edit of the folder is refused on load (:func:`verify_folder`).
        """
        folder.mkdir(parents=True, exist_ok=True)
        before = file_stamps(folder)
        self._write_files(folder)
        written = [
            name for name, stamp in file_stamps(folder).items() if name != MODEL_FILE and before.get(name) != stamp
        ]
        manifest = {
            "model": self.name,
            "format": FORMAT_VERSION,
            "postloc_version": package_version(),
            "config": asdict(self.config),
            "trainer": asdict(self.trainer),
            "classes": list(self.classes_),
            **self._manifest_extra(),
        }
        write_manifest(folder, seal_manifest(folder, manifest, written))

    def _read_folder(self, folder: Path, *, keep_trainer: bool = False) -> None:
        """Become the model saved in ``folder``; ``keep_trainer`` (resuming) keeps this run's trainer settings."""
        manifest = read_manifest(folder)
        if manifest["model"] != self.name:
            raise PostlocError(f"{folder} holds a {manifest['model']!r} model, not {self.name!r}")
        try:  # an edited value (heads: 0, a size of 1e15) is refused here, naming the file and the field
            self.config = make_dataclass_config(self.Config, manifest.get("config") or {}, "params")
            if not keep_trainer:
                self.trainer = trainer_from_manifest(manifest)
        except ModelFileError:
            raise
        except PostlocError as error:
            raise ModelFileError(f"{folder / MODEL_FILE}: {error}") from None
        self.classes_ = list(manifest["classes"])
        self._read_files(folder, manifest)
        # after the readers, whose messages say more about a truncated or malformed file; reading is
        # harmless (JSON and safetensors, never code), answering with an edited file is not
        verify_folder(folder, manifest)

    def _manifest_extra(self) -> dict[str, Any]:
        """Fitted values small enough for ``model.json`` (class counts, a chosen weight); none by default."""
        return {}

    def _write_files(self, folder: Path) -> None:  # noqa: B027 - optional hook, a no-op by default
        """The fitted state that does not fit in ``model.json`` (weights, vocabularies); none by default."""

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Restore what :meth:`_manifest_extra` and :meth:`_write_files` saved; config and classes are set."""

    # --- helpers shared by subclasses -------------------------------------------------------

    def _check_fitted(self) -> None:
        if not self.classes_:
            raise PostlocError(f"{self.name} model is not fitted yet; call fit() or load()")

    def _class_index(self, posts: pd.DataFrame) -> np.ndarray:
        """Each post's index into ``classes_`` (-1: a POI outside them, or no ``poi`` column)."""
        if "poi" not in posts:
            return np.full(len(posts), -1, dtype=np.int64)
        return label_indices(posts["poi"], self.classes_)

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


def _guarded_load(load):
    """``load`` with damaged files turned into :class:`ModelFileError` and the loaded model self-tested."""

    @functools.wraps(load)
    def guarded(klass, directory, *args, **kw):
        with model_file_errors(directory, getattr(klass, "name", klass.__name__)):
            model = load(klass, directory, *args, **kw)
            _self_test(model, directory)
            return model

    return guarded


def _guarded_read_folder(read_folder):
    """``_read_folder`` with damaged files turned into :class:`ModelFileError` naming the folder."""

    @functools.wraps(read_folder)
    def guarded(self, folder, *args, **kw):
        with model_file_errors(folder, getattr(self, "name", type(self).__name__)):
            return read_folder(self, folder, *args, **kw)

    return guarded


# the classmethod descriptor itself is replaced, which mypy's view of ``load`` cannot express
Estimator.load = classmethod(  # type: ignore[method-assign,assignment]  # a descriptor, see above
    _guarded_load(Estimator.__dict__["load"].__func__)
)
Estimator._read_folder = _guarded_read_folder(Estimator.__dict__["_read_folder"])  # type: ignore[method-assign]


@contextlib.contextmanager
def model_file_errors(directory: str | Path, name: str = "model") -> Iterator[None]:
    """Whatever goes wrong while reading a saved model becomes a :class:`ModelFileError` naming the folder."""
    try:
        yield
    except PostlocError:
        raise
    except FileNotFoundError as error:
        raise ModelFileError(
            f"{error.filename or directory}: missing; the saved {name} model in {directory} is incomplete"
        ) from None
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, OSError) as error:
        raise ModelFileError(
            f"{directory}: the saved {name} model is damaged or its files do not fit together "
            f"({type(error).__name__}: {str(error)[:300]})"
        ) from None


def _self_test(model: Estimator, directory: str | Path) -> None:
    """One empty post through the loaded model: it must give one probability per class in ``model.json``.

    Catches files that are each well formed but do not belong together (an edited class list, a
    weights file from another run) for every model alike, at the cost of one tiny prediction.
    """
    post = pd.DataFrame([{"id": "self-test", "text": "", "hashtags": [], "image_vector": None}])
    proba = np.asarray(model.predict_proba(post))
    if proba.shape != (1, len(model.classes_)) or not np.isfinite(proba).all():
        raise ModelFileError(
            f"{Path(directory) / MODEL_FILE} lists {len(model.classes_)} classes but the saved "
            f"{model.name} model gives {proba.shape[-1] if proba.ndim else 0} scores per post "
            f"(or non-finite ones); the folder's files do not belong together"
        )


def trainer_from_manifest(manifest: dict[str, Any]) -> TrainerConfig:
    return make_dataclass_config(TrainerConfig, manifest.get("trainer") or {}, "trainer")
