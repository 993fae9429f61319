"""Settings of an experiment run: seeds, epochs, which studies, the hashtag-threshold sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postloc.settings import setting

STUDIES = ("table2", "fig2", "fig3", "table3", "fig4")


@dataclass(frozen=True)
class ExperimentConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    #: upper bound; early stopping usually ends runs far earlier
    epochs: int = setting(40, help="maximum epochs (default %(default)s)")
    early_stopping: int = setting(6, help="patience in epochs; 0: never (default %(default)s)")
    threads: int = setting(2, help="torch threads per run (default %(default)s)")
    studies: tuple[str, ...] = setting(STUDIES, help="comma-separated subset of %(default)s")
    #: Fig. 4 sweep of min_hashtag_count (1: no filter)
    thresholds: tuple[int, ...] = setting(
        (1, 5, 10, 25, 50, 100), help="Fig. 4 min_hashtag_count values (default %(default)s)"
    )
    fig4_models: tuple[str, ...] = setting(
        ("mrlf", "tfidf-logreg"), help="models of the Fig. 4 sweep (default %(default)s)"
    )
    #: seeds of the Fig. 4 sweep (empty: ``seeds``); fewer keep the sweep affordable
    fig4_seeds: tuple[int, ...] = setting((), help="seeds of the Fig. 4 sweep (default: --seeds)")
    #: the raw posts the prepared folder came from (default: from its manifest)
    raw_input: str | None = setting(
        None, flag="--raw", help="raw input the prepared folder came from (default: found via its manifest.json)"
    )
    quick: bool = False  # tiny models, 2 epochs, for tests
    progress: bool = True
    #: write the report from the finished cells, run nothing (partial runs)
    report_only: bool = setting(False, help="write the report from finished cells; run nothing")
    #: keep each cell's run folder (checkpoints, curves); default: delete after scoring
    keep_runs: bool = setting(False, help="keep each cell's run folder (checkpoints, curves)")
    #: K user-disjoint folds, every cell once per fold (0: the prepared folder's own split)
    folds: int = setting(
        0,
        help="K user-disjoint folds: every cell runs once per fold and is scored on it; the report adds "
        "per-fold values and paired differences to the best baseline (default %(default)s: the prepared split)",
    )
    #: seed of the fold assignment (stored in OUT/folds.parquet)
    fold_seed: int = setting(0, help="seed of the fold assignment (default %(default)s)")
    cv_model: str = ""  # study "cv" (``postloc crossval``): this one model ...
    cv_params: dict[str, Any] = field(default_factory=dict)  # ... with these params ...
    cv_reference: str = ""  # ... and, if named, a reference model for the paired differences
    cv_also: tuple[str, ...] = ()  # ... and these models (default params) scored beside them, e.g. majority
    per_post_outcomes: bool = False  # store predictions/KEY.parquet (and pair) without folds too

    def __post_init__(self) -> None:
        unknown = set(self.studies) - set(STUDIES) - ({"cv"} if self.cv_model else set())
        if unknown:
            raise ValueError(f"unknown studies {sorted(unknown)}; use some of {', '.join(STUDIES)}")
        if not self.seeds:
            raise ValueError("need at least one seed")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"--folds must be 0 (one split) or at least 2, got {self.folds}")


def quick_config(**changes) -> ExperimentConfig:
    """The ``--quick`` settings: one seed, two epochs, a short sweep."""
    base: dict[str, Any] = dict(seeds=(0,), epochs=2, early_stopping=0, thresholds=(1, 2), quick=True)
    base.update(changes)
    return ExperimentConfig(**base)


@dataclass(frozen=True)
class Method:
    """One row of a study: a display label, a registered model and its params, and what it needs."""

    label: str  # may name the model's settings, e.g. "k={k}": filled from the code by runner.caption
    model: str
    params: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # each item: a modality or "a|b" (either one)
    max_epochs: int = 0  # a cap below the run's epochs for slow models (0: none)
