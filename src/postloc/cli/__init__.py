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
import errno
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
        return _fail(args, str(error))
    except KeyboardInterrupt:
        print(f"postloc {args.command}: interrupted; outputs were left as they were", file=sys.stderr)
        return 130
    except OSError as error:  # met outside the typed errors: still one clear line, no traceback
        message = _os_error_message(args, error)
        if message is None:
            raise
        return _fail(args, message)


#: kinds of error that, even without a file name, are about where the command writes: no traceback helps
_PATH_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG})


def _fail(args: argparse.Namespace, message: str) -> int:
    """The one error line, exit 2. The message quotes paths and values from the input: every control and
    bidi character in it is escaped (:func:`postloc.io.escape.term`), a newline too, so it stays one line and
    cannot move the cursor, recolour or forge a line of the terminal."""
    from postloc.io.escape import term

    print(f"postloc {args.command}: error: {term(message)}", file=sys.stderr)
    return 2


def _os_error_message(args: argparse.Namespace, error: OSError) -> str | None:
    """The line for an :class:`OSError` no typed error caught, or None (a traceback) for one about no path.

    A full disk keeps its own wording; any error naming a file (a read-only file system, a name too long,
    permission denied, ...) says which path and the OS's reason; one of those kinds without a file name
    names the output the command was writing."""
    from postloc.io.atomic import is_disk_full

    where = getattr(args, "out", None) or getattr(args, "prepared", None)
    if is_disk_full(error):
        where = where or error.filename or "the output"
        return f"{where}: no space left on device; finished outputs were left as they were"
    reason = error.strerror or str(error)
    if error.filename is not None:
        path = str(error.filename) + (f" -> {error.filename2}" if error.filename2 is not None else "")
        return f"{path}: {reason}"
    if error.errno in _PATH_ERRNOS and where is not None:
        return f"{where}: {reason}"
    return None


if __name__ == "__main__":
    sys.exit(main())
