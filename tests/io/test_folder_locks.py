"""Concurrent writers (docs/reliability.md): one command at a time writes an output folder.

Regression test of issue 17, item 9: two ``train`` into the same ``--out`` both passed the
"already holds a run" check and mixed their outputs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from postloc.errors import OutputPathError
from postloc.io.locks import folder_lock, lock_path


def test_second_holder_is_refused_then_admitted(tmp_path):
    out = tmp_path / "run"
    with (
        folder_lock(out),
        pytest.raises(OutputPathError, match="another postloc command is writing it"),
        folder_lock(out),
    ):
        pass
    with folder_lock(out):  # released at the end of the block
        pass
    assert list(tmp_path.iterdir()) == [], "locking writes nothing among the user's files"
    assert lock_path(out).exists() and lock_path(tmp_path / "." / "run") == lock_path(out)


def test_lock_held_by_another_process_and_released_when_it_dies(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from postloc.io.locks import folder_lock
        with folder_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputPathError), folder_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(out):  # a killed holder leaves no stale lock
        pass
