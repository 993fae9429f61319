"""How ``stack`` weighs its learners: one weight per learner, fitted out of fold.

The combined log-score of a post is ``sum_m w_m * log p_m``, softmaxed. The weights are
fitted by (user-weighted) negative log-likelihood on the learners' *out-of-fold* probabilities of
the training posts, so a learner that overfits its training posts does not earn trust it would
not earn on new users. With one learner this is a temperature plus a class prior correction;
with several it is a product of experts, which a modality that says nothing (a post without a
photo) does not disturb. With one learner it is a temperature fitted on users the learner did not
see, so the probabilities come out calibrated without using the validation posts. Far fewer
parameters than a second-level regression on all ``learners x classes`` log-probabilities (or
per-class biases, which fitted the inner folds' class mix and cost accuracy on Dresden), so it
needs no tuning of its own.
"""

from __future__ import annotations

import numpy as np

#: the largest weight a learner may get (a weight of 10 already sharpens its probabilities a lot)
MAX_WEIGHT = 10.0


def combine(log_probas: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Probabilities ``softmax(sum_m w_m * log_probas[m])``."""
    z = sum((w * lp for w, lp in zip(weights, log_probas, strict=True)), np.zeros_like(log_probas[0]))
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def fit_combiner(log_probas: list[np.ndarray], y: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """Weights (>= 0, one per learner) minimising the weighted NLL of ``y`` (class indices; -1 ignored)."""
    from scipy.optimize import minimize

    m, k = len(log_probas), log_probas[0].shape[1]
    known = y >= 0
    L = np.stack([lp[known] for lp in log_probas])  # [m, n, k]
    yk, s = y[known], sample_weight[known] / max(sample_weight[known].sum(), 1e-12)
    onehot = np.zeros((len(yk), k))
    onehot[np.arange(len(yk)), yk] = 1.0

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.tensordot(w, L, axes=1)
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1))[:, None]
        value = -(s * (log_p * onehot).sum(axis=1)).sum()
        g = s[:, None] * (np.exp(log_p) - onehot)  # d loss / d z
        return float(value), np.einsum("nk,mnk->m", g, L)

    if not len(yk):
        return np.ones(m)
    result = minimize(loss, np.full(m, 1.0 / m), jac=True, method="L-BFGS-B", bounds=[(0.0, MAX_WEIGHT)] * m)
    return result.x.copy()
