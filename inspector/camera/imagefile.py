"""Reading one image file of a replayed set, refusing anything the station must not inspect.

A replay camera (:class:`~inspector.camera.sim.FilesCamera`) reads what a manifest names, and a
folder on disk is not a camera: an entry can be missing, a directory, empty, unreadable, not the
file the manifest hashed, or an image far larger than the station's frame. :func:`read_image_file`
turns each of these into :class:`ImageRefused` with a one-line reason, so the station rejects that
item as ``not_inspected`` with an alarm and goes on.

The size is checked from the file's header before anything is decoded (a 20000 x 20000 PNG of a
few hundred kilobytes would otherwise allocate its full raster first), and the file's byte size
before it is read. Headers read here: PNG, JPEG and BMP; another format is refused, because its
size could not be checked first.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from inspector.manifest import sha256_bytes

#: Without a configured frame: the largest frame a recipe can name (``FrameSpec``).
MAX_SIDE = 16384
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (C4 = Huffman tables, C8 = reserved, CC = arithmetic coding: not frames).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageRefused(ValueError):
    """The file cannot be inspected as the item's image; the message says why (one line)."""


def header_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG, JPEG or BMP header, without decoding; ImageRefused otherwise."""
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageRefused("PNG without an image header")
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        (dib,) = struct.unpack("<I", data[14:18])
        if dib == 12:
            width, height = struct.unpack("<HH", data[18:22])
        else:
            width, height = struct.unpack("<ii", data[18:26])
        return abs(int(width)), abs(int(height))
    if not data:
        raise ImageRefused("empty file")
    raise ImageRefused("not a PNG, JPEG or BMP image (its size cannot be checked before decoding)")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    raise ImageRefused("JPEG without a frame header")


def max_file_bytes(max_width: int, max_height: int) -> int:
    """The largest file a frame of at most this size can take (uncompressed 16-bit RGBA, plus headers)."""
    return 8 * max_width * max_height + (1 << 20)


def read_image_file(
    path: Path,
    *,
    sha256: str | None = None,
    max_width: int = MAX_SIDE,
    max_height: int = MAX_SIDE,
) -> np.ndarray:
    """Read and decode ``path`` as it is (``cv2.IMREAD_UNCHANGED``), or raise ImageRefused.

    ``sha256``: the digest the manifest gives for the file; another file is refused.
    """
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImageRefused("is a directory, not an image file")
        limit = max_file_bytes(max_width, max_height)
        if size > limit:
            raise ImageRefused(f"file of {size} bytes is larger than any {max_width} x {max_height} frame")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageRefused("file is missing") from None
    except OSError as exc:
        raise ImageRefused(f"file cannot be read: {exc.strerror or exc}") from None
    if not data:
        raise ImageRefused("empty file")
    if sha256 is not None:
        actual = sha256_bytes(data)
        if actual != sha256:
            raise ImageRefused(f"sha256 {actual[:12]}... is not the manifest's {sha256[:12]}...: not the file it names")
    width, height = header_size(data)
    if width > max_width or height > max_height:
        raise ImageRefused(f"{width} x {height} image is larger than the camera's {max_width} x {max_height} frame")
    if width == 0 or height == 0:
        raise ImageRefused(f"{width} x {height} image has no pixels")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageRefused(f"image cannot be decoded: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageRefused("image cannot be decoded (corrupt or truncated)")
    return image
