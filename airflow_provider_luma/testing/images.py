"""
Small pure-Python image encoders for the emulator's outputs (no Pillow: that is a test-only dependency).

Each output is a colour gradient seeded by a hash of the prompt, so the same prompt always gives the same
bytes. PNG is a real zlib-compressed image; JPEG is a baseline DC-only encoding (each 8x8 block one colour),
which every decoder accepts. Outputs can be padded to a chosen size with a private ancillary PNG chunk or
JPEG comment segments, generated while streaming so a 50 MB output costs no 50 MB of memory.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: The nine ratios uni-1 accepts, as (width part, height part).
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "3:1": (3, 1),
    "2:1": (2, 1),
    "16:9": (16, 9),
    "3:2": (3, 2),
    "1:1": (1, 1),
    "2:3": (2, 3),
    "9:16": (9, 16),
    "1:2": (1, 2),
    "1:3": (1, 3),
}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
FILE_NAMES = {"png": "output.png", "jpeg": "output.jpg"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Ancillary, private, safe-to-copy: decoders skip it.
_PNG_PADDING_CHUNK = b"lmPd"
_PNG_MAX_PADDING_CHUNK = 8 * 1024 * 1024
_JPEG_MAX_SEGMENT_DATA = 65533
_PIECE = 64 * 1024
_STREAM_PIECE = 256 * 1024


def dimensions(aspect_ratio: str | None, long_edge: int) -> tuple[int, int]:
    """Pixel size for a ratio: the long edge is ``long_edge``; an unset ratio gives a square."""
    across, down = ASPECT_RATIOS.get(aspect_ratio or "1:1", (1, 1))
    return fit(across, down, long_edge)


def fit(width: int, height: int, long_edge: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled so that its long edge is ``long_edge`` (each edge at least 1)."""
    if width >= height:
        return long_edge, max(1, round(long_edge * height / width))
    return max(1, round(long_edge * width / height)), long_edge


def read_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or WebP header, or None when the bytes are none of these."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_dimensions(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_dimensions(data)
    return None


def sniff_mime(data: bytes) -> str | None:
    """The image MIME type the bytes' signature shows (PNG, JPEG, GIF, WebP), or None for anything else.

    The API checks media by content, not by the type a client declares, so this is what counts.
    """
    if data.startswith(_PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments up to the first start-of-frame (SOF0..SOF15 minus DHT, JPG and DAC).
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


@dataclass(frozen=True)
class _Palette:
    """The gradient for one prompt: red runs left to right, green top to bottom, blue is constant."""

    red: int
    green: int
    blue: int

    @classmethod
    def for_prompt(cls, prompt: str) -> _Palette:
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        return cls(digest[0], digest[1], digest[2])

    def r(self, x: int, width: int) -> int:
        return (self.red + x * 191 // max(width - 1, 1)) & 0xFF

    def g(self, y: int, height: int) -> int:
        return (self.green + y * 191 // max(height - 1, 1)) & 0xFF


def render(prompt: str, width: int, height: int, output_format: str) -> bytes:
    """The encoded image (unpadded) for a prompt, size and format (``png`` or ``jpeg``)."""
    palette = _Palette.for_prompt(prompt)
    if output_format == "jpeg":
        return _encode_jpeg(palette, width, height)
    return _encode_png(palette, width, height)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rows: Iterable[bytes], *, alpha: bool = False) -> bytes:
    """A PNG (8-bit RGB, or RGBA with ``alpha``) from its scanlines, each led by its filter byte."""
    compressor = zlib.compressobj(6)
    parts = [compressor.compress(row) for row in rows]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _encode_png(palette: _Palette, width: int, height: int) -> bytes:
    return encode_png(width, height, _gradient_rows(palette, width, height))


def _gradient_rows(palette: _Palette, width: int, height: int) -> Iterator[bytes]:
    first = bytearray(3 * width)
    first[0::3] = bytes(palette.r(x, width) for x in range(width))
    first[1::3] = bytes([palette.g(0, height)]) * width
    first[2::3] = bytes([palette.blue]) * width
    yield b"\x00" + bytes(first)
    # Every later row uses the "Up" filter: only green changes, so each filtered row is a short
    # repeating pattern that zlib compresses to almost nothing, at any size.
    previous = palette.g(0, height)
    for y in range(1, height):
        green = palette.g(y, height)
        yield b"\x02" + bytes((0, (green - previous) & 0xFF, 0)) * width
        previous = green


# Baseline JPEG: one quantisation table (all 8s), the standard luminance DC Huffman table, and an AC
# table holding only end-of-block, since every block is a flat colour (DC coefficient only).
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
_AC_BITS = (1,) + (0,) * 15
_AC_VALUES = (0x00,)
_QUANT = 8


def _huffman_codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, str]:
    codes: dict[int, str] = {}
    code = 0
    index = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[index]] = format(code, f"0{length}b")
            code += 1
            index += 1
        code <<= 1
    return codes


@lru_cache(maxsize=1)
def _block_codes() -> dict[int, str]:
    """Bit string for one flat block, keyed by its DC difference: DC category, DC bits, EOB."""
    dc = _huffman_codes(_DC_BITS, _DC_VALUES)
    eob = _huffman_codes(_AC_BITS, _AC_VALUES)[0x00]
    table: dict[int, str] = {}
    for diff in range(-2047, 2048):
        category = abs(diff).bit_length()
        extra = format(diff if diff >= 0 else diff + (1 << category) - 1, f"0{category}b") if category else ""
        table[diff] = dc[category] + extra + eob
    return table


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _encode_jpeg(palette: _Palette, width: int, height: int) -> bytes:
    codes = _block_codes()
    blocks_across = (width + 7) // 8
    blocks_down = (height + 7) // 8
    reds = [palette.r(min(8 * i + 4, width - 1), width) for i in range(blocks_across)]
    bits: list[str] = []
    previous = [0, 0, 0]
    for j in range(blocks_down):
        green = palette.g(min(8 * j + 4, height - 1), height)
        for red in reds:
            luma = 0.299 * red + 0.587 * green + 0.114 * palette.blue
            cb = -0.168736 * red - 0.331264 * green + 0.5 * palette.blue + 128
            cr = 0.5 * red - 0.418688 * green - 0.081312 * palette.blue + 128
            # A flat block's DC coefficient is 8 * (value - 128); quantised by 8 that is value - 128.
            for component, value in enumerate((luma, cb, cr)):
                dc = min(max(round(value), 0), 255) - 128
                bits.append(codes[dc - previous[component]])
                previous[component] = dc
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    scan = int(stream, 2).to_bytes(len(stream) // 8, "big").replace(b"\xff", b"\xff\x00") if stream else b""
    components = b"".join(bytes((ident, 0x11, 0)) for ident in (1, 2, 3))
    return b"".join(
        (
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xDB, b"\x00" + bytes([_QUANT]) * 64),
            _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components),
            _segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALUES)),
            _segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALUES)),
            _segment(0xDA, b"\x03" + b"".join(bytes((ident, 0x00)) for ident in (1, 2, 3)) + b"\x00\x3f\x00"),
            scan,
            b"\xff\xd9",
        )
    )


@lru_cache(maxsize=1)
def _noise() -> bytes:
    # Padding that does not compress, in case something between emulator and client compresses.
    return random.Random(0x1A4A).randbytes(_PIECE)


def _noise_stream(size: int) -> Iterator[bytes]:
    noise = _noise()
    while size > 0:
        piece = noise[: min(size, len(noise))]
        size -= len(piece)
        yield piece


def _split(total: int, overhead: int, largest: int) -> list[int]:
    """Data sizes of the fewest segments (each costing ``overhead``) that add exactly ``total`` bytes."""
    if total <= 0:
        return []
    count = max(1, -(-total // (largest + overhead)))
    data = max(0, total - count * overhead)
    sizes = [data // count] * count
    for i in range(data % count):
        sizes[i] += 1
    return sizes


@dataclass(frozen=True)
class OutputBody:
    """An encoded image plus padding, streamed in pieces; ``size`` is the exact byte count."""

    image: bytes
    output_format: str
    padding: tuple[int, ...]

    @classmethod
    def build(cls, image: bytes, output_format: str, min_size: int) -> OutputBody:
        """Pad ``image`` to at least ``min_size`` bytes (exactly, unless the gap is below one segment)."""
        gap = min_size - len(image)
        if output_format == "jpeg":
            padding = _split(gap, 4, _JPEG_MAX_SEGMENT_DATA)
        else:
            padding = _split(gap, 12, _PNG_MAX_PADDING_CHUNK)
        return cls(image, output_format, tuple(padding))

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.output_format]

    @property
    def size(self) -> int:
        overhead = 4 if self.output_format == "jpeg" else 12
        return len(self.image) + sum(self.padding) + overhead * len(self.padding)

    def chunks(self) -> Iterator[bytes]:
        """The bytes in pieces of at most a few hundred KiB."""
        # Padding goes after SOI for JPEG (comment segments) and before IEND for PNG.
        split = 2 if self.output_format == "jpeg" else len(self.image) - 12
        yield from _pieces(self.image[:split])
        for size in self.padding:
            if self.output_format == "jpeg":
                yield b"\xff\xfe" + struct.pack(">H", size + 2)
                yield from _noise_stream(size)
            else:
                yield struct.pack(">I", size) + _PNG_PADDING_CHUNK
                crc = zlib.crc32(_PNG_PADDING_CHUNK)
                for piece in _noise_stream(size):
                    crc = zlib.crc32(piece, crc)
                    yield piece
                yield struct.pack(">I", crc)
        yield from _pieces(self.image[split:])


def _pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), _STREAM_PIECE):
        yield data[start : start + _STREAM_PIECE]
