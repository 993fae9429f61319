"""The ``postloc`` command line: a thin layer over the Python API.

One module per subcommand (``quickstart``, ``prepare``, ``datasets``, ``images``, ``synthetic``, ``train``,
``evaluate``, ``crossval``, ``open-set``, ``predict``, ``serve``, ``explain``, ``experiments``),
each with ``add_parser(sub)`` registering it and ``run(args) -> int`` parsing its options into the
API's config dataclasses and calling one function. This module only builds the parser and runs
the chosen subcommand; errors the user can fix (:class:`PostlocError`) are printed as one line and exit with 2.

Nothing in the library imports this package (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from postloc import __version__
from postloc.errors import PostlocError


def build_parser() -> argparse.ArgumentParser:
    """The ``postloc`` parser; the subcommands appear in ``--help`` in the order registered here."""
    from postloc.cli import (
        crossval,
        datasets,
        evaluate,
        experiments,
        explain,
        images,
        open_set,
        predict,
        prepare,
        quickstart,
        serve,
        synthetic,
        train,
    )

    parser = argparse.ArgumentParser(prog="postloc", description="Infer where a social-media post was made.")
    parser.add_argument("--version", action="version", version=f"postloc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        quickstart,
        prepare,
        datasets,
        images,
        synthetic,
        train,
        evaluate,
        crossval,
        open_set,
        predict,
        serve,
        explain,
        experiments,
    ):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except PostlocError as error:
        print(f"postloc {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"postloc {args.command}: interrupted; outputs were left as they were", file=sys.stderr)
        return 130
    except OSError as error:  # a full disk met outside the atomic writers: still one clear line, no traceback
        from postloc.io.atomic import is_disk_full

        if not is_disk_full(error):
            raise
        where = getattr(args, "out", None) or getattr(args, "prepared", None) or error.filename or "the output"
        print(
            f"postloc {args.command}: error: {where}: no space left on device; finished outputs were left as they were",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
