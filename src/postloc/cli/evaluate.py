"""``postloc evaluate``: the argparse front end of :func:`postloc.training.api.evaluate`.

Scores a trained run on one split (with the run's temperature applied) and prints the headline
metrics and calibration; the JSON, Markdown, per-POI table, confusion plot, reliability diagram and
accuracy-coverage curve go into the run folder.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    """Register ``evaluate``."""
    from postloc.data.splits import SPLITS

    p = sub.add_parser("evaluate", help="evaluate a trained run on a split (JSON + Markdown into the run folder)")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="run folder written by `postloc train`")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--data", type=Path, help="prepared dataset (default: the one the run was trained on)")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc.io.run_folder import eval_stem
    from postloc.training.api import evaluate

    report = evaluate(args.run_dir, args.split, args.data)
    label = " (SYNTHETIC DATA)" if report.get("synthetic") else ""
    print(
        f"{report['model']} on {args.split}{label}: acc {_f(report['accuracy'])}, acc@3 {_f(report['acc@3'])}, "
        f"acc@5 {_f(report['acc@5'])}, macro-F1 {_f(report['macro_f1'])}, mean {_f(report['mean_km'])} km, "
        f"median {_f(report['median_km'])} km, acc@1km {_f(report['acc@1km'])} "
        f"(distances against {report['distance_reference']})"
    )
    print(
        f"calibration: ECE {_f(report.get('ece'))} (uncalibrated {_f(report.get('ece_uncalibrated'))}, "
        f"T = {report.get('temperature', 1.0):.3f}); acc at 50% coverage {_f(report.get('acc@cov50'))}"
        + (f"; note: {report['calibration_note']}" if report.get("calibration_note") else "")
    )
    files = ".json, .md, -per-poi.csv, -confusion.png, -reliability.png, -coverage.png"
    print(f"wrote {args.run_dir}/{eval_stem(args.split)}{files}")
    return 0


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
