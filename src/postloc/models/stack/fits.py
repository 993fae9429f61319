"""The regressions of a ``stack`` fit: one weighted multinomial logistic regression, and the C path of an inner fold.

Why a module of its own: these are the fit's only costly steps (docs/scale-stack.md, "Where a fit
spent its time"), and they are independent of each other, so they are written as plain functions
of arrays that an :class:`Executor` (threads here, Ray tasks elsewhere) can run in any order and
still give the same model:

- :func:`fit_logreg` minimises scikit-learn's weighted logistic-regression objective with torch's
  L-BFGS, optionally started from a previous solution (a *warm start*);
- :func:`c_path` fits one inner fold for every C of the grid, from the smallest C up, each fit
  started from the previous one's coefficients: a larger C moves the solution a little, so the
  later fits need a fraction of the iterations of a cold start;
- :func:`fit_logreg_minibatch` minimises the same objective by Adam over shuffled mini-batches, for
  a final refit too big for full-batch L-BFGS (posts x POIs past ``StackConfig.full_batch_cells``):
  a few passes over the posts instead of hundreds of full gradients.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

#: probabilities are floored here before the log, so a class a regression never saw stays finite
LOG_FLOOR = 1e-6

R = TypeVar("R")
#: called with a call's index as it finishes (progress)
Done = Callable[[int], None]


@dataclass
class Regression:
    """A fitted multinomial regression over ``n_classes`` classes, of which it saw ``seen``."""

    coef: np.ndarray
    intercept: np.ndarray
    seen: list[int]
    C: float


def fit_logreg(
    X: Any,
    y: np.ndarray,
    weights: np.ndarray,
    C: float,
    max_iter: int,
    n_classes: int,
    init: Regression | None = None,
) -> Regression:
    """Weighted multinomial logistic regression over the classes of ``y``, warm-started from ``init`` when given.

    The objective is scikit-learn's ``LogisticRegression`` (lbfgs) one, so the optimum is the same:
    the weighted mean cross-entropy plus ``||coef||^2 / (2 C sum(weights))``, the intercept unpenalised.
    It is minimised by torch's L-BFGS (strong Wolfe line search, stopping when the largest gradient
    entry is under 1e-4, scikit-learn's ``tol``) on float32 tensors, with the gradient written out
    (``X^T (P - Y)``) and the sparse products on every core. Why not scikit-learn's solver: its
    L-BFGS-B step costs more than the gradient itself once there are 10^5-10^6 coefficients (char
    n-grams x POIs), 4-8x the time of this one on the same problem (docs/scale-stack.md).
    With one class (or no feature) there is nothing to fit: the weighted class frequencies.

    Columns that none of ``X``'s rows use are left out of the solve and given coefficients of 0,
    which is their exact optimum (their only gradient is the penalty's). An inner fold of a large
    run fits a sample of posts against the vocabulary of every post: at 1M posts x 500 POIs most
    of the 10^5 word columns are empty in a 15k-post fold, and each would cost L-BFGS 500
    coefficients in every vector of its history.
    """
    seen = sorted(set(y.tolist()))
    if len(seen) < 2 or X.shape[1] == 0:
        counts = np.bincount(y, weights=weights, minlength=n_classes)
        intercept = np.log(np.maximum(counts / max(counts.sum(), 1e-12), LOG_FLOOR))
        return Regression(np.zeros((n_classes, X.shape[1])), intercept, list(range(n_classes)), C)
    used = _used_columns(X)
    if used is not None:
        start = None if init is None else Regression(init.coef[:, used], init.intercept, init.seen, init.C)
        narrow = fit_logreg(X[:, used], y, weights, C, max_iter, n_classes, start)
        wide = np.zeros((narrow.coef.shape[0], X.shape[1]))
        wide[:, used] = narrow.coef
        return Regression(wide, narrow.intercept, narrow.seen, C)
    import torch

    terms = _Objective.of(seen, y, weights, C, n_classes)
    target, share, l2 = torch.from_numpy(terms.target), torch.from_numpy(terms.share), terms.l2
    data, data_t = _tensor(X), _tensor(X.T)
    n, k = X.shape[0], len(seen)
    rows = torch.arange(n)
    if init is not None and init.seen == seen:
        coef = torch.tensor(init.coef.T, dtype=torch.float32)
        intercept = torch.tensor(init.intercept, dtype=torch.float32)
    else:
        coef, intercept = torch.zeros((X.shape[1], k)), torch.zeros(k)

    def closure() -> Any:
        log_p = torch.log_softmax(_matmul(data, coef) + intercept, dim=1)
        loss = -(share * log_p[rows, target]).sum() + 0.5 * l2 * (coef * coef).sum()
        _set_gradient(log_p.exp_(), target, share, data_t, coef, intercept, l2)
        return loss

    solver = torch.optim.LBFGS(
        [coef, intercept],
        lr=1.0,
        max_iter=max_iter,
        history_size=history_size(coef.numel()),
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-4,
        tolerance_change=1e-9,
    )
    with torch.no_grad():
        solver.step(closure)
    return Regression(coef.T.double().numpy().copy(), intercept.double().numpy().copy(), seen, C)


@dataclass(frozen=True)
class _Objective:
    """The terms of the objective both solvers minimise, so that the same C means the same thing in both."""

    seen: list[int]  # the classes of y, in order: the regression's columns
    target: np.ndarray  # each post's class as one of those columns
    share: np.ndarray  # each post's weight over the weights' sum (float32)
    l2: float  # the penalty's factor, 1 / (C sum(weights))

    @classmethod
    def of(cls, seen: list[int], y: np.ndarray, weights: np.ndarray, C: float, n_classes: int) -> _Objective:
        """``seen``: the sorted classes of ``y``, two at least (fewer leave nothing to fit)."""
        column = np.full(n_classes, -1)
        column[seen] = np.arange(len(seen))
        share = (weights / weights.sum()).astype(np.float32)
        return cls(seen, column[y], share, 1.0 / (C * float(weights.sum())))


def _set_gradient(
    probabilities: Any, target: Any, share: Any, data_t: Any, coef: Any, intercept: Any, l2: float
) -> None:
    """The objective's gradient on ``coef`` and ``intercept`` from rows' softmax ``probabilities``.

    ``probabilities`` becomes the weighted residual in place; ``data_t`` is the rows' features
    transposed; ``share`` their weight shares (scaled up for a mini-batch, so its gradient
    estimates the full one).
    """
    import torch

    probabilities[torch.arange(len(target)), target] -= 1.0
    probabilities *= share[:, None]
    coef.grad = _matmul(data_t, probabilities) + l2 * coef
    intercept.grad = probabilities.sum(dim=0)


@dataclass(frozen=True)
class Minibatch:
    """How :func:`fit_logreg_minibatch` passes over the posts.

    The batch grows with the posts (``ceil(n / steps_per_epoch)``, at least ``min_batch``), so the
    number of Adam steps stays bounded: a larger set gives each step a better gradient, not more
    steps, and every step updates all ``features x POIs`` coefficients (the cost that does not
    shrink with the batch). A small set is passed over until it has had ``min_steps`` steps. The
    learning rate falls linearly to 0 over the run, so the last steps average the batches' noise
    out; ``lr`` is for rows of unit length (TF-IDF) and is divided by the rows' mean length. The
    defaults were chosen on 65,557 SYNTHETIC paper-shaped posts x 243 POIs
    (studies/stack_minibatch_refit).
    """

    epochs: int = 5
    lr: float = 0.5
    steps_per_epoch: int = 64
    min_batch: int = 1024
    min_steps: int = 320  # a small set is passed over more often, so it still gets this many steps
    seed: int = 0

    def batch_rows(self, n: int) -> int:
        return max(self.min_batch, math.ceil(n / self.steps_per_epoch))

    def passes(self, n: int) -> int:
        return max(self.epochs, math.ceil(self.min_steps / math.ceil(n / self.batch_rows(n))))


def fit_logreg_minibatch(
    X: Any, y: np.ndarray, weights: np.ndarray, C: float, n_classes: int, schedule: Minibatch
) -> Regression:
    """:func:`fit_logreg`'s objective minimised by Adam over seeded, shuffled mini-batches of rows.

    Each batch's gradient is an unbiased estimate of the full one (its posts' weight shares scaled
    by ``n / batch``, plus the whole penalty), so the same C means the same thing. It reads only a
    batch's rows at a time: no transposed copy of ``X`` and no ``posts x POIs`` array, so memory
    stays at the coefficients and Adam's two moments. The result is near the optimum, not at it
    (on 65k SYNTHETIC posts x 243 POIs: test accuracy within 0.1 points of full-batch L-BFGS, in a
    third to a sixth of its time; studies/stack_minibatch_refit).
    """
    seen = sorted(set(y.tolist()))
    if len(seen) < 2 or X.shape[1] == 0:
        return fit_logreg(X, y, weights, C, 1, n_classes)
    import torch
    from scipy.sparse import issparse

    terms = _Objective.of(seen, y, weights, C, n_classes)
    n, k = X.shape[0], len(terms.seen)
    X = X.tocsr() if issparse(X) else np.asarray(X)
    coef, intercept = torch.zeros((X.shape[1], k)), torch.zeros(k)
    batch, passes = schedule.batch_rows(n), schedule.passes(n)
    steps = passes * math.ceil(n / batch)
    solver = torch.optim.Adam([coef, intercept], lr=schedule.lr / _mean_row_norm(X))
    decay = torch.optim.lr_scheduler.LambdaLR(solver, lambda step: max(0.0, 1.0 - step / steps))
    rng = np.random.default_rng(schedule.seed)
    with torch.no_grad():
        for _ in range(passes):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                rows = np.sort(order[start : start + batch])
                part = X[rows]
                _set_gradient(
                    torch.softmax(_matmul(_tensor(part), coef) + intercept, dim=1),
                    torch.from_numpy(terms.target[rows]),
                    torch.from_numpy(terms.share[rows] * (n / len(rows))),
                    _tensor(part.T),
                    coef,
                    intercept,
                    terms.l2,
                )
                solver.step()
                decay.step()
    return Regression(coef.T.double().numpy().copy(), intercept.double().numpy().copy(), terms.seen, C)


def _mean_row_norm(X: Any) -> float:
    """The rows' mean Euclidean length: Adam moves every coefficient by about the learning rate, so the step
    is divided by it to move a logit the same distance whatever the features' scale (1 for TF-IDF rows;
    about sqrt(dim) for z-scored image vectors)."""
    from scipy.sparse import issparse

    squares = X.multiply(X).sum(axis=1) if issparse(X) else np.square(X).sum(axis=1)
    norm = float(np.sqrt(np.asarray(squares, dtype=np.float64)).mean())
    return norm if norm > 0 else 1.0


#: what L-BFGS's history of steps may hold (two float32 vectors per step, each the size of the coefficients)
HISTORY_BYTES = 1_000_000_000


def history_size(n_coefficients: int) -> int:
    """L-BFGS's memory: 10 steps (SciPy's default) while they fit in :data:`HISTORY_BYTES`, down to 3.

    At 40 POIs x 200,000 char n-grams the 10 steps take 640 MB; at 500 POIs they would take 8 GB,
    so fewer steps are kept there (the solver then needs more iterations, not more memory).
    """
    return int(min(10, max(3, HISTORY_BYTES // max(1, 8 * n_coefficients))))


def _used_columns(X: Any) -> np.ndarray | None:
    """The columns of a sparse ``X`` that some row uses; None when it uses all of them or none (or is dense)."""
    from scipy.sparse import issparse

    if not issparse(X) or X.shape[1] == 0:
        return None
    X = X.tocsr()
    present = np.bincount(X.indices[X.data != 0], minlength=X.shape[1]) > 0
    return None if present.all() or not present.any() else np.flatnonzero(present)


def _tensor(X: Any) -> Any:
    """``X`` (a scipy sparse or a dense matrix) as a float32 torch tensor, sparse ones as CSR."""
    import torch
    from scipy.sparse import issparse

    if not issparse(X):
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    X = X.tocsr()
    # int32 indices and float32 values share scipy's arrays (no copy) while the matrix fits them
    index = np.int32 if X.nnz < 2**31 and max(X.shape) < 2**31 else np.int64
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the two products used here are not
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(index, copy=False)),
            torch.from_numpy(X.indices.astype(index, copy=False)),
            torch.from_numpy(X.data.astype(np.float32, copy=False)),
            size=X.shape,
            check_invariants=False,  # scipy's CSR is valid by construction
        )


def _matmul(a: Any, b: Any) -> Any:
    import torch

    return torch.sparse.mm(a, b) if a.layout == torch.sparse_csr else a @ b


def log_proba(X: Any, regression: Regression, n_classes: int) -> np.ndarray:
    """``[n, n_classes]`` log-probabilities (classes the regression never saw get :data:`LOG_FLOOR`)."""
    z = np.asarray(X @ regression.coef.T, dtype=np.float64) + regression.intercept
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    out = np.full((X.shape[0], n_classes), LOG_FLOOR)
    out[:, regression.seen] = np.maximum(p, LOG_FLOOR)
    return np.log(out / out.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class PathTask:
    """One learner's C path on one inner fold: fit on ``fit_idx``, score ``held_idx`` (rows of its matrix)."""

    learner: int
    fold: int
    fit_idx: np.ndarray
    held_idx: np.ndarray


def c_path(
    matrices: Sequence[Any],
    y: np.ndarray,
    weights: np.ndarray,
    task: PathTask,
    grid: Sequence[float],
    max_iter: int,
    n_classes: int,
) -> list[np.ndarray]:
    """Held-out log-probabilities of ``task``'s fold for each C of ``grid`` (ascending), warm-started along it."""
    X = matrices[task.learner]
    X_fit, y_fit, w_fit, X_held = X[task.fit_idx], y[task.fit_idx], weights[task.fit_idx], X[task.held_idx]
    previous: Regression | None = None
    out = []
    for C in grid:
        previous = fit_logreg(X_fit, y_fit, w_fit, C, max_iter, n_classes, init=previous)
        out.append(log_proba(X_held, previous, n_classes))
    return out


def refit(
    matrices: Sequence[Any],
    y: np.ndarray,
    weights: np.ndarray,
    learner: int,
    C: float,
    max_iter: int,
    n_classes: int,
    minibatch: Minibatch | None = None,
) -> Regression:
    """A learner's final regression on every post: full-batch L-BFGS, or mini-batches when ``minibatch`` is given."""
    if minibatch is not None:
        return fit_logreg_minibatch(matrices[learner], y, weights, C, n_classes, minibatch)
    return fit_logreg(matrices[learner], y, weights, C, max_iter, n_classes)


class Executor(Protocol):
    """Runs independent calls ``fn(*shared, *args)`` and returns their results in ``calls``' order.

    ``shared`` holds what every call reads (the feature matrices, labels and weights), so an
    executor that ships work elsewhere (:class:`postloc.scale.ray_fits.RayExecutor`) sends it once.
    ``done(i)`` is called as call ``i`` finishes, in any order (progress). ``fn`` is a module-level
    function, so it can be pickled.
    """

    def map(
        self, fn: Callable[..., R], shared: tuple[Any, ...], calls: Sequence[tuple[Any, ...]], done: Done
    ) -> list[R]: ...


@dataclass(frozen=True)
class ThreadExecutor:
    """The calls on ``n_jobs`` threads of this process (torch's products release the GIL); 1: one after another."""

    n_jobs: int = 1

    @classmethod
    def sized(cls, n_jobs: int) -> ThreadExecutor:
        """``n_jobs`` threads; 0: as many as torch may use here (every core, or a Ray task's CPUs).

        Why torch's count and not the machine's cores: inside a Ray task of N CPUs torch is set to
        N threads (``scale.ray_fits``), and a fold's fit there must not start a thread per core of
        a machine that other tasks share.
        """
        import torch

        return cls(n_jobs or max(1, torch.get_num_threads()))

    def map(
        self, fn: Callable[..., R], shared: tuple[Any, ...], calls: Sequence[tuple[Any, ...]], done: Done
    ) -> list[R]:
        def one(i: int) -> R:
            result = fn(*shared, *calls[i])
            done(i)
            return result

        if self.n_jobs <= 1 or len(calls) <= 1:
            return [one(i) for i in range(len(calls))]
        with ThreadPoolExecutor(max_workers=min(self.n_jobs, len(calls))) as pool:
            return list(pool.map(one, range(len(calls))))
