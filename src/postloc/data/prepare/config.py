"""What ``prepare`` is asked to do (how to read, every cleaning threshold, the engine) and what it returns.

Kept apart from the steps so the CLI can read the defaults (``PrepareConfig()``) without
loading the pipeline, and so both engines take the same settings object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postloc.data.pois import PoiConfig
from postloc.data.readers import FORMATS, SkipReport
from postloc.data.splits import SplitConfig
from postloc.data.summary import summary_markdown
from postloc.errors import PostlocError
from postloc.settings import setting, setting_error

ENGINES = ("memory", "duckdb")
POI_METHOD_CHOICES = ("auto", "labels", "hdbscan", "dbscan", "grid")


@dataclass(frozen=True)
class ReadOptions:
    """How to read the input: format (auto from the name), CSV/JSONL/Parquet column mapping, list separator."""

    format: str | None = setting(None, choices=FORMATS, help="default: from the name")
    #: the exchange format's key -> the input's column (``--columns lon=lng,text=caption``)
    columns: Mapping[str, str] = setting(
        default_factory=dict, help="KEY=COLUMN pairs for CSV, JSONL and Parquet, e.g. lon=lng,text=caption"
    )
    list_sep: str = setting(";", help="separator of hashtags/images inside one CSV cell (default %(default)s)")
    skip_bad: bool = setting(False, help="skip bad records (counted and reported) instead of stopping")


@dataclass(frozen=True)
class PrepareConfig:
    """Every threshold of the cleaning; defaults follow the paper where it gives a number."""

    min_hashtag_count: int = setting(50, help="drop hashtags used by fewer posts (default %(default)s)")
    #: empty: keep every language (``--languages any``)
    languages: tuple[str, ...] = setting(
        ("en",), help="comma-separated ISO 639-1 codes to keep, or 'any' (default %(default)s)"
    )
    #: fewer letters than this: too short to judge, kept and flagged
    min_language_letters: int = setting(
        12, help="captions with fewer letters are kept and flagged, not judged (default %(default)s)"
    )
    drop_duplicates: bool = True  # --keep-duplicates: False
    drop_empty: bool = True  # posts with no text, no kept hashtag and no image carry nothing to learn; --keep-empty
    #: auto: labels when posts have them, else hdbscan
    poi_method: str = setting(
        "auto",
        choices=POI_METHOD_CHOICES,
        help="auto: labels when posts have them, else hdbscan (default %(default)s)",
    )
    min_poi_posts: int = setting(100, help="(default %(default)s)")
    min_poi_users: int = setting(3, help="(default %(default)s)")
    poi_min_samples: int = setting(10, help="HDBSCAN/DBSCAN core density (default %(default)s)")
    poi_eps_m: float = setting(75.0, help="DBSCAN radius, metres (default %(default)s)")
    poi_cell_m: float = setting(250.0, help="grid cell, metres (default %(default)s)")
    #: > 0: grid cells of this many degrees instead of poi_cell_m metres
    poi_cell_deg: float = setting(
        0.0,
        help="grid cell in degrees of latitude and longitude, e.g. 0.01; replaces --poi-cell-m when given",
    )
    train: float = 0.7  # --split train,val,test
    val: float = 0.1
    test: float = 0.2
    seed: int = setting(0)
    # how, not what: none of these changes the prepared posts, POIs or splits on data that fits the sample
    #: memory (pandas, the default) or duckdb (out-of-core, `pip install 'postloc[duckdb]'`)
    engine: str = setting(
        "memory",
        choices=ENGINES,
        help="memory: pandas, the default; duckdb: out-of-core SQL for 10M+ posts, needs "
        "pip install 'postloc[duckdb]' (default %(default)s)",
    )
    #: duckdb engine: SET memory_limit; it spills to a temp folder in the output's work folder
    memory_limit: str = setting(
        "1GB", help="duckdb engine: DuckDB memory limit; beyond it, it spills to disk (default %(default)s)"
    )
    #: processes for the per-post stage (NFKC, hashtags, language id); order is kept
    workers: int = setting(
        1, help="processes for normalisation and language id; output order is kept (default %(default)s)"
    )
    #: duckdb engine: HDBSCAN/DBSCAN on at most this many seeded points, the rest by nearest centre
    poi_sample: int = setting(
        200_000,
        help="duckdb engine: HDBSCAN/DBSCAN on at most this many seeded points, the others by "
        "nearest cluster centre (default %(default)s)",
    )

    def __post_init__(self) -> None:
        self.check()

    def poi_config(self, method: str) -> PoiConfig:
        return PoiConfig(
            method=method,
            min_posts=self.min_poi_posts,
            min_users=self.min_poi_users,
            min_samples=self.poi_min_samples,
            eps_m=self.poi_eps_m,
            cell_m=self.poi_cell_m,
            cell_deg=self.poi_cell_deg,
        )

    def split_config(self) -> SplitConfig:
        return SplitConfig(train=self.train, val=self.val, test=self.test, seed=self.seed)

    def check(self) -> None:
        """Refuse settings no engine can run, when they are made (before any input is read); the error names
        the ``prepare`` flag and the field."""
        for name in ("min_poi_posts", "min_poi_users"):
            if getattr(self, name) < 1:
                raise setting_error(self, name, "must be at least 1", getattr(self, name))
        if self.min_hashtag_count < 0:
            raise setting_error(self, "min_hashtag_count", "must be >= 0", self.min_hashtag_count)
        if self.poi_min_samples < 1:
            raise setting_error(self, "poi_min_samples", "must be at least 1", self.poi_min_samples)
        if self.poi_method not in POI_METHOD_CHOICES:
            raise PostlocError(f"unknown POI method {self.poi_method!r}; use auto, labels, hdbscan, dbscan or grid")
        if self.engine not in ENGINES:
            raise PostlocError(f"unknown engine {self.engine!r}; use {' or '.join(ENGINES)}")
        if self.workers < 1:
            raise setting_error(self, "workers", "must be at least 1", self.workers)
        if not self.poi_cell_m > 0:
            raise setting_error(self, "poi_cell_m", "must be positive", self.poi_cell_m)
        if not self.poi_cell_deg >= 0:
            raise setting_error(self, "poi_cell_deg", "must not be negative", self.poi_cell_deg)
        if self.poi_sample < 2:
            raise setting_error(self, "poi_sample", "must be at least 2", self.poi_sample)
        self.split_config().fractions()


@dataclass
class PrepareResult:
    """Where the prepared dataset was written, its summary, and what the reader skipped."""

    out_dir: Path
    summary: dict[str, Any]
    skip_report: SkipReport
    #: things the user should know about the result (e.g. an empty split), one line each
    notes: list[str] = field(default_factory=list)

    @property
    def markdown(self) -> str:
        return summary_markdown(self.summary)
