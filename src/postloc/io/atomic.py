"""Write-then-rename, so that an interrupted run never leaves a half-written output behind.

What an output path names decides how it is written (:func:`output_target`): a regular file,
or a name not yet taken, is replaced by a rename (a symbolic link is followed, and the file it
points to is replaced, the link kept); ``-``, a character device (``/dev/null``, a terminal) or
a FIFO is written straight to, because renaming over it would destroy it; a directory or a
block device is refused with an :class:`~postloc.errors.OutputPathError` before anything is
written. New files get the permissions the umask allows (``0o666 & ~umask``, like ``open``),
a replaced file keeps its own.

Temporary names start with ``.`` and carry the writer's process id, so that a later write of the
same output can tell a leftover of a killed process (removed) from a concurrent writer (left
alone). They are built from the output's name (``.NAME.PID-xxxxxxxx.tmp``,
``.NAME.tmp-PID-xxxxxxxx``, ``.NAME.old-PID``) while that fits in the file system's name limit,
and from a hash of it (``.postloc-HASH...``) for a longer name, so a legal 250-byte output name
can be written and its leftovers are still found (:func:`temporary_stem`). A full disk becomes a
:class:`~postloc.errors.DiskFullError` naming the output, and the output is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from postloc.errors import DiskFullError, OutputPathError

STDOUT = "-"
#: bytes a temporary name adds to its stem: ".", ".tmp-", a pid (7 digits at most), "-", 8 random
#: characters, with room to spare
_TEMPORARY_OVERHEAD = 32
_NAME_MAX = 255  # where the file system does not say (os.pathconf)


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


@dataclass(frozen=True)
class OutputTarget:
    """Where an output really goes: ``path`` to write, and whether it is a stream (no rename)."""

    path: Path
    stream: bool
    mode: int | None  # permissions to give the new file; None for streams


def output_target(path: str | Path) -> OutputTarget:
    """Classify an output path (see the module docstring); raises :class:`OutputPathError` when refused."""
    if str(path) == STDOUT:
        return OutputTarget(Path("/dev/stdout"), stream=True, mode=None)
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise OutputPathError(f"{path}: cannot be written ({error.strerror or error})") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise OutputPathError(f"{path}: is a directory; give a file name for the output")
        if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
            return OutputTarget(target, stream=True, mode=None)
        if not stat.S_ISREG(info.st_mode):
            raise OutputPathError(
                f"{path}: is not a regular file (a block device or socket); "
                f"postloc writes only files, pipes and character devices"
            )
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"{path}: cannot create its folder {parent} ({error.strerror or error})") from None
    if not parent.is_dir():
        raise OutputPathError(f"{path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: cannot write into {parent} (permission denied)")
    mode = stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~current_umask()
    return OutputTarget(target, stream=False, mode=mode)


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a path to write ``path``'s new content to; a file replaces ``path`` only if the block succeeds.

    For a stream target (``-``, a FIFO, a character device) the yielded path is the target itself.
    """
    out = output_target(path)
    if out.stream:
        yield out.path
        return
    target = out.path
    remove_stale_temporaries(target)
    with disk_full_as_error(target):
        try:
            stem = temporary_stem(target)
            fd, tmp = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
        except OSError as error:
            if is_disk_full(error):
                raise
            raise OutputPathError(f"{path}: cannot write into {target.parent} ({error.strerror or error})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        if out.mode is not None:
            os.chmod(tmp_path, out.mode)
        with disk_full_as_error(target):
            yield tmp_path
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; it is renamed over ``path`` on success only.

    ``-`` writes to standard output (left open), and a FIFO or character device is opened and
    written directly (see :func:`output_target`).
    """
    if "b" in mode:
        encoding = None
    if str(path) == STDOUT:
        stream = sys.stdout.buffer if encoding is None else sys.stdout
        yield stream
        stream.flush()
        return
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, newline="" if encoding else None) as handle:
        yield handle
        handle.flush()
        if _is_regular(tmp):  # fsync of a pipe or device fails (EINVAL) and orders nothing
            os.fsync(handle.fileno())


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


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
    stem = temporary_stem(target)
    with disk_full_as_error(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a finished folder gets normal permissions
        with disk_full_as_error(target):
            fill(tmp)
            for file in tmp.rglob("*"):
                if file.is_file():
                    _fsync(file)
        old = None
        if target.exists():
            old = target.with_name(f".{stem}.old-{os.getpid()}")
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
    stem = temporary_stem(target)
    aside = [
        p
        for p in target.parent.glob(f".{glob.escape(stem)}.old-*")
        if p.is_dir() and not _alive(_pid_of(p.name, stem, "old"))
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
    stem = temporary_stem(target)
    for path in target.parent.glob(f".{glob.escape(stem)}.*"):
        pid = None
        for kind in ("tmp", "old", "file"):
            pid = pid or _pid_of(path.name, stem, kind)
        if pid is None or _alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


def temporary_stem(target: str | Path) -> str:
    """What ``target``'s temporary names are built from: its name, or a hash of it when that is too long.

    ``.NAME.tmp-PID-xxxxxxxx`` of a legal 250-byte NAME is over the usual 255-byte limit
    (ENAMETOOLONG). A name that leaves less than :data:`_TEMPORARY_OVERHEAD` bytes becomes
    ``postloc-`` and 24 hex digits of its SHA-256: short, and the same for every writer of that
    output, so :func:`remove_stale_temporaries` and :func:`recover_folder` still find what a
    killed writer left. Ordinary names keep readable temporaries, which the checkpoint and
    feature-cache code also recognise by name.
    """
    target = Path(target)
    raw = target.name.encode("utf-8", "surrogateescape")
    if len(raw) + _TEMPORARY_OVERHEAD <= _name_max(target.parent):
        return target.name
    return f"postloc-{hashlib.sha256(raw).hexdigest()[:24]}"


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) ``folder``'s file system takes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):  # the folder does not exist yet, or the system does not say
        return _NAME_MAX


def _pid_of(name: str, stem: str, kind: str) -> int | None:
    """The pid in ``.STEM.tmp-PID-xxx`` (folder), ``.STEM.old-PID`` or ``.STEM.PID-xxx.tmp`` (file)."""
    patterns = {
        "tmp": rf"\.{re.escape(stem)}\.tmp-(\d+)-[^/]*",
        "old": rf"\.{re.escape(stem)}\.old-(\d+)",
        "file": rf"\.{re.escape(stem)}\.(\d+)-[^/]*\.tmp",
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
