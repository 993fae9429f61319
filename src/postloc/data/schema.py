"""The post record every reader yields and every writer takes (the exchange format).

The keys follow ``docs/post-format.md``. Validation happens here, once, so that JSONL, CSV,
Parquet and Instaloader input all fail with the same messages.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from postloc.errors import BadInputError

#: Keys of the exchange format; everything else in a record is kept in ``Post.extra``.
KNOWN_KEYS = ("id", "text", "hashtags", "image", "poi", "lat", "lon", "user", "created")
#: A precomputed image feature vector may ride along in a record (kept in ``Post.extra``).
IMAGE_VECTOR_KEY = "image_vector"

#: Every column a table of posts may hold, in the order every table holds them, with its Arrow type:
#: the exchange keys, what ``prepare`` adds (``poi_name``, ``split``, ``lang``, ``flags``, its spool's
#: counts), the image vector a model reads, and the rest of a record as JSON (``extra``) last. One list,
#: so that the exchange Parquet, the prepared ``posts.parquet``, prepare's spool and the frame a model
#: reads cannot disagree on a column's name, place or type; each takes its columns by name.
POST_COLUMNS: dict[str, str] = {
    "id": "string",
    "text": "string",
    "hashtags": "list<string>",
    "image": "list<string>",
    IMAGE_VECTOR_KEY: "list<float32>",
    "poi": "string",
    "poi_name": "string",
    "lat": "float64",
    "lon": "float64",
    "user": "string",
    "created": "string",
    "split": "string",
    "lang": "string",
    "n_text": "int32",
    "n_images": "int32",
    "flags": "list<string>",
    "extra": "string",
}
#: the columns of an exchange-format table (``postloc prepare``'s input, the Parquet writer's output)
EXCHANGE_COLUMNS = (*KNOWN_KEYS, "extra")
#: the columns of a prepared folder's ``posts.parquet``: every post column but the spool's counts and the
#: image vector (image features have their own file)
PREPARED_POST_COLUMNS = tuple(c for c in POST_COLUMNS if c not in ("n_text", "n_images", IMAGE_VECTOR_KEY))
#: the columns of a post that a model reads (prediction builds its frame of these, in this order)
MODEL_COLUMNS = ("id", "text", "hashtags", IMAGE_VECTOR_KEY, "user", "created")


def arrow_schema(columns: Iterable[str]):
    """The ``pyarrow`` schema of ``columns`` (names of :data:`POST_COLUMNS`), in :data:`POST_COLUMNS`' order.

    pyarrow is imported here, not at the top: reading JSONL posts needs no Arrow.
    """
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "list<string>": pa.list_(pa.string()),
        "list<float32>": pa.list_(pa.float32()),
        "float64": pa.float64(),
        "int32": pa.int32(),
    }
    wanted = set(columns)
    unknown = wanted - POST_COLUMNS.keys()
    if unknown:
        raise ValueError(f"not post columns: {sorted(unknown)}")
    return pa.schema([(name, types[kind]) for name, kind in POST_COLUMNS.items() if name in wanted])


@dataclass(slots=True)
class Post:
    """One social-media post.

    ``images`` holds absolute paths (readers resolve paths relative to the input file's
    folder) so a post means the same thing wherever it is written next.
    """

    id: str
    text: str = ""
    hashtags: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    poi: str | None = None
    lat: float | None = None
    lon: float | None = None
    user: str | None = None
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(
        cls,
        record: Mapping[str, Any],
        *,
        source: str | Path = "<input>",
        line: int | None = None,
        base_dir: str | Path | None = None,
        folders: dict[tuple[str, str], str] | None = None,
        warn: Callable[[BadInputError], None] | None = None,
        no_surrogates: bool = False,
    ) -> Post:
        """Validate one raw record (a parsed JSON object, a CSV row, a Parquet row).

        Raises :class:`BadInputError` naming ``source``, ``line`` and the offending key.
        ``folders`` is a cache of resolved image folders that a reader keeps for one pass over
        its input (see :func:`resolve_image`); without it every path is resolved from scratch.
        A problem with a field no model needs (``created``) does not raise: the post keeps the
        field empty and ``warn``, when given, receives the error (readers count it in the report).
        ``no_surrogates``: the reader knows no string of the record holds a lone surrogate (a JSON
        line without ``\\u`` escapes), so the walk that looks for one is skipped.
        """
        if type(record) is not dict and not isinstance(record, Mapping):  # the exact type first: an ABC check is slow
            raise BadInputError(source, line, None, f"expected a JSON object, got {_kind(record)}")
        surrogate = None if no_surrogates else _lone_surrogate(record)
        if surrogate is not None:
            raise BadInputError(
                source,
                line,
                surrogate,
                "holds a lone surrogate (an unpaired \\ud800-\\udfff escape): "
                "not valid Unicode, it cannot be written as UTF-8",
            )

        def bad(key: str, problem: str) -> BadInputError:
            return BadInputError(source, line, key, problem)

        post_id = _opt_id(record.get("id"), "id", bad)
        if post_id is None:
            raise bad("id", "is required")
        text = record.get("text")
        if is_missing(text):
            text = ""
        elif not isinstance(text, str):
            raise bad("text", f"must be a string, got {_show(text)}")

        hashtags = _string_list(record.get("hashtags"), "hashtags", bad)
        hashtags = [h.lstrip("#") for h in hashtags if h.lstrip("#")]
        images = _string_list(record.get("image"), "image", bad, allow_scalar=True)
        nul = next((p for p in images if "\x00" in p), None)
        if nul is not None:  # no file system takes it (os calls raise ValueError)
            raise bad("image", f"must be a file path without NUL characters, got {_show(nul)}")
        if base_dir is not None:
            images = [p if os.path.isabs(p) else resolve_image(base_dir, p, folders) for p in images]

        lat = _coordinate(record.get("lat"), "lat", 90.0, bad)
        lon = _coordinate(record.get("lon"), "lon", 180.0, bad)
        if (lat is None) != (lon is None):
            missing = "lon" if lon is None else "lat"
            raise bad(missing, "is missing while the other coordinate is given")

        extra = {k: v for k, v in record.items() if k not in KNOWN_KEYS}
        if not is_missing(extra.get(IMAGE_VECTOR_KEY)):
            extra[IMAGE_VECTOR_KEY] = image_vector(extra[IMAGE_VECTOR_KEY], bad)
        return cls(
            id=post_id,
            text=text,
            hashtags=hashtags,
            images=images,
            poi=_opt_id(record.get("poi"), "poi", bad),
            lat=lat,
            lon=lon,
            user=_opt_id(record.get("user"), "user", bad),
            created=_created(record.get("created"), bad, warn),
            extra=extra,
        )

    def to_record(self, image_base: str | Path | None = None) -> dict[str, Any]:
        """The exchange-format dict; image paths relative to ``image_base`` when given."""
        record: dict[str, Any] = {"id": self.id, "text": self.text, "hashtags": list(self.hashtags)}
        if self.images:
            record["image"] = [_relative(p, image_base) for p in self.images]
        for key in ("poi", "lat", "lon", "user", "created"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        for key, value in self.extra.items():
            record.setdefault(key, value)
        return record


def resolve_image(base_dir: str | Path, path: str, folders: dict[tuple[str, str], str] | None = None) -> str:
    """``str((Path(base_dir) / path).resolve())``, with the folder part resolved once per ``folders``.

    ``Path.resolve`` costs one ``lstat`` per path component; posts of one input name their
    images in a handful of folders, so resolving ``base_dir/folder`` once and checking only the
    file name itself (one ``lstat``: is it a link?) gives the same string. A name that is a
    link, ``.`` or ``..`` takes the full resolve, as does every path when ``folders`` is None.
    """
    if folders is None:
        return str((Path(base_dir) / path).resolve())
    head, _, name = path.rpartition("/")
    key = (str(base_dir), head)
    folder = folders.get(key)
    if folder is None:  # "" marks a relative base: resolved against the working folder each time
        base = Path(base_dir)
        folder = folders[key] = str((base / head).resolve()) if base.is_absolute() else ""
    if not folder or name in ("", ".", ".."):
        return str((Path(base_dir) / path).resolve())
    candidate = os.path.join(folder, name)
    if os.path.islink(candidate):
        return str((Path(base_dir) / path).resolve())
    return candidate


#: JSON "\ud800" escapes decode to lone surrogates: no valid text, and they cannot be encoded back to UTF-8
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_SCALARS = (int, float, bool)  # exact types: a subclass may be anything


def _lone_surrogate(record: Mapping[str, Any]) -> str | None:
    """The top-level key whose value (or name) holds a lone surrogate, if any.

    JSON allows ``"\\ud800"`` escapes, so a parsed record may hold text that no writer can encode.
    Walked with a stack, not recursion: extra values may be nested about as deep as the parser allows.
    """
    for key, value in record.items():
        if type(key) is str and _plain(key):
            # the common case, without the stack: a plain scalar under a plain key
            if value is None or type(value) in _PLAIN_SCALARS:
                continue
            if type(value) is str and _plain(value):
                continue
            if type(value) is list and all(type(item) is str and _plain(item) for item in value):
                continue  # a list of plain strings (hashtags, image paths)
        stack = [key, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not _plain(item):
                    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")
            elif isinstance(item, Mapping):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
    return None


def _plain(text: str) -> bool:
    """``text`` holds no lone surrogate."""
    return text.isascii() or not _SURROGATE.search(text)


def has_lone_surrogate(text: str) -> bool:
    """``text`` holds a lone surrogate: not Unicode, and no writer can encode it (readers and the API refuse it)."""
    return not _plain(text)


def is_missing(value: Any) -> bool:
    """No value: None, or the NaN that pandas puts in an empty cell of an object column."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def _opt_id(value: Any, key: str, bad) -> str | None:
    """Ids may come as strings or integers (JSON numbers, CSV cells); anything else is an error."""
    if type(value) is str:  # the common case, first
        return value or None
    if is_missing(value) or value == "":
        return None
    if isinstance(value, bool):  # a JSON true is no id (and would become "1" below: bool is an int)
        raise bad(key, f"must be a string, got {_show(value)}")
    if not isinstance(value, (str, int)):
        # Parquet/pandas may hand over numpy integers; accept any integral number.
        if isinstance(value, Integral):
            return str(int(value))
        if isinstance(value, Real) and float(value).is_integer():
            return str(int(float(value)))
        raise bad(key, f"must be a string, got {_show(value)}")
    return str(value)


def _string_list(value: Any, key: str, bad, allow_scalar: bool = False) -> list[str]:
    if type(value) is list and all(type(item) is str for item in value):  # the common case, first
        return [item for item in value if item]
    if is_missing(value):
        return []
    if isinstance(value, str):
        if allow_scalar:
            return [value] if value else []
        raise bad(key, f"must be a list of strings, got {_show(value)}")
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy arrays from Parquet
    if not isinstance(value, (list, tuple)):
        raise bad(key, f"must be a list of strings, got {_show(value)}")
    for item in value:
        if not isinstance(item, str):
            raise bad(key, f"must contain only strings, got {_show(item)}")
    return [item for item in value if item]


#: A coordinate given as text: plain ASCII decimal notation, as every export writes numbers.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


#: Longest image vector accepted (the largest backbone gives 4,096 numbers).
MAX_IMAGE_VECTOR = 65_536


def image_vector(value: Any, bad) -> list[float]:
    """A precomputed image vector: a flat list of finite numbers, else ``bad("image_vector", ...)``.

    NaN or infinite entries would make every probability NaN (and the JSON output invalid);
    strings and nested lists would fail deep inside a model without naming the record.
    """
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy arrays from Parquet
    if not isinstance(value, (list, tuple)) or not value:
        raise bad(IMAGE_VECTOR_KEY, f"must be a non-empty list of numbers, got {_show(value)}")
    if len(value) > MAX_IMAGE_VECTOR:
        raise bad(IMAGE_VECTOR_KEY, f"has {len(value):,} numbers; at most {MAX_IMAGE_VECTOR:,} are accepted")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, Real):
            raise bad(IMAGE_VECTOR_KEY, f"must contain only numbers, got {_show(item)}")
        try:
            number = float(item)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or abs(number) > 3.4e38:  # beyond float32: infinite once stored
            raise bad(IMAGE_VECTOR_KEY, f"must contain only finite numbers, got {_show(item)}")
        numbers.append(number)
    return numbers


def _coordinate(value: Any, key: str, limit: float, bad) -> float | None:
    if type(value) is float and -limit <= value <= limit:  # the common case, first (NaN fails the test)
        return value
    if is_missing(value) or value == "":
        return None
    number: float | None = None
    # Decimal: Parquet decimal columns; it is no numbers.Real. An int too large for a float
    # (JSON allows any length) and a signalling NaN cannot be converted: out of range, not a crash.
    # Text must be plain decimal: float() would also read "5_1", Arabic-Indic digits and "inf".
    plain = not isinstance(value, str) or _PLAIN_DECIMAL.fullmatch(value.strip()) is not None
    if plain and isinstance(value, (Real, Decimal, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            number = None
    if number is None or not math.isfinite(number) or not -limit <= number <= limit:
        raise bad(key, f"must be a number in [{-limit:g}, {limit:g}], got {_show(value)}")
    return number


#: Unix times at or above this magnitude are milliseconds: as seconds they would be after the
#: year 5138, as milliseconds they are after 3 March 1973 (every social-media post is).
UNIX_MS_THRESHOLD = 100_000_000_000
_UNIX_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
#: Twitter's ``created_at``: ``Wed Feb 25 00:26:16 +0000 2015`` (English names whatever the locale).
_TWITTER = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<month>[A-Z][a-z]{2}) (?P<day>[0-9]{1,2}) "
    r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2}) (?P<offset>[+-][0-9]{4}) (?P<year>[0-9]{4})"
)
_MONTHS = {
    m: i
    for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1)
}
#: No comma in it: a report counts problems by the text before the first comma.
CREATED_FORMATS = "ISO-8601 / Unix seconds or milliseconds / RFC 2822 / Twitter's created_at"


def _created(value: Any, bad, warn=None) -> str | None:
    """Posting time normalised to ISO-8601 (``datetime.isoformat``), or None.

    Accepted: ISO-8601 (offsets and ``Z`` kept as offsets; a time without offset stays without),
    Unix time as a number or a digit string (UTC; milliseconds when ``abs(value) >=``
    :data:`UNIX_MS_THRESHOLD`), RFC 2822 (``Wed, 25 Feb 2015 00:26:16 +0000``) and Twitter's
    ``Wed Feb 25 00:26:16 +0000 2015``. No model needs the time, so a value that is none of these
    never spoils the post: ``warn`` gets the problem (a :class:`BadInputError`) and the post keeps
    no ``created``.
    """
    if is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _parse_created(value)
    except (ValueError, TypeError, OverflowError, OSError) as error:
        known = str(error).startswith("is not")  # ours; anything else a parser raised is the same verdict
        problem = str(error) if known else f"is not a date in a known form ({CREATED_FORMATS})"
        if warn is not None:
            warn(bad("created", f"{problem}, got {_show(value)}"))
        return None


def _parse_created(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError(f"is not a date in a known form ({CREATED_FORMATS})")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and _UNIX_TEXT.fullmatch(value.strip()):
        value = float(value.strip()) if "." in value else int(value.strip())
    if isinstance(value, (Real, Decimal)):
        try:
            seconds = float(value)
            if abs(seconds) >= UNIX_MS_THRESHOLD:
                seconds /= 1000.0
            return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise ValueError("is not a valid Unix time") from None
    if not isinstance(value, str):
        raise ValueError(f"is not a date in a known form ({CREATED_FORMATS})")
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
    except ValueError:
        pass
    twitter = _TWITTER.fullmatch(text)
    if twitter and twitter["month"] in _MONTHS:
        iso = (
            f"{twitter['year']}-{_MONTHS[twitter['month']]:02d}-{int(twitter['day']):02d}"
            f"T{twitter['time']}{twitter['offset']}"
        )
        try:
            return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S%z").isoformat()
        except ValueError:
            raise ValueError(f"is not a date in a known form ({CREATED_FORMATS})") from None
    try:  # RFC 2822: "Wed, 25 Feb 2015 00:26:16 +0000" (a "-0000" zone gives a time without offset)
        return parsedate_to_datetime(text).isoformat()
    except (ValueError, TypeError, IndexError):
        pass
    raise ValueError(f"is not a date in a known form ({CREATED_FORMATS})")


def _relative(path: str, base: str | Path | None) -> str:
    if base is None:
        return path
    try:
        return str(Path(path).relative_to(Path(base).resolve()))
    except ValueError:
        return path
