"""Compare two output trees of ``golden.sh``: what a change did to postloc's outputs.

JSON is compared without its timing and machine keys, the metrics JSONL likewise, predictions and CSV
tables exactly, Parquet by value (timing columns left out), Markdown, HTML and logs with every number
masked (their numbers come from the JSON, compared above). Resumable cells and per-cell predictions are
named by a hash of their settings, which hold paths: they are left out. Prints each difference and
exits 1 when there is one.

    python tests/reliability/golden_compare.py OLD_TREE NEW_TREE
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

VOLATILE = re.compile(
    r"time|second|elapsed|rss|load|duration|_at$|date|version|commit|host|started|finished|wall|created|"
    r"python|torch|cpu|platform|machine|threads|memory|digest|sha",
    re.I,
)
NUMBER = re.compile(r"\d+(\.\d+)?")


def steady(value: Any) -> Any:
    """``value`` without the keys that change from run to run (times, machine, digests)."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and "cells" not in p.parts and "predictions" not in p.parts
    }


def same(a: Path, b: Path) -> bool:
    if a.read_bytes() == b.read_bytes():
        return True
    suffix = a.suffix
    if suffix == ".json":
        return steady(json.loads(a.read_text())) == steady(json.loads(b.read_text()))
    if suffix == ".jsonl" and a.name.startswith("metrics"):
        rows = [[steady(json.loads(line)) for line in p.read_text().splitlines()] for p in (a, b)]
        return rows[0] == rows[1]
    if suffix == ".parquet":
        left, right = pd.read_parquet(a), pd.read_parquet(b)
        columns = [c for c in left.columns if not VOLATILE.search(c)]
        return list(left.columns) == list(right.columns) and left[columns].equals(right[columns])
    if suffix == ".csv" and not a.name.startswith("metrics"):
        return False  # tables are compared exactly (the bytes differed)
    if suffix in (".md", ".html", ".log", ".txt", ".csv"):
        return NUMBER.sub("N", a.read_text()) == NUMBER.sub("N", b.read_text())
    return False


def main() -> int:
    old, new = Path(sys.argv[1]), Path(sys.argv[2])
    in_old, in_new = files(old), files(new)
    differences = 0
    for path in sorted(in_old ^ in_new):
        differences += 1
        print(f"only in {old if path in in_old else new}: {path}")
    for path in sorted(in_old & in_new):
        if not same(old / path, new / path):
            differences += 1
            print(f"differs: {path}")
    print(f"{differences} difference(s) in {len(in_old | in_new)} files")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
