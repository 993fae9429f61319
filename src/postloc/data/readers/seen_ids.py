"""The post ids a read has seen, and where each was first seen, in about 80 bytes per id.

A dict of id strings to ``(file, line)`` costs about 200 bytes per post (0.2 GB per million posts,
the largest part of ``prepare``'s growth with the DuckDB engine: docs/scale-prepare.md). Here the
recent ids stay in a small dict and are moved, at geometrically growing sizes, into a set of their
64-bit hashes (the per-post "seen?" test: a set lookup, as fast as the dict's) and sorted numpy
arrays of the hashes with the source number and line of each (read only to name the first place
of a duplicate). A 64-bit hash can collide: two
different ids would then be reported as a duplicate. For a million ids the chance of any
collision is about 3e-8 (n^2 / 2^65); the hash is Python's string hash, so it differs between
runs and a collision would not repeat.
"""

from __future__ import annotations

import numpy as np

#: ids kept as strings before they are folded into the arrays (and at least a quarter of those)
MIN_PENDING = 65_536


class SeenIds:
    """``first_seen(id)`` -> ``(source, line)`` of its first :meth:`add`, or None.

    Per-post numpy lookups were tried instead of the set: a scalar ``searchsorted`` costs more per
    post than the whole dict check did (measured on a 300k-post JSONL read).
    """

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, int]] = {}
        self._hashes = np.zeros(0, dtype=np.int64)  # sorted
        self._sources = np.zeros(0, dtype=np.int32)
        self._lines = np.zeros(0, dtype=np.int64)  # -1: no line (a file of its own)
        self._names: list[str] = []
        self._numbers: dict[str, int] = {}
        self._fold_at = MIN_PENDING  # pending size that triggers the next fold
        self._folded: set[int] = set()  # the hashes in the arrays, for a fast "not seen" (~60 bytes an id)

    def __len__(self) -> int:
        return len(self._pending) + len(self._hashes)

    def first_seen(self, post_id: str) -> tuple[str, int | None] | None:
        """Where ``post_id`` was first added, or None."""
        where = self._pending.get(post_id)
        if where is None and hash(post_id) in self._folded:  # rare: a duplicate (or a hash collision)
            i = int(np.searchsorted(self._hashes, hash(post_id)))
            where = (int(self._sources[i]), int(self._lines[i]))
        if where is None:
            return None
        return self._names[where[0]], (None if where[1] < 0 else where[1])

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
        self._folded.update(map(hash, ids))
        where = np.array(list(self._pending.values()), dtype=np.int64).reshape(-1, 2)
        self._pending = {}
        hashes = np.concatenate([self._hashes, hashes])
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._sources = np.concatenate([self._sources, where[:, 0].astype(np.int32)])[order]
        self._lines = np.concatenate([self._lines, where[:, 1]])[order]
        self._fold_at = max(MIN_PENDING, len(self._hashes) // 4)  # geometric: O(n log n) over a whole read
