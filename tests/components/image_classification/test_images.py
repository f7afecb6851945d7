"""Reading PGM and PNG images without an imaging library: every format variant round-trips, and every broken file
is an ImageError naming the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.components.image_classification.errors import ImageError
from edgewise.components.image_classification.images import MAX_PIXELS, read_image, read_image_file
from tests.components.image_classification.digits import chunk, gray_pixels, held_out, pgm, png

RNG = np.random.default_rng(7)
PIXELS = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)


@pytest.mark.parametrize("binary", [False, True])
def test_pgm_reads_back_as_brightness(binary: bool) -> None:
    image = read_image(pgm(PIXELS, binary=binary, comment=True), name="x.pgm")

    assert image.shape == (5, 7)
    np.testing.assert_allclose(image, PIXELS / 255.0)


def test_pgm_with_a_small_maximum_value_is_scaled_to_it() -> None:
    image = read_image(b"P2 2 1 15 0 15", name="x.pgm")

    np.testing.assert_allclose(image, [[0.0, 1.0]])


def test_a_digit_written_as_pgm_keeps_its_ink() -> None:
    row = held_out()[0][0]
    image = read_image(pgm(gray_pixels(row), binary=True), name="d.pgm")

    np.testing.assert_allclose((1.0 - image) * 16.0, row.reshape(8, 8), atol=16 / 255)


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
def test_gray_png_reads_back_with_every_row_filter(filter_type: int) -> None:
    image = read_image(png(PIXELS, filter_type=filter_type), name="x.png")

    np.testing.assert_allclose(image, PIXELS / 255.0)


@pytest.mark.parametrize("filter_type", [1, 3, 4])
def test_rgb_png_becomes_luma(filter_type: int) -> None:
    rgb = RNG.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)

    image = read_image(png(rgb, colour=2, filter_type=filter_type), name="x.png")

    np.testing.assert_allclose(image, rgb @ np.array([0.299, 0.587, 0.114]) / 255.0)


def test_transparency_is_laid_over_white() -> None:
    rgba = np.array([[[0, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 51]]], dtype=np.uint8)
    gray_alpha = np.array([[[100, 255], [100, 0]]], dtype=np.uint8)

    np.testing.assert_allclose(read_image(png(rgba, colour=6), name="x.png"), [[0.0, 1.0, 0.8]])
    np.testing.assert_allclose(read_image(png(gray_alpha, colour=4), name="x.png"), [[100 / 255, 1.0]])


def _png_header(width: int, height: int, depth: int = 8, colour: int = 0, interlace: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GIF89a", "not a PGM (P2/P5) or PNG image"),
        (b"P5 2 2 255\n\x00\x01\x02", "3 pixel bytes, 4 expected"),
        (b"P2 2 1 10 3 11", "above the maximum value 10"),
        (b"P2 2 1 255 3", "1 pixel values, 2 expected"),
        (b"P2 2 1 255 3 x", "whole numbers"),
        (b"P5 2 1 65535\n\x00\x00\x00\x00", "maximum value 65535 is not 1..255"),
        (b"P2 2", "header ends before"),
        (b"P2 0 3 255", "has no pixels"),
        (b"P2 5000 5000 255", f"over the limit of {MAX_PIXELS} pixels"),
        (_png_header(2, 2, depth=16), "bit depth 16, colour type 0 is not read"),
        (_png_header(2, 2, colour=3), "bit depth 8, colour type 3 is not read"),
        (_png_header(2, 2, interlace=1) + chunk(b"IEND", b""), "interlaced PNG is not read"),
        (_png_header(2, 2) + chunk(b"IDAT", b"garbage") + chunk(b"IEND", b""), "does not decompress"),
        (
            _png_header(2, 2) + chunk(b"IDAT", zlib.compress(b"\x00\x01")) + chunk(b"IEND", b""),
            "holds 2 bytes, 6 expected",
        ),
        (
            _png_header(1, 1) + chunk(b"IDAT", zlib.compress(b"\x07\x01")) + chunk(b"IEND", b""),
            "unknown filter type 7",
        ),
        (_png_header(2, 2), "ends before its IEND chunk"),
        (png(PIXELS)[:-2], "cut short"),
        (png(PIXELS)[:40] + b"\xff" + png(PIXELS)[41:], "fails its CRC check"),
    ],
)
def test_broken_images_are_refused_naming_the_file_and_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(ImageError, match=r"^broken\.img: ") as raised:
        read_image(data, name="broken.img")

    assert problem in str(raised.value)


def test_a_missing_file_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^gone\.pgm: cannot be read"):
        read_image_file(tmp_path / "gone.pgm")


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(
        [b"P2", b"P5", b"P2 3 2 255\n", b"P5 3 2 255\n", png(PIXELS)[:33], b"\x89PNG\r\n\x1a\n"]
    ),
    tail=st.binary(max_size=200),
)
def test_arbitrary_bytes_give_an_image_or_an_image_error(prefix: bytes, tail: bytes) -> None:
    try:
        image = read_image(prefix + tail, name="fuzz")
    except ImageError:
        return
    assert image.ndim == 2
    assert float(image.min()) >= 0.0
    assert float(image.max()) <= 1.0
