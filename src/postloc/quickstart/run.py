"""``quickstart``: from raw posts to a trained, scored, reported model in one call, resumable.

The steps are the ordinary commands in order, each writing its own folder under ``OUT``:

1. scan the input once and choose the small-data settings (:mod:`postloc.quickstart.choices`);
2. ``prepare`` into ``OUT/prepared`` with those settings (bad records skipped and counted);
3. ``images`` on it when the posts have photos (frozen-backbone features, the portrait filter);
4. score the default model against tfidf-logreg and the majority class on user-disjoint folds
   (``OUT/cv``, an experiment folder), or on the prepared test split for large data;
5. train the default model on the prepared split into ``OUT/run`` (what ``serve`` loads) and
   evaluate it on the test split;
6. write ``OUT/report.html`` (:mod:`postloc.quickstart.report`).

``OUT/quickstart.json`` is the manifest: the input's fingerprint, every choice with its reason,
the steps finished. A re-run on the same input reads the choices back and skips finished steps
(each step is itself resumable: the experiment keeps finished cells, the image cache its
vectors), so an interrupted quickstart continues where it stopped. A changed input starts over.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postloc.data.basemap import Basemap, read_basemap
from postloc.data.prepare import PrepareConfig, ReadOptions, prepare
from postloc.data.prepare.run import fingerprint
from postloc.data.prepared import SUMMARY_MD, read_pois
from postloc.data.readers import SkipReport, read_posts
from postloc.errors import BadInputError, PostlocError
from postloc.experiments import folder as experiment_folder
from postloc.io import quickstart_folder
from postloc.io.atomic import atomic_path
from postloc.io.escape import csv_guard_columns, csv_unguard_columns, term, term_lines, term_skip_summary
from postloc.io.inputs import check_regular_file
from postloc.io.locks import folder_lock
from postloc.io.ownership import QUICKSTART, RUN, check_output_folder, is_own_folder
from postloc.io.run_folder import RunFolder
from postloc.quickstart.choices import Choice, choose, prepare_config, profile_posts
from postloc.settings import setting, setting_error
from postloc.training.config import DEFAULT_MODEL

if TYPE_CHECKING:
    from postloc.models.stack.fits import Executor

MANIFEST = QUICKSTART.marker  # quickstart_folder.MANIFEST
VERSION = 1
#: what the default model is scored against in the report
BASELINES = ("tfidf-logreg", "majority")
STEPS = ("prepare", "images", "evaluate", "train", "names", "report")
#: every named, labelled POI of the input (written by the scan), and those of them the model was not
#: trained on: what ``serve --pois`` matches by name (docs/cold-start.md); named by the folder's owner
SEEN_PLACES = quickstart_folder.SEEN_PLACES
NAME_ONLY_PLACES = quickstart_folder.NAME_ONLY_PLACES


@dataclass(frozen=True)
class QuickstartConfig:
    """What the user may set; everything else is chosen from the data."""

    model: str = setting(DEFAULT_MODEL, help="model to train and serve (default %(default)s)")
    read: ReadOptions = field(default_factory=lambda: ReadOptions(skip_bad=True))
    pois_csv: str | None = None
    images: bool = True  # compute image features when the posts have photos (--no-images: False)
    #: None: chosen from the data (5, or 0 = the prepared split, for large data)
    folds: int | None = setting(None, help="user-disjoint folds for the scores (default: 5, or 0 for large data)")
    seed: int = setting(0, help="seed of splits, folds and training (default %(default)s)")
    #: torch threads; 1 is the fastest when other work shares the cores (docs/performance.md)
    threads: int = setting(1, help="torch threads (default %(default)s)")
    quick: bool = setting(False, help="tiny model settings, 2 epochs: for tests")
    progress: bool = True
    #: prepare settings given on the command line instead of chosen (choices.SETTABLE: ``min_hashtag_count`` ...)
    settings: dict[str, Any] = field(default_factory=dict)
    #: a GeoJSON of streets and shores drawn under the report's map (``--basemap``; not part of the request:
    #: it changes no step, and the report is redrawn on every run)
    basemap: str | None = None

    def __post_init__(self) -> None:
        if self.folds is not None and (self.folds == 1 or self.folds < 0):
            raise setting_error(self, "folds", "must be 0 (the prepared test split) or at least 2", self.folds)
        if self.threads < 1:
            raise setting_error(self, "threads", "must be at least 1", self.threads)


@dataclass
class QuickstartResult:
    out_dir: Path
    run_dir: Path
    report: Path
    choices: list[Choice]
    manifest: dict[str, Any]

    @property
    def scores(self) -> dict[str, Any]:
        return dict(self.manifest.get("scores", {}))

    @property
    def verdict(self) -> dict[str, Any] | None:
        """Whether the model beats always answering the majority POI and the reference by more than noise
        (:mod:`postloc.experiments.verdict`; its ``sentence`` for people), None when it could not be decided."""
        found = self.manifest.get("verdict")
        return dict(found) if isinstance(found, dict) else None

    @property
    def name_only_places(self) -> Path | None:
        """The table of POIs known by name only, for ``serve --pois`` (None when every named POI was trained on)."""
        found = (self.manifest.get("steps", {}).get("names") or {}).get("file")
        return self.out_dir / found if found else None


def quickstart(
    source: str | Path, out: str | Path, config: QuickstartConfig | None = None, *, executor: Executor | None = None
) -> QuickstartResult:
    """Run (or resume) every step on ``source`` into ``out``; see the module docstring.

    ``executor`` runs the scoring step's cells (None: one after another here; ``--engine ray``: a
    :class:`postloc.scale.ray_folds.RayFoldExecutor`), as :func:`postloc.experiments.run_experiments`
    does; the scores are the same, so it is not a setting a resumed run must keep.
    """
    from postloc.models.registry import get_model

    config = config or QuickstartConfig()
    source, out = Path(source), Path(out)
    get_model(config.model)  # an unknown name fails here, listing the registered ones, not after prepare
    check_regular_file(source, folders=True)  # never a device or FIFO (unbounded; read twice here)
    if config.pois_csv:
        check_regular_file(config.pois_csv)
    basemap = read_basemap(config.basemap) if config.basemap else None  # a bad file fails before any step
    check_output_folder(out, QUICKSTART, inputs=[source, config.pois_csv, config.basemap])
    with folder_lock(out):
        out.mkdir(parents=True, exist_ok=True)
        return _Quickstart(source, out, config, basemap, executor).run()


class _Quickstart:
    def __init__(
        self,
        source: Path,
        out: Path,
        config: QuickstartConfig,
        basemap: Basemap | None = None,
        executor: Executor | None = None,
    ):
        self.source, self.out, self.config, self.basemap = source, out, config, basemap
        self.executor = executor
        self.prepared, self.cv = out / quickstart_folder.PREPARED, out / quickstart_folder.CV
        self.run_dir = out / quickstart_folder.RUN
        self.manifest: dict[str, Any] = {}

    def echo(self, message: str, *, lines: bool = False) -> None:
        """A progress line on stderr; it quotes paths and data, so controls are escaped (a newline too,
        unless ``lines``: a text of several lines whose values were escaped one by one)."""
        if self.config.progress:
            print(f"quickstart: {term_lines(message) if lines else term(message)}", file=sys.stderr, flush=True)

    def run(self) -> QuickstartResult:
        started = time.perf_counter()
        choices = self._choices()
        self._step("prepare", lambda: self._prepare(choices))
        self._step("images", self._images)
        self._step("evaluate", lambda: self._evaluate(choices))
        self._step("train", self._train)
        self._step("names", self._names)
        from postloc.quickstart.report import write_report

        self.echo("writing report.html")
        self.manifest["scores"] = write_report(self.out, self.manifest, self.basemap)
        self.manifest["verdict"] = read_verdict(self.cv)
        self.manifest["steps"]["report"] = True
        self.manifest["seconds"] = round(self.manifest.get("seconds", 0) + time.perf_counter() - started, 1)
        self._save()
        return QuickstartResult(
            self.out, self.run_dir, self.out / quickstart_folder.REPORT_HTML, choices, self.manifest
        )

    # -- the manifest -------------------------------------------------------------------------
    def _choices(self) -> list[Choice]:
        """The stored choices when the input is unchanged, else a new scan (and every step redone)."""
        self.echo(f"fingerprinting {self.source}")
        sha = fingerprint(self.source)
        stored = _read_manifest(self.out)
        request = self._request()
        if stored and stored.get("input", {}).get("sha256") == sha and stored.get("request") == request:
            self.manifest = stored
            done = [s for s in STEPS if stored["steps"].get(s)]
            self.echo(f"resuming: input and settings unchanged; finished steps: {', '.join(done) or 'none'}")
            return [Choice(**c) for c in stored["choices"]]
        if stored:
            self.echo("the input or the settings changed since the last run: starting over")
            self._forget_outputs()
        self.echo("scanning the posts to choose the settings")
        report = SkipReport()
        read = self.config.read
        posts = read_posts(
            self.source,
            format=read.format,
            columns=read.columns,
            list_sep=read.list_sep,
            skip_bad=read.skip_bad,
            report=report,
        )
        profile = profile_posts(posts)
        if profile.posts == 0:
            raise PostlocError(
                f"{self.source}: no readable post"
                + (f" ({report.skipped:,} records were bad: {report.summary()})" if report.skipped else "")
            )
        choices = choose(profile, self.config.settings)
        if self.config.folds is not None:
            choices = [
                Choice("folds", self.config.folds, "given on the command line") if c.name == "folds" else c
                for c in choices
            ]
        self._write_places(SEEN_PLACES, profile.named_places())
        self.manifest = {
            quickstart_folder.MARKER_KEY: VERSION,
            "input": {"path": str(self.source), "sha256": sha},
            "request": request,
            "profile": profile.summary(),
            "skipped_in_scan": report.skipped,
            "choices": [asdict(c) for c in choices],
            "steps": {},
        }
        for choice in choices:
            self.echo(f"  {choice.name} = {choice.value}: {choice.why}")
        self._save()
        return choices

    def _request(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model,
            "read": {"format": c.read.format, "columns": dict(c.read.columns), "list_sep": c.read.list_sep},
            "pois_csv": str(c.pois_csv) if c.pois_csv else None,
            "pois_sha256": fingerprint(Path(c.pois_csv)) if c.pois_csv else None,  # an edited table starts over
            "images": c.images,
            "folds": c.folds,
            "seed": c.seed,
            "quick": c.quick,
            **({"settings": dict(c.settings)} if c.settings else {}),  # none given: as before this option
        }

    def _write_places(self, name: str, rows: list[dict[str, Any]]) -> None:
        write_places(self.out / name, rows)

    def _names(self) -> dict[str, Any]:
        """POIs known by name but not trained on (too few posts or users): the served model can still answer
        them when a post names them. Taken from the input's location names and the ``--pois`` table."""
        from postloc.data.gazetteer import read_gazetteer

        trained = set(read_pois(self.prepared)["poi"])
        rows = {r["poi"]: r for r in _read_places(self.out / SEEN_PLACES) if r["poi"] not in trained}
        table = None
        if self.config.pois_csv:
            try:  # prepare takes a table without names (centres only); that one names nothing
                table = read_gazetteer(self.config.pois_csv)
            except BadInputError as error:  # the help says poi,lat,lon[,name]: without a name, centres only
                no_name = "missing ['name']" in str(error)
                self.echo(
                    "--pois has no name column (poi,lat,lon[,name]): its POIs give centres only; none is answered "
                    "by name"
                    if no_name
                    else f"--pois is not used for names: {error}"
                )
        if table is not None:
            for place in table.places:
                if place.poi not in trained and place.poi not in rows and place.lat is not None:
                    rows[place.poi] = {
                        "poi": place.poi,
                        "lat": place.lat,
                        "lon": place.lon,
                        "name": place.name,
                        "posts": 0,
                    }
        if not rows:
            (self.out / NAME_ONLY_PLACES).unlink(missing_ok=True)
            return {"pois": 0, "file": None}
        self._write_places(NAME_ONLY_PLACES, sorted(rows.values(), key=lambda r: str(r["poi"])))
        self.echo(
            f"{len(rows)} POI(s) known by name only (too few posts to train on) are written to {NAME_ONLY_PLACES}: "
            "the served model answers them when a post names them"
        )
        return {"pois": len(rows), "file": NAME_ONLY_PLACES}

    def _forget_outputs(self) -> None:
        """Remove this folder's earlier step outputs, each only when it is postloc's own of its kind."""
        for folder, kind in ((self.cv, experiment_folder.REPORT), (self.run_dir, RUN)):
            if folder.is_dir() and not folder.is_symlink() and is_own_folder(folder, kind):
                shutil.rmtree(folder)
        # the prepared folder is replaced atomically by prepare itself

    def _save(self) -> None:
        with atomic_path(self.out / MANIFEST) as tmp:
            Path(tmp).write_text(json.dumps(self.manifest, indent=2, sort_keys=True, default=str) + "\n")

    def _step(self, name: str, action) -> None:
        if self.manifest["steps"].get(name):
            self.echo(f"{name}: done earlier, kept")
            return
        self.echo(f"{name} ...")
        started = time.perf_counter()
        outcome = action()
        self.manifest["steps"][name] = outcome if outcome is not None else True
        self.manifest.setdefault("step_seconds", {})[name] = round(time.perf_counter() - started, 1)
        self._save()

    # -- the steps ----------------------------------------------------------------------------
    def _prepare(self, choices: list[Choice]) -> dict[str, Any]:
        config: PrepareConfig = prepare_config(choices, seed=self.config.seed)
        result = prepare(
            self.source,
            self.prepared,
            config,
            self.config.read,
            pois_csv=self.config.pois_csv,
            progress=self.config.progress and sys.stderr.isatty(),  # bars in a terminal, not frames in a log
        )
        summary = result.summary
        pois = summary.get("all", {}).get("pois", 0)
        for note in result.notes:
            self.echo(f"note: {note}")
        if result.skip_report.skipped:
            self.echo(term_skip_summary(result.skip_report), lines=True)
        if pois < 2:
            raise PostlocError(
                f"the prepared data has {pois} POI(s); a model needs at least two. The posts give too few places "
                f"with enough posts and users: see {self.prepared / SUMMARY_MD}, and run `postloc prepare` with "
                "a lower --min-poi-posts / --min-poi-users"
            )
        for split in ("train", "test"):
            if not summary.get(split, {}).get("posts"):
                raise PostlocError(
                    f"the {split} split is empty (too few users to split by user); see {self.prepared / SUMMARY_MD}"
                )
        return {"posts": summary["all"]["posts"], "pois": pois, "users": summary["all"].get("users")}

    def _images(self) -> dict[str, Any]:
        if not self.config.images:
            return {"computed": False, "why": "--no-images"}
        if not self.manifest["profile"].get("with_images"):
            return {"computed": False, "why": "no post has a photo"}
        from postloc.vision.deps import available

        if not available("mediapipe"):
            why = "the image extra is not installed (pip install 'postloc[images]'); trained on text only"
            self.echo(why)
            return {"computed": False, "why": why}
        from postloc.vision.pipeline import ImagesConfig, extract_images

        result = extract_images(self.prepared, ImagesConfig(progress=self.config.progress and sys.stderr.isatty()))
        self.echo(result.text.strip().splitlines()[0] if result.text.strip() else "image features written")
        return {"computed": True, "summary": {k: result.summary.get(k) for k in ("images", "usable", "status")}}

    def _evaluate(self, choices: list[Choice]) -> dict[str, Any]:
        from postloc.experiments import ExperimentConfig, run_experiments
        from postloc.experiments.config import quick_config

        folds = int(next(c.value for c in choices if c.name == "folds"))
        common: dict[str, Any] = dict(
            studies=("cv",),
            folds=folds,
            fold_seed=self.config.seed,
            cv_model=self.config.model,
            cv_reference=BASELINES[0] if self.config.model != BASELINES[0] else "",
            cv_also=BASELINES[1:],
            per_post_outcomes=True,
            threads=self.config.threads,
            progress=self.config.progress,
        )
        config = quick_config(**common) if self.config.quick else ExperimentConfig(seeds=(self.config.seed,), **common)
        results = run_experiments(self.prepared, self.cv, config, executor=self.executor)
        missing = results.get("cells_missing", 0)
        if missing:
            raise PostlocError(
                f"{missing} evaluation cell(s) did not finish; see {experiment_folder.report_path(self.cv)}"
            )
        return {"folds": folds}

    def _train(self) -> dict[str, Any]:
        from postloc.training.api import evaluate, train
        from postloc.training.config import RunConfig, TrainerConfig

        info = RunFolder(self.run_dir).read_run_info()
        if not (info and info.get("status") == "complete"):
            if self.run_dir.exists() and is_own_folder(self.run_dir, RUN):
                shutil.rmtree(self.run_dir)  # an interrupted first training: start it again
            trainer = TrainerConfig(threads=self.config.threads, seed=self.config.seed)
            params: dict[str, Any] = {}
            if self.config.quick:
                from postloc.models.registry import get_model

                trainer = TrainerConfig(threads=self.config.threads, seed=self.config.seed, epochs=2)
                params = dict(get_model(self.config.model).quick_params)
            train(
                self.prepared,
                self.run_dir,
                RunConfig(self.config.model, params, trainer),
                progress=self.config.progress,
            )
        metrics = evaluate(self.run_dir, "test")
        return {k: metrics.get(k) for k in ("accuracy", "mean_km", "median_km", "ece")}


def write_places(path: Path, rows: list[dict[str, Any]]) -> None:
    """``places-seen.csv`` / ``places.csv``: POIs with centre, name and posts, for people (a spreadsheet)
    and for ``serve --pois``. Ids and names are guarded against formulas (:func:`postloc.io.escape.csv_guard`);
    :func:`_read_places` and the gazetteer take the guard off again."""
    import pandas as pd

    frame = csv_guard_columns(pd.DataFrame(rows, columns=["poi", "lat", "lon", "name", "posts"]))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _read_places(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    if not path.exists():
        return []
    frame = csv_unguard_columns(pd.read_csv(path, dtype={"poi": str, "name": str}, keep_default_na=False))
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def read_verdict(cv: Path) -> dict[str, Any] | None:
    """The verdict the scoring step wrote into ``cv/results.json`` (None: none, e.g. a folder of an older postloc)."""
    results = experiment_folder.read_results(cv)
    found = results.get("verdict") if results is not None else None
    return dict(found) if isinstance(found, dict) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    from postloc.io.ownership import read_marker

    return dict(found) if (found := read_marker(path.parent, path.name)) is not None else None


def _read_manifest(out: Path) -> dict[str, Any] | None:
    manifest = _read_json(out / MANIFEST)
    if (
        manifest is None
        or manifest.get(quickstart_folder.MARKER_KEY) != VERSION
        or not isinstance(manifest.get("steps"), dict)
    ):
        return None
    return manifest
