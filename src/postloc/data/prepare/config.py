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
from postloc.data.readers import SkipReport
from postloc.data.splits import SplitConfig
from postloc.data.summary import summary_markdown
from postloc.errors import PostlocError

ENGINES = ("memory", "duckdb")
POI_METHOD_CHOICES = ("auto", "labels", "hdbscan", "dbscan", "grid")


@dataclass(frozen=True)
class ReadOptions:
    """How to read the input: format (auto from the name), CSV/JSONL/Parquet column mapping, list separator."""

    format: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    list_sep: str = ";"
    skip_bad: bool = False


@dataclass(frozen=True)
class PrepareConfig:
    """Every threshold of the cleaning; defaults follow the paper where it gives a number."""

    min_hashtag_count: int = 50
    languages: tuple[str, ...] = ("en",)  # empty: keep every language
    min_language_letters: int = 12  # fewer letters than this: too short to judge, kept and flagged
    drop_duplicates: bool = True
    drop_empty: bool = True  # posts with no text, no kept hashtag and no image carry nothing to learn
    poi_method: str = "auto"  # auto: labels when posts have them, else hdbscan
    min_poi_posts: int = 100
    min_poi_users: int = 3
    poi_min_samples: int = 10
    poi_eps_m: float = 75.0
    poi_cell_m: float = 250.0
    poi_cell_deg: float = 0.0  # > 0: grid cells of this many degrees instead of poi_cell_m metres
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    seed: int = 0
    # how, not what: none of these changes the prepared posts, POIs or splits on data that fits the sample
    engine: str = "memory"  # memory (pandas, the default) or duckdb (out-of-core, `pip install 'postloc[duckdb]'`)
    memory_limit: str = "1GB"  # duckdb engine: SET memory_limit; it spills to a temp folder in the output's work folder
    workers: int = 1  # processes for the per-post stage (NFKC, hashtags, language id); order is kept
    poi_sample: int = (
        200_000  # duckdb engine: HDBSCAN/DBSCAN on at most this many seeded points, the rest by nearest centre
    )

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
        """Refuse settings no engine can run, before any input is read."""
        if self.min_poi_posts < 1 or self.min_poi_users < 1:
            raise PostlocError("min_poi_posts and min_poi_users must be at least 1")
        if self.min_hashtag_count < 0:
            raise PostlocError("min_hashtag_count must be >= 0")
        if self.poi_method not in POI_METHOD_CHOICES:
            raise PostlocError(f"unknown POI method {self.poi_method!r}; use auto, labels, hdbscan, dbscan or grid")
        if self.engine not in ENGINES:
            raise PostlocError(f"unknown engine {self.engine!r}; use {' or '.join(ENGINES)}")
        if self.workers < 1:
            raise PostlocError(f"workers must be at least 1, got {self.workers}")
        if not (self.poi_cell_m > 0 and self.poi_cell_deg >= 0):
            raise PostlocError("poi_cell_m must be positive and poi_cell_deg not negative")
        if self.poi_sample < 2:
            raise PostlocError(f"poi_sample must be at least 2, got {self.poi_sample}")
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
