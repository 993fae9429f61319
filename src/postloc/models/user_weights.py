"""Per-post sample weights that keep a few prolific users from deciding what a model learns.

On photo sites a handful of users post most of the photos of a place (in the embedded Dresden
set one user has 28 % of all posts, most tagged only with the city name). Test users are new
users, so a model that fits the heavy users' habits learns their priors, not the places'. A
weight of ``1 / n_user ** power`` per post (``n_user``: that user's posts in the training data)
interpolates between every post alike (``power = 0``) and every user alike (``power = 1``);
``0.5`` was best on user-disjoint folds of Dresden (docs/winning-model.md). Weights are scaled to
mean 1 so that regularisation strengths mean the same with and without them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from postloc.data.splits import user_groups


def user_sample_weights(posts: pd.DataFrame, power: float) -> np.ndarray:
    """``1 / n_user ** power`` per post, mean 1; a post without a user id counts as a user of its own."""
    n = len(posts)
    if n == 0 or power == 0 or "user" not in posts:
        return np.ones(n)
    users = user_groups(posts["user"])
    counts = users.map(users.value_counts()).to_numpy(dtype=float)
    weights = counts**-power
    return weights * (n / weights.sum())
