"""The live view of `gatewatch run`: pure rendering of fixed /api/v1/gates documents."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest

from gatewatch.tools.live import (
    display_width,
    fit,
    format_age,
    format_wait,
    frame,
    render,
    render_waiting,
)

NOW = datetime(2021, 12, 20, 8, 5, 9, tzinfo=UTC)


def gate(gate_id: str, name: str, *, total: int | None, congestion: str = "normal",
         trend: str = "flat", wait: float | None = None, age: float | None = 1.0,
         alerts: tuple[str, ...] = ()) -> dict[str, Any]:
    """A gate document shaped like web/api.py gate_doc (the fields the view reads)."""
    return {"gate_id": gate_id, "name": name, "name_en": gate_id,
            "congestion": congestion if total is not None else "no_data",
            "waiting": None if total is None else {"total": total, "export": total,
                                                   "import": 0},
            "trend": trend, "estimated_wait_seconds": wait,
            "seconds_since_last_event": age, "active_alerts": list(alerts)}


DOC = {
    "gates": [
        gate("huu-nghi", "Cửa khẩu Quốc tế Hữu Nghị", total=412, congestion="warning",
             trend="up", wait=12_000, alerts=("huu-nghi/backlog",)),
        gate("chi-ma", "Cửa khẩu Chi Ma", total=None, age=None),
        gate("coc-nam", "Cửa khẩu Cốc Nam", total=0, trend="down", wait=None, age=75),
        gate("dong-dang-rail", "Ga Đường sắt Quốc tế Đồng Đăng", total=1500,
             congestion="critical", trend="up", wait=15.5 * 86_400, age=4000),
    ],
    "generated_at": "2021-12-20T08:05:09.000Z",
    "kafka": {"reachable": True, "unreachable_seconds": 0},
}


def row(lines: list[str], name: str) -> str:
    found = [line for line in lines if line.strip().startswith(name)]
    assert len(found) == 1, (name, lines)
    return found[0]


def test_header_has_the_time_and_a_row_per_gate():
    lines = render(DOC, NOW, refresh_seconds=5)
    assert "08:05:09" in lines[0] and "4 gates" in lines[0] and "Kafka reachable" in lines[0]
    assert "refresh every 5 s" in lines[0]
    assert lines[1].split() == ["GATE", "WAITING", "TREND", "LEVEL", "EST.", "WAIT", "LAST",
                                "EVENT", "ALERTS"]
    assert len(lines) == 2 + len(DOC["gates"])


def test_a_gate_with_data_shows_waiting_trend_level_wait_and_alerts():
    line = row(render(DOC, NOW), "Cửa khẩu Quốc tế Hữu Nghị")
    assert " 412 " in line and "↑ up" in line and "warning" in line
    assert "3 h 20 min" in line and "1 s ago" in line and line.endswith(" 1")


def test_a_gate_without_data_shows_no_data_never_zero():
    line = row(render(DOC, NOW), "Cửa khẩu Chi Ma")
    assert line.count("no data") == 3  # waiting, level, estimated wait
    assert "0" not in line and "↑" not in line and "→" not in line
    assert line.endswith("never")


def test_an_empty_gate_with_data_shows_zero_and_no_estimate():
    line = row(render(DOC, NOW), "Cửa khẩu Cốc Nam")
    assert " 0 " in line and "no data" not in line and "↓ down" in line
    assert " – " in line and "1 min ago" in line


def test_waiting_null_means_no_data_whatever_the_level_says():
    doc = {"gates": [dict(gate("x", "X", total=5), waiting=None)]}
    assert row(render(doc, NOW), "X").count("no data") == 3


def test_columns_line_up_with_vietnamese_names():
    lines = render(DOC, NOW)
    header = lines[1]

    def right_edge(line: str, token: str) -> int:
        return display_width(line[:line.index(token) + len(token)])

    def left_edge(line: str, token: str) -> int:
        return display_width(line[:line.index(token)])

    waiting = {"Cửa khẩu Quốc tế Hữu Nghị": " 412", "Cửa khẩu Chi Ma": "no data",
               "Cửa khẩu Cốc Nam": " 0", "Ga Đường sắt Quốc tế Đồng Đăng": " 1500"}
    for name, token in waiting.items():
        line = row(lines, name)
        assert right_edge(line, token) == right_edge(header, "WAITING"), line
        assert left_edge(line, "ago" if "ago" in line else "never") >= \
            left_edge(header, "LAST EVENT"), line
    levels = {"Cửa khẩu Quốc tế Hữu Nghị": "warning", "Cửa khẩu Cốc Nam": "normal",
              "Ga Đường sắt Quốc tế Đồng Đăng": "critical"}
    for name, level in levels.items():
        assert left_edge(row(lines, name), level) == left_edge(header, "LEVEL")


def test_decomposed_names_take_one_column_per_letter():
    nfc = "Cửa khẩu Tân Thanh"
    nfd = unicodedata.normalize("NFD", nfc)
    assert len(nfd) > len(nfc)
    assert display_width(nfd) == display_width(nfc) == len(nfc)
    assert display_width("x\u0301y") == 2  # a mark with no precomposed letter
    assert fit(nfd, 20) == nfc + "  "
    doc = {"gates": [gate("a", nfd, total=3), gate("b", "B", total=4)]}
    lines = render(doc, NOW)
    assert display_width(row(lines, nfc)) == display_width(row(lines, "B"))


def test_wide_characters_count_two_columns_and_long_names_are_cut():
    assert display_width("友谊关") == 6
    assert fit("友谊关", 5) == "友谊…"
    long = "Cửa khẩu " + "Đồng Đăng " * 6
    line = row(render({"gates": [gate("x", long, total=7)]}, NOW), "Cửa khẩu")
    assert "…" in line and " 7 " in line


def test_kafka_unreachable_is_shown():
    doc = dict(DOC, kafka={"reachable": False, "unreachable_seconds": 42.7})
    assert "Kafka UNREACHABLE for 42 s" in render(doc, NOW)[0]
    assert "Kafka" not in render({"gates": []}, NOW)[0]  # an older worker: say nothing


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "–"), (0, "< 1 min"), (29, "< 1 min"), (31, "1 min"), (45 * 60, "45 min"),
    (3600, "1 h 00 min"), (12_000, "3 h 20 min"), (47 * 3600 + 59 * 60, "47 h 59 min"),
    (48 * 3600, "2 d 0 h"), (15.5 * 86_400, "15 d 12 h"),
])
def test_estimated_waits_in_a_human_unit(seconds: float | None, text: str):
    assert format_wait(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "never"), (0.4, "0 s ago"), (59.9, "59 s ago"), (75, "1 min ago"),
    (4000, "1 h ago"), (3 * 86_400, "3 d ago"),
])
def test_last_event_age(seconds: float | None, text: str):
    assert format_age(seconds) == text


def test_fits_a_terminal_100_columns_wide_and_narrower():
    for width in (100, 60, 30):
        lines = render(DOC, NOW, width=width, notes=["  simulator: " + "x" * 200])
        assert all(display_width(line) <= width for line in lines), width
    assert render(DOC, NOW, width=60, notes=["  simulator: " + "x" * 200])[-1].endswith("…")


def test_colour_only_on_request_and_never_wider():
    assert not any("\x1b" in line for line in render(DOC, NOW))
    full = render(DOC, NOW, color=True)
    assert "\x1b[1;31mcritical" in row(full, "Ga Đường sắt")
    assert "\x1b[33mwarning" in row(full, "Cửa khẩu Quốc tế")
    for width in (56, 40):  # cut inside the coloured level, and before it
        cut = row(render(DOC, NOW, color=True, width=width), "Ga Đường sắt")
        plain = cut.replace("\x1b[1;31m", "").replace("\x1b[0m", "")
        assert display_width(plain) == width and plain.endswith("…")
        assert cut.count("\x1b[1;31m") == cut.count("\x1b[0m")  # no colour left open


def test_waiting_status_is_one_line():
    lines = render_waiting(NOW, 12.6)
    assert lines == ["gatewatch  08:05:09  waiting for the worker... (12 s)"]
    assert "connection refused" in render_waiting(NOW, 3, "(connection refused)")[0]


def test_frame_redraws_in_place_only_on_a_terminal():
    assert frame(["a", "b"], 0, tty=True) == "a\nb\n"
    assert frame(["a", "b"], 3, tty=True) == "\x1b[3A\r\x1b[Ja\nb\n"
    assert frame(["a", "b"], 3, tty=False) == "a\nb\n"
    assert frame([], 2, tty=True) == "\x1b[2A\r\x1b[J"
