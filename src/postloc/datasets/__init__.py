"""Embedded data sets.

``dresden``: 17,879 public Flickr posts taken in Dresden (CC-BY metadata; attribution in
``datasets/dresden/ATTRIBUTION.md``): coordinates, anonymised users, tags; no captions, no
images. It has no POI labels, so ``prepare`` derives POIs from the coordinates.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from postloc.data.prepare import ReadOptions
from postloc.data.readers import SkipReport, read_posts
from postloc.data.schema import Post

#: How to read each embedded file: its path inside the package and the column mapping.
_DATASETS = {
    "dresden": (
        "dresden/flickr_dresden_cc-by.csv.gz",
        ReadOptions(
            format="csv",
            list_sep=";",
            columns={
                "id": "guid",
                "lon": "lng",
                "user": "user_guid",
                "text": "post_body",
                "created": "post_create_date",
            },
        ),
    ),
}


def names() -> list[str]:
    return sorted(_DATASETS)


def path(name: str) -> Path:
    """Where the embedded file lies (inside the installed package)."""
    relative, _ = _spec(name)
    return Path(str(resources.files("postloc.datasets").joinpath(relative)))


def read_options(name: str) -> ReadOptions:
    return _spec(name)[1]


def load(name: str, report: SkipReport | None = None) -> Iterator[Post]:
    """Stream the posts of an embedded data set."""
    options = read_options(name)
    return read_posts(
        path(name), format=options.format, columns=options.columns, list_sep=options.list_sep, report=report
    )


def attribution(name: str) -> str:
    _spec(name)
    return Path(str(resources.files("postloc.datasets").joinpath(f"{name}/ATTRIBUTION.md"))).read_text()


def _spec(name: str):
    try:
        return _DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown embedded data set {name!r}; available: {', '.join(names())}") from None
