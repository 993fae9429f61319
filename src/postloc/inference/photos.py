"""A photo's bytes before any model sees them: is it an image (by its magic bytes), is it small enough, decode it.

Batch prediction, explanations, the Ray engine and the server all take photos from outside
(files named by a post, uploads), so the checks live here, below the server: the server adds
its HTTP status codes (carried by :class:`ImageRejected`) and request limits, nothing more.
"""

from __future__ import annotations

import io

#: Pixels a photo may have (width * height) unless the caller sets its own limit (``postloc serve
#: --max-image-pixels``): the pixel count is read from the header and checked before decoding.
DEFAULT_MAX_PIXELS = 40_000_000

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


def decode_upload(data: bytes, max_pixels: int):
    """An RGB PIL image from upload bytes, checking the pixel count from the header before decoding."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:  # over twice Pillow's own limit: still "too many pixels", not corrupt
        raise ImageRejected(413, f"the photo has more than {Image.MAX_IMAGE_PIXELS} pixels; "
                                 f"the limit is {max_pixels} pixels") from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, OSError, SyntaxError...: the client's file
        raise ImageRejected(400, "the photo could not be decoded (corrupt or unsupported image)") from None
    if width * height > max_pixels:
        raise ImageRejected(413, f"the photo has {width}x{height} pixels; the limit is {max_pixels} pixels")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except Exception:  # noqa: BLE001 - any decoder failure is the client's corrupt file, not our bug
        raise ImageRejected(400, "the photo could not be decoded (corrupt or truncated image)") from None
