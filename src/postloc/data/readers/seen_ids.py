"""The post ids a read has seen, and where each was first seen, in about 20 bytes per id.

A dict of id strings to ``(file, line)`` costs about 200 bytes per post (0.2 GB per million posts,
the largest part of ``prepare``'s growth with the DuckDB engine: docs/scale-prepare.md). Here the
recent ids stay in a small dict and are moved, at geometrically growing sizes, into sorted numpy
arrays of 64-bit hashes with the source number and line of each. A 64-bit hash can collide: two
different ids would then be reported as a duplicate. For a million ids the chance of any
collision is about 3e-8 (n^2 / 2^65); the hash is Python's string hash, so it differs between
runs and a collision would not repeat.
"""

from __future__ import annotations

import numpy as np

#: ids kept as strings before they are folded into the arrays (and at least a quarter of those)
MIN_PENDING = 65_536


class SeenIds:
    """``first_seen(id)`` -> ``(source, line)`` of its first :meth:`add`, or None."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, int]] = {}
        self._hashes = np.zeros(0, dtype=np.int64)  # sorted
        self._sources = np.zeros(0, dtype=np.int32)
        self._lines = np.zeros(0, dtype=np.int64)  # -1: no line (a file of its own)
        self._names: list[str] = []
        self._numbers: dict[str, int] = {}
        self._fold_at = MIN_PENDING  # pending size that triggers the next fold

    def __len__(self) -> int:
        return len(self._pending) + len(self._hashes)

    def first_seen(self, post_id: str) -> tuple[str, int | None] | None:
        """Where ``post_id`` was first added, or None (one id: see :meth:`first_seen_many` for a batch)."""
        return self.first_seen_many([post_id])[0]

    def first_seen_many(self, post_ids: list[str]) -> list[tuple[str, int | None] | None]:
        """:meth:`first_seen` of each id, looked up in the arrays with one vectorised search per call."""
        found: list[tuple[int, int] | None] = [None] * len(post_ids)
        if len(self._hashes) and post_ids:
            hashes = np.fromiter((hash(i) for i in post_ids), dtype=np.int64, count=len(post_ids))
            at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
            for k in np.flatnonzero(self._hashes[at] == hashes).tolist():
                found[k] = (int(self._sources[at[k]]), int(self._lines[at[k]]))
        out: list[tuple[str, int | None] | None] = []
        for post_id, where in zip(post_ids, found, strict=True):
            where = where or self._pending.get(post_id)
            out.append(None if where is None else (self._names[where[0]], None if where[1] < 0 else where[1]))
        return out

    def add(self, post_id: str, source: str, line: int | None) -> None:
        number = self._numbers.get(source)
        if number is None:
            number = self._numbers[source] = len(self._names)
            self._names.append(source)
        self._pending[post_id] = (number, -1 if line is None else line)
        if len(self._pending) >= self._fold_at:
            self._fold()

    def _fold(self) -> None:
        ids = list(self._pending)
        hashes = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
        where = np.array(list(self._pending.values()), dtype=np.int64).reshape(-1, 2)
        self._pending = {}
        hashes = np.concatenate([self._hashes, hashes])
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._sources = np.concatenate([self._sources, where[:, 0].astype(np.int32)])[order]
        self._lines = np.concatenate([self._lines, where[:, 1]])[order]
        self._fold_at = max(MIN_PENDING, len(self._hashes) // 4)  # geometric: O(n log n) over a whole read
