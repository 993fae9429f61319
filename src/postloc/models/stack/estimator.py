"""``stack``: postloc's own model, built to beat the simple baselines on users it has never seen.

Why this shape (the measurements are in docs/winning-model.md):

- **Linear models per modality.** On the data postloc meets (short captions, a handful of
  hashtags, a photo) a regularised logistic regression over sparse n-grams is the strongest
  single learner that trains in seconds on two cores; the neural models of the paper lose to it.
- **User weights.** Posts are weighted ``1 / n_user ** user_weight_power``: a few prolific users
  otherwise decide what is learned, and test users are new users
  (:mod:`postloc.models.user_weights`).
- **Out-of-fold combination.** Each learner's probabilities on the training posts are computed
  out of fold over users (``inner_folds`` grouped folds); the per-learner weights are fitted on
  them (:mod:`postloc.models.stack.combiner`). A learner that only memorises its training users
  earns no weight, and the weights double as a temperature fitted on unseen users, so the model
  is calibrated by construction (:attr:`Stack.calibrates_itself`: training fits no second
  temperature on the validation posts).
- Regularisation ``C`` per learner is chosen by out-of-fold accuracy over all the run's users
  (``c_selection="oof"``; ``"val"`` chooses on the validation posts alone), and
  (``refit_on_val``) the learners are fitted on train and validation posts together: every user
  the run may learn from counts, which matters when users are few.

Learners whose input the training data lacks (no photo anywhere, say) are left out; the saved
model lists the ones it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from postloc.data.splits import user_groups
from postloc.errors import PostlocError
from postloc.io.model_files import load_tensors, read_json, save_tensors, write_compact_json
from postloc.models.base import Estimator
from postloc.models.registry import register
from postloc.models.stack.combiner import combine, fit_combiner
from postloc.models.stack.learners import LEARNERS, Learner
from postloc.models.user_context import CONTEXTS, LEVELS, apply_context, context_evidence, fit_rhos, smoothed_prior
from postloc.models.user_weights import user_sample_weights
from postloc.settings import check_ranges

WEIGHTS = "weights.safetensors"
VOCAB = "vocabularies.json"

#: what a config (or an edited model.json) may ask for; refused on load past it
RANGES = {
    "user_weight_power": (0.0, 2.0),
    "inner_folds": (0, 20),
    "min_df": (1, 1_000_000),
    "max_features": (1, 10_000_000),
    "max_iter": (1, 100_000),
}


@dataclass(frozen=True)
class StackConfig:
    learners: tuple[str, ...] = ("words", "chars", "image")  # each used when the training posts have its input
    user_weight_power: float = 0.5  # post weight 1/n_user**power; 0: posts alike, 1: users alike
    c_grid: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)  # regularisation per learner, chosen as c_selection says
    c_default: float = 3.0  # when there is nothing to choose on (no inner folds and no val posts)
    inner_folds: int = 4  # user-grouped folds for the out-of-fold probabilities (0 or 1: weights of 1)
    refit_on_val: bool = True  # fit the learners on train + val (after choosing C)
    c_selection: str = "oof"  # "oof": C by out-of-fold accuracy over all users; "val": on the val posts
    min_df: int = 2
    max_features: int = 200_000
    char_ngrams: tuple[int, int] = (2, 5)
    max_iter: int = 1000
    seed: int = 0
    # "user": a user's other posts of the same day, and of other days with a weight of their own, as
    # evidence (user_context); "day": the same day only; "none": each post alone
    context: str = "user"

    def __post_init__(self) -> None:
        check_ranges(self, RANGES)
        unknown = [name for name in self.learners if name not in LEARNERS]
        if unknown or not self.learners:
            raise PostlocError(f"stack learners must be some of {', '.join(LEARNERS)}, got {list(self.learners)}")
        if len(self.char_ngrams) != 2 or not 1 <= self.char_ngrams[0] <= self.char_ngrams[1] <= 10:
            raise PostlocError(f"char_ngrams must be (low, high) with 1 <= low <= high <= 10, got {self.char_ngrams}")
        if self.context not in CONTEXTS:
            raise PostlocError(f"context must be one of {', '.join(CONTEXTS)}, got {self.context!r}")
        if self.c_selection not in ("oof", "val"):
            raise PostlocError(f"c_selection must be 'oof' or 'val', got {self.c_selection!r}")
        if not self.c_grid or any(not c > 0 for c in (*self.c_grid, self.c_default)):
            raise PostlocError("c_grid and c_default must hold positive numbers")


@register
class Stack(Estimator):
    name = "stack"
    Config = StackConfig
    requires = ("text|hashtags|image",)
    quick_params = {"c_grid": (1.0,), "inner_folds": 2, "max_iter": 200}
    #: its combiner weights are fitted on out-of-fold users: no temperature on val on top (training/api)
    calibrates_itself = True

    def __init__(self, config: Any = None, trainer=None):
        super().__init__(config, trainer)
        self.learners_: list[Learner] = []
        self.weights_ = np.zeros(0)
        self.context_rhos_: tuple[float, ...] = ()  # fitted weight per kind of neighbours (0: unused)
        self.context_prior_ = np.zeros(0)

    @property
    def reads_neighbours(self) -> bool:
        """Whether a post's probabilities depend on the other posts of the frame (the same user's)."""
        return any(rho > 0 for rho in self.context_rhos_)

    @property
    def trains_on_val(self) -> bool:
        return bool(self.config.refit_on_val)

    # --- fit ---------------------------------------------------------------------------------

    def fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None = None, *, classes: Sequence[str] | None = None
    ) -> Stack:
        cfg = self.config
        self.classes_ = self._resolve_classes(train, classes)
        y = self._class_index(train)
        weights = user_sample_weights(train, cfg.user_weight_power)
        kinds = [kind for kind in cfg.learners if LEARNERS[kind].usable(train)]
        if not kinds:
            raise PostlocError(
                f"stack: the training posts have none of the inputs of its learners ({', '.join(cfg.learners)})"
            )
        val = val if val is not None and len(val) else None
        y_val = None if val is None else self._class_index(val)
        everyone = pd.concat([train, val], ignore_index=True) if val is not None and cfg.refit_on_val else train
        folds = self._inner_folds(everyone)
        y_all = self._class_index(everyone)
        weights_all = user_sample_weights(everyone, cfg.user_weight_power)
        self.learners_, oof = [], []
        for kind in kinds:
            learner = LEARNERS[kind](len(self.classes_))
            if cfg.c_selection == "oof" and folds:
                # every C of the grid out of fold over all users; the chosen one's probabilities feed the combiner
                learner.fit_features(everyone, cfg)
                X = learner.features(everyone)
                C, held_out = self._choose_c_out_of_fold(learner, X, y_all, weights_all, folds)
            else:
                learner.fit_features(train, cfg)
                C = self._choose_c(learner, learner.features(train), y, weights, val, y_val)
                if everyone is not train:  # the vocabulary and IDF of every post the run may learn from
                    learner.fit_features(everyone, cfg)
                X = learner.features(everyone)
                held_out = self._out_of_fold(learner, X, y_all, weights_all, C, folds)
            oof.append(held_out)
            learner.fit_regression(X, y_all, weights_all, C, cfg.max_iter)
            self.learners_.append(learner)
        # too few users to hold any out: every learner counts once, as it is
        self.weights_ = fit_combiner(oof, y_all, weights_all) if folds else np.ones(len(kinds))
        self._fit_context(everyone, combine(oof, self.weights_) if folds else None, y_all, weights_all)
        return self

    def _fit_context(self, posts: pd.DataFrame, oof: np.ndarray | None, y: np.ndarray, weights: np.ndarray) -> None:
        """The weights of :mod:`postloc.models.user_context` on the out-of-fold probabilities (0 without them).

        The inner folds hold whole users out, so a post's neighbours (all the same user's) were held out with it.
        """
        self.context_prior_ = smoothed_prior(y, weights, len(self.classes_))
        levels = LEVELS[self.config.context]
        if oof is None:
            self.context_rhos_ = tuple(0.0 for _ in levels)
            return
        evidence = context_evidence(oof, posts, self.config.context)
        self.context_rhos_ = fit_rhos(oof, evidence, y, weights, self.context_prior_)

    def _inner_folds(self, train: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
        """User-grouped (train, held-out) index pairs; empty when there are too few users."""
        from sklearn.model_selection import GroupKFold

        users = train["user"] if "user" in train else pd.Series([None] * len(train), dtype=object)
        groups = user_groups(users).to_numpy()
        k = min(self.config.inner_folds, len(set(groups)))
        if k < 2:
            return []
        # shuffle which users go together (GroupKFold itself balances sizes, deterministically)
        codes, _ = pd.factorize(groups)
        rng = np.random.default_rng(self.config.seed)
        shuffled = rng.permutation(codes.max() + 1)[codes]
        return list(GroupKFold(n_splits=k).split(np.zeros(len(train)), groups=shuffled))

    def _choose_c(self, learner: Learner, X: Any, y: np.ndarray, weights: np.ndarray, val, y_val) -> float:
        """The C of ``c_grid`` with the best accuracy on the validation posts (ties: the smaller C)."""
        grid = sorted(self.config.c_grid)
        if y_val is None or len(grid) == 1:
            return grid[0] if len(grid) == 1 else self.config.c_default
        X_val = learner.features(val)
        best = (-1.0, grid[0])
        for C in grid:
            learner.fit_regression(X, y, weights, C, self.config.max_iter)
            score = float((learner.log_proba(X_val).argmax(axis=1) == y_val).mean())
            if score > best[0]:
                best = (score, C)
        return best[1]

    def _choose_c_out_of_fold(
        self, learner: Learner, X: Any, y: np.ndarray, weights: np.ndarray, folds
    ) -> tuple[float, np.ndarray]:
        """The C of ``c_grid`` with the best user-weighted out-of-fold accuracy (ties: the smaller C).

        Scores every training user rather than the validation eighth: on a few hundred posts the
        validation accuracy of neighbouring C values differs by a handful of posts.
        """
        best: tuple[float, float, np.ndarray] | None = None
        known = y >= 0
        for C in sorted(self.config.c_grid):
            held_out = self._out_of_fold(learner, X, y, weights, C, folds)
            hits = (held_out.argmax(axis=1) == y) & known
            score = float((weights * hits).sum() / max(weights[known].sum(), 1e-12))
            if best is None or score > best[0] + 1e-9:
                best = (score, C, held_out)
        assert best is not None  # c_grid is never empty (StackConfig checks it)
        return best[1], best[2]

    def _out_of_fold(self, learner: Learner, X: Any, y: np.ndarray, weights: np.ndarray, C: float, folds) -> np.ndarray:
        out = np.zeros((len(y), len(self.classes_)))
        for fit_idx, held_idx in folds:
            learner.fit_regression(X[fit_idx], y[fit_idx], weights[fit_idx], C, self.config.max_iter)
            out[held_idx] = learner.log_proba(X[held_idx])
        return out

    # --- predict -----------------------------------------------------------------------------

    def predict_proba(self, posts: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        if not len(posts):
            return np.zeros((0, len(self.classes_)))
        proba = combine([learner.log_proba(learner.features(posts)) for learner in self.learners_], self.weights_)
        if self.reads_neighbours:
            evidence = context_evidence(proba, posts, self.config.context)
            proba = apply_context(proba, evidence, self.context_rhos_, self.context_prior_)
        return proba

    def learner_weights(self) -> dict[str, float]:
        """How much each learner counts in the combination (the fitted ``w_m``)."""
        return {learner.kind: float(w) for learner, w in zip(self.learners_, self.weights_, strict=True)}

    # --- persistence -------------------------------------------------------------------------

    def _manifest_extra(self) -> dict[str, Any]:
        return {
            "learners": [{"kind": ln.kind, "C": ln.C, "seen": ln.seen} for ln in self.learners_],
            "learner_weights": self.weights_.tolist(),
            "context_rhos": list(self.context_rhos_),
            "context_prior": self.context_prior_.tolist(),
        }

    def _write_files(self, folder: Path) -> None:
        tensors = {}
        for learner in self.learners_:
            state = {"coef": learner.coef, "intercept": learner.intercept, **learner.tensors()}
            tensors.update(
                {f"{learner.kind}.{key}": torch.from_numpy(np.ascontiguousarray(v)) for key, v in state.items()}
            )
        save_tensors(tensors, folder / WEIGHTS)
        write_compact_json(folder / VOCAB, {learner.kind: learner.strings() for learner in self.learners_})

    def _read_files(self, folder: Path, manifest: dict[str, Any]) -> None:
        tensors = {k: v.numpy() for k, v in load_tensors(folder / WEIGHTS).items()}
        vocabularies = read_json(folder / VOCAB)
        self.learners_ = []
        for entry in manifest["learners"]:
            kind = str(entry["kind"])
            if kind not in LEARNERS:
                raise PostlocError(f"unknown stack learner {kind!r}")
            learner = LEARNERS[kind](len(self.classes_))
            learner.C, learner.seen = float(entry["C"]), [int(i) for i in entry["seen"]]
            own = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{kind}.")}
            learner.coef, learner.intercept = own.pop("coef"), own.pop("intercept")
            learner.restore(own, list(vocabularies.get(kind) or []), self.config)
            self.learners_.append(learner)
        self.weights_ = np.asarray(manifest["learner_weights"], dtype=np.float64)
        if len(self.weights_) != len(self.learners_) or not np.isfinite(self.weights_).all():
            raise PostlocError("the combiner's weights do not match the learners")
        # models saved before the context rule have no weights (0: probabilities as they were); those of one
        # context kind wrote a single "context_rho"
        levels = LEVELS[self.config.context]
        rhos = manifest.get("context_rhos", [manifest.get("context_rho", 0.0)] if levels else [])
        try:
            rhos = [float(r) for r in rhos]
        except (TypeError, ValueError):
            raise PostlocError("the stack's context weights are not numbers") from None
        self.context_rhos_ = tuple(rhos + [0.0] * (len(levels) - len(rhos)))
        self.context_prior_ = np.asarray(manifest.get("context_prior", []), dtype=np.float64)
        prior_ok = len(self.context_prior_) == len(self.classes_) and (self.context_prior_ > 0).all()
        in_range = len(self.context_rhos_) == len(levels) and all(0.0 <= r <= 1.0 for r in self.context_rhos_)
        if not in_range or sum(self.context_rhos_) > 1.0 or (self.reads_neighbours and not prior_ok):
            raise PostlocError("the stack's context weights or prior are out of range")
