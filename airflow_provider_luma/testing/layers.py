"""
The outputs of a ``layering`` job: a plan of layers, and each layer as a real RGBA PNG.

The API splits the source into layers front to back, the last one the opaque background, each with a
short label, a caption and an ``alpha_hint`` (``soft``, ``hard`` or ``none``). The emulator plans three
from a hash of the generation id (so a job always gives the same layers): a subject cut out as an ellipse
with a feathered edge (``soft``), a prop as a sharp rectangle (``hard``), and the background. Pixels outside
a foreground layer's shape are fully transparent, so a client that composites, crops or checks alpha
works on real transparency. Rows are built as byte runs, not pixel by pixel, so a 2k layer stays cheap.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.testing.images import encode_png

if TYPE_CHECKING:
    from collections.abc import Iterator

_SUBJECTS = ("fox", "person", "cat", "bird")
_PROPS = ("lamp", "chair", "vase", "bicycle")
#: Alpha of the feathered pixels at a soft edge, outermost first.
_FEATHER = (64, 128, 192)
_TRANSPARENT = b"\x00\x00\x00\x00"


def file_name(index: int) -> str:
    return f"layer-{index}.png"


@dataclass(frozen=True)
class Layer:
    """One planned layer: what the output's ``layer`` object says, and the shape its pixels fill.

    ``box`` is (left, top, right, bottom) as fractions of the layer's size; the background has none.
    """

    index: int
    label: str
    description: str
    alpha_hint: str
    colour: tuple[int, int, int]
    box: tuple[float, float, float, float] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "description": self.description,
            "alpha_hint": self.alpha_hint,
        }

    def render(self, width: int, height: int) -> bytes:
        """This layer as an RGBA PNG of ``width`` x ``height``."""
        return encode_png(width, height, self._rows(width, height), alpha=True)

    def _rows(self, width: int, height: int) -> Iterator[bytes]:
        pixel = bytes((*self.colour, 255))
        if self.box is None:
            # The opaque background: a vertical gradient, so it is not one flat colour.
            for y in range(height):
                shade = bytes((*(min(255, c + y * 64 // max(height, 1)) for c in self.colour), 255))
                yield b"\x00" + shade * width
            return
        left, top, right, bottom = (
            self.box[0] * width,
            self.box[1] * height,
            self.box[2] * width,
            self.box[3] * height,
        )
        for y in range(height):
            start, end = self._span(y + 0.5, left, top, right, bottom)
            if end <= start:
                yield b"\x00" + _TRANSPARENT * width
                continue
            inside = end - start
            feather = min(len(_FEATHER), inside // 3) if self.alpha_hint == "soft" else 0
            rising = b"".join(bytes((*self.colour, alpha)) for alpha in _FEATHER[len(_FEATHER) - feather :])
            body = pixel * (inside - 2 * feather)
            yield b"".join(
                (
                    b"\x00",
                    _TRANSPARENT * start,
                    rising,
                    body,
                    _reverse_pixels(rising),
                    _TRANSPARENT * (width - end),
                )
            )

    def _span(self, y: float, left: float, top: float, right: float, bottom: float) -> tuple[int, int]:
        """The columns [start, end) this layer's shape covers on the row through ``y``."""
        if not top <= y < bottom:
            return 0, 0
        if self.alpha_hint == "hard":
            return round(left), round(right)
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        radius_x, radius_y = (right - left) / 2, (bottom - top) / 2
        offset = (y - centre_y) / radius_y
        half = radius_x * math.sqrt(max(0.0, 1 - offset * offset))
        return round(centre_x - half), round(centre_x + half)


def _reverse_pixels(pixels: bytes) -> bytes:
    """RGBA pixels in reverse order (the feather seen from the other side)."""
    return b"".join(pixels[i : i + 4] for i in range(len(pixels) - 4, -1, -4))


def plan(generation_id: str) -> tuple[Layer, ...]:
    """The layers of a layering job, front to back; the same id always gives the same plan."""
    digest = hashlib.sha256(generation_id.encode()).digest()
    subject = _SUBJECTS[digest[0] % len(_SUBJECTS)]
    prop = _PROPS[digest[1] % len(_PROPS)]
    # The subject stands left of centre and the prop right of it, each clear of the image's corners.
    subject_box = (0.1 + digest[2] % 10 / 100, 0.15, 0.55, 0.9)
    prop_box = (0.6, 0.4 + digest[3] % 10 / 100, 0.9, 0.85)
    return (
        Layer(
            0,
            subject,
            f"A {subject} in the foreground",
            "soft",
            (digest[4], digest[5], digest[6]),
            subject_box,
        ),
        Layer(1, prop, f"A {prop} beside the {subject}", "hard", (digest[7], digest[8], digest[9]), prop_box),
        Layer(2, "background", "The scene behind them", "none", (digest[10] // 2, digest[11] // 2, 96), None),
    )
