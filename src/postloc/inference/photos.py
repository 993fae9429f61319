"""A photo's bytes before any model sees them: is it an image (by its magic bytes), is it small enough, decode it.

Batch prediction, explanations, the Ray engine and the server all take photos from outside
(files named by a post, uploads), so the checks live here, below the server: the server adds
its HTTP status codes (carried by :class:`ImageRejected`) and request limits, nothing more.
"""

from __future__ import annotations

import contextlib
import ctypes
import io

#: Pixels a photo may have (width * height) unless the caller sets its own limit (``postloc serve
#: --max-image-pixels``): the pixel count is read from the header and checked before decoding.
DEFAULT_MAX_PIXELS = 40_000_000

#: Memory one decoded photo may take (see :class:`postloc.vision.decode.DecodeConfig`).
DEFAULT_MAX_DECODED_BYTES = 128 * 1024 * 1024

# Magic bytes of the image formats Pillow decodes and phones produce. The declared content type
# and the file name are never trusted; only these bytes decide.
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def sniff_image(data: bytes) -> str | None:
    """The image MIME type from the first bytes, or ``None`` when they are no supported image."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class ImageRejected(Exception):
    """A photo that cannot be used; ``status`` is the HTTP code the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_upload(data: bytes, max_pixels: int, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> None:
    """Refuse a photo from its header alone (no pixel is decoded): unreadable, too many pixels, too wide.

    The decoded size only counts for formats that cannot be decoded at a reduced scale: a JPEG is
    drafted down to the backbone's size when it is decoded (:mod:`postloc.vision.decode`).
    """
    from PIL import Image

    from postloc.vision.decode import decoded_bytes

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            size = decoded_bytes(probe) if probe.format != "JPEG" else 0
    except Image.DecompressionBombError:  # over twice Pillow's own limit: still "too many pixels", not corrupt
        raise ImageRejected(
            413, f"the photo has more than {Image.MAX_IMAGE_PIXELS} pixels; the limit is {max_pixels} pixels"
        ) from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, OSError, SyntaxError...: the client's file
        raise ImageRejected(400, "the photo could not be decoded (corrupt or unsupported image)") from None
    if width * height > max_pixels:
        raise ImageRejected(413, f"the photo has {width}x{height} pixels; the limit is {max_pixels} pixels")
    if size > max_decoded_bytes:
        raise ImageRejected(
            413,
            f"the photo ({width}x{height}) would take {size / 2**20:.0f} MB decoded; the limit "
            f"is {max_decoded_bytes / 2**20:.0f} MB (send a JPEG or a smaller picture)",
        )


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it after a burst of large decodes)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def decode_upload(data: bytes, max_pixels: int, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES):
    """An RGB PIL image from upload bytes, checked from the header (:func:`check_upload`) before decoding."""
    from PIL import Image, ImageOps

    check_upload(data, max_pixels, max_decoded_bytes)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except Exception:  # noqa: BLE001 - any decoder failure is the client's corrupt file, not our bug
        raise ImageRejected(400, "the photo could not be decoded (corrupt or truncated image)") from None
