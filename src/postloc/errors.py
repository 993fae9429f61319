"""Exceptions that users see.

Every error about input data names the file, the line (1-based; for CSV the physical
line including the header) and the key, so that a user can open the file and fix it.
"""

from __future__ import annotations

from pathlib import Path


class PostlocError(Exception):
    """Base class of every error postloc raises on purpose."""


class BadInputError(PostlocError):
    """One record of an input file cannot be used.

    The message reads like a compiler error: ``posts.jsonl:1207: "lat" must be a number in
    [-90, 90], got "abc"``.
    """

    def __init__(self, source: str | Path, line: int | None, key: str | None, problem: str):
        self.source = str(source)
        self.line = line
        self.key = key
        self.problem = problem
        where = self.source if line is None else f"{self.source}:{line}"
        what = f'"{key}" {problem}' if key else problem
        super().__init__(f"{where}: {what}")


class EmptyDatasetError(PostlocError):
    """Nothing is left after reading or filtering; the message says which step removed what."""


class ModelFileError(PostlocError):
    """A saved model or checkpoint file is missing, damaged, edited or from an incompatible version.

    Loading refuses such a file instead of guessing; the message names the file at fault.
    """


class DiskFullError(PostlocError):
    """The disk filled up while writing; the message names the output, which was left as it was."""


class OutputPathError(PostlocError):
    """An output path postloc may not write: a directory, a block device, a parent it cannot write into.

    Raised before anything is written, so nothing of the user's is touched.
    """
