"""Reading a prepared dataset folder back: what training, evaluation and experiments consume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from postloc.errors import PostlocError
from postloc.io.escape import csv_unguard_columns
from postloc.io.inputs import check_regular_file, read_small_json


@dataclass
class PreparedData:
    """Posts (one row each, with ``split``), the POI table and the manifest of a prepared folder."""

    path: Path
    posts: pd.DataFrame
    pois: pd.DataFrame
    manifest: dict[str, Any]

    def split(self, name: str) -> pd.DataFrame:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val or test")
        return self.posts[self.posts["split"] == name].reset_index(drop=True)

    @property
    def poi_names(self) -> list[str]:
        return self.pois["poi"].tolist()


def load_prepared(path: str | Path) -> PreparedData:
    """Load the output of ``postloc prepare``; a clear error if the folder is not one."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise PostlocError(f"{path} is not a prepared dataset (no manifest.json); run `postloc prepare` first")
    manifest = read_small_json(manifest_path)
    for name in ("posts.parquet", "pois.csv"):  # a device or FIFO in their place would be read forever
        check_regular_file(path / name)
    posts = pd.read_parquet(path / "posts.parquet")
    pois = pd.read_csv(
        path / "pois.csv", dtype={"poi": str, "name": str}, keep_default_na=False, na_values={"lat": [""], "lon": [""]}
    )
    pois = csv_unguard_columns(pois)  # prepare guards ids and names against spreadsheet formulas
    return PreparedData(path=path, posts=posts, pois=pois, manifest=manifest)
