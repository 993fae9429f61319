"""``postloc experiments --quick`` end to end on a tiny prepared set, and resuming skips finished cells."""

from __future__ import annotations

import json

import pytest

from postloc.experiments import run_experiments
from postloc.experiments.config import quick_config
from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_synthetic_prepared(tmp_path_factory.mktemp("data") / "tiny",
                                    SyntheticFeaturesConfig(n_posts=160, n_pois=3, n_users=40, image_dim=8))


def test_quick_run_end_to_end_and_resume(tiny, tmp_path, capsys):
    out = tmp_path / "report"
    config = quick_config(epochs=1, studies=("table2", "table3", "fig4"), thresholds=(3,), progress=True)
    first = run_experiments(tiny, out, config)
    assert first["cells_run_now"] > 0
    assert "to run" in capsys.readouterr().err  # the progress display
    report = (out / "report.md").read_text()
    assert "SYNTHETIC DATA" in report and "Table II" in report and "Fig. 4" in report
    assert (out / "table2.png").exists() and (out / "fig4.png").exists()
    rows = {(r["study"], r["row"], r["column"]): r for r in first["rows"]}
    assert rows[("table2", "MRLF (paper)", "")]["accuracy"]["mean"] is not None
    assert any("substitute: synthetic" in r["row"] for r in first["rows"] if r["model"] == "resnet50")
    assert all(r["na"] for r in first["rows"] if r["study"] == "table3")  # no image files: n/a with a reason
    assert {r["column"] for r in first["rows"] if r["study"] == "fig4"} == {"1", "3"}
    assert len(list((out / "cells").glob("*.json"))) == first["cells_run_now"]

    # re-running (through the CLI) finds every cell done and trains nothing
    assert main(["experiments", str(tiny), "--out", str(out), "--quick", "--studies", "table2,table3,fig4",
                 "--thresholds", "3", "--epochs", "1", "--quiet"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["cells_run_now"] == 0
    assert again["rows"] == json.loads(json.dumps(first["rows"]))


def test_missing_modality_rows_are_na():
    from postloc.experiments.config import Method
    from postloc.experiments.methods import missing_needs

    assert missing_needs(Method("x", "knn-image", needs=("image",)), {"hashtags"}) == ["image"]
    assert missing_needs(Method("x", "deepgeo", needs=("text|hashtags",)), {"hashtags"}) == []


def test_table2_needs_and_quick_params_are_the_model_classes_facts():
    from postloc.experiments.methods import quick_params, table2_methods
    from postloc.models import get_model

    methods = {m.model: m for m in table2_methods()}
    assert methods["tagvisor"].needs == ("hashtags",) and methods["knn-image"].needs == ("image",)
    assert methods["majority"].needs == () and methods["mrlf"].needs == ("text|hashtags|image",)
    for method in methods.values():
        assert method.needs == tuple(get_model(method.model).requires)
    assert quick_params("mrlf-plus") == quick_params("mrlf") and quick_params("majority") == {}
    assert quick_params("loctwi") == {"buckets": 1009, "dim": 8}
