"""Every kind of broken or unusual file gets a clear status; nothing raises."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postloc.vision.decode import (
    CORRUPT,
    MISSING,
    NOT_IMAGE,
    OK,
    TOO_LARGE,
    TRUNCATED,
    UNREADABLE,
    ZERO_BYTE,
    DecodeConfig,
    decode_image,
)

DATA = Path(__file__).parents[1] / "support" / "photos"


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming width x height pixels (10 G here) with a tiny body: Pillow's bomb case."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_real_photo_decodes(tmp_path):
    result = decode_image(DATA / "building.jpg")
    assert result.status == OK and result.image.mode == "RGB" and result.image.size == (868, 600)
    assert len(result.sha256) == 64 and result.note == ""


def test_missing_zero_byte_and_directory(tmp_path):
    assert decode_image(tmp_path / "nope.jpg").status == MISSING
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert decode_image(tmp_path / "empty.jpg").status == ZERO_BYTE
    (tmp_path / "folder.jpg").mkdir()
    assert decode_image(tmp_path / "folder.jpg").status == UNREADABLE


def test_non_image_files_are_named(tmp_path):
    html = tmp_path / "page.jpg"
    html.write_text("<!DOCTYPE html><html><body>404 not found</body></html>")
    result = decode_image(html)
    assert result.status == NOT_IMAGE and "HTML" in result.note
    (tmp_path / "data.jpg").write_text('{"error": "rate limited"}')
    assert decode_image(tmp_path / "data.jpg").status == NOT_IMAGE


def test_truncated_jpeg(tmp_path):
    data = (DATA / "building.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    result = decode_image(path)
    assert result.status == TRUNCATED, result.note


def test_corrupt_jpeg_body(tmp_path):
    data = bytearray((DATA / "orange.jpg").read_bytes())
    data[20:400] = b"\x00" * 380  # destroy the quantisation/huffman tables, keep the SOI marker
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data))
    assert decode_image(path).status in (CORRUPT, TRUNCATED, NOT_IMAGE)


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb())
    result = decode_image(path)
    assert result.status == TOO_LARGE, result.note
    assert path.stat().st_size < 200


def test_max_pixels_and_max_bytes_are_configurable(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(_jpeg(Image.new("RGB", (200, 200), "red")))
    assert decode_image(path, DecodeConfig(max_pixels=10_000)).status == TOO_LARGE
    assert decode_image(path, DecodeConfig(max_bytes=10)).status == TOO_LARGE
    assert decode_image(path).status == OK


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(_jpeg(Image.open(DATA / "orange.jpg").convert("CMYK")))
    result = decode_image(path)
    assert result.status == OK and result.image.mode == "RGB" and "CMYK" in result.note
    # an orange stays orange: red channel well above blue in the centre
    centre = np.asarray(result.image)[200:300, 200:300].mean(axis=(0, 1))
    assert centre[0] > centre[2] + 50


def test_png_with_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (16, 16, 48, 48))
    path = tmp_path / "alpha.png"
    rgba.save(path)
    result = decode_image(path)
    assert result.status == OK and result.image.mode == "RGB" and "alpha" in result.note
    pixels = np.asarray(result.image)
    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[32, 32]) == (0, 0, 255)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "lime", "blue")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = decode_image(path)
    assert result.status == OK and "3 frames" in result.note
    r, g, b = np.asarray(result.image)[15, 20]
    assert r > 200 and g < 50 and b < 50


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (80, 40), "white")
    image.paste((0, 0, 0), (0, 0, 20, 40))  # black band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    path = tmp_path / "rotated.jpg"
    image.save(path, "JPEG", exif=exif.tobytes())
    result = decode_image(path)
    assert result.status == OK and "orientation 6" in result.note
    assert result.image.size == (40, 80)  # upright: taller than wide
    top = np.asarray(result.image)[:10].mean()
    assert top < 60  # the black band is now on top


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = tmp_path / "large.jpg"
    path.write_bytes(_jpeg(Image.new("RGB", (4000, 3000), "green"), quality=50))
    result = decode_image(path, DecodeConfig(draft_side=640))
    assert result.status == OK and result.width == 4000 and min(result.image.size) >= 640
    assert max(result.image.size) <= 2000 and "reduced scale" in result.note


def test_sixteen_bit_png(tmp_path):
    array = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    result = decode_image(path)
    assert result.status == OK and result.image.mode == "RGB"
    assert np.asarray(result.image).max() > 200


@pytest.mark.parametrize("payload", [b"\xff\xd8\xff", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, b"\x00" * 1000])
def test_garbage_with_image_magic_never_raises(tmp_path, payload):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(payload)
    assert decode_image(path).status in (CORRUPT, TRUNCATED, NOT_IMAGE)


@pytest.mark.parametrize(("side", "smallest"), [(256, 256), (None, 3000)])
def test_draft_side_sets_the_least_decoded_short_side(tmp_path, side, smallest):
    """``--draft-side 256``: a 12 MP JPEG decodes at 1/8 scale (500x375), still >= 256 on the short side."""
    path = tmp_path / "large.jpg"
    path.write_bytes(_jpeg(Image.new("RGB", (4000, 3000), "green"), quality=50))
    result = decode_image(path, DecodeConfig(draft_side=side))
    assert result.status == OK and (result.width, result.height) == (4000, 3000)
    assert smallest <= min(result.image.size) < 2 * smallest
    assert DecodeConfig(draft_side=side).key() != DecodeConfig().key()  # a different feature-cache key
