"""Turning an image file into an RGB picture, or into a clear per-image status; never an exception.

Social-media dumps hold every kind of file: truncated downloads, zero-byte placeholders, HTML
error pages saved as ``.jpg``, CMYK JPEGs, PNGs with alpha, animated GIFs, phone photos whose
orientation lives in EXIF, and now and then a decompression bomb. Each gets a status from
:data:`FAILURES` (the image is skipped) or a note (the image is used after a conversion), so one bad
file never stops a batch of 100,000 and the summary says what happened.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from postloc.settings import setting, setting_error

OK = "ok"
MISSING = "missing"
ZERO_BYTE = "zero_byte"
UNREADABLE = "unreadable"
NOT_IMAGE = "not_image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
TOO_LARGE = "too_large"
#: Statuses of files that cannot be used at all.
FAILURES = (MISSING, ZERO_BYTE, UNREADABLE, NOT_IMAGE, TRUNCATED, CORRUPT, TOO_LARGE)


@dataclass(frozen=True)
class DecodeConfig:
    """Limits of the decoder.

    ``max_pixels`` guards against decompression bombs (Pillow's own default is 89 M pixels and
    only warns below twice that); ``max_bytes`` against absurd files; ``max_decoded_bytes`` against
    pictures whose pixels are few enough but wide (a 40 MP 16-bit RGBA PNG decodes to ~320 MB); ``draft_side`` lets JPEG
    decode at 1/2, 1/4 or 1/8 scale when the photo is much larger than needed (a 12 MP phone
    photo decodes 4-8x faster and every later step sees at least this many pixels on the short side).
    """

    max_pixels: int = setting(64_000_000, help="larger images are refused as decompression bombs (default %(default)s)")
    max_bytes: int = 64 * 1024 * 1024
    #: None: full size (``--draft-side 0``)
    draft_side: int | None = setting(
        640,
        help="JPEGs whose short side is at least twice this are decoded at 1/2, 1/4 or 1/8 scale, keeping at "
        "least this many pixels (default %(default)s; 256 is the least a 224 crop needs: large photos decode "
        "several times faster, features change slightly, see docs/images.md; 0 = full size)",
    )
    #: memory the decoded picture may take (after JPEG draft scaling); formats that cannot decode at
    #: a reduced scale (PNG, WebP, ...) are refused past it instead of costing hundreds of MB each
    max_decoded_bytes: int = 128 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.draft_side is not None and (isinstance(self.draft_side, bool) or self.draft_side < 1):
            raise setting_error(self, "draft_side", "must be 0 (full size) or a number of pixels", self.draft_side)

    def key(self) -> str:
        return f"draft{self.draft_side}"


@dataclass
class Decoded:
    """Result of :func:`decode_image`: ``image`` is RGB when ``status == "ok"``, else ``None``."""

    status: str
    image: Image.Image | None = None
    note: str = ""
    width: int = 0  # of the stored picture (before draft scaling), 0 when unknown
    height: int = 0
    sha256: str = ""  # of the file's bytes: the cache key of everything computed from it


def read_bytes(path: str | Path, config: DecodeConfig = DecodeConfig()) -> tuple[bytes | None, Decoded | None]:
    """The file's content, or a failed :class:`Decoded` (missing, unreadable, empty, too large).

    The one reader of photo files for training and prediction alike. A post names its photos, so a
    path may point anywhere: only a regular file is read, and never more than ``max_bytes``. The
    file is opened without blocking and checked on the open descriptor, so a FIFO (which would
    wait forever for a writer), a device (``/dev/zero`` never ends) or a file swapped for one
    after a check is refused, not read.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None, Decoded(MISSING, note="file not found")
    except OSError as error:
        return None, Decoded(UNREADABLE, note=str(error))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, Decoded(UNREADABLE, note="not a regular file")
        if info.st_size > config.max_bytes:
            return None, Decoded(TOO_LARGE, note=f"{info.st_size} bytes > max_bytes {config.max_bytes}")
        chunks, size = [], 0
        while size <= config.max_bytes:  # the file may grow after fstat: read at most one byte past the cap
            chunk = os.read(fd, min(1 << 20, config.max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        return None, Decoded(UNREADABLE, note=str(error))
    finally:
        os.close(fd)
    if size > config.max_bytes:
        return None, Decoded(TOO_LARGE, note=f"more than max_bytes {config.max_bytes} bytes")
    if size == 0:
        return None, Decoded(ZERO_BYTE, note="empty file", sha256=hashlib.sha256(b"").hexdigest())
    return b"".join(chunks), None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(source: str | Path | bytes, config: DecodeConfig = DecodeConfig()) -> Decoded:
    """Decode a file (path) or its bytes into an RGB image, or a failure status; never raises for bad data."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if not data:
            return Decoded(ZERO_BYTE, note="empty file", sha256=content_hash(data))
    else:
        read, failed = read_bytes(source, config)
        if failed is not None:
            return failed
        assert read is not None  # read_bytes gives either the bytes or a failure
        data = read
    digest = content_hash(data)
    result = _decode(data, config)
    result.sha256 = digest
    return result


def _decode(data: bytes, config: DecodeConfig) -> Decoded:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = config.max_pixels
            try:
                image: Image.Image = Image.open(io.BytesIO(data))
                width, height = image.size
                if width * height > config.max_pixels:
                    return Decoded(
                        TOO_LARGE,
                        note=f"{width}x{height} pixels > max_pixels {config.max_pixels}",
                        width=width,
                        height=height,
                    )
                frames = getattr(image, "n_frames", 1)
                if frames > 1:
                    image.seek(0)
                    notes.append(f"animated ({frames} frames): first frame used")
                if config.draft_side and image.format == "JPEG":
                    short = config.draft_side
                    scale = min(width, height) / short
                    if scale >= 2:
                        image.draft("RGB", (max(1, int(width / scale)), max(1, int(height / scale))))
                        notes.append(f"decoded at reduced scale {image.size[0]}x{image.size[1]}")
                size = decoded_bytes(image)
                if size > config.max_decoded_bytes:
                    return Decoded(
                        TOO_LARGE,
                        note=f"{image.size[0]}x{image.size[1]} {image.mode} decodes to "
                        f"{size / 2**20:.0f} MB > max_decoded_bytes "
                        f"{config.max_decoded_bytes / 2**20:.0f} MB",
                        width=width,
                        height=height,
                    )
                image.load()
                image = _apply_exif(image, notes)
                rgb = _to_rgb(image, notes)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return Decoded(TOO_LARGE, note=f"decompression bomb guard: {error}")
    except UnidentifiedImageError:
        return Decoded(NOT_IMAGE, note=_sniff(data))
    except OSError as error:
        text = str(error)
        status = TRUNCATED if "truncated" in text.lower() or "premature end" in text.lower() else CORRUPT
        return Decoded(status, note=text[:200])
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error) as error:
        return Decoded(CORRUPT, note=f"{type(error).__name__}: {str(error)[:200]}")
    except MemoryError:
        return Decoded(TOO_LARGE, note="out of memory while decoding")
    except Exception as error:  # noqa: BLE001 - Pillow's plugins also raise NotImplementedError, KeyError...
        return Decoded(CORRUPT, note=f"{type(error).__name__}: {str(error)[:200]}")
    return Decoded(OK, image=rgb, note="; ".join(notes), width=width, height=height)


def decoded_bytes(image: Image.Image) -> int:
    """Memory Pillow needs to hold ``image`` decoded (at its current, possibly drafted, size).

    Pillow keeps 1 byte per pixel for ``1``/``L``/``P``, 2 for 16-bit greyscale and 4 for every
    other mode (RGB included); the RGB copy made afterwards costs as much again.
    """
    mode = image.mode
    per_pixel = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return image.size[0] * image.size[1] * per_pixel


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """RGB for every mode; transparency is composited on white (how apps show such images)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if (
        mode in ("RGBA", "LA", "PA")
        or (mode == "P" and "transparency" in image.info)
        or (mode in ("L", "RGB") and "transparency" in image.info)
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"{mode} with alpha composited on white")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        notes.append(f"{mode} scaled to 8 bits")
        return Image.fromarray((array / top * 255).clip(0, 255).astype("uint8")).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode not in ("L", "P", "1"):
        notes.append(f"{mode} converted to RGB")
    return image.convert("RGB")


def _apply_exif(image: Image.Image, notes: list[str]) -> Image.Image:
    """Phones store the photo sideways plus an EXIF Orientation tag: apply it so skylines are horizontal."""
    try:
        orientation = image.getexif().get(0x0112, 1)
        if orientation in (None, 1):
            return image
        turned = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture
        notes.append("EXIF unreadable, orientation ignored")
        return image
    notes.append(f"EXIF orientation {orientation} applied")
    return turned


def _sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page, not an image"
    if head.startswith(b"{") or head.startswith(b"["):
        return "JSON text, not an image"
    if data[4:8] == b"ftyp":
        return "a video (MP4/MOV), not an image"
    return "not a format Pillow can read"
