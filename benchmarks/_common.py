"""Shared bits of the benchmarks: machine description and JSON + Markdown output.

Also imported (``sys.path``) by the studies in studies/ and the reliability drivers in
tests/reliability/, which write their results next to themselves (``write_results(..., folder=)``),
so that every committed results file describes its machine the same way.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": "none" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        # other work on the machine slows every timing: say how busy it was
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size so far (Linux reports KiB)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform`` says only "x86_64")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(name: str, payload: dict[str, Any], markdown: str, folder: Path = RESULTS) -> tuple[Path, Path]:
    """``folder/NAME.json`` (the payload) and ``folder/NAME.md`` (the table); benchmarks/results/ unless told."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path
