"""The live view of ``gatewatch run``: one row per gate, drawn from ``GET /api/v1/gates``.

Pure formatting only (no I/O, no clock): ``cmd_run`` fetches the document, passes the
time in and writes what these functions return. :func:`render` turns a gate list into
lines no wider than ``width`` terminal columns; :func:`frame` wraps them so that on a
terminal the block is redrawn in place, and elsewhere (pipes, CI) printed as plain lines.

    gatewatch  14:03:05  5 gates  Kafka reachable  refresh every 5 s
      GATE                            WAITING  TREND  LEVEL     EST. WAIT   LAST EVENT  ALERTS
      Cửa khẩu Quốc tế Hữu Nghị           412  ↑ up   warning   3 h 20 min  2 s ago          1
      Cửa khẩu Chi Ma                 no data         no data   no data     never
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["display_width", "fit", "format_age", "format_wait", "frame", "render",
           "render_waiting"]

TREND = {"up": "↑ up", "down": "↓ down", "flat": "→ flat"}
LEVEL = {"normal": "normal", "warning": "warning", "critical": "critical",
         "no_data": "no data"}
_COLOR = {"warning": "\x1b[33m", "critical": "\x1b[1;31m", "no_data": "\x1b[2m"}
_RESET = "\x1b[0m"
_ANSI = re.compile(r"(\x1b\[[0-9;]*[A-Za-z])")
NO_DATA = "no data"
_NAME_MIN, _NAME_MAX = 4, 32


def display_width(text: str) -> int:
    """Terminal columns of ``text``: combining marks take none, wide (CJK) characters two.

    Vietnamese names may arrive decomposed (``e`` + U+0302 + U+0301): they still take
    one column per letter."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def fit(text: str, width: int, align: str = "<") -> str:
    """``text`` padded (``<`` left, ``>`` right) or cut with ``…`` to exactly ``width``
    columns."""
    text = unicodedata.normalize("NFC", text)
    if display_width(text) > width:
        out, used = "", 0
        for ch in text:
            w = display_width(ch)
            if used + w > width - 1:
                break
            out, used = out + ch, used + w
        text = out + "…"
    pad = " " * max(0, width - display_width(text))
    return pad + text if align == ">" else text + pad


def format_wait(seconds: float | None) -> str:
    """An estimated wait in a human unit: ``< 1 min``, ``45 min``, ``3 h 05 min``,
    ``16 d 4 h``; ``–`` when there is no estimate (nothing crossed in the last hour)."""
    if seconds is None:
        return "–"
    minutes = int(round(seconds / 60))
    if minutes < 1:
        return "< 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {mins:02d} min"
    days, hours = divmod(int(round(seconds / 3600)), 24)
    return f"{days} d {hours} h"


def format_age(seconds: float | None) -> str:
    """How long ago the gate's last event arrived: ``3 s ago``, ``5 min ago``, ``never``."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 172_800:
        return f"{s // 3600} h ago"
    return f"{s // 86_400} d ago"


def _kafka(doc: Mapping[str, Any]) -> str:
    kafka = doc.get("kafka")
    if not isinstance(kafka, Mapping):
        return ""
    if kafka.get("reachable", True):
        return "Kafka reachable"
    since = kafka.get("unreachable_seconds")
    return "Kafka UNREACHABLE" + (f" for {int(since)} s" if since else "")


def _waiting(gate: Mapping[str, Any]) -> str:
    waiting = gate.get("waiting")
    total = waiting.get("total") if isinstance(waiting, Mapping) else None
    return NO_DATA if total is None else str(int(total))


def render(doc: Mapping[str, Any], now: datetime, *, refresh_seconds: float = 5.0,
           width: int = 100, color: bool = False, notes: Sequence[str] = ()) -> list[str]:
    """The live view of one ``/api/v1/gates`` document at ``now``: a header (time, gate
    count, Kafka), a column header and one row per gate, then ``notes`` (one line each).

    A gate without data shows ``no data`` for waiting, level and wait, never ``0``.
    Every line is at most ``width`` columns; ``color`` adds ANSI colours to the level."""
    gates = [g for g in doc.get("gates", []) if isinstance(g, Mapping)]
    head = ["gatewatch", now.strftime("%H:%M:%S"),
            f"{len(gates)} gate{'s' if len(gates) != 1 else ''}", _kafka(doc),
            f"refresh every {refresh_seconds:g} s"]
    lines = ["  ".join(h for h in head if h)]
    names = [str(g.get("name") or g.get("gate_id") or "?") for g in gates]
    name_w = max([_NAME_MIN, *(min(_NAME_MAX, display_width(n)) for n in names)])
    cols = [("GATE", name_w, "<"), ("WAITING", 7, ">"), ("TREND", 6, "<"), ("LEVEL", 8, "<"),
            ("EST. WAIT", 11, "<"), ("LAST EVENT", 10, "<"), ("ALERTS", 6, ">")]

    def row(cells: Sequence[str], level: str = "") -> str:
        parts = [fit(c, w, a) for c, (_, w, a) in zip(cells, cols, strict=True)]
        if color and level in _COLOR:
            parts[3] = _COLOR[level] + parts[3] + _RESET
        return "  " + "  ".join(parts).rstrip()

    lines.append(row([c[0] for c in cols]))
    for gate, name in zip(gates, names, strict=True):
        level = str(gate.get("congestion") or "no_data")
        waiting = _waiting(gate)
        if waiting == NO_DATA:
            level = "no_data"
        has_data = level != "no_data"
        alerts = gate.get("active_alerts") or []
        lines.append(row([
            name, waiting,
            TREND.get(str(gate.get("trend")), "") if has_data else "",
            LEVEL.get(level, level),
            format_wait(gate.get("estimated_wait_seconds")) if has_data else NO_DATA,
            format_age(gate.get("seconds_since_last_event")),
            str(len(alerts)) if alerts else "",
        ], level))
    lines.extend(notes)
    return [_clip(line, width) for line in lines]


def render_waiting(now: datetime, waited_seconds: float, reason: str = "",
                   width: int = 100) -> list[str]:
    """The one-line status shown until the worker's API answers."""
    text = f"gatewatch  {now.strftime('%H:%M:%S')}  waiting for the worker... " \
           f"({int(waited_seconds)} s)"
    return [_clip(text + (f"  {reason}" if reason else ""), width)]


def frame(lines: Sequence[str], previous: int, tty: bool) -> str:
    """The text to write to show ``lines``: on a terminal, first move up over the
    ``previous`` lines drawn and clear them, so the block is redrawn in place; elsewhere,
    the lines as they are. ``frame([], n, True)`` only erases the last block."""
    prefix = f"\x1b[{previous}A\r\x1b[J" if tty and previous > 0 else ""
    return prefix + "".join(line + "\n" for line in lines)


def _clip(line: str, width: int) -> str:
    """Cut a line to ``width`` columns (ending in ``…``); ANSI colour codes take none."""
    if display_width(_ANSI.sub("", line)) <= width:
        return line
    out, used, coloured = [], 0, False
    for part in _ANSI.split(line):
        if _ANSI.fullmatch(part):
            out.append(part)
            coloured = True
            continue
        for ch in unicodedata.normalize("NFC", part):
            w = display_width(ch)
            if used + w > width - 1:
                out.append("…" + (_RESET if coloured else ""))
                return "".join(out)
            out.append(ch)
            used += w
    return "".join(out)
