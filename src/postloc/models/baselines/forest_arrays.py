"""A fitted scikit-learn random forest as flat arrays, and its prediction from those arrays alone.

Saving a forest with pickle would let a model file run code when loaded; the project never
does that. A decision tree is fully described by five per-node arrays (left child, right
child, split feature, threshold, class distribution), so the forest is stored as those arrays
concatenated over trees (plus each tree's first node), and prediction walks them with numpy:
all rows of a chunk descend one level per step, which is exact and needs no scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ForestArrays:
    left: np.ndarray  # int64 [nodes], -1 at a leaf; indices are global (offset added)
    right: np.ndarray
    feature: np.ndarray  # int64, -2 at a leaf
    threshold: np.ndarray  # float64
    value: np.ndarray  # float64 [nodes, classes]: class distribution of the node (rows sum to 1)
    roots: np.ndarray  # int64 [trees]

    @classmethod
    def from_forest(cls, forest) -> ForestArrays:
        lefts, rights, features, thresholds, values, roots = [], [], [], [], [], []
        offset = 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            leaf = tree.children_left == -1
            lefts.append(np.where(leaf, -1, tree.children_left + offset))
            rights.append(np.where(leaf, -1, tree.children_right + offset))
            features.append(tree.feature.astype(np.int64))
            thresholds.append(tree.threshold.astype(np.float64))
            value = tree.value[:, 0, :].astype(np.float64)
            values.append(value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300))
            roots.append(offset)
            offset += tree.node_count
        return cls(
            np.concatenate(lefts).astype(np.int64),
            np.concatenate(rights).astype(np.int64),
            np.concatenate(features),
            np.concatenate(thresholds),
            np.concatenate(values),
            np.asarray(roots, dtype=np.int64),
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("left", "right", "feature", "threshold", "value", "roots")}

    @classmethod
    def from_dict(cls, arrays: dict[str, np.ndarray]) -> ForestArrays:
        return cls(**{k: np.asarray(arrays[k]) for k in ("left", "right", "feature", "threshold", "value", "roots")})

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Mean over trees of the leaf distributions of dense rows ``X`` (scikit-learn's soft vote)."""
        X = np.asarray(X, dtype=np.float32)  # scikit-learn compares float32 features with the thresholds
        n = X.shape[0]
        total = np.zeros((n, self.value.shape[1]))
        rows = np.arange(n)
        for root in self.roots:
            node = np.full(n, root, dtype=np.int64)
            while True:
                inner = self.left[node] != -1
                if not inner.any():
                    break
                at = node[inner]
                go_left = X[rows[inner], self.feature[at]] <= self.threshold[at]
                node[inner] = np.where(go_left, self.left[at], self.right[at])
            total += self.value[node]
        return total / len(self.roots)
