"""Does adapting ``stack``'s class prior to the posts being scored help? (issue 13; it does not on Dresden)

    python studies/stack_prior_shift/stack_prior_shift.py PREPARED --out DIR [--folds 5]

Test users differ from training users, so the test fold's mix of POIs differs from the training
mix (label shift). The textbook fix re-estimates the test prior from the unlabelled test posts by
EM (Saerens, Latinne & Decaestecker, 2002): ``q_i(k) ∝ p_i(k) * pi(k) / pi_train(k)``, ``pi`` the
mean of the ``q_i``, until ``pi`` stops moving. Three variants are scored on the experiments'
user-disjoint folds (``postloc.data.folds``, seed 0: the folds of docs/winning-model.md):

* ``em (train prior: user-weighted labels)``: ``pi_train`` = the training labels weighted as stack
  weights them (1/sqrt of the user's posts);
* ``em (train prior: mean on validation)``: ``pi_train`` = stack's mean probability on the
  validation users (what its probabilities average to on users it did not see);
* ``em + per-user prior``: after the batch EM, each post of a user with other test posts is
  re-weighted by that user's prior (the mean of their *other* posts' adapted probabilities,
  shrunk towards the batch prior with weight ``alpha``): a user's own place mix.

Writes ``DIR/prior-shift.md`` and ``DIR/prior-shift.json``: accuracy per fold and the difference
to stack as it is. docs/winning-model.md quotes it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from postloc.experiments.fold_frames import folds_parser, user_folds, write_fold_report


def em_prior(proba: np.ndarray, train_prior: np.ndarray, *, iters: int = 500, tol: float = 1e-7) -> np.ndarray:
    """The probabilities re-weighted to the prior EM estimates on ``proba``'s rows."""
    prior = train_prior.copy()
    for _ in range(iters):
        adapted = proba * (prior / train_prior)
        adapted /= adapted.sum(axis=1, keepdims=True)
        new = adapted.mean(axis=0)
        done = np.abs(new - prior).max() < tol
        prior = new
        if done:
            break
    adapted = proba * (prior / train_prior)
    return adapted / adapted.sum(axis=1, keepdims=True)


def per_user_prior(adapted: np.ndarray, users: np.ndarray, alpha: float) -> np.ndarray:
    """Each post re-weighted by its user's prior from the user's other posts (leave-one-out)."""
    batch = adapted.mean(axis=0)
    out = adapted.copy()
    for idx in pd.Series(np.arange(len(users))).groupby(users).indices.values():
        if len(idx) < 2:
            continue
        total = adapted[idx].sum(axis=0)
        for i in idx:
            user_prior = (total - adapted[i] + alpha * batch) / (len(idx) - 1 + alpha)
            row = adapted[i] * user_prior / batch
            out[i] = row / row.sum()
    return out


def main() -> None:
    from postloc.models.registry import create_model
    from postloc.models.user_weights import user_sample_weights

    parser = folds_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    rows = []
    for k, train, val, test, classes, truth in user_folds(args.prepared, args.folds):
        index = {c: i for i, c in enumerate(classes)}
        model = create_model("stack").fit(train, val, classes=classes)
        proba = model.predict_proba(test)
        seen = pd.concat([train, val])
        weights = user_sample_weights(seen, model.config.user_weight_power)
        labelled = np.bincount(seen["poi"].astype(str).map(index), weights=weights, minlength=len(classes))
        users = test["user"].fillna("").astype(str).to_numpy()
        batch = em_prior(proba, labelled / labelled.sum())
        variants = {
            "stack": proba,
            "em (train prior: user-weighted labels)": batch,
            "em (train prior: mean on validation)": em_prior(proba, model.predict_proba(val).mean(axis=0)),
            "em + per-user prior (alpha 5)": per_user_prior(batch, users, 5.0),
            "em + per-user prior (alpha 20)": per_user_prior(batch, users, 20.0),
        }
        row = {"fold": k, "test posts": len(test)}
        row.update({name: float((p.argmax(axis=1) == truth).mean()) for name, p in variants.items()})
        print(json.dumps(row), flush=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    names = [c for c in frame.columns if c not in ("fold", "test posts")]
    lines = [
        "# stack with its prior adapted to the scored posts (EM), user-disjoint folds",
        "",
        f"Command: `python studies/stack_prior_shift/stack_prior_shift.py {args.prepared.name} --out DIR "
        f"--folds {args.folds}`",
        "",
        "| variant | accuracy (mean over folds) | Δ vs stack, mean | Δ, smallest | Δ, largest | per fold |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in names:
        delta = frame[name] - frame["stack"]
        per_fold = " ".join(f"{v:.3f}" for v in frame[name])
        lines.append(
            f"| {name} | {frame[name].mean():.3f} | {delta.mean():+.3f} | {delta.min():+.3f} | {delta.max():+.3f} | "
            f"{per_fold} |"
        )
    write_fold_report(args.out, "prior-shift", lines, rows)


if __name__ == "__main__":
    main()
