"""The paper's studies on any prepared dataset: Table II, Fig. 2, Fig. 3, Table III, Fig. 4.

``run_experiments(prepared, out, ExperimentConfig(...))`` plans every *cell* (one model, one
setting, one data variant, one seed), runs the ones not stored yet (each finished cell is a JSON
file under ``out/cells/``, so an interrupted run resumes), then writes ``report.md``,
``results.json`` and PNG plots. See docs/experiments.md.
"""

from postloc.experiments.config import ExperimentConfig
from postloc.experiments.runner import run_experiments

__all__ = ["ExperimentConfig", "run_experiments"]
