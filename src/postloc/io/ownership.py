"""Which output folders postloc may replace or write into: only its own, and never one holding the input.

A command that writes a folder (``prepare --out``, ``train --out``, ``experiments --out``,
``open-set --out``) may replace or fill it only when it is missing, empty, or was written by
postloc as the same kind of folder, which its marker file says (a prepared folder's ``manifest.json`` carries
``"postloc_prepared"``; a run's ``config.json`` carries its ``"config"``). A folder that merely
holds a file *named* ``manifest.json`` is someone else's. And an output that is, or contains,
one of the command's inputs is refused outright: replacing it would delete the input.

Every refusal is an :class:`~postloc.errors.OutputPathError` raised before anything is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postloc.errors import OutputPathError
from postloc.io import quickstart_folder, run_folder

#: bytes read of a marker file at most: a marker is a small JSON object, never a data file
MARKER_MAX_BYTES = 4 << 20


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder postloc writes: its name for messages and its marker files with the test of each.

    The first marker is the one postloc writes now; later ones are recognised in folders written
    by earlier versions.
    """

    name: str
    markers: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...]

    @property
    def marker(self) -> str:
        return self.markers[0][0]


# The module that owns a folder's layout defines its kind beside its file names (this layer cannot
# import them): ``postloc.data.prepared.PREPARED``, ``postloc.experiments.folder.REPORT``.
RUN = FolderKind("training run", ((run_folder.MANIFEST, lambda m: isinstance(m.get("config"), Mapping)),))

#: ``postloc quickstart`` writes its manifest first and updates it after every step
QUICKSTART = FolderKind(
    "quickstart folder", ((quickstart_folder.MANIFEST, lambda m: quickstart_folder.MARKER_KEY in m),)
)

#: ``postloc open-set`` writes its report (``open-set.json``) last; the marker is in it
OPEN_SET = FolderKind("leave-out (open-set) report", (("open-set.json", lambda m: "postloc_open_set" in m),))


def read_marker(folder: Path, name: str) -> Mapping[str, Any] | None:
    """The marker file ``name`` as a JSON object, or None when missing, too large, unreadable or not an object."""
    path = folder / name
    try:
        if not path.is_file() or path.stat().st_size > MARKER_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def is_own_folder(folder: Path, kind: FolderKind) -> bool:
    for name, is_ours in kind.markers:
        marker = read_marker(folder, name)
        if marker is not None and is_ours(marker):
            return True
    return False


def check_output_folder(out: str | Path, kind: FolderKind, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse ``out`` unless postloc may write ``kind`` there (see the module docstring); returns ``out``.

    ``inputs`` are the paths the command reads (files or folders; ``None``, an input not given, is
    skipped); an output that is one of them, lies inside one, or contains one is refused.
    """
    out = Path(out)
    check_not_input(out, inputs)
    if out.is_symlink() and not out.is_dir():
        raise OutputPathError(f"{out}: is a link to something that is not a folder; give a folder for the output")
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out}: exists and is not a folder; refusing to replace it (give a folder name)")
    if out.is_dir() and _has_entries(out) and not is_own_folder(out, kind):
        raise OutputPathError(
            f"{out} exists and is not a {kind.name} written by postloc (no valid {kind.marker}); "
            f"refusing to replace it: choose a new or empty folder"
        )
    return out


def check_not_input(out: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output path that is an input, lies inside an input folder, or contains an input."""
    target = _real(Path(out))
    for source in inputs:
        if source is None:
            continue
        real = _real(Path(source))
        if real == target:
            raise OutputPathError(f"{out}: is the input {source}; choose another output")
        if real in target.parents:
            raise OutputPathError(f"{out}: lies inside the input {source}; choose an output outside it")
        if target in real.parents:
            raise OutputPathError(
                f"{out}: contains the input {source}; replacing it would delete the input, choose an output outside it"
            )


def _real(path: Path) -> Path:
    """The absolute path with links resolved as far as they exist (a missing tail is kept as written)."""
    return Path(os.path.realpath(path))


def _has_entries(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is not None
