"""Files a user names as input: regular files only, and small ones read with a bound.

A path to a device (``/dev/zero``), a FIFO or a socket can never be read to its end (or can be
read only once, while ``prepare`` both hashes and reads its input), so it is refused before any
byte is read; a side file (a config, a POI table) is read only up to a size no real one reaches.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from postloc.errors import BadInputError


def check_regular_file(path: str | Path, *, folders: bool = False) -> None:
    """Refuse anything but a regular file (or, with ``folders``, a directory), naming what it is."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BadInputError(path, None, None, "no such file or folder") from None
    except OSError as error:
        raise BadInputError(path, None, None, f"cannot be read: {error.strerror or error}") from None
    if stat.S_ISREG(mode) or (folders and stat.S_ISDIR(mode)):
        return
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    wanted = "a file or a folder" if folders else "a regular file"
    raise BadInputError(path, None, None, f"is {kind}; postloc reads {wanted} (it may need to read it twice)")


def read_small_text(path: str | Path, max_bytes: int) -> str:
    """The UTF-8 text of a small regular file (a config, a table), refused past ``max_bytes``."""
    check_regular_file(path)
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadInputError(path, None, None, f"is larger than {max_bytes:,} bytes, more than such a file holds")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInputError(path, None, None, f"is not valid UTF-8 ({error.reason} at byte {error.start})") from None
