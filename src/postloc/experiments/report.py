"""``report.md`` + ``results.json`` + PNG plots from the collected rows of an experiment run.

A study's plot is drawn only when it has something to show (a table of n/a rows has no bars), and
the report links exactly the plots written by this run, so it never points at a missing file or at
a stale one from an earlier run.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

TITLES = {
    "table2": "Table II: methods compared",
    "fig2": "Fig. 2: MRLF modality ablation",
    "fig3": "Fig. 3: fusion variants",
    "table3": "Table III: image-only, before / after noisy-image removal",
    "fig4": "Fig. 4: low-frequency hashtag filter (min_hashtag_count sweep)",
}
COLUMNS = (
    ("accuracy", "Acc", 3),
    ("acc@5", "Acc@5", 3),
    ("mean_km", "mean km", 3),
    ("median_km", "median km", 3),
    ("acc@1km", "Acc@1km", 3),
    ("macro_f1", "macro-F1", 3),
    ("train_seconds", "train s", 1),
    ("epochs_run", "epochs", 1),
)
SYNTHETIC = "SYNTHETIC DATA"


def _fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if len(stat.get("values", [])) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def markdown(results: dict[str, Any], plots: Collection[str] = ()) -> str:
    """The report; ``plots`` are the studies whose ``STUDY.png`` was written (linked below their table)."""
    synthetic = results.get("synthetic")
    name = Path(results["prepared"]).name
    title = f"# Experiments on {name}" + (f" ({SYNTHETIC})" if synthetic else "")
    cfg = results["config"]
    lines = [title, ""]
    if synthetic:
        label = str(results.get("label") or "generated posts, not real ones").removeprefix(f"{SYNTHETIC}: ")
        lines += [
            f"**{SYNTHETIC}**: {label}. Numbers show what the "
            "code learns from planted signal, not how well anything works on real posts.",
            "",
        ]
    lines += [
        f"Prepared data: `{results['prepared']}` (input: `{results.get('input', {}).get('path')}`). "
        f"Seeds {list(cfg['seeds'])} (mean ± std over seeds where more than one); at most {cfg['epochs']} "
        f"epochs, early stopping {cfg['early_stopping']}; {cfg['threads']} torch threads"
        + ("; **--quick** (tiny models: not comparable numbers)" if cfg.get("quick") else "")
        + ".",
        "All numbers on the test split. n/a rows say why the method cannot run on this data.",
        "",
    ]
    if results.get("cells_missing"):
        lines += [
            f"**Incomplete**: {results['cells_missing']} of {results['cells_total']} cells have not run yet "
            "(shown as –); re-run the same command to finish them.",
            "",
        ]
    for note in results.get("notes", {}).get("all", []):
        lines.append(f"- {note}")
    lines.append("")
    for study, heading in TITLES.items():
        rows = [r for r in results["rows"] if r["study"] == study]
        if not rows:
            continue
        lines += [f"## {heading}" + (f" ({SYNTHETIC})" if synthetic else ""), ""]
        for note in results.get("notes", {}).get(study, []):
            lines.append(f"- {note}")
        if results.get("notes", {}).get(study):
            lines.append("")
        has_column = any(r["column"] for r in rows)
        header = ["method"] + (["setting"] if has_column else []) + [c[1] for c in COLUMNS] + ["test posts"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * (1 + has_column) + "---:|" * (len(COLUMNS) + 1)]
        for r in rows:
            cells = [r["row"]] + ([r["column"]] if has_column else [])
            if r["na"]:
                cells += ["n/a"] + [""] * (len(COLUMNS) - 1) + [f"n/a: {r['na']}"]
            else:
                cells += [_fmt(r.get(k), d) for k, _, d in COLUMNS] + [str(r.get("test_posts"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if study in plots:
            lines += [f"![{heading}]({study}.png)", ""]
    ref = next((r.get("distance_reference") for r in results["rows"] if r.get("distance_reference")), None)
    if ref:
        lines += [f"Distances (km) are from the predicted POI's centre to the {ref}.", ""]
    lines += ["Raw per-cell results: `cells/*.json`; aggregated: `results.json`.", ""]
    return "\n".join(lines)


def _plot_bars(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r["na"] and r["accuracy"]["mean"] is not None]
    if not rows:
        return False
    labels = [r["row"] + (f" [{r['column']}]" if r["column"] else "") for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    ax.barh(
        range(len(rows)),
        [r["accuracy"]["mean"] for r in rows],
        xerr=[r["accuracy"]["std"] for r in rows],
        color="#4C72B0",
        capsize=3,
    )
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _plot_fig4(rows: list[dict[str, Any]], path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for model in dict.fromkeys(r["row"] for r in rows):
        points = sorted(
            (int(r["column"]), r["accuracy"]["mean"], r["accuracy"]["std"])
            for r in rows
            if r["row"] == model and not r["na"] and r["accuracy"]["mean"] is not None
        )
        if points:
            x, y, e = zip(*points, strict=True)
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=model)
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_xlabel("min_hashtag_count (1 = no filter)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> bool:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


_PLOTS = {"table2": _plot_bars, "fig2": _plot_bars, "fig3": _plot_bars, "table3": _plot_bars, "fig4": _plot_fig4}


def write_report(results: dict[str, Any], out: Path) -> list[str]:
    """Write the plots, ``results.json`` and ``report.md`` into ``out``; returns the studies plotted.

    A study without a plot this time loses the ``STUDY.png`` an earlier run may have left, so the
    folder never shows a plot of other numbers than the report's.
    """
    from postloc.io.atomic import atomic_open

    suffix = f" ({SYNTHETIC})" if results.get("synthetic") else ""
    plotted = []
    for study, plot in _PLOTS.items():
        rows = [r for r in results["rows"] if r["study"] == study]
        if rows and plot(rows, out / f"{study}.png", TITLES[study] + suffix):
            plotted.append(study)
        else:
            (out / f"{study}.png").unlink(missing_ok=True)
    with atomic_open(out / "results.json") as handle:
        handle.write(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    with atomic_open(out / "report.md") as handle:
        handle.write(markdown(results, plotted))
    return plotted
