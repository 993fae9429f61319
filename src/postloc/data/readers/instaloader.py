"""Instaloader download folders: Instagram location pages, the way the MRLF paper collected posts.

Why the reader looks the way it does (checked against instaloader 4.16's own source):

* ``instaloader %<location id>`` (also a profile name, ``#hashtag``...) writes one folder per
  target; a parent folder holding many such folders is read recursively, in sorted order.
* Per post, with the default filename pattern ``{date_utc}_UTC``, ``Instaloader.download_post``
  writes ``<stem>.jpg`` (single image or video thumbnail; the extension comes from the HTTP
  Content-Type, so ``.webp``/``.png`` happen), ``<stem>_1.jpg``, ``<stem>_2.jpg``... for sidecars
  (numbered from 1 in carousel order), ``<stem>.mp4`` for videos (ignored here),
  ``<stem>.txt`` with ``--post-metadata-txt`` (default ``{caption}``, stripped; absent when it
  is empty) and ``<stem>.json.xz`` (``save_structure_to_file``: LZMA-compressed JSON
  ``{"node": ..., "instaloader": {"version", "node_type": "Post"}}``; plain ``.json`` with
  ``--no-compress-json``). Optional extras: ``<stem>_location.txt`` (``--geotags``: name and a
  Google Maps link), ``<stem>_comments.json``; a changed caption is kept as
  ``<stem>_old_01.txt``. Two posts in the same second are *not* renamed: the later one
  overwrites the JSON and the caption, and its images are skipped as "exists".
* Other files in the same folders are not posts: ``id``, profile and hashtag structures
  (``<name>_<id>.json.xz``, ``#tag.json.xz``), resume files (``iterator_<magic>.json.xz``),
  story items and title pictures (``<date>_UTC_profile_pic.jpg``). Instaloader structures other
  than ``Post`` are skipped silently. JSON that is not an Instaloader structure is a bad record
  when something else marks its stem as a post's (a picture, a caption, a date stem); otherwise
  it is a stray file (``notes.json``, an export) and is passed over with a warning naming it.
* Two node shapes. Location pages go through ``Post.from_iphone_struct``: the caption is a plain
  string in ``node["caption"]``, the location (pk, name, lat, lng) only under
  ``node["iphone_struct"]["location"]``, the owner under ``node["iphone_struct"]["user"]`` (and,
  once saved, ``node["owner"]``), the time in ``node["date"]``. GraphQL posts (profiles, hashtags)
  carry ``edge_media_to_caption.edges[0].node.text``, ``owner.id``, ``taken_at_timestamp`` and a
  top-level ``location`` only when geotags were fetched. Instaloader 3 saved the bare node.

A post's ``hashtags`` are the ``#tags`` of its caption (``extract_hashtags``, as ``prepare``
would take them), so ``read_posts`` gives them too.

The JSON is the reference: the ``.txt`` holds whatever ``--post-metadata-txt`` said
(stripped), so it is only read for posts without JSON. Such posts (they need a picture or a date
stem, so a stray ``notes.txt`` is not one) get ``<folder>_<stem>`` as id, because date stems
repeat across folders. Inside ``%<id>`` folders a post without location data takes the folder's
location id as its ``poi``. Only file names are listed up front; each post's files are read when
it is yielded. Instaloader itself is not needed (tests use it to build fixtures).

Links (files or folders) are followed only while they stay inside the folder being read; one that
leads out of it is passed over with a warning naming it (the skip report's warnings), and a caption
or location file is read only up to ``max_record_bytes``, and only when it is a regular file.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postloc.data.readers.base import MAX_RECORD_BYTES, RawRecord, json_problem, read_bounded
from postloc.errors import BadInputError
from postloc.io.inputs import check_regular_file
from postloc.text.normalize import extract_hashtags

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_TITLE_PICTURE_SUFFIXES = ("_profile_pic", "_cover")
_OTHER_STRUCTURES = frozenset({"Profile", "StoryItem", "Hashtag", "FrozenNodeIterator"})
_SIDECAR = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)$")
_OLD_CAPTION = re.compile(r"_old_\d+$")
_DEFAULT_STEM = re.compile(r"(?:^|_)(\d{4}-\d{2}-\d{2})_(\d{2})-(\d{2})-(\d{2})_UTC$")
_LOCATION_FOLDER = re.compile(r"^%(\d+)$")
_MAPS_QUERY = re.compile(r"[?&]q=(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)")


@dataclass
class _PostFiles:
    """The file names that instaloader wrote for one post (all in one folder)."""

    stem: str
    structure: str | None = None
    caption: str | None = None
    geotag: str | None = None
    images: list[tuple[int, str]] = field(default_factory=list)


class _Malformed(Exception):
    """A Post structure whose ``key`` does not hold what instaloader writes there."""

    def __init__(self, key: str, problem: str):
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


def iter_instaloader(path: str | Path, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[RawRecord]:
    """Yield one record per post in an Instaloader download folder (or a folder of such folders).

    A structure file larger than ``max_record_bytes`` once decompressed is a bad record. Links
    are followed only while they stay inside the folder (see :func:`_list_folder`).
    """
    root = Path(path)
    if not root.exists():
        raise BadInputError(root, None, None, "no such folder")
    if not root.is_dir():
        raise BadInputError(
            root, None, None, "is not a folder; an Instaloader download is a folder of <date>_UTC.* files"
        )
    return _walk(root, root=os.path.realpath(root), seen=set(), max_bytes=max_record_bytes)


def _walk(folder: Path, *, root: str, seen: set[str], max_bytes: int) -> Iterator[RawRecord]:
    """This folder's posts, then each subfolder's, depth first in name order (symlink loops cut)."""
    real = os.path.realpath(folder)
    if real in seen:
        return
    seen.add(real)
    try:
        files, subfolders, outside = _list_folder(folder, root)
    except BadInputError as error:
        if real == root:
            raise
        yield RawRecord(str(folder), None, error=error)
        return
    for name in outside:
        link = folder / name
        problem = "is a link that leads outside the folder being read, not followed"
        yield RawRecord(str(link), None, warning=BadInputError(link, None, None, problem))
    location_id = _folder_location(folder)
    base_dir = str(folder.resolve())
    for post_files in _group(files):
        item = _post_item(folder, base_dir, post_files, location_id, max_bytes)
        if item is not None:
            yield item
    for name in subfolders:
        yield from _walk(folder / name, root=root, seen=seen, max_bytes=max_bytes)


def _list_folder(folder: Path, root: str) -> tuple[list[str], list[str], list[str]]:
    """Sorted names of the files and subfolders, hidden ones left out, and of the links leaving ``root``.

    A link (to a file or a folder) is followed only when its target is inside ``root``, the real
    path of the folder being read: a caption linked to ``~/.aws/credentials`` would otherwise put
    that file into ``posts.jsonl``, and a folder link would walk another tree. Links inside the
    folder are followed (a user may have gathered downloads with links; loops are cut by
    :func:`_walk`).
    """
    files: list[str] = []
    subfolders: list[str] = []
    outside: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_symlink() and not _inside(os.path.realpath(entry.path), root):
                        outside.append(entry.name)
                    elif entry.is_dir():
                        subfolders.append(entry.name)
                    elif entry.is_file():
                        files.append(entry.name)
                except OSError:
                    continue
    except OSError as error:
        raise BadInputError(folder, None, None, f"cannot be read: {error.strerror or error}") from None
    return sorted(files), sorted(subfolders), sorted(outside)


def _inside(path: str, root: str) -> bool:
    """Whether the real path ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _folder_location(folder: Path) -> str | None:
    """``%<id>`` is the folder instaloader names after a location target."""
    match = _LOCATION_FOLDER.match(folder.name)
    return match.group(1) if match else None


def _structure_stem(name: str) -> str | None:
    if name.endswith(".json.xz"):
        return name[: -len(".json.xz")]
    if name.endswith(".json") and not name.endswith("_comments.json"):
        return name[: -len(".json")]
    return None


def _group(names: list[str]) -> list[_PostFiles]:
    """Group a folder's file names by post stem, in stem order; files that are not posts drop out."""
    posts: dict[str, _PostFiles] = {}

    def post(stem: str) -> _PostFiles:
        return posts.setdefault(stem, _PostFiles(stem))

    images: list[str] = []
    for name in names:
        stem = _structure_stem(name)
        base, suffix = os.path.splitext(name)
        if stem is not None:
            post(stem).structure = name
        elif suffix.lower() == ".txt":
            if base.endswith("_location"):
                post(base[: -len("_location")]).geotag = name
            elif not _OLD_CAPTION.search(base):
                post(base).caption = name
        elif suffix.lower() in _IMAGE_SUFFIXES:
            images.append(name)
    sidecar_counts = Counter(m.group("stem") for m in (_SIDECAR.match(os.path.splitext(n)[0]) for n in images) if m)
    shared = {stem for stem, count in sidecar_counts.items() if count > 1}
    for name in images:
        owner = _image_owner(os.path.splitext(name)[0], posts, shared)
        if owner is not None:
            post(owner[0]).images.append((owner[1], name))
    for files in posts.values():
        files.images.sort()
    return [posts[stem] for stem in sorted(posts) if _is_post(posts[stem])]


def _has_post_files(files: _PostFiles) -> bool:
    """Anything besides the JSON that marks the stem as a post's: a picture, a caption, a date stem."""
    return (
        bool(files.images)
        or files.caption is not None
        or files.geotag is not None
        or _DEFAULT_STEM.search(files.stem) is not None
    )


def _stray(error: BadInputError) -> BadInputError:
    """The warning for a JSON file that is no post and that no other file makes one."""
    problem = f'"{error.key}" {error.problem}' if error.key else error.problem
    return BadInputError(error.source, None, None, f"stray file skipped, not an Instaloader post: it {problem}")


def _is_post(files: _PostFiles) -> bool:
    """A stray ``notes.txt`` is no post: without JSON, a post needs a picture or a date stem."""
    return files.structure is not None or bool(files.images) or _DEFAULT_STEM.search(files.stem) is not None


def _image_owner(base: str, posts: Mapping[str, _PostFiles], shared: set[str]) -> tuple[str, int] | None:
    """Which post an image belongs to, and its place: 0 for ``<stem>.jpg``, n for ``<stem>_n.jpg``."""
    if base in posts:
        return base, 0
    match = _SIDECAR.match(base)
    if match:
        stem = match.group("stem")
        if stem in posts or stem in shared or stem.endswith("_UTC"):
            return stem, int(match.group("index"))
    if base.endswith(_TITLE_PICTURE_SUFFIXES):
        return None
    return base, 0


def _post_item(
    folder: Path, base_dir: str, files: _PostFiles, location_id: str | None, max_bytes: int = MAX_RECORD_BYTES
) -> RawRecord | None:
    """The record of one post, the error that spoils it, or None for a non-post structure."""
    try:
        if files.structure is not None:
            source = str(folder / files.structure)
            try:
                node = _load_post_node(folder / files.structure, max_bytes)
            except BadInputError as error:
                if _has_post_files(files):
                    raise
                # Nothing else says this is a post (no picture, caption or date stem): a stray
                # notes or export file. Passed over with a warning that names it.
                return RawRecord(source, None, warning=_stray(error))
            if node is None:
                return None
            try:
                record = _node_record(node)
            except _Malformed as bad:
                raise BadInputError(source, None, bad.key, bad.problem) from None
        else:
            first = files.caption or (files.images[0][1] if files.images else files.geotag)
            source = str(folder / first) if first else str(folder / files.stem)
            record = _files_record(folder, files, max_bytes)
        if files.geotag is not None and record.get("lat") is None:
            _add_geotag(record, folder / files.geotag, max_bytes)
        if record.get("text"):
            # Instagram keeps a post's tags in its caption only: the ``#tags`` written there, as
            # the hashtag rule (postloc.text.hashtags.post_hashtags) would take them in prepare.
            record["hashtags"] = extract_hashtags(record["text"])
    except BadInputError as error:
        return RawRecord(error.source, None, error=error)
    if record.get("poi") is None and location_id is not None:
        record["poi"] = location_id
    if files.images:
        record["image"] = [name for _, name in files.images]
    return RawRecord(source, None, record=record, base_dir=base_dir)


def _load_post_node(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> dict[str, Any] | None:
    """The ``node`` of a saved Post structure; None for other Instaloader structures."""
    try:
        with lzma.open(path, "rb") if path.name.endswith(".xz") else open(path, "rb") as handle:
            data = read_bounded(handle, max_bytes, path)
    except lzma.LZMAError as error:
        raise BadInputError(path, None, None, f"is not a valid .xz file ({error})") from None
    except EOFError:
        raise BadInputError(path, None, None, "is truncated: the .xz data ends before its end marker") from None
    except OSError as error:
        raise BadInputError(path, None, None, f"cannot be read: {error.strerror or error}") from None
    try:
        structure = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BadInputError(path, None, None, f"is not valid UTF-8 ({error.reason} at byte {error.start})") from None
    except (ValueError, RecursionError) as error:  # syntax, nesting too deep, integer too long
        raise BadInputError(path, None, None, json_problem(error)) from None
    return _post_node(structure, path)


def _post_node(structure: Any, path: Path) -> dict[str, Any] | None:
    """Mirror of ``instaloader.load_structure``: check the envelope, keep only Posts."""
    if isinstance(structure, dict) and isinstance(structure.get("instaloader"), dict) and "node" in structure:
        node_type = structure["instaloader"].get("node_type")
        if node_type in _OTHER_STRUCTURES:
            return None
        if node_type != "Post":
            raise BadInputError(path, None, "node_type", f"is {_show(node_type)}, not an Instaloader Post")
        if not isinstance(structure["node"], dict):
            raise BadInputError(path, None, "node", f"must be an object, got {_show(structure['node'])}")
        return structure["node"]
    if isinstance(structure, dict) and "shortcode" in structure:
        return structure  # Instaloader 3 saved the bare GraphQL node
    raise BadInputError(
        path, None, None, 'is not an Instaloader post: expected {"node": {...}, "instaloader": {"node_type": "Post"}}'
    )


def _node_record(node: Mapping[str, Any]) -> dict[str, Any]:
    """Exchange-format record from either node shape (see the module docstring)."""
    iphone = _mapping(node.get("iphone_struct"))
    shortcode = node.get("shortcode", node.get("code"))
    if not isinstance(shortcode, str) or not shortcode:
        raise _Malformed("shortcode", f"must be a non-empty string, got {_show(shortcode)}")
    record: dict[str, Any] = {"id": shortcode, "shortcode": shortcode, "source_format": "instaloader"}
    caption = _caption(node)
    if caption is not None:
        record["text"] = caption
    user = _identifier(_mapping(node.get("owner")), "owner") or _identifier(
        _mapping(iphone.get("user")), "iphone_struct.user"
    )
    if user is not None:
        record["user"] = user
    created = _timestamp(node, iphone)
    if created is not None:
        record["created"] = created
    record.update(_location(node, iphone))
    return record


def _caption(node: Mapping[str, Any]) -> str | None:
    """Same precedence as ``Post.caption`` (NFC-normalised like it)."""
    edges = _mapping(node.get("edge_media_to_caption")).get("edges")
    if isinstance(edges, list) and edges:
        key, text = "edge_media_to_caption", _mapping(_mapping(edges[0]).get("node")).get("text")
    else:
        key, text = "caption", node.get("caption")
        if isinstance(text, Mapping):  # a raw media item keeps {"text": ...}
            text = text.get("text")
    if text is None:
        return None
    if not isinstance(text, str):
        raise _Malformed(key, f"must hold a string, got {_show(text)}")
    return unicodedata.normalize("NFC", text)


def _identifier(owner: Mapping[str, Any], key: str) -> str | None:
    value = owner.get("id", owner.get("pk"))
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Malformed(f"{key}.id", f"must be a string or an integer, got {_show(value)}")
    return str(value)


def _timestamp(node: Mapping[str, Any], iphone: Mapping[str, Any]) -> Any:
    """The posting time, as ``Post._get_timestamp_date_created`` reads it (Unix seconds).

    Passed on as found: the schema reads it, and one it cannot read costs the post its
    ``created`` (with a warning), not the post.
    """
    for value in (node.get("date"), node.get("taken_at_timestamp"), iphone.get("taken_at")):
        if value is not None:
            return value
    return None


def _location(node: Mapping[str, Any], iphone: Mapping[str, Any]) -> dict[str, Any]:
    """poi, lat, lon and poi_name from the top-level (GraphQL/geotag) or the iPhone location."""
    location, key = _mapping(node.get("location")), "location"
    if not location:
        location, key = _mapping(iphone.get("location")), "iphone_struct.location"
    if not location:
        return {}
    found: dict[str, Any] = {}
    poi = _identifier(location, key)
    if poi is not None:
        found["poi"] = poi
    lat, lon = location.get("lat"), location.get("lng", location.get("lon"))
    if lat is not None and lon is not None:
        found["lat"], found["lon"] = lat, lon
    name = location.get("name")
    if isinstance(name, str) and name:
        found["poi_name"] = name
    return found


def _files_record(folder: Path, files: _PostFiles, max_bytes: int) -> dict[str, Any]:
    """What is known of a post saved without JSON: caption file, date from the default stem."""
    record: dict[str, Any] = {"id": f"{folder.name}_{files.stem}", "source_format": "instaloader"}
    if files.caption is not None:
        record["text"] = _read_text(folder / files.caption, max_bytes).strip()
    match = _DEFAULT_STEM.search(files.stem)
    if match:
        day, hour, minute, second = match.groups()
        record["created"] = f"{day}T{hour}:{minute}:{second}+00:00"
    return record


def _add_geotag(record: dict[str, Any], path: Path, max_bytes: int) -> None:
    """``save_location`` writes the name, then a maps link with ``q=<lat>,<lng>`` when known."""
    lines = _read_text(path, max_bytes).splitlines()
    if lines and lines[0].strip() and "poi_name" not in record:
        record["poi_name"] = lines[0].strip()
    match = _MAPS_QUERY.search("\n".join(lines[1:]))
    if match:
        record["lat"], record["lon"] = float(match.group(1)), float(match.group(2))


def _read_text(path: Path, max_bytes: int) -> str:
    """A caption or location file, NFC: a regular file of at most ``max_bytes`` (a caption is at most
    2,200 characters on Instagram, so a larger file is no caption; a sparse 1.5 GB one must not be read)."""
    check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            data = read_bounded(handle, max_bytes, path)
    except OSError as error:
        raise BadInputError(path, None, None, f"cannot be read: {error.strerror or error}") from None
    try:
        return unicodedata.normalize("NFC", data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BadInputError(path, None, None, f"is not valid UTF-8 ({error.reason} at byte {error.start})") from None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _show(value: Any) -> str:
    text = (
        f'"{value}"'
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, (dict, list, bool)) or value is None
        else repr(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["iter_instaloader"]
