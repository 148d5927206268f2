"""Is this really an image? Structural checks of PNG, JPEG and GIF data shown in feedback.

An ``image/png`` output becomes ``<img src="data:image/png;base64,...">``: anything else in it
(HTML, a script, a polyglot, garbage) is no image to show. These checks read the container
format only (PNG chunks and their CRCs, JPEG and GIF markers); they decode no pixels.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 16384  # pixels; the figures drawn for feedback are 1200 wide


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a well-formed PNG: IHDR first, every chunk's CRC right, IEND last."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos, size, seen_data = len(PNG_SIGNATURE), None, False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data) or not kind.isalpha():
            return None
        body = data[pos + 8 : end - 4]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4 : end])[0]:
            return None
        if size is None:
            if kind != b"IHDR" or length != 13:
                return None
            width, height = struct.unpack(">II", body[:8])
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
                return None
            size = (width, height)
        seen_data |= kind == b"IDAT"
        if kind == b"IEND":
            return size if end == len(data) and seen_data else None
        pos = end
    return None


def jpeg_ok(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9") and len(data) > 4


def gif_ok(data: bytes) -> bool:
    return data[:6] in (b"GIF87a", b"GIF89a") and data.endswith(b"\x3b") and len(data) > 13


_CHECKS = {"image/png": lambda d: png_size(d) is not None, "image/jpeg": jpeg_ok, "image/gif": gif_ok}


def valid_base64_image(mime: str, text: str) -> bool:
    """``text`` is base64 (whitespace allowed, as nbformat stores it) of a well-formed ``mime`` image."""
    check = _CHECKS.get(mime)
    if check is None:
        return False
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return check(data)
