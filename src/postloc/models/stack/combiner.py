"""How ``stack`` weighs its learners: one weight per learner and one bias per class, fitted out of fold.

The combined log-score of a post is ``sum_m w_m * log p_m + b``, softmaxed. The weights are
fitted by (user-weighted) negative log-likelihood on the learners' *out-of-fold* probabilities of
the training posts, so a learner that overfits its training posts does not earn trust it would
not earn on new users. With one learner this is a temperature plus a class prior correction;
with several it is a product of experts, which a modality that says nothing (a post without a
photo) does not disturb. Far fewer parameters than a second-level regression on all
``learners x classes`` log-probabilities, so it needs no tuning of its own.
"""

from __future__ import annotations

import numpy as np

#: L2 penalty on the class biases (per training post), so a class seen by few posts keeps a finite bias
BIAS_PENALTY = 1e-3


def combine(log_probas: list[np.ndarray], weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Probabilities ``softmax(sum_m w_m * log_probas[m] + bias)``."""
    z = sum((w * lp for w, lp in zip(weights, log_probas, strict=True)), np.zeros_like(log_probas[0])) + bias
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def fit_combiner(
    log_probas: list[np.ndarray], y: np.ndarray, sample_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (>= 0, one per learner) and class biases minimising the weighted NLL of ``y``."""
    from scipy.optimize import minimize

    m, k = len(log_probas), log_probas[0].shape[1]
    known = y >= 0
    L = np.stack([lp[known] for lp in log_probas])  # [m, n, k]
    yk, s = y[known], sample_weight[known] / max(sample_weight[known].sum(), 1e-12)
    onehot = np.zeros((len(yk), k))
    onehot[np.arange(len(yk)), yk] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:m], theta[m:]
        z = np.tensordot(w, L, axes=1) + b
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        log_p = z - log_norm[:, None]
        value = -(s * (log_p * onehot).sum(axis=1)).sum() + BIAS_PENALTY * (b @ b)
        g = s[:, None] * (np.exp(log_p) - onehot)  # d loss / d z
        grad = np.concatenate([np.einsum("nk,mnk->m", g, L), g.sum(axis=0) + 2 * BIAS_PENALTY * b])
        return float(value), grad

    if not len(yk):
        return np.ones(m), np.zeros(k)
    start = np.concatenate([np.full(m, 1.0 / m), np.zeros(k)])
    bounds = [(0.0, 10.0)] * m + [(None, None)] * k
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:m].copy(), result.x[m:].copy()
