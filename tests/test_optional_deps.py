"""The single-machine path needs none of the scale-out extras (issue 8, point 4).

Ray, DuckDB and Polars are optional dependency groups (`postloc[ray]`, `postloc[duckdb]`,
`postloc[scale]`). The test environment has them installed, so "not needed" is proven by
running the default pipeline in a child interpreter whose import system refuses them: any
import of these modules on the default path would fail the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

BLOCKED = ("ray", "duckdb", "polars")

CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = {blocked!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())

    from postloc.cli import main

    work = sys.argv[1]
    steps = [
        ["prepare", "dresden", "--out", f"{{work}}/prepared", "--quiet"],
        ["train", "--model", "mrlf", "--data", f"{{work}}/prepared", "--out", f"{{work}}/run",
         "--epochs", "1", "--quiet", "--set", "threads=1"],
        ["evaluate", f"{{work}}/run", "--split", "val"],
        ["predict", f"{{work}}/run", f"{{work}}/prepared/posts.parquet", "--out", f"{{work}}/pred.jsonl",
         "--quiet"],
    ]
    codes = []
    for step in steps:
        try:
            codes.append(main(step) or 0)
        except SystemExit as stop:
            codes.append(stop.code or 0)
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    print("RESULT " + json.dumps({{"codes": codes, "loaded": loaded}}))
    """
)


@pytest.mark.slow  # prepare + train + predict in a child interpreter: 26 s here under load
def test_default_pipeline_runs_without_scale_extras(tmp_path):
    script = CHILD.format(blocked=BLOCKED)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["codes"] == [0, 0, 0, 0], done.stderr[-3000:]
    assert result["loaded"] == []
    assert (tmp_path / "pred.jsonl").stat().st_size > 0


def test_prepare_does_not_import_torch(tmp_path):
    """`postloc prepare` is pure data work: importing torch would add ~0.3 GB and 1-2 s to every run."""
    script = textwrap.dedent(
        """
        import sys
        from postloc.cli import main
        code = main(["prepare", "dresden", "--out", sys.argv[1], "--quiet"])
        print("RESULT", code, "torch" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "prepared")], capture_output=True, text=True, timeout=300
    )
    assert "RESULT 0 False" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
