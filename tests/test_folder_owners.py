"""Each folder postloc writes has one owner module that names its files; nobody else spells them.

A prepared folder, a run folder, an experiment folder: each file name is a contract between the
code that writes the folder and the code that reads it. Written as a literal in ten modules, a
rename is ten edits and a forgotten one is a bug; asked of one owner, it is one. This test parses
every module of ``src/postloc`` with :mod:`ast` (nothing is imported) and fails when a string
constant that *is* one of a folder's file names (``"posts.parquet"``, or a path ending in it, such as
``"cv/results.json"``) appears outside the module that owns it. Names inside longer text
(docstrings, help texts, messages) are not constants equal to a name and are left alone.

To give another folder kind an owner, add one row to :data:`OWNERS`. A name may belong to
several rows (the synthetic posts folder holds a ``pois.csv`` too, the input of ``prepare``); it is
then allowed in each of their owners. Only names that cannot be mistaken for something else are
listed: a folder's ``predictions/`` or ``cells/`` share their spelling with dictionary keys, so the
owner defines them but the test does not police them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import postloc

PACKAGE = Path(postloc.__file__).resolve().parent

#: owner module -> the names of the files (and distinctive folders) of the folder kind it owns
OWNERS: dict[str, set[str]] = {
    # the prepared data folder: `postloc prepare` writes it, training, experiments and images read it
    "postloc.data.prepared": {
        "posts.parquet",
        "posts.jsonl",
        "pois.csv",
        "hashtags.csv",
        "summary.json",
        "summary.md",
        "manifest.json",
    },
    # what `postloc images` (and its Ray engine) add to a prepared folder
    "postloc.data.image_features": {
        "image_features.parquet",
        "image_status.csv",
        "image_summary.json",
        "image_cache",
        "image_vectors",
    },
    # what `postloc experiments` and `postloc crossval` write
    "postloc.experiments.folder": {
        "experiment.json",
        "results.json",
        "report.md",
        "folds.parquet",
        "fold.json",
        "variant.json",
        "table3.json",
    },
    # a training run: `postloc train` writes it, calibration, evaluate, prediction and the server read it
    "postloc.io.run_folder": {
        "config.json",
        "data.json",
        "calibration.json",
        "density.json",
        "run.json",
        "metrics.csv",
        "metrics.jsonl",
        "curves.png",
    },  # its "best" and "checkpoints" folders share their spelling with other things (torch hub's checkpoints)
    # `postloc quickstart --out`: its manifest, report and places tables (in io: the server, a lower
    # layer than quickstart, reads the manifest beside the run); its "prepared", "cv" and "run" folders
    # share their spelling with dictionary keys and study names
    "postloc.io.quickstart_folder": {"quickstart.json", "report.html", "places-seen.csv", "places.csv"},
    # `postloc synthetic`: raw posts with images, the input of `prepare` (not a prepared folder)
    "postloc.datasets.synthetic": {"posts.jsonl", "pois.csv", "manifest.json", "README.md"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def owners_of() -> dict[str, set[str]]:
    """file name -> the modules allowed to spell it."""
    allowed: dict[str, set[str]] = {}
    for owner, names in OWNERS.items():
        for name in names:
            allowed.setdefault(name, set()).add(owner)
    return allowed


def named_file(value: str, names: set[str]) -> str | None:
    """The folder file ``value`` spells: the name itself, or a relative path ending in it."""
    if value in names:
        return value
    tail = value.rsplit("/", 1)[-1]
    if tail in names and " " not in value:
        return tail
    return None


def stray_literals() -> list[str]:
    allowed = owners_of()
    names = set(allowed)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            name = named_file(node.value, names)
            if name is not None and module not in allowed[name]:
                owner = " or ".join(sorted(allowed[name]))
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r} (ask {owner})")
    return found


def test_owner_modules_exist():
    """A row naming a module that is gone would allow its names nowhere and explain nothing."""
    for owner in OWNERS:
        relative = Path(*owner.split("."))
        assert (PACKAGE.parent / relative).with_suffix(".py").exists() or (
            PACKAGE.parent / relative / "__init__.py"
        ).exists(), owner


def test_folder_file_names_only_in_their_owner():
    found = stray_literals()
    assert not found, "folder file names spelt outside their owner module:\n" + "\n".join(found)
