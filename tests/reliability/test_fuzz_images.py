"""Fuzz the image decoder path: any bytes give a status or an RGB picture, never an exception or a hang.

Two decoders face untrusted files: :func:`postloc.vision.decode.decode_image` (photos of a data set;
a per-image status, never raises) and :func:`postloc.inference.photos.decode_upload` (HTTP uploads;
an RGB image or :class:`ImageRejected` with 400/413). Inputs: random bytes, real images of every
mode in every format Pillow writes, truncated, bit-flipped, and decompression bombs whose header
claims far more pixels than the limit.
"""

from __future__ import annotations

import contextlib
import io
import random
import struct
import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from fuzz_strategies import budget, time_limit
from postloc.inference.photos import ImageRejected, decode_upload
from postloc.vision.decode import FAILURES, OK, TOO_LARGE, DecodeConfig, Decoded, decode_image

# Pillow warns about garbage it still reads (corrupt EXIF, deprecated IM format, bombs under 2x its limit).
pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

MODES = [
    "1",
    "L",
    "P",
    "RGB",
    "RGBA",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "F",
    "I;16",
    "I;16B",
    "LA",
    "PA",
    "La",
    "RGBa",
    "RGBX",
]
FORMATS = ["PNG", "TIFF", "JPEG", "BMP", "GIF", "WEBP", "PPM", "ICO", "TGA", "PCX", "SGI", "IM", "QOI", "DDS"]


def encode(mode: str, size: tuple[int, int], fmt: str, seed: int = 0) -> bytes | None:
    """A real image of ``mode`` saved as ``fmt``, or None when Pillow cannot save that combination."""
    image = Image.new(mode, size)
    if mode not in ("I;16", "I;16B"):
        # deterministic noise (Image.effect_noise is not): Hypothesis replays must see the same bytes
        noise = Image.frombytes("L", size, random.Random(seed).randbytes(size[0] * size[1]))
        with contextlib.suppress(ValueError, OSError):
            image.paste(noise.convert(mode) if mode not in ("P", "PA") else noise.convert("L").convert(mode))
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return buffer.getvalue()


@st.composite
def image_bytes(draw) -> bytes:
    """Real images of odd modes and formats, then maybe truncated, bit-flipped or spliced; or noise."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    data = None
    while data is None:
        data = encode(
            draw(st.sampled_from(MODES)),
            (draw(st.integers(1, 40)), draw(st.integers(1, 40))),
            draw(st.sampled_from(FORMATS)),
            draw(st.integers(0, 1000)),
        )
    mangle = draw(st.sampled_from(["none", "truncate", "flip", "splice", "all"]))
    if mangle in ("truncate", "all"):
        data = data[: draw(st.integers(0, len(data)))]
    if mangle in ("flip", "all") and data:
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if mangle in ("splice", "all"):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    return data


def assert_decoded(result: Decoded, config: DecodeConfig) -> None:
    """A status the batch summary knows; OK means a usable RGB picture within the pixel limit."""
    assert isinstance(result, Decoded)
    assert result.status in FAILURES + (OK,), result.status
    assert isinstance(result.note, str) and len(result.sha256) in (0, 64)
    if result.status == OK:
        assert result.image is not None and result.image.mode == "RGB"
        assert result.image.width >= 1 and result.image.height >= 1
        assert result.width * result.height <= config.max_pixels
        result.image.tobytes()  # fully decoded, usable
    else:
        assert result.image is None and result.note


def assert_upload(data: bytes, max_pixels: int) -> None:
    try:
        image = decode_upload(data, max_pixels)
    except ImageRejected as error:
        assert error.status in (400, 413) and error.message
        return
    assert image.mode == "RGB" and image.width * image.height <= max_pixels


@given(data=image_bytes(), max_pixels=st.sampled_from([64_000_000, 400, 10_000]))
@example(data=b"\xff\xd8\xff", max_pixels=64_000_000)
def test_any_bytes_decode_to_a_status_or_rgb(data, max_pixels):
    config = DecodeConfig(max_pixels=max_pixels)
    with time_limit(15):
        assert_decoded(decode_image(data, config), config)
        assert_upload(data, max_pixels)


@settings(max_examples=budget(1.0))
@given(mode=st.sampled_from(MODES), fmt=st.sampled_from(FORMATS), width=st.integers(1, 64), height=st.integers(1, 64))
def test_odd_modes_in_every_format_decode_to_rgb(mode, fmt, width, height):
    """Valid images are a valid answer: RGB, the stored size, whatever the mode (CMYK, LAB, I;16, PA...)."""
    data = encode(mode, (width, height), fmt)
    if data is None:
        return  # Pillow cannot write this combination; nothing to read
    result = decode_image(data)
    assert result.status == OK, (mode, fmt, result.note)
    assert result.image.mode == "RGB" and (result.width, result.height) == Image.open(io.BytesIO(data)).size
    assert decode_upload(data, 10**6).mode == "RGB"


# ------------------------------------------------------------------------------ decompression bombs


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def bomb(fmt: str, width: int, height: int) -> bytes:
    """A small file whose header claims ``width`` x ``height`` pixels."""
    if fmt == "PNG":
        return _png_header(width, height)
    small = bytearray(encode("RGB" if fmt != "GIF" else "P", (8, 8), fmt))
    if fmt == "GIF":  # logical screen and the first image descriptor
        small[6:10] = struct.pack("<HH", width, height)
        at = small.index(b"\x2c")
        small[at + 5 : at + 9] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        small[18:26] = struct.pack("<ii", width, height)
    elif fmt == "JPEG":
        at = small.index(b"\xff\xc0")
        small[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(small)


_LIMITS = {"PNG": 2**31 - 1, "GIF": 65535, "BMP": 2**31 - 1, "JPEG": 65535}


@settings(max_examples=budget(1.0))
@given(
    fmt=st.sampled_from(["PNG", "GIF", "BMP", "JPEG"]),
    data=st.data(),
    max_pixels=st.sampled_from([1_000, 1_000_000, 64_000_000]),
)
def test_decompression_bombs_are_refused_before_decoding(fmt, data, max_pixels):
    top = _LIMITS[fmt]
    width = data.draw(st.integers(max_pixels // top + 1, top), label="width")
    height = data.draw(st.integers(max(1, max_pixels // width + 1), top), label="height")
    payload = bomb(fmt, width, height)
    config = DecodeConfig(max_pixels=max_pixels)
    with time_limit(10):
        result = decode_image(payload, config)
        assert_decoded(result, config)
        assert result.status == TOO_LARGE, (width, height, result.status, result.note)
        with pytest.raises(ImageRejected) as info:
            decode_upload(payload, max_pixels)
        assert info.value.status == 413, info.value.message


def test_regression_upload_over_pillows_own_bomb_limit_is_413_not_400():
    """A 10-gigapixel PNG header used to answer 400 "corrupt"; it is a too-large photo (413)."""
    with pytest.raises(ImageRejected) as info:
        decode_upload(_png_header(100_000, 100_000), 40_000_000)
    assert info.value.status == 413 and "pixels" in info.value.message


def test_regression_dds_with_unknown_pixel_format_is_corrupt_not_an_exception():
    """Found by test_any_bytes_decode_to_a_status_or_rgb: Pillow's DDS plugin raises NotImplementedError."""
    data = bytearray(encode("RGB", (4, 4), "DDS"))
    data[80:84] = struct.pack("<I", 0x02000000)  # DDS_PIXELFORMAT.dwFlags: a flag Pillow does not know
    result = decode_image(bytes(data))
    assert result.status == "corrupt" and "NotImplementedError" in result.note
    with pytest.raises(ImageRejected) as info:
        decode_upload(bytes(data), 10**6)
    assert info.value.status == 400
