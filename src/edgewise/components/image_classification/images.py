"""Reading image files without an imaging library: PGM (P2 and P5, 8-bit) and PNG (8-bit, not interlaced).

Devices get no Pillow or OpenCV, so the component reads the two formats a camera pipeline or a test can write
with the standard library: PGM, the plainest grayscale format, and PNG, decoded with ``zlib``. PNG colour types
gray, gray+alpha, RGB and RGBA are read at bit depth 8; colour becomes gray by the ITU-R BT.601 luma weights
and transparency is laid over white (paper). Every image comes back as brightness: a float64 matrix of
rows by columns in [0, 1], 0 black and 1 white, whatever the file's maximum value was.

Limits keep a hostile or broken file from costing much: at most ``MAX_IMAGE_BYTES`` read and
``MAX_PIXELS`` pixels. Anything else is an ``ImageError`` naming the file and the problem.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from edgewise.components.image_classification.errors import ImageError

#: The largest image file read, and the most pixels (width x height) decoded.
MAX_IMAGE_BYTES: Final = 8 * 1024 * 1024
MAX_PIXELS: Final = 2048 * 2048
#: File name suffixes read as images (case-insensitive); other files in the image folder are ignored.
IMAGE_SUFFIXES: Final = (".pgm", ".png")

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
#: Channels per pixel of the PNG colour types read (gray, RGB, gray+alpha, RGBA).
_PNG_CHANNELS: Final = {0: 1, 2: 3, 4: 2, 6: 4}
_LUMA: Final = np.array([0.299, 0.587, 0.114])
#: A PGM header token, or a comment from ``#`` to the end of its line.
_PGM_TOKEN = re.compile(rb"#[^\n\r]*|[^\s#]+")

Brightness = npt.NDArray[np.float64]


def read_image_file(path: Path) -> Brightness:
    """The brightness of the image in ``path``; ``ImageError`` when it cannot be read or is no supported image."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)
    except OSError as error:
        raise ImageError(f"{path.name}: cannot be read ({error.strerror or error})") from error
    return read_image(data, name=path.name)


def read_image(data: bytes, *, name: str) -> Brightness:
    """The brightness of the PGM or PNG image in ``data`` (told apart by content, not by ``name``)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{name}: larger than {MAX_IMAGE_BYTES} bytes")
    if data.startswith(PNG_SIGNATURE):
        return _read_png(data, name)
    if data[:2] in (b"P2", b"P5"):
        return _read_pgm(data, name)
    raise ImageError(f"{name}: not a PGM (P2/P5) or PNG image")


def _read_pgm(data: bytes, name: str) -> Brightness:
    binary = data[:2] == b"P5"
    header: list[int] = []
    position = 2
    while len(header) < 3:
        match = _PGM_TOKEN.search(data, position)
        if match is None:
            raise ImageError(f"{name}: PGM header ends before width, height and maximum value")
        if match.start() == position and position == 2:
            raise ImageError(f"{name}: PGM magic number must be followed by whitespace")
        position = match.end()
        token = match.group()
        if token.startswith(b"#"):
            continue
        if not token.isdigit():
            raise ImageError(f"{name}: PGM header value {token[:20]!r} is not a number")
        header.append(int(token))
    width, height, maxval = header
    _check_size(name, width, height)
    if not 1 <= maxval <= 255:
        raise ImageError(f"{name}: PGM maximum value {maxval} is not 1..255 (only 8-bit images are read)")
    if binary:
        # Exactly one whitespace byte separates the header from the raster.
        if position >= len(data) or data[position : position + 1] not in (b" ", b"\t", b"\n", b"\r"):
            raise ImageError(f"{name}: PGM header must end with one whitespace byte before the pixels")
        raster = data[position + 1 : position + 1 + width * height]
        if len(raster) < width * height:
            raise ImageError(f"{name}: PGM has {len(raster)} pixel bytes, {width * height} expected")
        values = np.frombuffer(raster, dtype=np.uint8).astype(np.float64)
    else:
        tokens = data[position:].split()
        if len(tokens) != width * height:
            raise ImageError(f"{name}: PGM has {len(tokens)} pixel values, {width * height} expected")
        try:
            values = np.array([int(token) for token in tokens], dtype=np.float64)
        except ValueError:
            raise ImageError(f"{name}: PGM pixel values must be whole numbers") from None
    if values.max(initial=0) > maxval:
        raise ImageError(f"{name}: a PGM pixel value is above the maximum value {maxval}")
    return values.reshape(height, width) / maxval


def _read_png(data: bytes, name: str) -> Brightness:
    position = len(PNG_SIGNATURE)
    header: bytes | None = None
    width = height = colour = 0
    compressed = bytearray()
    while True:
        if position + 8 > len(data):
            raise ImageError(f"{name}: PNG ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        crc = data[position + 8 + length : position + 12 + length]
        if len(body) < length or len(crc) < 4:
            raise ImageError(f"{name}: PNG chunk {kind!r} is cut short")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageError(f"{name}: PNG chunk {kind!r} fails its CRC check")
        position += 12 + length
        if header is None and kind != b"IHDR":
            raise ImageError(f"{name}: PNG does not start with an IHDR chunk")
        if kind == b"IHDR":
            header = body
            # Checked at once: an image that will not be read is not decompressed first.
            width, height, colour = _png_header(header, name)
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    channels = _PNG_CHANNELS[colour]
    stride = width * channels
    expected = height * (stride + 1)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(bytes(compressed), expected + 1)
    except zlib.error as error:
        raise ImageError(f"{name}: PNG pixel data does not decompress ({error})") from None
    if len(raw) != expected:
        raise ImageError(f"{name}: PNG pixel data holds {len(raw)} bytes, {expected} expected")
    pixels = _unfilter(raw, height, stride, channels, name).reshape(height, width, channels)
    return _brightness(pixels.astype(np.float64) / 255.0, colour)


def _png_header(header: bytes, name: str) -> tuple[int, int, int]:
    """Width, height and colour type from an IHDR chunk, refused unless this module reads them."""
    if len(header) != 13:
        raise ImageError(f"{name}: PNG IHDR chunk has {len(header)} bytes, 13 expected")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    _check_size(name, width, height)
    if depth != 8 or colour not in _PNG_CHANNELS:
        raise ImageError(
            f"{name}: PNG bit depth {depth}, colour type {colour} is not read "
            "(8-bit gray, gray+alpha, RGB or RGBA only)"
        )
    if compression != 0 or filtering != 0:
        raise ImageError(f"{name}: PNG compression {compression}, filter method {filtering} is not standard")
    if interlace != 0:
        raise ImageError(f"{name}: interlaced PNG is not read")
    return width, height, colour


def _unfilter(raw: bytes, height: int, stride: int, bpp: int, name: str) -> npt.NDArray[np.uint8]:
    """Undo PNG's per-row filters (none, sub, up, average, Paeth) over ``bpp`` bytes per pixel."""
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind = int(rows[y, 0])
        line = rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:
            # Each byte adds the reconstructed byte one pixel to its left: a running sum per channel.
            current = np.cumsum(line.reshape(-1, bpp).astype(np.uint32), axis=0).astype(np.uint8).reshape(-1)
        elif kind == 2:
            current = line + previous
        elif kind in (3, 4):
            current = _unfilter_sequential(line, previous, bpp, paeth=kind == 4)
        else:
            raise ImageError(f"{name}: PNG row {y} has unknown filter type {kind}")
        out[y] = current
        previous = current
    return out


def _unfilter_sequential(
    line: npt.NDArray[np.uint8], previous: npt.NDArray[np.uint8], bpp: int, *, paeth: bool
) -> npt.NDArray[np.uint8]:
    """Average and Paeth depend on the byte just reconstructed, so they go byte by byte."""
    row = [0] * len(line)
    above = previous.tolist()
    values = line.tolist()
    for i, value in enumerate(values):
        left = row[i - bpp] if i >= bpp else 0
        up = above[i]
        if paeth:
            corner = above[i - bpp] if i >= bpp else 0
            estimate = left + up - corner
            distance_left, distance_up, distance_corner = (
                abs(estimate - left),
                abs(estimate - up),
                abs(estimate - corner),
            )
            if distance_left <= distance_up and distance_left <= distance_corner:
                predictor = left
            elif distance_up <= distance_corner:
                predictor = up
            else:
                predictor = corner
        else:
            predictor = (left + up) // 2
        row[i] = (value + predictor) & 0xFF
    return np.array(row, dtype=np.uint8)


def _brightness(pixels: npt.NDArray[np.float64], colour: int) -> Brightness:
    if colour == 0:
        return pixels[:, :, 0]
    if colour == 4:
        gray, alpha = pixels[:, :, 0], pixels[:, :, 1]
    else:
        gray = pixels[:, :, :3] @ _LUMA
        alpha = pixels[:, :, 3] if colour == 6 else np.ones_like(gray)
    # Transparent parts are the white paper behind the picture.
    return np.asarray(gray * alpha + (1.0 - alpha), dtype=np.float64)


def _check_size(name: str, width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{name}: image size {width}x{height} has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: image size {width}x{height} is over the limit of {MAX_PIXELS} pixels")
