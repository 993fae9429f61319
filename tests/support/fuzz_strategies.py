"""Shared Hypothesis strategies and checks of the fuzz tests (tests/reliability/test_fuzz_*.py).

The invariant of every input surface (docs/reliability.md): *a clear error or a valid answer, never
a crash, a hang or a 500*. The helpers here say what "clear" and "valid" mean, so every fuzz test
asserts the same thing: a clear error is a :class:`postloc.errors.BadInputError` whose message
starts with the file (and the line, when the format has lines); a valid answer passes the project's
own validation again.
"""

from __future__ import annotations

import math
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from postloc.data.readers import read_posts
from postloc.data.schema import KNOWN_KEYS, Post
from postloc.errors import BadInputError


def budget(fraction: float) -> int:
    """Examples for a test whose cases are expensive: a share of the active profile's ``max_examples``.

    Tests set ``@settings(max_examples=budget(...))`` instead of a fixed number, so the long
    profile scales them too.
    """
    return max(2, int(settings.default.max_examples * fraction))


class Hang(AssertionError):
    """A fuzz case ran past its time limit: the surface hangs (or is quadratic) on this input."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail a case that runs longer than ``seconds`` (SIGALRM; a no-op outside the main thread).

    Hypothesis' deadline only reports a slow case after it finished; this stops a real hang.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):
        raise Hang(f"ran longer than {seconds} s")

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    if 0 < outer < seconds:  # nested inside a tighter limit: keep that one
        signal.setitimer(signal.ITIMER_REAL, outer)
        signal.signal(signal.SIGALRM, previous)
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if outer > 0:  # an enclosing limit keeps counting
                signal.setitimer(signal.ITIMER_REAL, max(0.001, outer - (time.monotonic() - start)))


# ---------------------------------------------------------------------------------------------- text

#: Characters that break naive text code: controls, NUL, bidi overrides (RTL), zero-width joiners and
#: spaces, the BOM, combining marks, a ligature, full-width letters, a flag and a ZWJ emoji sequence.
NASTY_CHARS = [
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\r",
    "\n",
    "\t",
    "\u0085",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u202d",
    "\u200f",
    "\u061c",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u0301",
    "\u0338",
    "\ufb01",
    "\uff4e\uff59\uff43",
    "#",
    "##",
    "&#",
    "'",
    "\u2019",
    "@",
    "\U0001f1e9\U0001f1ea",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f5fd\ufe0f",
    "\u05e9\u05dc\u05d5\u05dd",
    "\u0645\u0631\u062d\u0628\u0627",
    "\u1100\u1161",
    "\ufdfd",
    "\U000e0041",
    "\ud800",
    "\udfff",
]


def nasty_text(max_size: int = 60, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Any Unicode (lone surrogates too: JSON ``"\\ud800"`` escapes make them) mixed with NASTY_CHARS."""
    alphabet = st.characters(codec=None) if surrogates else st.characters(exclude_categories=["Cs"])
    pieces = st.one_of(
        st.text(alphabet, max_size=8),
        st.sampled_from(NASTY_CHARS if surrogates else [c for c in NASTY_CHARS if not _has_surrogate(c)]),
    )
    return st.lists(pieces, max_size=max_size // 4).map("".join)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@st.composite
def huge_text(draw, size: int = 1 << 20) -> str:
    """About ``size`` characters (1 MB by default) of a repeated nasty or plain unit: the 1 MB caption."""
    unit = draw(
        st.one_of(
            nasty_text(24, surrogates=False).filter(bool),
            st.sampled_from(
                ["word ", "#tag ", "\U0001f5fd", "#" * 7, "a" * 100, "\u202e#\u200bx ", "x'y\u2019z ", " \t\n"]
            ),
        )
    )
    return (unit * (size // len(unit) + 1))[:size]


# ------------------------------------------------------------------------------------ JSON and posts


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, with NaN/inf (Python's json writes them), huge integers and nasty strings."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**300, max_value=10**400),
        st.floats(allow_nan=True, allow_infinity=True),
        nasty_text(20, surrogates=False),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(nasty_text(10, surrogates=False), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


#: Coordinate values: valid, out of range, NaN/inf (as numbers and as strings), huge ints, wrong types.
COORDINATES = st.one_of(
    st.floats(min_value=-90, max_value=90),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            90.0000001,
            -180.5,
            1e308,
            10**400,
            "nan",
            "NaN",
            "inf",
            "-Infinity",
            "1e999",
            "",
            " ",
            "12,5",
            "0x10",
            True,
            None,
        ]
    ),
    st.integers(),
    st.text(max_size=8),
    st.lists(st.floats(), max_size=2),
)


def _field(valid: st.SearchStrategy, wild: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(valid, valid, wild)


def post_records(ids: st.SearchStrategy | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Exchange-format records, mostly plausible, each key sometimes absent and sometimes wild."""
    wild = json_values(4)
    return st.fixed_dictionaries(
        {"id": ids if ids is not None else _field(st.text("abc0123", min_size=1, max_size=6), wild)},
        optional={
            "text": _field(nasty_text(40), wild),
            "hashtags": _field(st.lists(nasty_text(12, surrogates=False), max_size=4), wild),
            "lat": COORDINATES,
            "lon": COORDINATES,
            "poi": _field(st.sampled_from(["p1", "p2", 7]), wild),
            "user": _field(st.sampled_from(["u1", "u2", 3]), wild),
            "created": _field(st.sampled_from(["2023-05-01T12:30:00Z", 1682944200, "yesterday", 1e20, -1e300]), wild),
            "image": _field(st.sampled_from(["a.jpg", ["a.jpg", "b.png"], "../x.jpg"]), wild),
            "extra_key": wild,
        },
    )


# ------------------------------------------------------------------------------------------ checks


def assert_clear_error(error: BaseException, path: Path, *, line_required: bool = False) -> None:
    """A clear error: a BadInputError whose message starts with the file (and line) it is about."""
    assert isinstance(error, BadInputError), f"{type(error).__name__}: {error}"
    message = str(error)
    assert error.source.startswith(str(path)), (message, path)
    assert message.startswith(error.source), message
    if line_required:
        assert error.line is not None and error.line >= 1, message
    if error.line is not None:
        assert message.startswith(f"{error.source}:{error.line}: "), message
    if error.key is not None:
        assert f'"{error.key}"' in message, message
    assert error.problem.strip(), message


def assert_valid_posts(posts: list[Post]) -> None:
    """Valid answer: every post passes validation again, coordinates are finite and in range, ids unique."""
    ids = [p.id for p in posts]
    assert len(ids) == len(set(ids)), "duplicate ids got through"
    for post in posts:
        assert isinstance(post.id, str) and post.id
        again = Post.from_record(post.to_record())
        assert again.id == post.id and again.text == post.text and again.hashtags == post.hashtags
        assert all(isinstance(h, str) and h and not h.startswith("#") for h in post.hashtags)
        if post.lat is not None and post.lon is not None:
            assert math.isfinite(post.lat) and math.isfinite(post.lon)
            assert -90 <= post.lat <= 90 and -180 <= post.lon <= 180
        else:
            assert post.lat is None and post.lon is None
    if posts:  # and the project's own writers take them (what `postloc prepare` does next)
        from postloc.data.writers import write_posts

        with tempfile.TemporaryDirectory() as scratch:
            for name in ("posts.jsonl", "posts.parquet"):
                assert write_posts(posts, Path(scratch) / name) == len(posts)
                assert [p.id for p in read_posts(Path(scratch) / name)] == [p.id for p in posts]


def expected_problem(record: Any) -> str | None:
    """The key :meth:`Post.from_record` should complain about, or None when the record is valid."""
    try:
        Post.from_record(record)
    except BadInputError as error:
        return error.key or ""
    return None


__all__ = [
    "COORDINATES",
    "Hang",
    "KNOWN_KEYS",
    "NASTY_CHARS",
    "assert_clear_error",
    "assert_valid_posts",
    "budget",
    "expected_problem",
    "huge_text",
    "json_values",
    "nasty_text",
    "post_records",
    "time_limit",
]
