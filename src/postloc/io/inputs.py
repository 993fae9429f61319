"""Files a user names as input: regular files only, and small ones read with a bound.

A path to a device (``/dev/zero``), a FIFO or a socket can never be read to its end (or can be
read only once, while ``prepare`` both hashes and reads its input), so it is refused before any
byte is read; a side file (a config, a POI table) is read only up to a size no real one reaches.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from postloc.errors import BadInputError

#: the JSON files postloc writes beside prepared data and runs (manifests, summaries, configs, cells)
#: are kB; one a user's folder holds in their place is read no further than this
JSON_MAX_BYTES = 64 * 2**20
_CHUNK = 2**20


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


def read_at_most(handle: IO[bytes], max_bytes: int) -> bytes | None:
    """All that ``handle`` holds, or None as soon as it holds more than ``max_bytes``.

    Read in chunks: ``read(max_bytes + 1)`` would allocate the whole bound up front, for a file of a few kB.
    """
    chunks, total = [], 0
    while chunk := handle.read(min(_CHUNK, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            return None
    return b"".join(chunks)


def read_small_text(path: str | Path, max_bytes: int) -> str:
    """The UTF-8 text of a small regular file (a config, a table), refused past ``max_bytes``."""
    check_regular_file(path)
    with open(path, "rb") as handle:
        data = read_at_most(handle, max_bytes)
    if data is None:
        raise BadInputError(path, None, None, f"is larger than {max_bytes:,} bytes, more than such a file holds")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInputError(path, None, None, f"is not valid UTF-8 ({error.reason} at byte {error.start})") from None


def read_small_json(path: str | Path, max_bytes: int = JSON_MAX_BYTES) -> Any:
    """The JSON of a small file in a folder a user names (a prepared folder's manifest, a run's config).

    A missing file raises :class:`FileNotFoundError`, as ``open`` would, so callers keep telling "not
    one of postloc's folders" by it. A device, FIFO or socket in the file's place (``manifest.json``
    a link to ``/dev/zero`` never ends), a file over ``max_bytes`` or one that is not UTF-8 is a
    :class:`BadInputError`; text that is not JSON raises ``json``'s ``ValueError``.
    """
    os.stat(path)  # FileNotFoundError first; the checks below name anything else
    return json.loads(read_small_text(path, max_bytes))
