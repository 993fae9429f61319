"""The base of every PyTorch model (MRLF, DeepGeo, LocTwi, the image heads): fit with resume, predict, save, load.

A torch model differs from another in four things only, which its subclass provides:

* :meth:`TorchEstimator._build_state`: what it learns from the training posts before the network
  exists (vocabularies, input sizes); saved as JSON in :attr:`TorchEstimator.state_file`;
* :meth:`TorchEstimator._build_net`: the network for that state and ``classes_``; it keeps a
  ``log_prior`` buffer (the trainer reads the class count from it) set by ``set_prior`` from the
  training class counts, the answer for a post with no usable input;
* :meth:`TorchEstimator._encode`: posts to the batches the network reads;
* optionally :meth:`TorchEstimator._train_rows`: which posts to learn from (image heads: those with an image);
* optionally :meth:`TorchEstimator._sample_weights` (a loss weight per training post, carried in
  the batches as ``weight``) and :meth:`TorchEstimator._loss` (the training loss, e.g. with soft targets).

Everything else lives here once, in the manner of sentence-transformers' modules
(``save_config``/``load_torch_weights``): seeding and deterministic kernels, resuming from the
newest checkpoint of ``run_dir`` (whose config and state win over the arguments), the epoch
:class:`~postloc.nn.trainer.Trainer`, batched prediction, and the saved folder::

    model.json           name, format, config, trainer settings, classes (+ a subclass's extras)
    weights.safetensors  the network's state dict (including the class prior buffer)
    state.json           the JSON state (MRLF names it vocab.json)

which is also the content of every checkpoint and of ``RUN/best``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from postloc.errors import PostlocError
from postloc.io.model_files import MODEL_FILE, load_state_into, read_json, save_tensors, write_compact_json
from postloc.io.run_folder import RunFolder
from postloc.models.base import Estimator, FitOptions, FitResult
from postloc.nn import checkpoints as ck
from postloc.nn.trainer import (
    BatchData,
    LossFn,
    Trainer,
    TrainState,
    WeightedData,
    deterministic,
    predict_proba_batches,
)


class _PriorNet(Protocol):
    """What :meth:`TorchEstimator._build_net`'s network has besides being an ``nn.Module``."""

    def set_prior(self, counts: torch.Tensor) -> None: ...


class TorchEstimator(Estimator):
    """An estimator whose model is a torch network trained epoch by epoch (see the module docstring)."""

    epoch_based = True
    fit_options = ("run_dir", "resume", "callbacks", "progress", "data_parallel")
    #: file names of the saved folder (a subclass may rename the state file; MRLF keeps ``vocab.json``)
    weights_file: ClassVar[str] = "weights.safetensors"
    state_file: ClassVar[str] = "state.json"

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.state_: Any = {}  # learned from the training posts before the network (see _build_state)
        self.net: nn.Module | None = None
        self.state: TrainState | None = None  # the trainer's record of the last fit (epochs, history)

    # --- what a subclass provides ----------------------------------------------------------

    @abstractmethod
    def _build_state(self, train: pd.DataFrame) -> Any:
        """Vocabularies and input sizes from the training posts (saved through :meth:`_state_to_json`)."""

    @abstractmethod
    def _build_net(self) -> nn.Module:
        """The network for ``self.state_`` and ``self.classes_``, with a ``log_prior`` buffer and ``set_prior``."""

    @abstractmethod
    def _encode(self, posts: pd.DataFrame, y: np.ndarray) -> BatchData:
        """Batches of ``posts``; ``y`` are the class indices (-1: unknown)."""

    def _train_rows(self, posts: pd.DataFrame) -> pd.DataFrame:
        """Which posts to learn (and validate) from: all of them unless a model needs an input."""
        return posts

    def _sample_weights(self, rows: pd.DataFrame) -> np.ndarray | None:
        """A loss weight per training post (``rows``' order); None: every post weighs 1 (the default)."""
        return None

    def _loss(self, rows: pd.DataFrame, y: np.ndarray) -> LossFn | None:
        """The training loss for these training posts and labels; None: the trainer's plain cross-entropy."""
        return None

    def _state_to_json(self, state: Any) -> Any:
        """``state_`` as JSON (it is JSON already unless a subclass keeps richer objects)."""
        return state

    def _state_from_json(self, data: Any) -> Any:
        """Inverse of :meth:`_state_to_json`."""
        return data

    # --- fitting ---------------------------------------------------------------------------

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        """Train on ``train``; ``val`` drives the learning-rate schedule, early stopping and best weights.

        With ``options.run_dir``, a checkpoint is written every epoch and ``options.resume``
        continues from the newest one (the checkpoint's config and state win over the arguments);
        ``callbacks`` see every batch and epoch, ``progress`` overrides the trainer setting for
        progress bars. The fit ends as the model ``RUN/best`` holds (read back from it), so that
        what training calibrates and returns is what prediction will load.
        """
        cfg = self.trainer
        run_dir, resume = options.run_dir, options.resume
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
                counts = np.bincount(self._class_index(train), minlength=len(self.classes_))
                cast(_PriorNet, self.net).set_prior(torch.from_numpy(counts))
            rows = self._train_rows(train)
            if not len(rows):
                raise PostlocError(f"{self.name}: no training post has the input this model needs")
            y = self._class_index(rows)
            if (y < 0).any():
                raise PostlocError("some training posts have POIs outside the model's classes")
            train_data: BatchData = self._encode(rows, y)
            weights = self._sample_weights(rows)
            if weights is not None:
                train_data = WeightedData(train_data, weights)
            val_rows = self._train_rows(val) if val is not None and len(val) else None
            val_data = (
                self._encode(val_rows, self._class_index(val_rows)) if val_rows is not None and len(val_rows) else None
            )
            trainer = Trainer(cfg, run_dir=run_dir, callbacks=options.callbacks, progress=options.progress)
            self.state = trainer.fit(
                self._fitted_net(),
                train_data,
                val_data,
                export=self._write_folder,
                restore=self._restore_weights,
                resume_from=resume_from,
                loss=self._loss(rows, y),
            )
        best = RunFolder(run_dir).best if run_dir is not None else None
        if best is not None and (best / MODEL_FILE).exists():  # rank 0 (the others write no best/)
            self._read_folder(best, keep_trainer=True)

    def _fit_result(self, val: pd.DataFrame | None, options: FitOptions, seconds: float) -> FitResult:
        """The trainer's record: epochs run, the best one, why it stopped; checkpoints and curves were written."""
        state = self.state
        if state is None:
            raise PostlocError(f"{self.name} model is not fitted yet; call fit()")
        history = state.history
        return FitResult(
            epochs_run=state.epoch,
            best_epoch=state.best_epoch,
            stop_reason=state.stop_reason,
            seconds=seconds,
            seconds_per_epoch=float(np.mean([r["seconds"] for r in history])) if history else None,
            history=tuple(history),
            checkpoints=True,
        )

    # --- prediction ------------------------------------------------------------------------

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        data = self._encode(posts, np.full(len(posts), -1, dtype=np.int64))
        return predict_proba_batches(self._fitted_net(), data, self.trainer.eval_batch_size)

    # --- persistence -----------------------------------------------------------------------

    def _write_files(self, folder: Path) -> None:
        save_tensors(self._fitted_net().state_dict(), folder / self.weights_file)
        write_compact_json(folder / self.state_file, self._state_to_json(self.state_))

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.state_ = self._state_from_json(read_json(folder / self.state_file))
        self.net = self._build_net()
        self._restore_weights(folder)
        self.net.eval()  # loaded to predict; fit() switches to training mode itself

    def _restore_weights(self, folder: Path) -> None:
        load_state_into(self._fitted_net(), folder / self.weights_file)

    def _fitted_net(self) -> nn.Module:
        """The network, built by ``fit`` or ``load``; before either, the error of :meth:`_check_fitted`."""
        if self.net is None:
            raise PostlocError(f"{self.name} model is not fitted yet; call fit() or load()")
        return self.net
