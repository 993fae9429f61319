"""One writer per output folder: a command holds an exclusive lock on its output for its whole run.

Two ``postloc train --out run`` started at once both passed the "already holds a run" check and
then wrote over each other (one crashed, the other left a config of one seed beside weights of
the other). The lock is an ``flock`` on a small file *beside* the folder (``.NAME.lock``), because
the folder itself may be replaced by a rename while the lock is held; the kernel drops it when
the process ends, however it ends, so a killed command never leaves a stale lock behind. The file
stays (removing it would let two processes lock two different files of the same name).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from postloc.errors import OutputPathError
from postloc.io.atomic import current_umask


def lock_path(folder: str | Path) -> Path:
    folder = Path(os.path.realpath(folder))
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created or not yet) for the block; refuse at once if another holds it."""
    path = lock_path(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~current_umask())
    except OSError as error:
        raise OutputPathError(f"{folder}: cannot create its lock file {path} ({error.strerror or error})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputPathError(f"{folder}: another postloc command is writing it right now; wait for it to "
                                  f"finish or choose another output") from None
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
