"""``OUT/report.html``: one self-contained page a user can open without a network or a server.

What it shows: the verdict (does the model beat always answering the majority POI, and tfidf-logreg,
by more than noise: :mod:`postloc.experiments.verdict`); the choices quickstart made and why; the
data (Table I); the default model against
tfidf-logreg and the majority class (mean ± std over user-disjoint folds, or the test split, with
the paired difference and its 95 % intervals); a map of the POIs coloured by how often their
posts are placed right, over the density of the training posts (a PNG drawn from the posts' own
coordinates: it traces the city's streets and shores), with a scale bar and labels that do not
overlap; each POI's precision, recall and support; the confusions between the busiest POIs; the
served run's own test score; and the most confident right and wrong predictions, with their text.
Tile servers are not reachable offline, and a page that fetches nothing is safe to mail around:
the picture is a data: URI inside the SVG.

Every string from the data is HTML-escaped: captions and POI names are the user's input and may
hold markup.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.basemap import Basemap, clip, simplify
from postloc.data.labels import class_index
from postloc.data.prepared import load_prepared, read_summary
from postloc.experiments.folder import outcomes_path, report_path, results_path
from postloc.experiments.verdict import wins
from postloc.io import quickstart_folder
from postloc.io.atomic import atomic_path
from postloc.io.inputs import read_small_json
from postloc.io.run_folder import RunFolder
from postloc.metrics import per_poi_table
from postloc.training.density import density_grid, density_png, extent

MAX_POIS_IN_CONFUSION = 12
EXAMPLES = 8
TEXT_CHARS = 220
KM_PER_DEGREE = 111.32  # km per degree of latitude (and of longitude at the equator)


def write_report(out: Path, manifest: dict[str, Any], basemap: Basemap | None = None) -> dict[str, Any]:
    """Write ``out/report.html`` from the quickstart folder; returns the scores it shows (for the manifest).

    ``basemap``: streets and shores the user supplied (``--basemap``), drawn under the density."""
    prepared = load_prepared(out / quickstart_folder.PREPARED)
    results = read_small_json(results_path(out / quickstart_folder.CV))
    rows = [r for r in results["rows"] if r["study"] == "cv" and not r.get("na")]
    model = manifest["request"]["model"]
    main = next((r for r in rows if r["model"] == model), None)
    outcomes = _outcomes(out / quickstart_folder.CV, main) if main else None
    pois = prepared.pois.copy()
    pois["poi"] = pois["poi"].astype(str)
    pois["label"] = [_poi_label(r) for r in pois.itertuples()]
    synthetic = bool(results.get("synthetic"))
    folds = int(results["config"].get("folds") or 0)
    scored_on = f"{folds} user-disjoint folds (every post tested once)" if folds else "the user-disjoint test split"
    title = f"postloc quickstart: {Path(manifest['input']['path']).name}" + (" (SYNTHETIC DATA)" if synthetic else "")

    body = [f"<h1>{escape(title)}</h1>"]
    if synthetic:
        body.append('<p class="warn">SYNTHETIC DATA: these numbers say nothing about real posts.</p>')
    body += _scores_section(
        rows, results.get("paired", {}).get("cv"), model, scored_on, results.get("verdict"), len(pois), folds
    )
    if outcomes is not None:
        body += _map_section(pois, outcomes, prepared.posts, basemap)
        body += _per_poi_section(pois, outcomes, prepared.posts)
        body += _confusion_section(pois, outcomes, prepared.posts)
        body += _examples_section(pois, outcomes, prepared.posts)
    body += _served_run_section(manifest)
    body += _choices_section(manifest)
    body += _data_section(out / quickstart_folder.PREPARED)
    body += _commands_section(out, manifest["steps"].get("names"), results.get("verdict"))
    page = _PAGE.format(title=escape(title), body="\n".join(body))
    with atomic_path(out / quickstart_folder.REPORT_HTML) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return {r["model"]: {m: r[m]["mean"] for m in ("accuracy", "mean_km", "median_km", "ece")} for r in rows}


def _outcomes(cv: Path, row: dict[str, Any]) -> pd.DataFrame | None:
    """The default model's per-post outcomes, pooled over folds (one seed: no averaging of ``predicted``)."""
    paths = [outcomes_path(cv, key) for key in row["keys"]]
    if not paths or not all(path.exists() for path in paths):
        return None
    frame = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True).drop_duplicates("id", keep="first")
    return frame.set_index(frame["id"].astype(str))


def _poi_label(row: Any) -> str:
    """The POI's name; a POI without one is named by its id and centre rather than left blank."""
    name = row.name.strip() if isinstance(row.name, str) else ""
    if name:
        return name
    if not (pd.isna(row.lat) or pd.isna(row.lon)):
        return f"{row.poi} ({row.lat:.4f}, {row.lon:.4f})"
    return str(row.poi)


def _fmt(stat: dict[str, Any] | None, digits: int, std: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if std and stat.get("std") and len(stat.get("values", [])) > 1:
        text += f" ± {stat['std']:.{digits}f}"
    return text


def _interval(pair: list[float] | None, digits: int) -> str:
    return "–" if not pair else f"[{pair[0]:+.{digits}f}, {pair[1]:+.{digits}f}]"


def _verdict_paragraph(verdict: dict[str, Any] | None) -> str:
    """The verdict sentence at the top of the scores: a warning when the model does not beat both answers."""
    if not verdict:
        return '<p class="verdict">No verdict: the per-post outcomes of the scoring step are missing.</p>'
    kind = "verdict" if wins(verdict) else "verdict warn"
    return f'<p class="{kind}" id="verdict">Verdict: {escape(verdict["sentence"])}</p>'


def _scores_section(
    rows: list[dict[str, Any]],
    paired: dict[str, Any] | None,
    model: str,
    scored_on: str,
    verdict: dict[str, Any] | None = None,
    n_pois: int = 0,
    folds: int = 0,
) -> list[str]:
    spread = " ± is the standard deviation over the folds." if folds else ""
    note = " acc@5 is 1 by construction with 5 POIs or fewer." if 0 < n_pois <= 5 else ""
    out = [
        "<h2>How well it places posts</h2>",
        _verdict_paragraph(verdict),
        f"<p>Scored on {escape(scored_on)}. Higher accuracy and lower km are better.{spread}{note}</p>",
    ]
    out.append(
        "<table><tr><th>model</th><th>accuracy</th><th>acc@5</th><th>mean km</th><th>median km</th>"
        "<th>ECE</th><th>acc @ 50% coverage</th></tr>"
    )
    for r in sorted(rows, key=lambda r: -(r["accuracy"]["mean"] or 0)):
        mark = ' class="main"' if r["model"] == model and wins(verdict) else ""  # green only for a winner
        out.append(
            f"<tr{mark}><td>{escape(r['model'])}</td><td>{_fmt(r['accuracy'], 3)}</td><td>{_fmt(r['acc@5'], 3)}</td>"
            f"<td>{_fmt(r['mean_km'], 2)}</td><td>{_fmt(r['median_km'], 2)}</td><td>{_fmt(r['ece'], 3, False)}</td>"
            f"<td>{_fmt(r['acc@cov50'], 3, False)}</td></tr>"
        )
    out.append("</table>")
    if paired:
        reference = escape(str(paired["reference_model"]))
        out.append(
            f"<p>Paired differences to <b>{reference}</b> (row minus {reference}; 95 % intervals: t over folds, "
            "bootstrap over test users). An interval that holds 0 means the data cannot tell the two apart.</p>"
        )
        out.append(
            "<table><tr><th>model</th><th>Δ accuracy</th><th>t interval</th><th>bootstrap</th>"
            "<th>Δ mean km</th><th>bootstrap</th></tr>"
        )
        for e in paired["rows"]:
            d_acc = e.get("d_acc") if e.get("d_acc") is not None else e.get("d_acc_pooled")
            d_km = e.get("d_km") if e.get("d_km") is not None else e.get("d_km_pooled")
            out.append(
                f"<tr><td>{escape(str(e['model']))}</td><td>{_signed(d_acc, 3)}</td>"
                f"<td>{_interval(e.get('d_acc_t'), 3)}</td><td>{_interval(e.get('d_acc_boot'), 3)}</td>"
                f"<td>{_signed(d_km, 2)}</td><td>{_interval(e.get('d_km_boot'), 2)}</td></tr>"
            )
        out.append("</table>")
    return out


def _signed(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


LABEL_FONT_PX = 11
LABEL_CHAR_PX = 6.3  # the width of an average character at LABEL_FONT_PX in a sans-serif font
MAX_LABELS = 60


def _map_section(
    pois: pd.DataFrame, outcomes: pd.DataFrame, posts: pd.DataFrame, basemap: Basemap | None = None
) -> list[str]:
    """The POIs over the training posts' density, with a scale bar and labels that do not overlap.

    The density picture (:mod:`postloc.training.density`) traces the city's streets and shores from
    the posts' own coordinates: a map that needs no tile server. Longitude is scaled by cos(latitude),
    so the picture, the circles and the scale bar share one equirectangular projection."""
    truth = posts.set_index(posts["id"].astype(str))["poi"].astype(str)
    scored = outcomes.assign(poi=truth.reindex(outcomes.index).to_numpy())
    accuracy = scored.groupby("poi")["correct"].mean()
    tested = scored.groupby("poi").size()
    table = pois.dropna(subset=["lat", "lon"]).copy()
    if table.empty:
        return ["<h2>Map</h2><p>The POIs have no coordinates.</p>"]
    table["accuracy"] = table["poi"].map(accuracy)
    table["tested"] = table["poi"].map(tested).fillna(0).astype(int)
    train = posts[posts["split"] == "train"] if "split" in posts else posts
    post_lat, post_lon = _coordinates(train)
    bounds = extent(
        np.concatenate([post_lat, table["lat"].to_numpy(float)]),
        np.concatenate([post_lon, table["lon"].to_numpy(float)]),
    )
    assert bounds is not None  # the POIs have coordinates
    view = _View(bounds)
    shapes = [_basemap_layer(basemap, view)] if basemap is not None else []
    if np.isfinite(post_lat).any():
        users = train["user"].tolist() if "user" in train else None
        grid = density_grid(post_lat, post_lon, users, bounds)
        png = base64.b64encode(density_png(grid)).decode("ascii")
        shapes.append(
            f'<image id="density" x="{view.pad}" y="{view.pad}" width="{view.inner_w:.1f}" height="{view.inner_h:.1f}" '
            f'preserveAspectRatio="none" href="data:image/png;base64,{png}"/>'
        )
        density_note = (
            f"Shaded: where the {grid['posts']:,} training posts were made (darker: more posts; cells with posts of "
            "one person only are left out), drawn from the posts' own coordinates."
        )
    else:
        density_note = "The posts carry no coordinates: no density of posts is drawn."
    most = max(int(table["posts"].max()), 1)
    order = np.argsort(-table["posts"].to_numpy(), kind="stable")  # the busiest POIs are drawn and labelled first
    circles, anchors, sizes = [], [], []
    for i in order:
        r = table.iloc[i]
        x, y = view.point(float(r["lat"]), float(r["lon"]))
        radius = 3 + 10 * math.sqrt(int(r["posts"]) / most)
        acc, n_tested = float(r["accuracy"]), int(r["tested"])
        scored_here = not math.isnan(acc)
        colour = f"hsl({120 * acc:.0f}, 70%, 45%)" if scored_here else "#999"
        tip = f"{r['label']}: {int(r['posts'])} posts, " + (
            f"{acc:.0%} of {n_tested} test posts placed right" if scored_here else "not tested"
        )
        circles.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" fill-opacity="0.6" '
            f'stroke="#222" stroke-width="0.6" data-poi="{escape(str(r["poi"]))}"><title>{escape(tip)}</title></circle>'
        )
        text = str(r["label"])[:40]
        anchors.append((x, y, radius))
        sizes.append((LABEL_CHAR_PX * len(text) + 2, float(LABEL_FONT_PX + 3), text))
    shapes += circles
    boxes = place_labels([(x, y, r) for x, y, r in anchors][:MAX_LABELS], [(w, h) for w, h, _ in sizes][:MAX_LABELS],
                         (view.width, view.height))  # fmt: skip
    placed = 0
    for box, (_, _, text) in zip(boxes, sizes, strict=False):
        if box is None:
            continue
        placed += 1
        bx, by, bw, bh = box
        shapes.append(
            f'<text class="label" x="{bx + 1:.1f}" y="{by + bh - 3:.1f}" font-size="{LABEL_FONT_PX}" '
            f'data-box="{bx:.1f} {by:.1f} {bw:.1f} {bh:.1f}">{escape(text)}</text>'
        )
    shapes.append(view.scale_bar())
    left_out = len(table) - placed
    return [
        "<h2>Map of the POIs</h2>",
        "<p>Circle area: posts; colour: share of the POI's test posts placed at the right POI "
        "(red 0 %, green 100 %; grey: not tested). Hover a circle for its numbers. "
        f"{escape(density_note)} "
        + (f"{left_out} label(s) left out where they would overlap another (hover their circles). " if left_out else "")
        + ("Grey: the base map given with --basemap (clipped to this view and thinned). " if basemap else "")
        + "No tiles: the page fetches nothing.</p>",
        f'<svg id="map" viewBox="0 0 {view.width} {view.height}" width="{view.width}" height="{view.height}" '
        f'role="img" aria-label="map of the POIs">{"".join(shapes)}</svg>',
    ]


#: positions of the base map drawn in the report's SVG (some 10 bytes each in the page)
MAX_REPORT_BASEMAP_POINTS = 20_000


def _basemap_layer(basemap: Basemap, view: _View) -> str:
    """The user's streets (thin grey lines) and areas (light grey fill) in the view, clipped to the map's frame.

    Only geometry is drawn: the reader dropped the features' properties, so no text of the file reaches the page."""
    bounds = (view.south, view.west, view.north, view.east)
    shown = simplify(clip(basemap, bounds), MAX_REPORT_BASEMAP_POINTS)
    areas = "".join(_svg_path(ring, view, close=True) for rings in shown.areas for ring in rings)
    lines = "".join(_svg_path(line, view, close=False) for line in shown.lines)
    frame = f'<rect x="{view.pad}" y="{view.pad}" width="{view.inner_w:.1f}" height="{view.inner_h:.1f}"/>'
    return (
        f'<defs><clipPath id="basemap-clip">{frame}</clipPath></defs><g id="basemap" clip-path="url(#basemap-clip)" '
        f'data-points="{shown.points}">'
        + (
            f'<path d="{areas}" fill="#e4e7ea" fill-rule="evenodd" stroke="#c9ced3" stroke-width="0.5"/>'
            if areas
            else ""
        )
        + (f'<path d="{lines}" fill="none" stroke="#b5bcc4" stroke-width="0.7"/>' if lines else "")
        + "</g>"
    )


def _svg_path(ring: np.ndarray, view: _View, close: bool) -> str:
    """One subpath in pixels, to 0.1 px, without repeated points (a street's detail below a pixel is not drawn)."""
    x = view.pad + (ring[:, 0] - view.west) * view.shrink * view.px_per_deg
    y = view.pad + (view.north - ring[:, 1]) * view.px_per_deg
    xy = np.round(np.column_stack([x, y]), 1)
    keep = np.ones(len(xy), bool)
    keep[1:] = (np.diff(xy, axis=0) != 0).any(axis=1)
    xy = xy[keep]
    if len(xy) < 2:
        return ""
    points = " ".join(f"{a:g} {b:g}" for a, b in xy.tolist())
    return f"M{points}{'Z' if close else ''}"


def _coordinates(posts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The posts' (lat, lon) as float arrays, NaN where a post has none; empty without the columns."""
    if not {"lat", "lon"} <= set(posts.columns):
        return np.array([]), np.array([])
    return tuple(pd.to_numeric(posts[c], errors="coerce").to_numpy(float) for c in ("lat", "lon"))  # type: ignore[return-value]


class _View:
    """The report map's projection: (lat, lon) to SVG pixels over ``bounds``, cells square on the ground."""

    width, height, pad = 860, 560, 20

    def __init__(self, bounds: tuple[float, float, float, float]) -> None:
        self.south, self.west, self.north, self.east = bounds
        self.shrink = max(math.cos(math.radians((self.south + self.north) / 2)), 0.05)
        ground_w = (self.east - self.west) * self.shrink
        ground_h = self.north - self.south
        self.px_per_deg = min((self.width - 2 * self.pad) / ground_w, (self.height - 2 * self.pad) / ground_h)
        self.inner_w, self.inner_h = ground_w * self.px_per_deg, ground_h * self.px_per_deg
        self.width = int(math.ceil(self.inner_w + 2 * self.pad))
        self.height = int(math.ceil(self.inner_h + 2 * self.pad))

    def point(self, lat: float, lon: float) -> tuple[float, float]:
        x = self.pad + (lon - self.west) * self.shrink * self.px_per_deg
        return x, self.pad + (self.north - lat) * self.px_per_deg

    def scale_bar(self) -> str:
        """A bar of a round length in km (1, 2 or 5 times a power of ten), about a fifth of the map wide."""
        px_per_km = self.px_per_deg / KM_PER_DEGREE
        target = self.width / 5 / px_per_km
        power = 10 ** math.floor(math.log10(target))
        km = max(step * power for step in (1, 2, 5) if step * power <= target)
        length = km * px_per_km
        x0, y0 = self.pad, self.height - self.pad / 2 - 2
        text = f"{km:g} km"
        return (
            f'<g id="scale-bar" data-km="{km:g}" data-px="{length:.1f}">'
            f'<rect x="{x0 - 4}" y="{y0 - 16}" width="{length + 8:.1f}" height="20" fill="#fff" fill-opacity="0.8"/>'
            f'<path d="M{x0} {y0 - 5}V{y0}H{x0 + length:.1f}V{y0 - 5}" fill="none" stroke="#222" stroke-width="1.5"/>'
            f'<text x="{x0 + 3}" y="{y0 - 5}" font-size="11">{text}</text></g>'
        )


def place_labels(
    anchors: list[tuple[float, float, float]], sizes: list[tuple[float, float]], area: tuple[float, float]
) -> list[tuple[float, float, float, float] | None]:
    """Greedy label placement: one box (x, y, w, h) per anchor (x, y, circle radius), or ``None``.

    In the order given (put the most important first), a label goes right of its circle, else left,
    above or below, at the first place where its box stays in ``area`` (width, height) and overlaps
    no box placed before; a label with no free place is left out rather than drawn over another."""
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float, float, float] | None] = []
    for (x, y, r), (w, h) in zip(anchors, sizes, strict=True):
        tries = ((x + r + 2, y - h / 2), (x - r - 2 - w, y - h / 2), (x - w / 2, y - r - 2 - h), (x - w / 2, y + r + 2))
        spot = None
        for bx, by in tries:
            box = (bx, by, w, h)
            inside = bx >= 0 and by >= 0 and bx + w <= area[0] and by + h <= area[1]
            if inside and not any(_overlap(box, other) for other in placed):
                spot = box
                break
        if spot is not None:
            placed.append(spot)
        out.append(spot)
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _confusion_section(pois: pd.DataFrame, outcomes: pd.DataFrame, posts: pd.DataFrame) -> list[str]:
    """Row-normalised confusions; columns headed by the rows' numbers (names in full on the rows and in
    each header's title), and the table in a wrapper that scrolls sideways instead of being cut."""
    truth = posts.set_index(posts["id"].astype(str))["poi"].astype(str).reindex(outcomes.index)
    busiest = truth.value_counts().head(MAX_POIS_IN_CONFUSION).index.tolist()
    if len(busiest) < 2:
        return []
    labels = pois.set_index("poi")["label"]
    predicted = outcomes["predicted"].astype(str).where(outcomes["predicted"].astype(str).isin(busiest), "other")
    counts = pd.crosstab(truth, predicted).reindex(index=busiest, columns=busiest + ["other"], fill_value=0)
    out = [
        "<h2>Confusions between the busiest POIs</h2>",
        f"<p>Rows: the true POI of the test posts; columns: where the model placed them (share of the row), "
        f"numbered as the rows. The {len(busiest)} POIs with most test posts; 'other': any other POI.</p>",
        '<div class="scroll"><table class="confusion"><tr><th>true \\ predicted</th>'
        + "".join(f'<th title="{escape(str(labels.get(p, p)))}">{n}</th>' for n, p in enumerate(busiest, 1))
        + "<th>other</th></tr>",
    ]
    for n, poi in enumerate(busiest, 1):
        row = counts.loc[poi]
        total = max(int(row.sum()), 1)
        cells = []
        for column in busiest + ["other"]:
            share = row[column] / total
            style = f"background: rgba(40, 110, 200, {share:.2f}); color: {'#fff' if share > 0.5 else '#000'}"
            cells.append(f'<td style="{style}">{share:.0%}</td>' if row[column] else "<td></td>")
        out.append(f'<tr><th class="name">{n}. {escape(str(labels.get(poi, poi)))}</th>{"".join(cells)}</tr>')
    out.append("</table></div>")
    return out


def _per_poi_section(pois: pd.DataFrame, outcomes: pd.DataFrame, posts: pd.DataFrame) -> list[str]:
    """Precision, recall and support of every POI (:func:`postloc.metrics.per_poi_table`), busiest first:
    the POIs a good overall score hides are the ones with recall near 0."""
    classes = pois["poi"].astype(str).tolist()
    index = class_index(classes)
    truth = posts.set_index(posts["id"].astype(str))["poi"].astype(str).reindex(outcomes.index)
    y_true = truth.map(index).fillna(-1).to_numpy(int)
    y_pred = outcomes["predicted"].astype(str).map(index).fillna(-1).to_numpy(int)
    km = (
        pd.to_numeric(outcomes["km"], errors="coerce").to_numpy(float)
        if "km" in outcomes
        else np.full(len(y_true), np.nan)
    )
    named = pois.assign(name=pois["label"]).set_index("poi")
    table = per_poi_table(y_true, y_pred, km, classes, named)
    table = table.sort_values(["support", "poi"], ascending=[False, True], kind="stable")
    out = [
        "<h2>Per POI</h2>",
        "<p>The default model's test posts of each POI, pooled over the folds. Precision: of the posts placed at the "
        "POI, the share that was made there; recall: of the posts made there, the share placed there; support: "
        "the POI's test posts.</p>",
        '<div class="scroll"><table id="per-poi"><tr><th>POI</th><th>support</th><th>predicted</th><th>precision</th>'
        "<th>recall</th><th>F1</th><th>mean km</th></tr>",
    ]
    for r in table.itertuples(index=False):
        mean_km = float(r.mean_km)  # type: ignore[arg-type]
        km_text = "–" if math.isnan(mean_km) else f"{mean_km:.2f}"
        out.append(
            f'<tr><td class="name">{escape(str(r.name))}</td><td>{r.support}</td><td>{r.predicted}</td>'
            f"<td>{r.precision:.3f}</td><td>{r.recall:.3f}</td><td>{r.f1:.3f}</td><td>{km_text}</td></tr>"
        )
    out.append("</table></div>")
    return out


def _served_run_section(manifest: dict[str, Any]) -> list[str]:
    """The served model's own score: trained on the train split, evaluated on the user-disjoint test split."""
    train = manifest.get("steps", {}).get("train")
    accuracy = train.get("accuracy") if isinstance(train, dict) else None
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):
        return [
            '<h2>The served model</h2><p id="served-score">The served run (<code>run/</code>) has not been evaluated '
            "on its test split: no score of its own to show.</p>"
        ]
    parts = [f"accuracy {accuracy:.3f}"]
    for key, name in (("mean_km", "mean km"), ("median_km", "median km"), ("ece", "ECE")):
        value = train.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            parts.append(f"{name} {value:.2f}" if key != "ece" else f"{name} {value:.3f}")
    return [
        "<h2>The served model</h2>",
        f'<p id="served-score">The run that <code>postloc serve</code> loads (<code>run/</code>, trained on the '
        f"train split) scores on the user-disjoint test split: {', '.join(parts)}. The scores above are "
        "cross-validated; this is one split, so it moves more.</p>",
    ]


def _examples_section(pois: pd.DataFrame, outcomes: pd.DataFrame, posts: pd.DataFrame) -> list[str]:
    labels = pois.set_index("poi")["label"]
    table = posts.set_index(posts["id"].astype(str)).reindex(outcomes.index)
    frame = outcomes.assign(text=table.get("text"), hashtags=table.get("hashtags"), poi=table["poi"].astype(str))
    out = ["<h2>Examples</h2>"]
    for title, subset in (
        ("The most confident right answers", frame[frame["correct"]]),
        ("The most confident wrong answers", frame[~frame["correct"]]),
    ):
        best = subset.sort_values("confidence", ascending=False, kind="stable").head(EXAMPLES)
        out.append(f"<h3>{title}</h3>")
        if best.empty:
            out.append("<p>None.</p>")
            continue
        out.append(
            '<div class="scroll"><table><tr><th>post</th><th>text and hashtags</th><th>true POI</th><th>predicted</th>'
            "<th>confidence</th><th>km off</th></tr>"
        )
        for post_id, r in best.iterrows():
            text = str(r["text"]) if isinstance(r["text"], str) else ""
            tags = list(r["hashtags"]) if r["hashtags"] is not None and not isinstance(r["hashtags"], float) else []
            shown = (text[:TEXT_CHARS] + ("…" if len(text) > TEXT_CHARS else "")).strip()
            tag_text = " ".join(f"#{t}" for t in tags[:12])
            km = "–" if pd.isna(r["km"]) else f"{r['km']:.2f}"
            out.append(
                f"<tr><td>{escape(str(post_id)[:24])}</td><td>{escape(shown)} <i>{escape(tag_text)}</i></td>"
                f"<td>{escape(str(labels.get(r['poi'], r['poi'])))}</td>"
                f"<td>{escape(str(labels.get(r['predicted'], r['predicted'])))}</td>"
                f"<td>{r['confidence']:.2f}</td><td>{km}</td></tr>"
            )
        out.append("</table></div>")
    return out


def _choices_section(manifest: dict[str, Any]) -> list[str]:
    out = [
        "<h2>Settings chosen from the data</h2>",
        "<p>Stored in <code>quickstart.json</code>; a re-run on the same input uses them again.</p>",
        "<table><tr><th>setting</th><th>value</th><th>why</th></tr>",
    ]
    for c in manifest.get("choices", []):
        out.append(
            f"<tr><td>{escape(c['name'])}</td><td>{escape(str(c['value']))}</td><td>{escape(c['why'])}</td></tr>"
        )
    out.append("</table>")
    profile = manifest.get("profile", {})
    if profile:
        items = ", ".join(f"{escape(k.replace('_', ' '))}: {v:,}" for k, v in profile.items() if isinstance(v, int))
        out.append(f"<p>The input as read: {items}.</p>")
    return out


def _data_section(prepared: Path) -> list[str]:
    summary = read_summary(prepared)
    out = [
        "<h2>The prepared data</h2>",
        "<table><tr><th>split</th><th>posts</th><th>users</th><th>POIs</th><th>with text</th>"
        "<th>with hashtags</th><th>with photos</th></tr>",
    ]
    for split in ("all", "train", "val", "test"):
        s = summary.get(split) or {}
        out.append(
            f"<tr><td>{split}</td><td>{s.get('posts', 0):,}</td><td>{s.get('users', 0):,}</td>"
            f"<td>{s.get('pois', 0)}</td>"
            f"<td>{s.get('posts_with_text', 0):,}</td><td>{s.get('posts_with_hashtags', 0):,}</td>"
            f"<td>{s.get('posts_with_images', 0):,}</td></tr>"
        )
    out.append("</table>")
    funnel = summary.get("funnel") or {}
    if funnel:
        dropped = ", ".join(
            f"{escape(k.removeprefix('dropped_').replace('_', ' '))}: {v:,}"
            for k, v in funnel.items()
            if k.startswith("dropped_") and v
        )
        out.append(
            f"<p>Read {funnel.get('read', 0):,} posts, kept {funnel.get('kept', 0):,}. "
            f"Dropped: {dropped or 'none'}.</p>"
        )
    return out


def _commands_section(out: Path, names: dict[str, Any] | None, verdict: dict[str, Any] | None = None) -> list[str]:
    pois = f" --pois {out / names['file']}" if names and names.get("file") else ""
    run, cv = out / quickstart_folder.RUN, out / quickstart_folder.CV
    lines = ["<h2>Next</h2>"]
    if verdict and not verdict.get("beats_majority"):
        lines.append(
            '<p class="warn">The model does not place posts better than always answering '
            f"'{escape(verdict['majority']['name'])}' (see the verdict above): what it serves is no better.</p>"
        )
    lines += ["<ul>", f"<li>Serve the model: <code>postloc serve {escape(str(run) + pois)}</code>"]
    if names and pois:
        lines.append(
            f" ({names['pois']} POI(s) had too few posts to train on; <code>{escape(str(names['file']))}</code> "
            "lets the server answer them when a post names them, docs/cold-start.md)"
        )
    return lines + [
        "</li>",
        "<li>Predict a file of posts: "
        f"<code>postloc predict {escape(str(run))} POSTS.jsonl --out PRED.jsonl{escape(pois)}</code></li>",
        f"<li>The full scores: <code>{escape(str(report_path(cv)))}</code>; the test-split evaluation of the "
        f"served model: <code>{escape(str(RunFolder(run).eval_file('test', '.md')))}</code></li>",
        "</ul>",
    ]


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.6em 0 1.2em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }}
tr.main td {{ font-weight: bold; background: #eef6ee; }}
table.confusion td {{ text-align: right; min-width: 2.5em; }}
table.confusion th {{ white-space: nowrap; }}
table.confusion th.name, td.name {{ white-space: normal; min-width: 12em; max-width: 28em; overflow-wrap: anywhere; }}
div.scroll {{ overflow-x: auto; max-width: 100%; }}
div.scroll table {{ margin-top: 0; }}
.warn {{ background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em; font-weight: bold; }}
p.verdict {{ font-size: 1.1em; font-weight: bold; }}
svg#map {{ border: 1px solid #ccc; background: #fbfcfd; max-width: 100%; height: auto; }}
svg#map text.label {{ paint-order: stroke; stroke: #fff; stroke-width: 3px; fill: #111; }}
code {{ background: #f2f2f2; padding: 1px 3px; }}
</style></head>
<body>
{body}
<p><small>Written by postloc quickstart. Self-contained: this page loads nothing from the network.</small></p>
</body></html>
"""
