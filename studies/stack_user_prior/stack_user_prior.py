"""Does a user's own place mix, trusted more the more posts back it, help ``stack``? (issue 13; not beyond one user)

    python studies/stack_user_prior/stack_user_prior.py PREPARED --out DIR [--folds 5]

stack's context rule (``postloc.models.user_context``) gives a user's other posts one fixed weight
``rho`` per kind of neighbour, whatever their number. A user with 1,600 posts says much more about
where they go than one with two. This script tries the empirical-Bayes form: the user's place mix
``m`` (the mean of their *other* posts' probabilities) counts with the weight ``r(n) = c * n / (n + alpha)``,
``n`` the number of those posts, in the same mixture rule ``p'(k) ∝ p(k) * (1 + r(n) * (m(k) / prior(k) - 1))``.
With ``c = 1`` this is ``p * q / prior`` with ``q`` the user's mix shrunk towards the prior by ``alpha``
posts, a Dirichlet prior. ``c`` and ``alpha`` are fitted like stack's ``rho``: by user-weighted
log-loss on the out-of-fold probabilities of the training users (their other posts held out with
them). Two fixed settings (``c = 1``, ``alpha`` 30 and 300, chosen by no fit) show how much the
fit matters.

Rows, on the experiments' user-disjoint folds (``postloc.data.folds``, seed 0; docs/winning-model.md):
stack as it is (``context="user"``), stack with each post alone, and the variants, which replace
stack's context rule (they start from each post alone). Writes ``DIR/user-prior.md`` and ``.json``.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from postloc.experiments.fold_frames import folds_parser, user_folds, write_fold_report

FIXED_ALPHAS = (30.0, 300.0)


def user_codes(posts: pd.DataFrame) -> np.ndarray:
    """A number per user (-1 without one): the groups whose other posts make a post's mix."""
    users = posts["user"]
    codes = np.full(len(posts), -1, dtype=np.int64)
    known = users.notna().to_numpy()
    codes[known] = pd.factorize(users[known].astype(str))[0]
    return codes


def with_user_mix(proba: np.ndarray, users: np.ndarray, prior: np.ndarray, c: float, alpha: float) -> np.ndarray:
    """``proba`` updated by the user's mix of their other posts, weight ``c * n / (n + alpha)``."""
    from postloc.models.user_context import neighbour_mean

    known = users >= 0
    n = np.zeros(len(users), dtype=np.int64)
    if known.any():
        n[known] = np.bincount(users[known])[users[known]] - 1
    mix = neighbour_mean(proba, np.where(n > 0, users, -1))
    weight = c * n / (n + alpha)
    out = proba * (1.0 + weight[:, None] * (mix / prior - 1.0))
    return out / out.sum(axis=1, keepdims=True)


def fit_user_mix(oof: np.ndarray, users: np.ndarray, y: np.ndarray, weights: np.ndarray, prior: np.ndarray):
    """``(c, alpha)`` minimising the weighted log-loss of ``y`` (a few starts: the loss has flat stretches)."""
    known = y >= 0
    w = np.where(known, weights, 0.0)
    w = w / w.sum()
    rows = np.arange(len(y))

    def unpack(x: np.ndarray) -> tuple[float, float]:
        return float(1.0 / (1.0 + np.exp(-x[0]))), float(np.exp(np.clip(x[1], -10.0, 15.0)))

    def loss(x: np.ndarray) -> float:
        q = with_user_mix(oof, users, prior, *unpack(x))
        return float(-(w * np.log(np.maximum(q[rows, np.maximum(y, 0)], 1e-12))).sum())

    starts = [np.array([a, b]) for a in (-2.0, 0.0, 2.0) for b in (0.0, 3.0, 6.0)]
    best = min(
        (minimize(loss, x0, method="Nelder-Mead", options={"maxiter": 400}) for x0 in starts), key=lambda f: f.fun
    )
    return unpack(best.x)


def main() -> None:
    from postloc.models.registry import create_model
    from postloc.models.stack.estimator import Stack

    parser = folds_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    original = Stack._fit_context
    seen: dict[str, Any] = {}

    def keep_oof(self, everyone, oof, y, weights):  # what stack fits its context on, kept for this script
        seen.update(posts=everyone, oof=oof, y=y, weights=weights)
        return original(self, everyone, oof, y, weights)

    rows = []
    for k, train, val, test, classes, truth in user_folds(args.prepared, args.folds):
        with mock.patch.object(Stack, "_fit_context", keep_oof):
            model = create_model("stack").fit(train, val, classes=classes)
        as_is = model.predict_proba(test)
        rhos, model.context_rhos_ = model.context_rhos_, tuple(0.0 for _ in model.context_rhos_)
        alone = model.predict_proba(test)
        prior, users = model.context_prior_, user_codes(test)
        c, alpha = fit_user_mix(seen["oof"], user_codes(seen["posts"]), seen["y"], seen["weights"], prior)
        variants = {
            "stack (context: same day and other days)": as_is,
            "stack, each post alone": alone,
            "user mix, c and alpha fitted out of fold": with_user_mix(alone, users, prior, c, alpha),
            **{
                f"user mix, c 1, alpha {a:g} (fixed, not fitted)": with_user_mix(alone, users, prior, 1.0, a)
                for a in FIXED_ALPHAS
            },
        }
        row: dict[str, Any] = {"fold": k, "test posts": len(test), "stack rhos": list(rhos), "fitted c": c}
        row["fitted alpha"] = alpha
        row.update({name: float((p.argmax(axis=1) == truth).mean()) for name, p in variants.items()})
        print(json.dumps(row), flush=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    names = [n for n in frame.columns if n not in ("fold", "test posts", "stack rhos", "fitted c", "fitted alpha")]
    base = frame[names[0]]
    lines = [
        f"# stack with a user's own place mix on `{args.prepared.name}`, {args.folds} user-disjoint folds",
        "",
        f"Command: `python studies/stack_user_prior/stack_user_prior.py {args.prepared.name} --out DIR "
        f"--folds {args.folds}`. "
        "Fitted (c, alpha) per fold: "
        + ", ".join(f"({r['fitted c']:.3f}, {r['fitted alpha']:.3g})" for r in rows)
        + ".",
        "",
        "| variant | accuracy | Δ vs stack (smallest, largest) | per fold |",
        "|---|---:|---:|---|",
    ]
    for name in names:
        delta = frame[name] - base
        lines.append(
            f"| {name} | {frame[name].mean():.4f} | {delta.mean():+.4f} ({delta.min():+.4f}, {delta.max():+.4f}) | "
            f"{' '.join(f'{v:.3f}' for v in frame[name])} |"
        )
    write_fold_report(args.out, "user-prior", lines, rows)


if __name__ == "__main__":
    main()
