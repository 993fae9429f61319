"""Write-then-rename, so that an interrupted run never leaves a half-written output behind.

Temporary names start with ``.`` and carry the writer's process id, so that a later write of the
same output can tell a leftover of a killed process (removed) from a concurrent writer (left
alone). A full disk becomes a :class:`~postloc.errors.DiskFullError` naming the output, and the
output is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from postloc.errors import DiskFullError


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC/EDQUOT, also when a library (pyarrow, safetensors) reports it only in its message."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "no space left on device" in str(error).lower() or "disk quota exceeded" in str(error).lower()


@contextlib.contextmanager
def disk_full_as_error(target: str | Path) -> Iterator[None]:
    """Turn a full disk inside the block into a :class:`DiskFullError` about ``target``."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as error:  # only disk-full errors are translated, the rest re-raised
        if is_disk_full(error):
            raise DiskFullError(
                f"{target}: no space left on device while writing it; the earlier version (if any) was left as it was"
            ) from error
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    with disk_full_as_error(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with disk_full_as_error(target):
            yield tmp_path
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; it is renamed over ``path`` on success only."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, newline="" if encoding else None) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_folder_atomically(target: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder with ``fill(tmp)`` and move it to ``target``, replacing an older one.

    A new name is a single rename. An existing folder is first renamed aside and removed after
    the new one is in place, so at every moment either the old or the new complete folder exists
    under one of the two names; a run killed between the two renames leaves the old folder
    aside, and the next write (or :func:`recover_folder`) puts it back. If ``fill`` raises, the
    temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    remove_stale_temporaries(target)
    with disk_full_as_error(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        with disk_full_as_error(target):
            fill(tmp)
            for file in tmp.rglob("*"):
                if file.is_file():
                    _fsync(file)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def recover_folder(target: str | Path) -> bool:
    """Put back a folder that a killed :func:`write_folder_atomically` had renamed aside.

    Returns whether one was restored. Only done when ``target`` itself is missing and the process
    that renamed it is gone.
    """
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return False
    aside = [
        p
        for p in target.parent.glob(f".{glob.escape(target.name)}.old-*")
        if p.is_dir() and not _alive(_pid_of(p.name, target.name, "old"))
    ]
    if not aside:
        return False
    newest = max(aside, key=lambda p: p.stat().st_mtime)
    os.replace(newest, target)
    return True


def remove_stale_temporaries(target: str | Path) -> int:
    """Remove temporary files/folders of ``target`` left by killed processes; returns how many."""
    target = Path(target)
    if not target.parent.is_dir():
        return 0
    removed = 0
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        pid = None
        for kind in ("tmp", "old", "file"):
            pid = pid or _pid_of(path.name, target.name, kind)
        if pid is None or _alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


def _pid_of(name: str, target: str, kind: str) -> int | None:
    """The pid in ``.TARGET.tmp-PID-xxx`` (folder), ``.TARGET.old-PID`` or ``.TARGET.PID-xxx.tmp`` (file)."""
    patterns = {
        "tmp": rf"\.{re.escape(target)}\.tmp-(\d+)-[^/]*",
        "old": rf"\.{re.escape(target)}\.old-(\d+)",
        "file": rf"\.{re.escape(target)}\.(\d+)-[^/]*\.tmp",
    }
    match = re.fullmatch(patterns[kind], name)
    return int(match.group(1)) if match else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _fsync(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError:  # some file systems refuse fsync on read-only handles; the rename still orders writes
        pass
