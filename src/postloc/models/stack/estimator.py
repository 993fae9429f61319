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

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.splits import user_groups
from postloc.errors import PostlocError
from postloc.io.model_files import load_tensors, read_json, save_tensors, write_compact_json
from postloc.models.base import Estimator, FitOptions, ModelInputs
from postloc.models.registry import register
from postloc.models.stack.combiner import combine, fit_combiner
from postloc.models.stack.fits import (
    Executor,
    Minibatch,
    PathTask,
    ThreadExecutor,
    c_path,
    fit_logreg,
    log_proba,
    refit,
)
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
    "c_sample_posts": (0, 1_000_000_000),
    "full_batch_cells": (0, 10**15),
    "refit_epochs": (1, 1000),
    "refit_lr": (1e-6, 100.0),
    "n_jobs": (0, 4096),
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
    # past this many posts, C, the combiner and the context weights are fitted out of fold on a sample of
    # whole users of about this size, and only each learner's final refit sees every post (0: all posts)
    c_sample_posts: int = 20_000
    # the final refit on every post is full-batch L-BFGS (the exact optimum) up to this many posts x POIs;
    # past it, refit_epochs passes (more on a small set) of Adam over mini-batches at refit_lr (fits.Minibatch;
    # 0: always L-BFGS)
    full_batch_cells: int = 10_000_000
    refit_epochs: int = 5
    refit_lr: float = 0.5
    n_jobs: int = 0  # threads for the independent regressions (inner folds x learners); 0: every core
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
    fit_options = ("run_dir", "progress", "executor")

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

    @property
    def inputs_used(self) -> ModelInputs:
        """What its learners read, leaving out a learner the combiner gave no weight: its input changes nothing.

        So a photo learner that earned a weight of 0 (photos that did not help on held-out users) is not
        reported, and no photo is featurized for it.
        """
        used = ModelInputs.reading()
        for learner, weight in zip(self.learners_, self.weights_, strict=False):
            if weight > 0:
                used = used | learner.inputs
        return used

    # --- fit ---------------------------------------------------------------------------------

    def _fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None, *, classes: Sequence[str] | None, options: FitOptions
    ) -> None:
        """Fit every learner, choose its C out of fold, then the combiner and the context weights.

        The costly part is the regressions (docs/scale-stack.md): each learner's features are
        computed once; the inner folds' C paths are independent tasks run on ``n_jobs`` threads; with
        more posts than ``c_sample_posts`` they run on a sample of whole users, and only the final
        refit of each learner sees every post. ``options.progress``: a bar on a terminal, a line per
        step in a log (None: the bar only, on a terminal). ``options.executor`` runs the independent
        regressions (default: ``n_jobs`` threads here; :class:`postloc.scale.ray_fits.RayExecutor` on
        a Ray cluster); any executor gives the same model, since each regression is a pure function.
        """
        cfg = self.config
        progress, executor = options.progress, options.executor
        self.classes_ = self._resolve_classes(train, classes)
        n_classes = len(self.classes_)
        kinds = [kind for kind in cfg.learners if LEARNERS[kind].usable(train)]
        if not kinds:
            raise PostlocError(
                f"stack: the training posts have none of the inputs of its learners ({', '.join(cfg.learners)})"
            )
        val = val if val is not None and len(val) else None
        everyone = pd.concat([train, val], ignore_index=True) if val is not None and cfg.refit_on_val else train
        y_all = self._class_index(everyone)
        weights_all = user_sample_weights(everyone, cfg.user_weight_power)
        sample = self._inner_sample(everyone)
        folds = self._inner_folds(everyone.iloc[sample])
        report = _Progress(progress, len(kinds) * (len(folds) + 1))
        self.learners_, matrices, grids = [], [], []
        for kind in kinds:
            learner = LEARNERS[kind](n_classes)
            if cfg.c_selection != "oof" or not folds:
                learner.fit_features(train, cfg)
                grids.append([self._choose_c(learner, train, val)])
            else:
                grids.append(sorted(cfg.c_grid))
            # the vocabulary and IDF of every post the run may learn from, and their features, in one pass
            matrices.append(learner.fit_transform(everyone, cfg))
            self.learners_.append(learner)
            report.note(f"{kind}: {matrices[-1].shape[1]:,} features of {len(everyone):,} posts")
        executor = executor or ThreadExecutor.sized(cfg.n_jobs)
        shared = (tuple(matrices), y_all, weights_all)
        oof = self._out_of_fold(shared, grids, sample, folds, executor, report) if folds else []
        minibatch = self._minibatch(len(everyone), n_classes)
        calls = [(i, grids[i][0], cfg.max_iter, n_classes, minibatch) for i in range(len(kinds))]
        how = f" ({minibatch.passes(len(everyone))} passes of mini-batches)" if minibatch else ""

        def refitted(i: int) -> None:
            report.step(f"{kinds[i]}: refit on {len(everyone):,} posts with C={grids[i][0]:g}{how}")

        for learner, regression in zip(self.learners_, executor.map(refit, shared, calls, refitted), strict=True):
            learner.set_regression(regression)
        report.close()
        # too few users to hold any out: every learner counts once, as it is
        y_s, w_s = y_all[sample], weights_all[sample]
        self.weights_ = fit_combiner(oof, y_s, w_s) if folds else np.ones(len(kinds))
        self._fit_context(everyone.iloc[sample], combine(oof, self.weights_) if folds else None, y_s, w_s)

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

    def _minibatch(self, n_posts: int, n_classes: int) -> Minibatch | None:
        """The final refits' schedule past ``full_batch_cells`` posts x POIs; None: full-batch L-BFGS.

        Why a bound on posts x POIs: a full gradient costs features-per-post x posts x POIs, and
        L-BFGS needs hundreds of them; at 1M posts x 500 POIs each takes tens of seconds on two cores
        (docs/scale-stack.md), while a few passes of mini-batches land near the same optimum.
        """
        cells = self.config.full_batch_cells
        if not cells or n_posts * n_classes <= cells:
            return None
        return Minibatch(epochs=self.config.refit_epochs, lr=self.config.refit_lr, seed=self.config.seed)

    def _inner_sample(self, posts: pd.DataFrame) -> np.ndarray:
        """Positions of the posts the inner folds run on: all, or whole users up to ``c_sample_posts``.

        Whole users, so that a post's neighbours (the user's other posts, which the context rule reads)
        come with it; drawn in a seeded random order, skipping a user who would take the sample past
        1.5 times its size (one heavy user must not become most of it).
        """
        target = self.config.c_sample_posts
        if not target or len(posts) <= target:
            return np.arange(len(posts))
        users = posts["user"] if "user" in posts else pd.Series([None] * len(posts), dtype=object)
        codes, _ = pd.factorize(user_groups(users).to_numpy())
        sizes = np.bincount(codes)
        order = np.random.default_rng(self.config.seed).permutation(len(sizes))
        chosen = np.zeros(len(sizes), dtype=bool)
        total = 0
        for user in order:
            if total + sizes[user] > 1.5 * target:
                continue
            chosen[user] = True
            total += int(sizes[user])
            if total >= target:
                break
        return np.flatnonzero(chosen[codes])

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

    def _choose_c(self, learner: Learner, train: pd.DataFrame, val: pd.DataFrame | None) -> float:
        """``c_selection="val"``: the C of ``c_grid`` best on the validation posts (ties: the smaller C)."""
        cfg = self.config
        grid = sorted(cfg.c_grid)
        if val is None or len(grid) == 1:
            return grid[0] if len(grid) == 1 else cfg.c_default
        X, X_val = learner.features(train), learner.features(val)
        y, y_val = self._class_index(train), self._class_index(val)
        weights = user_sample_weights(train, cfg.user_weight_power)
        best = (-1.0, grid[0])
        for C in grid:
            regression = fit_logreg(X, y, weights, C, cfg.max_iter, len(self.classes_))
            score = float((log_proba(X_val, regression, len(self.classes_)).argmax(axis=1) == y_val).mean())
            if score > best[0]:
                best = (score, C)
        return best[1]

    def _out_of_fold(
        self,
        shared: tuple[tuple[Any, ...], np.ndarray, np.ndarray],
        grids: list[list[float]],
        sample: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]],
        executor: Executor,
        report: _Progress,
    ) -> list[np.ndarray]:
        """Each learner's held-out log-probabilities of the sample at its best C; ``grids`` is narrowed to that C.

        The C with the best user-weighted out-of-fold accuracy wins (ties: the smaller C): it scores
        every sampled user rather than the validation eighth, where on a few hundred posts
        neighbouring C values differ by a handful of posts.
        """
        matrices, y, weights = shared
        n_classes = len(self.classes_)
        tasks = [
            PathTask(i, f, sample[fit_idx], sample[held_idx])
            for i in range(len(matrices))
            for f, (fit_idx, held_idx) in enumerate(folds)
        ]

        def finished(j: int) -> None:
            task = tasks[j]
            kind, grid = self.learners_[task.learner].kind, grids[task.learner]
            report.step(f"{kind}: inner fold {task.fold + 1}/{len(folds)}, C {', '.join(f'{c:g}' for c in grid)}")

        calls = [(task, grids[task.learner], self.config.max_iter, n_classes) for task in tasks]
        results = executor.map(c_path, shared, calls, finished)
        position = np.full(len(y), -1)
        position[sample] = np.arange(len(sample))
        y_s, w_s = y[sample], weights[sample]
        known = y_s >= 0
        chosen = []
        for i, grid in enumerate(grids):
            best: tuple[float, int, np.ndarray] | None = None
            for c in range(len(grid)):
                held_out = np.zeros((len(sample), n_classes))
                for task, result in zip(tasks, results, strict=True):
                    if task.learner == i:
                        held_out[position[task.held_idx]] = result[c]
                hits = (held_out.argmax(axis=1) == y_s) & known
                score = float((w_s * hits).sum() / max(w_s[known].sum(), 1e-12))
                if best is None or score > best[0] + 1e-9:
                    best = (score, c, held_out)
            assert best is not None  # c_grid is never empty (StackConfig checks it)
            grids[i] = [grid[best[1]]]
            chosen.append(best[2])
        return chosen

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
        import torch  # safetensors' files are written from torch tensors; here, not on import (the package is light)

        tensors = {}
        for learner in self.learners_:
            state = {"coef": learner.coef, "intercept": learner.intercept, **learner.tensors()}
            tensors.update(
                # writable too: arrays a Ray task returned are read-only views of its object store
                {
                    f"{learner.kind}.{key}": torch.from_numpy(np.require(v, requirements=["C", "W"]))
                    for key, v in state.items()
                }
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


class _Progress:
    """What a long ``stack`` fit is doing: a bar on a terminal, a line per finished step elsewhere.

    ``enabled=None`` draws only when stderr is a terminal: tests and library callers stay quiet, a
    terminal user sees the bar, and a caller writing a log passes ``True`` to get the lines.
    """

    def __init__(self, enabled: bool | None, total: int):
        interactive = _is_terminal(sys.stderr)
        self.lines = bool(enabled) and not interactive
        self.bar = None
        if (enabled is None or enabled) and interactive:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="stack", unit="fit", dynamic_ncols=True, leave=False, file=sys.stderr)

    def note(self, message: str) -> None:
        if self.lines:
            print(f"stack: {message}", file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(message, refresh=False)
            self.bar.update(1)
        self.note(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
