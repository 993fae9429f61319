"""The files of a saved model: ``model.json`` (the manifest), safetensors tensors and JSON state.

Never pickle: unpickling a downloaded model can run arbitrary code, while a safetensors file
holds only named arrays and JSON only data. Every reader here turns a missing, damaged or edited
file into a :class:`~postloc.errors.ModelFileError` naming the file, so a model's own ``load``
never has to. The checkpoint folders of :mod:`postloc.nn.checkpoints` are written with the same
functions. ``torch`` and ``safetensors`` are imported on first use of a tensor function, so
reading a manifest (the registry, the majority baseline) does not load them.

Compatibility: ``model.json`` holds ``format`` (an integer, :data:`FORMAT_VERSION`) and the
``postloc_version`` that wrote it. ``format`` changes only when a saved folder can no longer be
read the old way; a postloc reads exactly its own format, whatever package version wrote it, and
refuses any other with a message naming both versions. A ``model.json`` without ``format`` (none
was ever written without it, but hand-made files exist) is read as format 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postloc._version import __version__
from postloc.errors import BadInputError, ModelFileError
from postloc.io.inputs import read_small_json

#: a model's JSON files (a vocabulary of ``max_features`` strings is the largest) stay below this
MODEL_JSON_MAX_BYTES = 2**30

if TYPE_CHECKING:
    import torch

MODEL_FILE = "model.json"
FORMAT_VERSION = 1

#: safetensors metadata key holding the SHA-256 of the tensors (names, dtypes, shapes, bytes).
CHECKSUM_KEY = "postloc.sha256"


# --- JSON ------------------------------------------------------------------------------------


def write_json(path: str | Path, data: Any) -> None:
    """Indented, key-sorted JSON: files people read and diff (``model.json``, checkpoint state)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n", encoding="utf-8")


def write_compact_json(path: str | Path, data: Any) -> None:
    """One line of JSON with non-ASCII kept as is: vocabularies and other bulky fitted state."""
    Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    """A JSON file of a saved model or checkpoint; a missing or damaged one is a :class:`ModelFileError`."""
    path = Path(path)
    try:
        return read_small_json(path, MODEL_JSON_MAX_BYTES)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing; the saved model or checkpoint folder is incomplete") from None
    except BadInputError as error:  # a device or FIFO in its place, too large, not UTF-8
        raise ModelFileError(str(error)) from None
    except ValueError as error:
        raise ModelFileError(f"{path}: not valid JSON, the file is damaged or truncated ({error})") from None


# --- the manifest (model.json) ---------------------------------------------------------------

#: ``model.json`` keys that make the whole folder tamper-evident: the SHA-256 of each file the
#: model wrote beside it, and of the manifest itself (its canonical JSON without this key). An
#: edited class list, config or vocabulary is refused on load instead of answering wrongly.
FILES_KEY = "files"
SEAL_KEY = "sha256"


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Size, modification time and inode of each file in ``folder``: what a save changes."""
    if not folder.is_dir():
        return {}
    stamps = {}
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            info = path.stat()
            stamps[path.name] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return stamps


def seal_manifest(folder: Path, manifest: dict[str, Any], written: list[str]) -> dict[str, Any]:
    """``manifest`` with the digests of the ``written`` files and of itself (see :data:`SEAL_KEY`)."""
    sealed = dict(manifest)
    sealed[FILES_KEY] = {name: file_digest(folder / name) for name in sorted(written)}
    sealed[SEAL_KEY] = manifest_digest(sealed)
    return sealed


def verify_folder(folder: str | Path, manifest: Mapping[str, Any], manifest_name: str = MODEL_FILE) -> None:
    """Check the digests a sealed manifest lists; a folder saved before sealing existed has none to check.

    ``manifest_name`` is the file holding ``manifest``: ``model.json`` of a model folder, or the
    manifest of a training run (:mod:`postloc.io.run_folder`).
    """
    folder = Path(folder)
    files = manifest.get(FILES_KEY) or {}
    if not isinstance(files, dict):
        raise ModelFileError(f'{folder / manifest_name}: "{FILES_KEY}" must map file names to SHA-256 digests')
    for name, expected in files.items():
        path = folder / str(name)
        if Path(str(name)).name != name:
            raise ModelFileError(
                f'{folder / manifest_name}: "{FILES_KEY}" names {name!r}, which is not a file of this folder'
            )
        if not path.is_file():
            raise ModelFileError(f"{path}: missing; the saved files in {folder} are incomplete")
        if file_digest(path) != expected:
            raise ModelFileError(
                f"{path}: its SHA-256 differs from the one recorded in {manifest_name} when it "
                f"was saved; the file was edited or damaged"
            )


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    write_json(path, manifest)
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``model.json`` of a saved model, checked for a supported format (see the module docstring)."""
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise ModelFileError(f"{directory} holds no saved model ({MODEL_FILE} is missing)")
    try:
        manifest = read_small_json(path, MODEL_JSON_MAX_BYTES)
    except BadInputError as error:
        raise ModelFileError(str(error)) from None
    except ValueError as error:
        raise ModelFileError(f"{path}: not valid JSON, the file is damaged or truncated ({error})") from None
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    check_format(manifest, path)
    check_seal(manifest, path)
    if not isinstance(manifest.get("model"), str):
        raise ModelFileError(f'{path}: no model name ("model") in it')
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ModelFileError(f'{path}: "classes" must be a non-empty list of POI labels')
    repeated = sorted({c for c in classes if classes.count(c) > 1}) if len(set(classes)) != len(classes) else []
    if repeated:
        raise ModelFileError(f'{path}: "classes" lists {repeated[:5]} more than once; each POI label must be unique')
    if not isinstance(manifest.get("config", {}), dict) or not isinstance(manifest.get("trainer") or {}, dict):
        raise ModelFileError(f'{path}: "config" and "trainer" must be JSON objects')
    return manifest


def check_seal(manifest: Mapping[str, Any], path: str | Path) -> None:
    """Refuse a sealed manifest whose content no longer matches its own digest (:data:`SEAL_KEY`)."""
    if SEAL_KEY in manifest and manifest[SEAL_KEY] != manifest_digest(manifest):
        raise ModelFileError(
            f"{path}: its content differs from the SHA-256 recorded when it was saved; "
            f"the file was edited or damaged (a hand edit is refused: retrain or restore it)"
        )


def check_format(manifest: dict[str, Any], path: str | Path) -> None:
    """Refuse a ``model.json`` of another format, saying which postloc wrote it and which this is."""
    found = manifest.get("format", 1)
    if found == FORMAT_VERSION and not isinstance(found, bool):
        return
    writer = manifest.get("postloc_version") or "an unknown version"
    if isinstance(found, int) and not isinstance(found, bool) and found > FORMAT_VERSION:
        advice = "it was written by a newer postloc; upgrade postloc to load it"
    else:
        advice = "it is not a format this postloc can read; retrain the model with this version"
    raise ModelFileError(
        f"{path}: model format {found!r} (written by postloc {writer}) is incompatible with "
        f"postloc {package_version()}, which reads format {FORMAT_VERSION}: {advice}"
    )


def package_version() -> str:
    """The running postloc's version, written into every manifest."""
    return __version__


# --- tensors (safetensors) -------------------------------------------------------------------


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order.

    safetensors checks that a file is well formed but not that its numbers are the ones written;
    this digest, stored in the file's own metadata, makes a flipped byte in the data detectable.
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """safetensors needs contiguous tensors that share no memory; copies make that so.

    The checksum of the tensors goes into the file's metadata (see :func:`load_tensors`).
    """
    from safetensors.torch import save_file

    plain = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}  # GPU tensors too (DDP on CUDA)
    save_file(plain, str(path), metadata={CHECKSUM_KEY: tensors_digest(plain)})


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file written by :func:`save_tensors`; refuse a damaged or edited one.

    Files without a checksum (written before it was added) still load: safetensors itself checks
    the header and the data offsets.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: missing; the saved model or checkpoint folder is incomplete")
    try:
        with safe_open(str(path), framework="pt") as handle:
            expected = (handle.metadata() or {}).get(CHECKSUM_KEY)
        tensors = load_file(str(path))
    except Exception as error:  # noqa: BLE001 - SafetensorError, header JSON errors, bad offsets
        raise ModelFileError(f"{path}: not a valid safetensors file, it is damaged or truncated ({error})") from None
    if expected is not None and tensors_digest(tensors) != expected:
        raise ModelFileError(f"{path}: checksum mismatch; the file was changed or damaged after it was written")
    return tensors


def load_state_into(module: torch.nn.Module, path: str | Path) -> None:
    """``module.load_state_dict`` from a safetensors file, naming the file when names or shapes do not fit."""
    tensors = load_tensors(path)
    try:
        module.load_state_dict(tensors)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:4]) or (first[0] if first else "")
        raise ModelFileError(
            f"{path}: its tensors do not fit the model described by model.json "
            f"(was one of the files edited or mixed up?): {detail[:300]}"
        ) from None
