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

from postloc.experiments import folder as layout
from postloc.io.escape import md_code, md_text

TITLES = {
    "table2": "Table II: methods compared",
    "fig2": "Fig. 2: MRLF modality ablation",
    "fig3": "Fig. 3: fusion variants",
    "table3": "Table III: image-only, before / after noisy-image removal",
    "fig4": "Fig. 4: low-frequency hashtag filter (min_hashtag_count sweep)",
    "cv": "Cross-validation",
}
COLUMNS = (
    ("accuracy", "Acc", 3),
    ("acc@5", "Acc@5", 3),
    ("mean_km", "mean km", 3),
    ("median_km", "median km", 3),
    ("acc@1km", "Acc@1km", 3),
    ("macro_f1", "macro-F1", 3),
    ("ece", "ECE", 3),
    ("acc@cov50", "Acc@50%cov", 3),
    ("train_seconds", "train s", 1),
    ("epochs_run", "epochs", 1),
)
SYNTHETIC = "SYNTHETIC DATA"
ACC_AT = (5,)  # the Acc@k columns of the tables


def _fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if len(stat.get("values", [])) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def markdown(results: dict[str, Any], plots: Collection[str] = ()) -> str:
    """The report; ``plots`` are the studies whose ``STUDY.png`` was written (linked below their table).

    Folder and file names, labels, notes and row captions are data (a file name may hold a backtick, a
    POI id a ``|``): each is escaped as Markdown text or put in a code span (:mod:`postloc.io.escape`)."""
    synthetic = results.get("synthetic")
    name = Path(results["prepared"]).name
    title = f"# Experiments on {md_text(name)}" + (f" ({SYNTHETIC})" if synthetic else "")
    cfg = results["config"]
    lines = [title, ""]
    if synthetic:
        label = str(results.get("label") or "generated posts, not real ones").removeprefix(f"{SYNTHETIC}: ")
        lines += [
            f"**{SYNTHETIC}**: {md_text(label)}. Numbers show what the "
            "code learns from planted signal, not how well anything works on real posts.",
            "",
        ]
    folds = cfg.get("folds") or 0
    spread = (
        f"**{folds} user-disjoint folds** (fold seed {cfg.get('fold_seed', 0)}), mean ± std over folds; seeds "
        f"{list(cfg['seeds'])} per fold"
        if folds
        else f"Seeds {list(cfg['seeds'])} (mean ± std over seeds where more than one)"
    )
    lines += [
        f"Prepared data: {md_code(results['prepared'])} (input: {md_code(results.get('input', {}).get('path'))}). "
        f"{spread}; at most {cfg['epochs']} "
        f"epochs, early stopping {cfg['early_stopping']}; {cfg['threads']} torch threads"
        + ("; **--quick** (tiny models: not comparable numbers)" if cfg.get("quick") else "")
        + ".",
        (
            "Every post is a test post of exactly one fold; each fold's numbers are on its own test posts, "
            "and *test posts* is their sum over the folds."
            if folds
            else "All numbers on the test split."
        )
        + " ECE: expected calibration error of the top-class confidence (15 bins); Acc@50%cov: accuracy "
        "on the half of the posts the model is most confident about. n/a rows say why the method cannot "
        "run on this data.",
        "",
    ]
    if results.get("fold_summary"):
        summary = results["fold_summary"]
        lines += [
            "Folds (by user; a user's posts are all in one fold): "
            + ", ".join(f"fold {f['fold']}: {f['posts']} posts / {f['users']} users" for f in summary)
            + ".",
            "",
        ]
    if results.get("cells_missing"):
        lines += [
            f"**Incomplete**: {results['cells_missing']} of {results['cells_total']} cells have not run yet "
            "(shown as –); re-run the same command to finish them.",
            "",
        ]
    for note in results.get("notes", {}).get("all", []):
        lines.append(f"- {md_text(note)}")
    lines += [f"- {note}" for note in reading_notes(results)]
    lines.append("")
    for study, heading in TITLES.items():
        rows = [r for r in results["rows"] if r["study"] == study]
        if not rows:
            continue
        lines += [f"## {heading}" + (f" ({SYNTHETIC})" if synthetic else ""), ""]
        for note in results.get("notes", {}).get(study, []):
            lines.append(f"- {md_text(note)}")
        if results.get("notes", {}).get(study):
            lines.append("")
        has_column = any(r["column"] for r in rows)
        header = ["method"] + (["setting"] if has_column else []) + [c[1] for c in COLUMNS] + ["test posts"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * (1 + has_column) + "---:|" * (len(COLUMNS) + 1)]
        for r in rows:
            cells = _labels(r, has_column)
            if r["na"]:
                cells += ["n/a"] + [""] * (len(COLUMNS) - 1) + [f"n/a: {md_text(r['na'])}"]
            else:
                cells += [_fmt(r.get(k), d) for k, _, d in COLUMNS] + [str(r.get("test_posts"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += _verdict_lines(results.get("verdicts", {}).get(study))
        if study in plots:
            lines += [f"![{heading}]({study}.png)", ""]
        if folds:
            lines += _per_fold(rows, has_column, folds)
            if study in results.get("paired", {}):
                lines += _paired_section(results["paired"][study])
    ref = next((r.get("distance_reference") for r in results["rows"] if r.get("distance_reference")), None)
    if ref:
        lines += [f"Distances (km) are from the predicted POI's centre to the {ref}.", ""]
    lines += ["Raw per-cell results: `cells/*.json`; aggregated: `results.json`.", ""]
    return "\n".join(lines)


def reading_notes(results: dict[str, Any]) -> list[str]:
    """What a reader needs to read the tables: what ± is, and when Acc@k cannot be below 1."""
    folds = (results.get("config") or {}).get("folds") or 0
    seeds = len((results.get("config") or {}).get("seeds") or ())
    notes = []
    if folds:
        notes.append("± is the standard deviation over the folds (each fold's value: the mean over its seeds).")
    elif seeds > 1:
        notes.append("± is the standard deviation over the seeds.")
    pois = results.get("pois")
    for k in ACC_AT:
        if pois and k >= pois:
            notes.append(f"Acc@{k} is 1 by construction with {k} POIs or fewer (this data has {pois}).")
    return notes


def _verdict_lines(verdict: dict[str, Any] | None) -> list[str]:
    """The study's verdict as one bold sentence (the POI name in it is data: escaped)."""
    if not verdict:
        return []
    where = "each fold's training posts" if len(verdict["majority"]["per_fold"]) > 1 else "the training posts"
    how = (
        f"paired bootstrap over {verdict['users']} test users ({verdict['posts']} posts); the majority answer is "
        f"the POI most frequent among {where}"
    )
    return [f"**Verdict**: {md_text(verdict['sentence'])} ({how}.)", ""]


def _labels(row: dict[str, Any], has_column: bool) -> list[str]:
    """A row's method caption (and setting) as table cells."""
    return [md_text(row["row"])] + ([md_text(row["column"])] if has_column else [])


def _ci(pair: list[float] | None, digits: int) -> str:
    return f"[{pair[0]:+.{digits}f}, {pair[1]:+.{digits}f}]" if pair else "–"


def _signed(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def _per_fold(rows: list[dict[str, Any]], has_column: bool, folds: int) -> list[str]:
    """Accuracy of every row on each fold (the values behind mean ± std)."""
    shown = [r for r in rows if not r["na"] and (r.get("accuracy") or {}).get("per_fold")]
    if not shown:
        return []
    header = ["method"] + (["setting"] if has_column else []) + [f"fold {f}" for f in range(folds)]
    lines = [
        "Accuracy per fold:",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * (1 + has_column) + "---:|" * folds,
    ]
    for r in shown:
        per = {int(k): v for k, v in r["accuracy"]["per_fold"].items()}
        cells = _labels(r, has_column)
        cells += [f"{per[f]:.3f}" if f in per else "–" for f in range(folds)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _paired_section(paired: dict[str, Any]) -> list[str]:
    """Each method minus the reference: mean difference, t-interval over folds, bootstrap over users."""
    level = int(round(100 * paired["level"]))
    lines = [
        f"**Paired differences to the reference: {md_text(paired['reference'])}** ({md_text(paired['why'])}). "
        "Each row is *method minus reference* on the same test posts: ΔAcc > 0 and Δkm < 0 favour the "
        f"method. t: {level} % Student-t interval over the per-fold differences; bootstrap: {level} % "
        f"percentile interval of the pooled out-of-fold difference, {paired['bootstrap_resamples']} "
        "resamples of test users with replacement (a user's posts move together). An interval that "
        "excludes 0 separates the two; one that contains 0 does not.",
        "",
        "| method | ΔAcc (folds) | t interval | ΔAcc (pooled) | bootstrap interval | Δmean km (folds) "
        "| t interval | Δmean km (pooled) | bootstrap interval |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in paired["rows"]:
        label = md_text(r["row"]) + (f" [{md_text(r['column'])}]" if r.get("column") else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    label,
                    _signed(r.get("d_acc"), 3),
                    _ci(r.get("d_acc_t"), 3),
                    _signed(r.get("d_acc_pooled"), 3),
                    _ci(r.get("d_acc_boot"), 3),
                    _signed(r.get("d_km"), 3),
                    _ci(r.get("d_km_t"), 3),
                    _signed(r.get("d_km_pooled"), 3),
                    _ci(r.get("d_km_boot"), 3),
                ]
            )
            + " |"
        )
    return lines + [""]


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
    ax.set_xlabel("test accuracy (mean ± std over " + ("folds)" if rows[0]["accuracy"].get("per_fold") else "seeds)"))
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


_PLOTS = {
    "table2": _plot_bars,
    "fig2": _plot_bars,
    "fig3": _plot_bars,
    "table3": _plot_bars,
    "fig4": _plot_fig4,
    "cv": _plot_bars,
}


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
        if rows and plot(rows, layout.plot_path(out, study), TITLES[study] + suffix):
            plotted.append(study)
        else:
            layout.plot_path(out, study).unlink(missing_ok=True)
    with atomic_open(layout.results_path(out)) as handle:
        handle.write(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    with atomic_open(layout.report_path(out)) as handle:
        handle.write(markdown(results, plotted))
    return plotted
