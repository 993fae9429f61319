"""What data becomes in the three kinds of text postloc writes for people: Markdown, terminals, CSV.

POI ids and names, file names, tokens and error messages come from input files that anyone may
have written. Put raw into a Markdown report they can break a table (``|``, a newline), inject
HTML (``<img onerror=...>``) or a link; printed raw to a terminal an ESC or BEL sequence can
recolour, retitle or rewrite what the user sees (a forged ``skipped none`` line); opened in a
spreadsheet a cell starting with ``=`` runs a formula. Each helper here makes a value inert in one
of those places and leaves ordinary text (``P1``, ``Frauenkirche``, ``flickr_dresden.csv``)
byte-for-byte as it was, so reports of ordinary data do not change.

Every writer and printer of data uses these, never its own escaping (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

#: bidirectional-text controls: they reorder what a terminal or a renderer shows ("Trojan source")
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: characters that end a line somewhere (a terminal, CommonMark, Unicode-aware viewers)
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
#: Markdown punctuation that starts or ends an inline construct anywhere in a line
_MD_BACKSLASH = frozenset("\\`*[]|~")
_MD_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
#: the first characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection")
CSV_TRIGGERS = frozenset("=+-@\t\r")


def is_unsafe_char(char: str) -> bool:
    """A C0/C1 control, DEL, a bidi control or a line/paragraph separator: never shown raw."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or char in BIDI or char in ("\u2028", "\u2029")


def escape_char(char: str) -> str:
    """``\\xNN`` for a control below U+0100, ``\\uNNNN`` for the rest (how Python's ``repr`` writes them)."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def term(value: Any) -> str:
    """``value`` as text safe to print on one terminal line: every control, newline included, and
    every bidi control is written as ``\\xNN`` / ``\\uNNNN``; everything else is left as it is."""
    text = str(value)
    if not any(is_unsafe_char(c) for c in text):
        return text
    return "".join(escape_char(c) if is_unsafe_char(c) else c for c in text)


def term_lines(text: Any) -> str:
    """``text`` of several lines made safe to print: like :func:`term` on each line, keeping only the
    ``\\n`` that ends each line. Build the lines from values already passed through :func:`term` when a
    value could hold a newline of its own (else it would start a line of its own here)."""
    return "\n".join(term(line) for line in str(text).split("\n"))


def term_skip_summary(report: Any) -> str:
    """A reader's ``SkipReport`` summary safe to print: its reasons and quoted examples (bad values, file
    names) escaped one by one with :func:`term` before the lines are built, so a newline inside a bad value
    cannot start a line of its own ("read 5 posts, skipped none") and no escape sequence reaches the terminal."""

    def escaped(counts: Counter) -> Counter:
        out: Counter = Counter()
        for reason, count in counts.items():
            out[term(reason)] += count
        return out

    safe = dataclasses.replace(
        report,
        reasons=escaped(report.reasons),
        examples=[term(e) for e in report.examples],
        warnings=escaped(report.warnings),
        warning_examples=[term(e) for e in report.warning_examples],
    )
    return term_lines(safe.summary())


def md_text(value: Any) -> str:
    """``value`` as Markdown text that renders as exactly that text, in a table cell or in prose.

    Newlines become spaces (a cell is one line); ``< > &`` become HTML entities (no raw HTML, no
    entity smuggling); ``\\ ` * [ ] | ~`` get a backslash (no code span, emphasis, link, image, cell
    break or strike-through); ``_`` gets one only where it could open or close emphasis (not between
    two letters or digits: ``flickr_dresden`` stays as it is); controls and bidi marks are written as
    ``\\xNN``/``\\uNNNN`` as on a terminal. ``#``, ``-``, ``+``, ``>`` and digits only mean something at
    the start of a line, and the writers never start a line with data.
    """
    text = str(value)
    out = []
    for i, char in enumerate(text):
        if char in LINE_BREAKS:
            out.append(" ")
        elif char in _MD_HTML:
            out.append(_MD_HTML[char])
        elif char in _MD_BACKSLASH:
            out.append("\\" + char)
        elif char == "_":
            inside_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            out.append("_" if inside_word else "\\_")
        elif is_unsafe_char(char):
            out.append(escape_char(char))
        else:
            out.append(char)
    return "".join(out)


def md_code(value: Any) -> str:
    """``value`` as a Markdown code span: fenced with one more backtick than its longest run of backticks,
    padded with a space where CommonMark would otherwise eat or join a backtick or a space at an edge.
    Newlines become spaces and controls are escaped as in :func:`md_text`; nothing else needs escaping
    inside a code span (not for use inside a table cell, where ``|`` still splits the cell)."""
    text = "".join(" " if c in LINE_BREAKS else escape_char(c) if is_unsafe_char(c) else c for c in str(value))
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = bool(text.strip(" ")) and (
        text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" "))
    )
    space = " " if pad else ""
    return f"{fence}{space}{text}{space}{fence}"


def csv_guard(value: Any) -> Any:
    """A text cell a spreadsheet will not run as a formula: a leading ``'`` when the text starts with
    ``= + - @ TAB CR`` (after any leading ``'``, so that :func:`csv_unguard` undoes exactly this).
    Non-text values (numbers, missing values) pass through: ``-3.5`` stays a number."""
    if isinstance(value, str) and value.lstrip("'")[:1] in CSV_TRIGGERS:
        return "'" + value
    return value


def csv_unguard(value: Any) -> Any:
    """The text :func:`csv_guard` was given, from what it wrote; text it would not have guarded is kept."""
    if isinstance(value, str) and value.startswith("'") and value.lstrip("'")[:1] in CSV_TRIGGERS:
        return value[1:]
    return value


#: the columns of a POI table that hold data as text (``poi`` ids, ``name``s); the rest are numbers
POI_TEXT_COLUMNS = ("poi", "name")
#: the text column of a prepared folder's ``hashtags.csv``: a given (not caption-extracted) tag keeps a leading ``=``
HASHTAG_TEXT_COLUMNS = ("hashtag",)


def csv_guard_columns(frame: Any, columns: tuple[str, ...] = POI_TEXT_COLUMNS) -> Any:
    """A copy of the DataFrame ``frame`` with :func:`csv_guard` on those of ``columns`` it has."""
    return frame.assign(**{column: frame[column].map(csv_guard) for column in columns if column in frame})


def csv_unguard_columns(frame: Any, columns: tuple[str, ...] = POI_TEXT_COLUMNS) -> Any:
    """A copy of the DataFrame ``frame`` with :func:`csv_unguard` on those of ``columns`` it has: what a
    file written through :func:`csv_guard_columns` held before."""
    return frame.assign(**{column: frame[column].map(csv_unguard) for column in columns if column in frame})
