"""One writer per output folder: a command holds an exclusive lock on its output for its whole run.

Two ``postloc train --out run`` started at once both passed the "already holds a run" check and
then wrote over each other (one crashed, the other left a config of one seed beside weights of
the other). The lock is an ``flock`` on a small file named by a hash of the folder's real path,
in a per-user folder under the system's temporary directory: not inside the folder (it may be
replaced by a rename while the lock is held) and not beside it (nothing is left among the user's
files). The kernel drops the lock when the process ends, however it ends, so a killed command
never leaves a stale lock; the small file stays (removing it would let two processes lock two
different files of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from postloc.errors import OutputPathError


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder``: the same for every spelling of its path (links resolved)."""
    real = os.path.realpath(folder)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return Path(tempfile.gettempdir()) / f"postloc-locks-{os.getuid()}" / f"{digest}.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created or not yet) for the block; refuse at once if another holds it."""
    path = lock_path(folder)
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise OutputPathError(
            f"{folder}: cannot create its lock file {path} ({error.strerror or error}); set TMPDIR to a writable folder"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputPathError(
                f"{folder}: another postloc command is writing it right now; wait for it to "
                f"finish or choose another output"
            ) from None
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
