"""Run ``prepare``: pick the engine, build the output folder atomically, write the manifest.

The whole output folder is built under a temporary name and swapped in at the end, so an
interrupted run leaves the previous result (or nothing), and a re-run with the same input
and settings writes the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from postloc.data.prepare.config import PrepareConfig, PrepareResult, ReadOptions
from postloc.data.prepare.memory import build_in_memory
from postloc.data.prepare.steps import (
    EngineInput,
    collector_paused,
    progress,
    release_cleaning_memory,
    settle_spool,
    spool_clean_posts,
    spool_place_keys,
)
from postloc.data.prepared import HASHTAGS, PREPARED, SUMMARY, SUMMARY_MD, write_manifest
from postloc.data.readers import SkipReport, read_posts
from postloc.data.summary import summary_markdown
from postloc.errors import BadInputError
from postloc.io.atomic import write_folder_atomically
from postloc.io.escape import csv_unguard_columns
from postloc.io.inputs import read_small_text
from postloc.io.locks import folder_lock
from postloc.io.ownership import check_output_folder


def prepare(
    source: str | Path,
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    read: ReadOptions | None = None,
    *,
    pois_csv: str | Path | None = None,
    progress: bool = False,
) -> PrepareResult:
    """Clean ``source`` into ``out_dir``: posts (JSONL + Parquet), POI table, hashtag stats, manifest, summary."""
    config = config or PrepareConfig()
    read = read or ReadOptions()
    source, out_dir = Path(source), Path(out_dir)
    config.check()
    if config.engine == "duckdb":
        from postloc.data.prepare.duckdb_connection import require_duckdb

        require_duckdb()  # fail before reading a large input
    report = SkipReport()
    known_centres = _read_poi_csv(pois_csv) if pois_csv else None

    outcome: dict[str, Any] = {}
    with folder_lock(out_dir):
        # Only a folder of our own is replaced, never one holding the input (docs/reliability.md);
        # checked under the lock, so no other command changes the answer before the swap.
        check_output_folder(out_dir, PREPARED, inputs=[source, pois_csv])
        write_folder_atomically(
            out_dir,
            lambda work: outcome.update(
                summary=_build(source, work, config, read, report, known_centres, pois_csv, progress)
            ),
        )
    summary = outcome["summary"]
    notes = split_notes(summary, config) + filter_notes(summary, config, out_dir)
    return PrepareResult(out_dir=out_dir, summary=summary, skip_report=report, notes=notes)


def split_notes(summary: dict[str, Any], config: PrepareConfig) -> list[str]:
    """A split asked for but left empty: a user's posts all go to one split, so few users leave others bare."""
    notes = []
    users = summary.get("all", {}).get("users", 0)
    for name, share in (("val", config.val), ("test", config.test)):
        if share > 0 and not summary.get(name, {}).get("posts"):
            notes.append(
                f"the {name} split is empty: the posts come from {users} user(s) and each user's posts stay in one "
                f"split; models cannot be {'tuned' if name == 'val' else 'evaluated'} on users they have not seen "
                f"(more users, or --split with a larger {name} share, may help)"
            )
    return notes


#: the option that loosens each step of the funnel, for the note when a step drops most posts
_LOOSEN = {
    "dropped_language": "--languages any (or add the captions' languages)",
    "dropped_empty": "a lower --min-hashtag-count (posts left with no kept hashtag, text or photo are empty), "
    "or --keep-empty",
    "dropped_duplicate": "--keep-duplicates, if the repeats are real posts",
    "dropped_outside_pois": "a lower --min-poi-posts (smaller places), or --poi-method grid",
    "dropped_small_poi": "a lower --min-poi-posts or --min-poi-users",
    "dropped_no_coordinates": "posts without coordinates need a `poi` label (docs/post-format.md)",
    "dropped_no_poi_label": "--poi-method hdbscan to derive POIs from the coordinates of the unlabelled posts",
}


def filter_notes(summary: dict[str, Any], config: PrepareConfig, out_dir: Path) -> list[str]:
    """Thresholds that removed most of the data (the paper's defaults on a small set): say which option to change."""
    notes = []
    funnel = summary.get("funnel") or {}
    places = summary.get("hashtag_vocabulary_place_names", 0)  # kept below the count: they name a POI
    if summary.get("hashtag_vocabulary", 0) == places and _has_data_row(out_dir / HASHTAGS):
        but = f" but for the {places:,} that name a POI" if places else ""
        notes.append(
            f"no hashtag is used by {config.min_hashtag_count} or more posts, so the hashtag vocabulary is empty{but} "
            "and no model sees another hashtag; lower --min-hashtag-count (the paper's 50 suits tens of thousands "
            "of posts)"
        )
    read, kept = funnel.get("read", 0), funnel.get("kept", 0)
    if read and kept < 0.5 * read:
        step, dropped = max(((k, v) for k, v in funnel.items() if k in _LOOSEN), key=lambda kv: kv[1], default=("", 0))
        if dropped:
            notes.append(
                f"only {kept:,} of {read:,} posts were kept; the step that dropped most is "
                f"{step.removeprefix('dropped_').replace('_', ' ')} ({dropped:,} posts): {_LOOSEN[step]}"
            )
    return notes


def _has_data_row(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return len(handle.read(4096).splitlines()) > 1
    except OSError:
        return False


def _build(
    source: Path,
    work: Path,
    config: PrepareConfig,
    read: ReadOptions,
    report: SkipReport,
    known_centres: pd.DataFrame | None,
    pois_csv: str | Path | None,
    show_progress: bool,
) -> dict[str, Any]:
    """Steps 1-7 into the (temporary) folder ``work``; returns the summary."""
    funnel: Counter = Counter()
    spool = work / "spool.parquet"
    posts = read_posts(
        source, format=read.format, columns=read.columns, list_sep=read.list_sep, skip_bad=read.skip_bad, report=report
    )
    out_of_core = config.engine == "duckdb"
    with collector_paused():
        spool_clean_posts(progress(posts, show_progress, "reading"), spool, config, funnel, keys_only=out_of_core)
    release_cleaning_memory(report.read)
    funnel["read"] = report.read
    funnel["skipped_bad"] = report.skipped
    with collector_paused():
        if out_of_core:
            from postloc.data.prepare.duckdb_engine import build_duckdb  # the optional extra: only when asked for

            build = build_duckdb
        else:
            build = build_in_memory
        places = spool_place_keys(spool, config, known_centres)
        settle_spool(spool, places, funnel, keys_only=out_of_core)  # duckdb de-duplicates in SQL
        summary, method = build(EngineInput(spool, work, config, funnel, known_centres, source, show_progress, places))
    spool.unlink()
    summary["poi_method"] = method
    (work / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (work / SUMMARY_MD).write_text(summary_markdown(summary))
    manifest = {
        "postloc_prepared": 1,
        "input": {
            "path": source.name,
            "sha256": fingerprint(source),
            "format": read.format or "auto",
            "columns": dict(read.columns),
            "list_sep": read.list_sep,
            "skip_bad": read.skip_bad,
        },
        "config": asdict(config),
        "poi_method": method,
        "pois_csv": Path(pois_csv).name if pois_csv else None,
        "skipped": report.to_dict(),
        "funnel": dict(funnel),
        "versions": _versions(config.engine),
    }
    write_manifest(work, manifest)  # the seal, last: it lists the folder's files
    return summary


#: a POI table is a few rows per place: 64 MiB holds a million POIs
POI_TABLE_MAX_BYTES = 64 * 2**20


def _read_poi_csv(path: str | Path) -> pd.DataFrame:
    """``--pois``: a POI table whose centres replace the derived ones; checked row by row."""
    path = Path(path)
    text = read_small_text(path, POI_TABLE_MAX_BYTES)
    try:
        table = pd.read_csv(io.StringIO(text), dtype={"poi": str})
    except (OSError, ValueError) as error:
        raise BadInputError(path, None, None, f"cannot be read as a POI table: {error}") from None
    missing = {"poi", "lat", "lon"} - set(table.columns)
    if missing:
        raise BadInputError(path, 1, None, f"POI table needs columns poi,lat,lon[,name]; missing {sorted(missing)}")
    for number, (given_lat, given_lon) in enumerate(zip(table["lat"], table["lon"], strict=True), start=2):
        lat, lon = pd.to_numeric(given_lat, errors="coerce"), pd.to_numeric(given_lon, errors="coerce")
        if not (-90 <= lat <= 90):
            raise BadInputError(path, number, "lat", f"must be a number in [-90, 90], got {given_lat!r}")
        if not (-180 <= lon <= 180):
            raise BadInputError(path, number, "lon", f"must be a number in [-180, 180], got {given_lon!r}")
    return csv_unguard_columns(table)  # a table postloc (or a spreadsheet) wrote: ' guards formulas, not data


def fingerprint(path: Path) -> str:
    """SHA-256 of a file, or of a folder's file names and contents (images by size only, to stay fast)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        if file.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".mp4") and path.is_dir():
            digest.update(str(file.stat().st_size).encode())
            continue
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _versions(engine: str = "memory") -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    names = ("postloc", "numpy", "pandas", "pyarrow", "scikit-learn", "py3langid") + (
        ("duckdb",) if engine == "duckdb" else ()
    )
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
