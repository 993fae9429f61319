"""Output targets (docs/reliability.md, "output targets"): what an output path names decides how it is written.

Regression tests of issue 17, item 1: ``-o /dev/null`` used to replace the device with a regular
0600 file (when run as root), a symlink or FIFO given as output was replaced by a regular file,
and every output got mode 0600 from mkstemp instead of what the umask allows.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from postloc.errors import OutputPathError
from postloc.io.atomic import atomic_open, atomic_path, current_umask, output_target, write_folder_atomically


def test_new_file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_open(tmp_path / "out.txt") as handle:
            handle.write("x")
        assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o640
        write_folder_atomically(tmp_path / "folder", lambda work: (work / "a").write_text("a"))
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o750
    finally:
        os.umask(old)


def test_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o604)
    with atomic_open(path) as handle:
        handle.write("new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def test_umask_is_read_without_changing_it():
    old = os.umask(0o077)
    try:
        assert current_umask() == 0o077
        assert current_umask() == 0o077
    finally:
        os.umask(old)


def test_dev_null_stays_a_device():
    before = os.stat("/dev/null")
    assert output_target("/dev/null").stream
    with atomic_open("/dev/null") as handle:
        handle.write("discarded\n")
    with atomic_path("/dev/null") as path:
        assert str(path) == "/dev/null"
        path.write_bytes(b"discarded")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_symlink_is_followed_and_its_target_replaced(tmp_path):
    real = tmp_path / "real" / "out.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with atomic_open(link) as handle:
        handle.write("new")
    assert link.is_symlink(), "the link itself must survive"
    assert real.read_text() == "new"


def test_fifo_is_written_straight_to(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with atomic_open(fifo) as handle:
        handle.write("through the pipe\n")
    reader.join(timeout=10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_stdout_dash(capsys):
    with atomic_open("-") as handle:
        handle.write("to stdout\n")
    assert capsys.readouterr().out == "to stdout\n"


def test_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(OutputPathError, match="is a directory"), atomic_open(tmp_path) as handle:
        handle.write("x")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_parent_is_a_one_line_error(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: let the access check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == locked else real_access(p, m, **kw))
    try:
        with pytest.raises(OutputPathError, match="permission denied"), atomic_open(locked / "out.txt") as handle:
            handle.write("x")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_proc_is_refused_with_a_clear_error():
    with pytest.raises(OutputPathError), atomic_open(Path("/proc/self/postloc-out.jsonl")) as handle:
        handle.write("x")
