"""Digit images for the image classification tests: scikit-learn's held-out digits written as PGM and PNG files
by encoders of their own (PNG with a chosen row filter, so every filter gets decoded), and the committed model
store's files."""

from __future__ import annotations

import struct
import zlib
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from edgewise.components import ARTIFACTS_DIR

STORE = ARTIFACTS_DIR / "edgewise.ml.ImageClassification.ModelStore" / "1.0.0"
MODEL = STORE / "digits-8x8.onnx"
LABELS = STORE / "labels.txt"


@cache
def held_out() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The digits the committed model was not trained on (scripts/build_digits_model.py's TEST_SPLIT)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    _, X_test, _, y_test = train_test_split(
        digits.data, digits.target, stratify=digits.target, test_size=0.25, random_state=0
    )
    return X_test, y_test


def gray_pixels(row: npt.NDArray[np.float64], *, upscale: int = 1) -> npt.NDArray[np.uint8]:
    """A digits row (ink counts 0..16) as 8-bit gray, dark ink on white, each pixel ``upscale`` times wider/taller."""
    image = np.rint(255.0 - row.reshape(8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return np.kron(image, np.ones((upscale, upscale), dtype=np.uint8))


def pgm(pixels: npt.NDArray[np.uint8], *, binary: bool, comment: bool = False) -> bytes:
    height, width = pixels.shape
    note = b"# written by the test\n" if comment else b""
    if binary:
        return b"P5\n" + note + f"{width} {height}\n255\n".encode() + pixels.tobytes()
    lines = "\n".join(" ".join(str(value) for value in line) for line in pixels.tolist())
    return b"P2\n" + note + f"{width} {height}\n255\n{lines}\n".encode()


def png(pixels: npt.NDArray[np.uint8], *, colour: int = 0, filter_type: int = 0) -> bytes:
    """A PNG of ``pixels`` (height x width x channels, or height x width for gray) with every row filtered by
    ``filter_type``."""
    data = pixels if pixels.ndim == 3 else pixels[:, :, None]
    height, width, channels = data.shape
    rows = data.reshape(height, width * channels).astype(np.int64)
    previous = np.zeros(width * channels, dtype=np.int64)
    raw = bytearray()
    for row in rows:
        raw.append(filter_type)
        raw += bytes(_filter(row, previous, channels, filter_type))
        previous = row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def _filter(row: Any, above: Any, bpp: int, kind: int) -> list[int]:
    out = []
    for i, value in enumerate(row.tolist()):
        left = int(row[i - bpp]) if i >= bpp else 0
        up = int(above[i])
        corner = int(above[i - bpp]) if i >= bpp else 0
        if kind == 0:
            predictor = 0
        elif kind == 1:
            predictor = left
        elif kind == 2:
            predictor = up
        elif kind == 3:
            predictor = (left + up) // 2
        else:
            estimate = left + up - corner
            distances = [abs(estimate - left), abs(estimate - up), abs(estimate - corner)]
            predictor = (left, up, corner)[distances.index(min(distances))]
        out.append((value - predictor) % 256)
    return out


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
