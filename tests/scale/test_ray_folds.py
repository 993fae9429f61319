"""``--engine ray`` for ``crossval``, ``experiments`` and ``quickstart``: the cells as Ray tasks give the local results.

The comparison starts a local Ray (about 10 s here) and runs the same 3-fold crossval twice, so it
is marked slow like ``tests/models/test_stack_scale.py::test_ray_executor_gives_the_local_model``;
the flags' refusals need no Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import PostlocError
from postloc.experiments import folder as layout

#: stack (C choices, the combiner), a reference (paired intervals, the verdict) and majority, 3 folds
CROSSVAL = ["--model", "stack", "--reference", "tfidf-logreg", "--also", "majority", "--folds", "3"]
FLAGS = ["--quick", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_synthetic_prepared(
        tmp_path_factory.mktemp("data") / "tiny",
        SyntheticFeaturesConfig(n_posts=160, n_pois=3, n_users=40, image_dim=8),
    )


@pytest.mark.parametrize("command", ["crossval", "experiments", "quickstart"])
def test_ray_address_without_the_ray_engine_is_refused_before_any_step(command, tiny, tmp_path, capsys):
    out = tmp_path / "out"
    args = {
        "crossval": ["crossval", str(tiny), "--model", "majority"],
        "experiments": ["experiments", str(tiny), "--quick"],
        "quickstart": ["quickstart", "dresden", "--no-serve"],
    }[command]
    assert main([*args, "--out", str(out), "--ray-address", "auto"]) == 2
    assert "--ray-address needs --engine ray" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):  # argparse: not a choice
        main([*args, "--out", str(out), "--engine", "spark"])


def _table(out: Path) -> dict:
    """``results.json`` without what measures time (seconds, the cells' train_seconds)."""
    results = json.loads((out / "results.json").read_text())
    results.pop("seconds_this_run")
    for row in results["rows"]:
        row.pop("train_seconds", None)
    return results


@pytest.mark.slow  # a local Ray and two 3-fold crossvals of 3 models: 20-25 s here (load 5)
def test_crossval_on_ray_gives_the_local_results(tiny, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    from postloc.experiments import run_experiments
    from postloc.experiments.cells import Cell
    from postloc.experiments.config import quick_config
    from postloc.experiments.runner import run_stored_cell
    from postloc.models.registry import load_model
    from postloc.scale._ray import RaySettings
    from postloc.scale.ray_folds import RayFoldExecutor

    # crossval's own settings (--quick --threads 1), keeping the runs to compare the fitted models
    config = quick_config(
        studies=("cv",),
        folds=3,
        cv_model="stack",
        cv_reference="tfidf-logreg",
        cv_also=("majority",),
        threads=1,
        progress=False,
        keep_runs=True,
    )
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_experiments(tiny, local, config)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        run_experiments(tiny, remote, config, executor=RayFoldExecutor(RaySettings(), cpus_per_task=1))
        # the command line: --engine ray runs, and a task bigger than any node (it would wait for ever) is refused
        crossval = ["crossval", str(tiny), "--model", "majority", "--folds", "2", "--quick"]
        assert main([*crossval, "--out", str(tmp_path / "cli"), "--engine", "ray", "--threads", "1"]) == 0
        said = capsys.readouterr()
        assert "majority over 2 folds: acc" in said.out
        assert "[2/2 done, 0 left]" in said.err and "s since the start)" in said.err  # the executor's progress
        assert main([*crossval, "--out", str(tmp_path / "big"), "--engine", "ray", "--threads", "3"]) == 2
        assert "asks for 3 CPUs (--threads), but the largest node of the Ray cluster has 2" in capsys.readouterr().err
        # a worker that does not see the head's folder refuses, and the user reads the reason, not Ray's traceback
        record = json.loads(next(layout.cells_dir(remote).glob("*.json")).read_text())
        with pytest.raises(PostlocError, match="cannot see the experiment folder") as refused:
            RayFoldExecutor().map(
                run_stored_cell,
                (str(tmp_path / "elsewhere"), config, layout.marker_text(remote)),
                [(Cell(**record["cell"]), str(tiny))],
                print,
            )
        assert "Traceback" not in str(refused.value)
    finally:
        ray.shutdown()

    assert _table(remote) == _table(local)  # rows, per-fold values, paired intervals, verdict
    assert [r["model"] for r in _table(local)["paired"]["cv"]["rows"]] == ["stack", "majority"]
    files = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file())
    keys = [path.stem for path in sorted(layout.cells_dir(local).glob("*.json"))]
    assert len(keys) == 9
    for key in keys:
        mine, theirs = (pd.read_parquet(layout.outcomes_path(out, key)) for out in (local, remote))
        assert mine[["id", "correct", "predicted"]].equals(theirs[["id", "correct", "predicted"]])
        for column in ("p_true", "confidence", "km"):
            assert np.allclose(mine[column], theirs[column], atol=1e-6)
    stacks = 0
    for key in keys:
        mine, theirs = (json.loads((layout.cells_dir(out) / f"{key}.json").read_text()) for out in (local, remote))
        for record in (mine, theirs):
            record.pop("train_seconds"), record.pop("finished")
        assert mine == theirs
        if mine["cell"]["model"] == "stack":  # the same C choices and combiner weights
            a, b = (load_model(layout.run_dir(out, key) / "best") for out in (local, remote))
            assert [ln.C for ln in a.learners_] == [ln.C for ln in b.learners_]
            assert np.allclose(a.weights_, b.weights_, atol=1e-6)
            stacks += 1
    assert stacks == 3
