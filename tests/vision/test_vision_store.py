"""The shard store: rows survive a reopen, a damaged shard costs only its rows, no pickle."""

from __future__ import annotations

import numpy as np

from postloc.vision.store import ShardStore


def test_put_get_flush_reopen(tmp_path):
    store = ShardStore(tmp_path, shard_size=3)
    for i in range(7):
        store.put(f"k{i}", {"vector": np.full(5, i, np.float32), "ratio": i / 10}, {"gate": f"g{i}"})
    assert len(store) == 7 and store.get("k6")["gate"] == "g6"  # pending rows are readable
    assert len(list(tmp_path.glob("shard-*.safetensors"))) == 2
    store.close()
    again = ShardStore(tmp_path)
    assert len(again) == 7 and "k3" in again and "k9" not in again
    row = again.get("k5")
    assert row["vector"].tolist() == [5.0] * 5 and float(row["ratio"]) == np.float32(0.5) and row["gate"] == "g5"
    assert again.get("missing") is None


def test_put_is_idempotent_and_damaged_shards_are_skipped(tmp_path):
    with ShardStore(tmp_path, shard_size=2) as store:
        store.put("a", {"v": np.ones(2)})
        store.put("a", {"v": np.zeros(2)})
        store.put("b", {"v": np.zeros(2)})
    (tmp_path / "shard-zzzz.safetensors").write_bytes(b"not a safetensors file")
    store = ShardStore(tmp_path)
    assert store.get("a")["v"].tolist() == [1.0, 1.0] and len(store) == 2
