"""A request's post, read from its body: JSON or multipart, strictly, and cheaply for whatever it holds.

Every body is bounded before it is parsed and counted before it is validated, because a body of a
valid size can still be ruinous: 6 MB of ``{"hashtags": [{}, {}, ...]}`` used to make pydantic build
two million errors (26 s with the event loop blocked, 2.3 GB), only for five to be shown. So:

* a JSON body, and a multipart text field, may not exceed :meth:`Limits.max_post_bytes` (413), which
  is what the longest valid post can need; only a photo may use the rest of ``max_body_bytes``;
* keys, list lengths and item types are checked on the raw data (:func:`precheck`) before the pydantic
  model sees it, so its errors are few;
* decoding and validation run in a worker thread, never on the event loop;
* text must be valid UTF-8 in JSON and in form fields alike (Starlette's form parser falls back to
  Latin-1; :class:`StrictMultiPartParser` does not).
"""

from __future__ import annotations

import json
import re
from itertools import islice
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser
from starlette.requests import Request

from postloc.serve.errors import CLOSE, ApiError, BodyTooLarge
from postloc.serve.limits import Limits
from postloc.serve.schemas import PredictRequest

FORM_FIELDS = {"text", "hashtags", "top_k", "explain", "min_confidence", "photo"}
#: errors shown to the client; the rest are counted, not built
SHOWN_ERRORS = 5
_TAG = re.compile(r"[^\s,]+")


async def parse(request: Request, limits: Limits) -> tuple[PredictRequest, bytes | None]:
    """The request's post and photo bytes; JSON and multipart are parsed here, strictly."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        raw = await read_bounded(request, limits.max_post_bytes())
        return await run_in_threadpool(decode_json, raw, limits), None
    if ctype == "multipart/form-data":
        return await parse_form(request, limits)
    if not ctype:
        raise ApiError(
            415 if int(request.headers.get("content-length") or 0) else 400,
            "missing Content-Type; send application/json or multipart/form-data",
        )
    raise ApiError(415, f"unsupported Content-Type {ctype[:60]!r}; send application/json or multipart/form-data")


async def read_bounded(request: Request, limit: int) -> bytes:
    """The whole body, refused (413, connection closed) as soon as it is known to pass ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, _json_too_large(f"of {int(declared)} bytes ", limit), CLOSE)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, _json_too_large("", limit), CLOSE)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_too_large(size: str, limit: int) -> str:
    return (
        f"JSON body {size}exceeds the limit of {limit} bytes for a post (a photo goes in a multipart/form-data upload)"
    )


def decode_json(raw: bytes, limits: Limits) -> PredictRequest:
    """Bytes to a checked :class:`PredictRequest` (run in a worker thread: this is the costly part)."""
    if not raw.strip():
        raise ApiError(400, 'empty request body; send a JSON object like {"text": "..."}')
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"request body is not valid JSON ({error.msg} at position {error.pos})") from None
    except (ValueError, RecursionError) as error:  # nesting past the recursion limit, integers over 4300 digits
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error).split(";")[0]
        raise ApiError(400, f"request body is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise ApiError(422, "request body must be a JSON object")
    precheck(data, limits)
    return validate(data, strict=True)


def precheck(data: dict[str, Any], limits: Limits) -> None:
    """Unknown keys, sizes and item types on the raw data, so that pydantic never meets more than a
    post's worth of it (its errors are built in full, one per bad item, before any is shown)."""
    unknown = [k for k in data if k not in PredictRequest.model_fields]
    if unknown:
        raise ApiError(422, _unknown_fields(unknown, sorted(PredictRequest.model_fields)))
    problems = []
    text = data.get("text", "")
    if not isinstance(text, str):
        problems.append("text: must be a string")
    elif len(text) > limits.max_text_chars:
        raise ApiError(422, f"text has {len(text)} characters; the limit is {limits.max_text_chars}")
    tags = data.get("hashtags", [])
    if not isinstance(tags, list):
        problems.append(f"hashtags: must be a list of strings, not {_kind(tags)}")
    elif len(tags) > limits.max_hashtags:
        raise ApiError(422, f"{len(tags)} hashtags; the limit is {limits.max_hashtags}")
    else:
        bad = next((i for i, t in enumerate(tags) if not isinstance(t, str)), None)
        if bad is not None:
            problems.append(f"hashtags: must be a list of strings (item {bad} is {_kind(tags[bad])})")
    if problems:
        raise ApiError(422, "; ".join(problems))


def _unknown_fields(unknown: list[str], expected: list[str], what: str = "field(s)") -> str:
    shown = ", ".join(repr(str(u)[:40]) for u in unknown[:SHOWN_ERRORS])
    more = f" and {len(unknown) - SHOWN_ERRORS} more" if len(unknown) > SHOWN_ERRORS else ""
    return f"unknown {what} {shown}{more}; expected {', '.join(expected)}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def validate(data: dict[str, Any], *, strict: bool) -> PredictRequest:
    """JSON is typed, so it is checked strictly (``"top_k": "3"`` or ``"explain": "yes"`` is a 422, not
    coerced); form fields are always text, so there ``"3"`` and ``"true"`` are read as a number and a flag."""
    try:
        return PredictRequest.model_validate(data, strict=strict)
    except ValidationError as error:
        raise ApiError(422, validation_message(error.errors(include_url=False, include_input=False))) from None


def validation_message(errors) -> str:
    parts = []
    for e in list(errors)[:SHOWN_ERRORS]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class FieldTooLarge(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class FieldNotUtf8(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class StrictMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, with text fields decoded strictly (its own falls back to Latin-1, so
    invalid UTF-8 passed as text) and each text field bounded with an error naming it."""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None and len(part.data) + (end - start) > self.max_part_size:
            raise FieldTooLarge(part.field_name)
        super().on_part_data(data, start, end)

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is not None:
            return super().on_part_end()
        try:
            value = bytes(part.data).decode(self._charset or "utf-8")
        except UnicodeDecodeError:
            raise FieldNotUtf8(part.field_name) from None
        self.items.append((part.field_name, value))


async def parse_form(request: Request, limits: Limits) -> tuple[PredictRequest, bytes | None]:
    field_limit = limits.max_post_bytes()
    parser = StrictMultiPartParser(
        request.headers, request.stream(), max_files=1, max_fields=len(FORM_FIELDS), max_part_size=field_limit
    )
    try:
        form = await parser.parse()
    except BodyTooLarge:
        raise
    except FieldTooLarge as error:
        raise ApiError(413, f"form field {error.name[:40]!r} exceeds {field_limit} bytes", CLOSE) from None
    except FieldNotUtf8 as error:
        raise ApiError(400, f"form field {error.name[:40]!r} is not valid UTF-8") from None
    except Exception as error:  # noqa: BLE001 - MultiPartException, malformed boundaries, ...
        detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error)
        raise ApiError(400, f"malformed multipart body: {str(detail)[:200]}") from None
    try:
        unknown = sorted(set(form.keys()) - FORM_FIELDS)
        if unknown:
            raise ApiError(422, _unknown_fields(unknown, sorted(FORM_FIELDS), "form field(s)"))
        data: dict[str, Any] = {}
        for key in ("text", "top_k", "explain", "min_confidence", "hashtags"):
            value = form.get(key)
            if isinstance(value, UploadFile):
                raise ApiError(422, f"form field {key!r} must be text, not a file")
            if value is not None:
                data[key] = value
        if data.get("hashtags") is not None:
            data["hashtags"] = split_tags(data["hashtags"], limits.max_hashtags)
        else:
            data.pop("hashtags", None)
        content = await _photo_bytes(form.get("photo"))
    finally:
        await form.close()
    return await run_in_threadpool(validate, data, strict=False), content


def split_tags(field: str, limit: int) -> list[str]:
    """Space/comma separated tags, at most ``limit`` of them (422 past it): never a list of millions."""
    tags = [m.group() for m in islice(_TAG.finditer(field), limit + 1)]
    if len(tags) > limit:
        raise ApiError(422, f"more than {limit} hashtags; the limit is {limit}")
    return tags


async def _photo_bytes(photo: Any) -> bytes | None:
    if photo is None:
        return None
    if not isinstance(photo, UploadFile):
        raise ApiError(422, "form field 'photo' must be a file upload")
    content = await photo.read()  # already bounded: the body limit covers the whole request
    if not content:
        raise ApiError(400, "the uploaded photo is empty")
    return content
