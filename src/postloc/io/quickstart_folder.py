"""The quickstart folder (``postloc quickstart --out OUT``): the one module that names its files and folders.

Layout::

    OUT/quickstart.json   the manifest and ownership marker (``"postloc_quickstart"``): the input's
                          fingerprint, every choice with its reason, the steps finished, the scores
                          and the verdict; rewritten after every step
    OUT/prepared/         a prepared folder (:mod:`postloc.data.prepared`)
    OUT/cv/               an experiment folder with the cross-validated scores (:mod:`postloc.experiments.folder`)
    OUT/run/              the trained run that ``serve`` loads (:mod:`postloc.io.run_folder`)
    OUT/report.html       the self-contained report (:mod:`postloc.quickstart.report`)
    OUT/places-seen.csv   every named, labelled POI of the input (written by the scan)
    OUT/places.csv        those of them the model was not trained on: what ``serve --pois`` matches by name

Why it lives in ``io`` (layer 1) and not in ``quickstart`` (layer 9): the server (layer 8) reads a
quickstart's manifest beside the run it serves (``GET /v1/about``), and a module may only import
lower layers; the names are plain data, so the lowest layer that writes folders holds them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CV",
    "MANIFEST",
    "MARKER_KEY",
    "NAME_ONLY_PLACES",
    "PREPARED",
    "REPORT_HTML",
    "RUN",
    "SEEN_PLACES",
    "quickstart_of_run",
]

#: the manifest, also the ownership marker (``postloc.io.ownership.QUICKSTART``)
MANIFEST = "quickstart.json"
#: the manifest's key that says quickstart wrote the folder; its value is the manifest's version
MARKER_KEY = "postloc_quickstart"
PREPARED = "prepared"
CV = "cv"
RUN = "run"
REPORT_HTML = "report.html"
#: every named, labelled POI of the input, and those of them the model was not trained on
#: (what ``serve --pois`` matches by name, docs/cold-start.md)
SEEN_PLACES = "places-seen.csv"
NAME_ONLY_PLACES = "places.csv"


def quickstart_of_run(run: Path) -> Path | None:
    """The quickstart folder whose ``run/`` is ``run``, or None when ``run`` is not named like one.

    Only the name is checked; whether the parent holds a quickstart manifest is the caller's question
    (``postloc.io.ownership.read_marker(folder, MANIFEST)``).
    """
    run = Path(run)
    return run.parent if run.name == RUN else None
