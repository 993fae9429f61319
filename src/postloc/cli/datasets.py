"""``postloc datasets``: list the embedded data sets (:mod:`postloc.datasets`) and their attribution."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``datasets``."""
    p = sub.add_parser("datasets", help="list the embedded data sets and their attribution")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc import datasets

    for name in datasets.names():
        print(f"{name}: {datasets.path(name)}\n")
        print(datasets.attribution(name))
    return 0
