"""Line charts to PNG with the standard library only, for the demo's picture of autoscaling.

The demo renders a few dashboard panels from its own scrape. A plotting library would be one more
dependency in every virtualenv for one picture, so this draws into an RGB pixel buffer and writes
the PNG itself (zlib + struct): panels stacked vertically, each with axes, three y ticks, x ticks
in seconds, a title and a legend, in a 3x5 bitmap font drawn at twice its size.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
INK: Color = (40, 40, 40)
GRID: Color = (225, 225, 225)
BLUE: Color = (31, 119, 180)
ORANGE: Color = (230, 120, 20)
GREEN: Color = (44, 160, 44)

# Each glyph is 5 rows of 3 pixels; each octal digit is one row (4 = left, 2 = middle, 1 = right).
# Text is drawn upper-case, so lower-case letters need no glyphs of their own.
GLYPH_TABLE = (
    ("0123456789", "75557 26227 71747 71317 55711 74717 74757 71122 75757 75717"),
    (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (
            "25755 65656 34443 65556 74647 74644 34553 55755 72227 11152 55655 44447 57755 "
            "65555 25552 65644 25563 65655 34216 72222 55557 55552 55775 55255 55222 71247"
        ),
    ),
    (" /.-():,_%", "00000 11244 00002 00700 24442 21112 02020 00024 00007 51245"),
)
GLYPHS = {
    char: rows
    for chars, table in GLYPH_TABLE
    for char, rows in zip(chars, table.split(), strict=True)
}
SCALE = 2  # font pixels per glyph pixel
CHAR_W, CHAR_H = 4 * SCALE, 5 * SCALE  # advance (3 pixels + 1 of spacing) and height
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 30, 28


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]  # (seconds, value)
    color: Color
    dashed: bool = False


@dataclass
class Panel:
    title: str
    series: list[Series] = field(default_factory=list)


@dataclass(frozen=True)
class Area:
    """Where a panel's plot lies in the image, and the data ranges its edges stand for."""

    left: int
    top: int
    right: int
    bottom: int
    x_max: float
    y_max: float

    def pixel(self, x: float, y: float) -> tuple[int, int]:
        px = self.left + round((self.right - self.left) * x / self.x_max)
        py = self.bottom - round((self.bottom - self.top) * y / self.y_max)
        return px, py


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 4, 5 times a power of ten at or above value: the top tick, and its
    half the middle one, are numbers a person reads at a glance (4 spares 3 replicas a 2.5)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 4, 5, 10) if step * power >= value)


def short(value: float) -> str:
    """A tick label that fits: 1500 -> 1.5K, 60000 -> 60K."""
    if value >= 1000:
        return f"{value / 1000:.1f}".rstrip("0").rstrip(".") + "K"
    return f"{value:.1f}".rstrip("0").rstrip(".")


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = 3 * (y * self.width + x)
            self.pixels[at : at + 3] = bytes(color)

    def get(self, x: int, y: int) -> Color:
        at = 3 * (y * self.width + x)
        r, g, b = self.pixels[at : at + 3]
        return r, g, b

    def rect(self, left: int, top: int, right: int, bottom: int, color: Color) -> None:
        for y in range(top, bottom + 1):
            for x in range(left, right + 1):
                self.set(x, y, color)

    def line(
        self, start: tuple[int, int], end: tuple[int, int], color: Color, *, dashed: bool = False
    ) -> None:
        """Bresenham's line, two pixels thick so a series stands out from the grid."""
        (x0, y0), (x1, y1) = start, end
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error, step = dx + dy, 0
        while True:
            if not dashed or step % 8 < 5:
                self.set(x0, y0, color)
                self.set(x0, y0 + 1, color)
            if (x0, y0) == (x1, y1):
                return
            doubled, step = 2 * error, step + 1
            if doubled >= dy:
                error, x0 = error + dy, x0 + sx
            if doubled <= dx:
                error, y0 = error + dx, y0 + sy

    def text(self, x: int, y: int, text: str, color: Color = INK) -> None:
        for index, char in enumerate(text.upper()):
            rows = GLYPHS.get(char, GLYPHS["_"])
            for row, digit in enumerate(rows):
                for column in range(3):
                    if int(digit, 8) & (4 >> column):
                        left, top = x + index * CHAR_W + column * SCALE, y + row * SCALE
                        self.rect(left, top, left + SCALE - 1, top + SCALE - 1, color)

    def png(self) -> bytes:
        return png_bytes(self.width, self.height, bytes(self.pixels))


def png_bytes(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG: signature, IHDR, one IDAT and IEND, each chunk with its CRC."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    stride = 3 * width
    # Filter type 0 (none) on every row: flat colours compress well enough without filters.
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def plot_area(panel: Panel, index: int, width: int, panel_height: int) -> Area:
    """The plot rectangle of the index-th panel, scaled to the largest x and y of its series."""
    values = [point for series in panel.series for point in series.points]
    x_max = max((x for x, _ in values), default=0.0) or 1.0
    y_max = nice_ceiling(max((y for _, y in values), default=0.0))
    top = index * panel_height
    return Area(
        MARGIN_LEFT,
        top + MARGIN_TOP,
        width - MARGIN_RIGHT,
        top + panel_height - MARGIN_BOTTOM,
        x_max,
        y_max,
    )


def draw_panel(canvas: Canvas, panel: Panel, area: Area) -> None:
    canvas.text(area.left, area.top - MARGIN_TOP + 8, panel.title)
    for tick in (0.0, area.y_max / 2, area.y_max):
        _, y = area.pixel(0, tick)
        canvas.line((area.left, y), (area.right, y), GRID)
        label = short(tick)
        canvas.text(area.left - 6 - len(label) * CHAR_W, y - CHAR_H // 2, label)
    x_step = nice_ceiling(area.x_max / 8)
    tick = 0.0
    while tick <= area.x_max:
        x, _ = area.pixel(tick, 0)
        canvas.line((x, area.bottom), (x, area.bottom + 4), INK)
        canvas.text(x - CHAR_W // 2 * len(f"{tick:g}"), area.bottom + 8, f"{tick:g}")
        tick += x_step
    canvas.line((area.left, area.top), (area.left, area.bottom), INK)
    canvas.line((area.left, area.bottom), (area.right, area.bottom), INK)
    # Legend along the title line, right-aligned: a short stroke of the series' style, its label.
    x = area.right
    # Series without a label share another's colour and legend entry (a dashed twin).
    for series in reversed([series for series in panel.series if series.label]):
        x -= len(series.label) * CHAR_W + 30
        y = area.top - MARGIN_TOP + 8 + CHAR_H // 2
        canvas.line((x, y), (x + 18, y), series.color, dashed=series.dashed)
        canvas.text(x + 24, area.top - MARGIN_TOP + 8, series.label, series.color)
    for series in panel.series:
        pixels = [area.pixel(x, y) for x, y in series.points]
        for start, end in itertools.pairwise(pixels):
            canvas.line(start, end, series.color, dashed=series.dashed)
        if len(pixels) == 1:
            canvas.set(*pixels[0], series.color)


def render(panels: list[Panel], width: int = 800, panel_height: int = 220) -> bytes:
    """The panels stacked top to bottom, as PNG bytes."""
    canvas = Canvas(width, panel_height * len(panels))
    for index, panel in enumerate(panels):
        draw_panel(canvas, panel, plot_area(panel, index, width, panel_height))
    return canvas.png()


def write(path: Path, panels: list[Panel]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(panels))
    return path
