"""hack/demo_chart.py writes PNGs a viewer can open, with the series where the data puts them;
hack/demo_scrape.py turns the demo's scrape into those panels."""

from __future__ import annotations

import math
import struct
import zlib

from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.scripts import hack_module

chart = hack_module("demo_chart")
scrape = hack_module("demo_scrape")


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG, each checked against its CRC."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        found.append((kind, data))
        at += 12 + length
    return found


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB rows of a PNG this renderer wrote (filter type 0 throughout)."""
    found = chunks(png)
    assert [kind for kind, _ in found] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", found[0][1])
    assert (depth, colour) == (8, 2)  # 8-bit RGB
    raw = zlib.decompress(found[1][1])
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, [row[1:] for row in rows]


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    r, g, b = rows[y][3 * x : 3 * x + 3]
    return r, g, b


def test_a_png_of_the_declared_size_with_valid_chunks() -> None:
    panels = [chart.Panel("Lag", [chart.Series("stats", [(0, 0), (10, 900)], chart.BLUE)])] * 3
    width, height, rows = decode(chart.render(panels, width=640, panel_height=200))
    assert (width, height, len(rows)) == (640, 600, 600)


def test_a_series_lands_on_the_pixels_its_values_map_to() -> None:
    flat = chart.Series("ready", [(0, 40), (60, 40)], chart.ORANGE)
    rising = chart.Series("desired", [(0, 0), (60, 100)], chart.GREEN)
    panel = chart.Panel("Replicas", [flat, rising])
    _, _, rows = decode(chart.render([panel], width=500, panel_height=300))
    area = chart.plot_area(panel, 0, 500, 300)
    assert area.y_max == 100  # the largest value, already a round number
    # The origin at the bottom left, the largest values at the top right, 40% of the way up at 40.
    assert area.pixel(0, 0) == (area.left, area.bottom)
    assert area.pixel(60, 100) == (area.right, area.top)
    assert area.pixel(0, 40)[1] == area.bottom - round(0.4 * (area.bottom - area.top))
    # Along the flat series, at its height; along the diagonal, halfway up at halfway across.
    for x in (5, 20, 45):
        assert pixel(rows, *area.pixel(x, 40)) == chart.ORANGE
    assert pixel(rows, *area.pixel(30, 50)) == chart.GREEN
    # Above the flat line, away from the diagonal and the grid: the background.
    assert pixel(rows, *area.pixel(50, 60)) == chart.WHITE


def test_the_second_panel_is_drawn_below_the_first() -> None:
    first = chart.Panel("A", [chart.Series("a", [(0, 1), (10, 1)], chart.BLUE)])
    second = chart.Panel("B", [chart.Series("b", [(0, 1), (10, 1)], chart.GREEN)])
    _, _, rows = decode(chart.render([first, second], width=400, panel_height=200))
    below = chart.plot_area(second, 1, 400, 200)
    assert below.top > 200
    assert pixel(rows, *below.pixel(5, 1)) == chart.GREEN


@given(st.floats(min_value=1e-3, max_value=1e9))
def test_the_axis_ceiling_is_round_and_covers_the_data(value: float) -> None:
    ceiling = chart.nice_ceiling(value)
    assert value <= ceiling < value * 10 + 1e-9
    mantissa = ceiling / 10 ** math.floor(math.log10(ceiling))
    assert round(mantissa, 6) in {1, 2, 4, 5, 10}


def test_tick_labels_are_short() -> None:
    assert [chart.short(v) for v in (0, 2.5, 500, 1500, 60000)] == [
        "0",
        "2.5",
        "500",
        "1.5K",
        "60K",
    ]


METRICS = """\
# HELP eventfleet_consumer_group_lag Consumer-group lag last measured, per EventConsumer.
# TYPE eventfleet_consumer_group_lag gauge
eventfleet_consumer_group_lag{name="stats",namespace="gamemetrics"} 4200.0
eventfleet_consumer_group_lag{name="stats",namespace="other"} 7.0
# HELP eventfleet_desired_replicas Replicas the autoscaler decided, per EventConsumer.
# TYPE eventfleet_desired_replicas gauge
eventfleet_desired_replicas{name="stats",namespace="gamemetrics"} 3.0
# HELP eventfleet_ready_replicas Ready consumer replicas (status.readyReplicas), per EventConsumer.
# TYPE eventfleet_ready_replicas gauge
eventfleet_ready_replicas{name="stats",namespace="gamemetrics"} 2.0
"""


def test_the_fleet_of_one_namespace_from_the_operators_metrics() -> None:
    assert scrape.parse_fleet(METRICS, "gamemetrics") == {
        "stats": {"lag": 4200.0, "desired": 3.0, "ready": 2.0}
    }


def test_events_per_second_from_committed_offsets_never_negative() -> None:
    points = [(0.0, 0.0), (1.0, 500.0), (3.0, 1500.0), (3.0, 1600.0), (4.0, 1000.0)]
    assert scrape.rates(points) == [(1.0, 500.0), (3.0, 500.0), (4.0, 0.0)]


def test_three_panels_from_a_scrape() -> None:
    taken = scrape.Scrape()
    taken.add_gauges(0.0, scrape.parse_fleet(METRICS, "gamemetrics"))
    taken.committed["stats"] = [(0.0, 0.0), (1.0, 800.0)]
    lag, replicas, rate = taken.panels()
    assert [s.points for s in lag.series] == [[(0.0, 4200.0)]]
    assert [(s.label, s.dashed) for s in replicas.series] == [
        ("stats", False),
        ("", True),  # ready shares the colour and legend entry of desired
    ]
    assert rate.series[0].points == [(1.0, 800.0)]
