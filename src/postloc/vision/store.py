"""An append-only on-disk store of per-image results (feature vectors, portrait ratios), in shards.

Why shards of safetensors: a run over 100,000 photos must survive being interrupted and must not
hold every vector in memory. Results are buffered up to ``shard_size`` rows and then written as one
``shard-*.safetensors`` file (atomically: temp file, then rename); keys and string columns go in
the file's metadata. Opening a store reads only metadata; vectors are read row by row through
safetensors' lazy slices. No pickle anywhere. A killed run loses at most one unflushed shard; the
next run computes exactly the missing keys.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from postloc.io.atomic import atomic_path, remove_stale_temporaries

_OPEN_SHARDS = 16


class ShardStore:
    """``key -> {column: value}``; float columns are arrays (scalars or vectors), string columns text."""

    def __init__(self, root: str | Path, shard_size: int = 256):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self._index: dict[str, tuple[int, int]] = {}  # key -> (shard number, row)
        self._shards: list[Path] = []
        self._pending: dict[str, tuple[dict[str, np.ndarray], dict[str, str]]] = {}
        self._handles: OrderedDict[int, object] = OrderedDict()
        self._written = 0
        for leftover in self.root.glob(".shard-*.tmp"):  # a flush killed mid-write (see atomic_path)
            remove_stale_temporaries(self.root / leftover.name[1:].rsplit(".", 2)[0])
        for path in sorted(self.root.glob("shard-*.safetensors")):
            self._add_shard(path)

    def _add_shard(self, path: Path) -> None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as handle:
                keys = json.loads((handle.metadata() or {}).get("keys", "[]"))
        except Exception:  # noqa: BLE001 - a damaged shard (disk full, foreign file) is ignored, its rows redone
            return
        number = len(self._shards)
        self._shards.append(path)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (number, row))

    def __contains__(self, key: str) -> bool:
        return key in self._index or key in self._pending

    def __len__(self) -> int:
        return len(self._index) + sum(1 for k in self._pending if k not in self._index)

    def keys(self) -> Iterator[str]:
        yield from self._index
        yield from (k for k in self._pending if k not in self._index)

    def put(self, key: str, arrays: Mapping[str, np.ndarray | float], strings: Mapping[str, str] | None = None) -> None:
        """Buffer one row; a full buffer is written as a shard."""
        if key in self:
            return
        self._pending[key] = ({k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}, dict(strings or {}))
        if len(self._pending) >= self.shard_size:
            self.flush()

    def get(self, key: str) -> dict[str, np.ndarray | str] | None:
        """The row stored under ``key`` (arrays as float32), or ``None``."""
        if key in self._pending:
            arrays, strings = self._pending[key]
            return {**arrays, **strings}
        where = self._index.get(key)
        if where is None:
            return None
        number, row = where
        handle = self._handle(number)
        out: dict[str, np.ndarray | str] = {}
        for name in handle.keys():  # noqa: SIM118 - a safetensors file handle, not a dict: it has no __iter__
            out[name] = np.asarray(handle.get_slice(name)[row : row + 1])[0]
        strings = json.loads((handle.metadata() or {}).get("strings", "{}"))
        for name, values in strings.items():
            out[name] = values[row]
        return out

    def flush(self) -> None:
        """Write buffered rows as one shard (atomic)."""
        if not self._pending:
            return
        from safetensors.numpy import save_file

        keys = list(self._pending)
        columns = sorted({c for arrays, _ in self._pending.values() for c in arrays})
        tensors = {c: np.stack([self._pending[k][0][c] for k in keys]).astype(np.float32) for c in columns}
        names = sorted({c for _, strings in self._pending.values() for c in strings})
        strings = {c: [self._pending[k][1].get(c, "") for k in keys] for c in names}
        metadata = {"keys": json.dumps(keys), "strings": json.dumps(strings), "format": "postloc-shard/1"}
        self._written += 1
        path = self.root / f"shard-{time.time_ns():x}-{os.getpid()}-{self._written:04d}.safetensors"
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        self._pending.clear()
        self._add_shard(path)

    def _handle(self, number: int):
        from safetensors import safe_open

        if number in self._handles:
            self._handles.move_to_end(number)
            return self._handles[number]
        handle = safe_open(str(self._shards[number]), framework="np")
        self._handles[number] = handle
        if len(self._handles) > _OPEN_SHARDS:
            self._handles.popitem(last=False)
        return handle

    def close(self) -> None:
        self.flush()
        self._handles.clear()

    def __enter__(self) -> ShardStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
