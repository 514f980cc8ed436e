"""Decoding and validation of contract-v1 events at the edge, and record encoders.

``Decoder.decode`` never raises on data: it returns either a
:class:`~gatewatch.streams.records.CrossingEvent` or a
:class:`~gatewatch.streams.records.Rejection` carrying the original bytes and a
reason code from :data:`~gatewatch.streams.records.REJECT_REASONS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from gatewatch.streams.plates import normalise_plate
from gatewatch.streams.records import (
    COUNT_SOURCES,
    CountObservation,
    CrossingEvent,
    Rejection,
    WindowRecord,
)
from gatewatch.streams.vocabulary import CARGOS, DIRECTIONS, EVENT_TYPES

__all__ = ["Decoder", "encode_count", "encode_event", "encode_window", "format_ms",
           "parse_timestamp_ms"]

_MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
_TYPES = frozenset(EVENT_TYPES)
_DIRS = frozenset(DIRECTIONS)
_CARGOS = frozenset(CARGOS)
_REQUIRED = ("event_id", "gate_id", "vehicle_id", "type", "direction", "occurred_at")
#: control characters (C0, DEL, C1) and the Unicode line/paragraph separators: never part
#: of an id or a lane; a trailing newline would make "huu-nghi\n" another vehicle
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]").search

# RFC 3339 (section 5.6) date-times are read by slicing at fixed positions and looking
# the pieces up in tables of their only valid spellings (ASCII digits, in range), which is
# exact and about as fast as datetime.fromisoformat (too lenient since Python 3.11).
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SEPARATORS = frozenset("Tt ")  # "T"; lower case per 5.6's note; a space, as 5.6 permits
_HOUR_S = {f"{h:02d}": h * 3600 for h in range(24)}
_MINUTE_S = {f"{m:02d}": m * 60 for m in range(60)}
_SECOND = {f"{s:02d}": s for s in range(61)}  # 60: a leap second
#: "+HH:MM"/"-HH:MM" → seconds to add to local time for UTC ("-00:00", unknown local
#: offset (RFC 3339 4.3), is UTC)
_OFFSET_S = {f"{sign}{h:02d}:{m:02d}": (-1 if sign == "+" else 1) * (h * 3600 + m * 60)
             for sign in "+-" for h in range(24) for m in range(60)}
#: the first 1-3 fraction digits → milliseconds: ".5" = 500 ms, ".05" = 50 ms
_FRACTION_MS: dict[str, int] = {digits: int(digits.ljust(3, "0")) for n in (1, 2, 3)
                                for digits in (f"{i:0{n}d}" for i in range(10 ** n))}
#: "YYYY-MM-DD" → epoch seconds of its midnight (valid dates only; few distinct ones)
_DAYS: dict[str, int] = {}
#: "YYYY-MM-DDTHH:MM" → epoch seconds of that minute in local time: events come in bursts
#: of the same minutes, so most reads are one lookup here
_MINUTES: dict[str, int] = {}
_CACHE_MAX = 4096


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _date_s(date: str) -> int | None:
    """Epoch seconds of "YYYY-MM-DD" at 00:00 UTC, or None (month 13, Feb 30, ...)."""
    if _DATE(date) is None:
        return None
    y, mo, d = int(date[0:4]), int(date[5:7]), int(date[8:10])
    if not (1 <= mo <= 12 and 1 <= d and y >= 1):  # year 0000: no such date in Python
        return None
    if d > _MONTH_DAYS[mo] and not (mo == 2 and d == 29 and y % 4 == 0
                                    and (y % 100 != 0 or y % 400 == 0)):
        return None
    return _days_from_civil(y, mo, d) * 86_400


def _minute_s(prefix: str) -> int | None:
    """Epoch seconds of "YYYY-MM-DDTHH:MM" read as UTC, or None if it is not one."""
    date = prefix[:10]
    day = _DAYS.get(date)
    if day is None:
        day = _date_s(date)
        if day is None:
            return None
        if len(_DAYS) >= _CACHE_MAX:
            _DAYS.clear()
        _DAYS[date] = day
    hour = _HOUR_S.get(prefix[11:13])
    minute = _MINUTE_S.get(prefix[14:16])
    if hour is None or minute is None or prefix[10] not in _SEPARATORS or prefix[13] != ":":
        return None
    return day + hour + minute


def _is_leap_second_minute(minute_s: int) -> bool:
    """Whether the UTC minute starting at ``minute_s`` can end with a leap second: 23:59
    on the last day of a month (RFC 3339 section 5.7; the table of the leap seconds that
    actually happened is not checked)."""
    next_day_s = minute_s + 60
    if next_day_s % 86_400:
        return False
    # is the next day the 1st of a month? (H. Hinnant's civil_from_days, the day only)
    z = next_day_s // 86_400 + 719_468
    doe = z - (z // 146_097) * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    return doy == (153 * ((5 * doy + 2) // 153) + 2) // 5


def parse_timestamp_ms(text: str) -> int | None:
    """RFC 3339 date-time (section 5.6) → epoch milliseconds, or None if not one.

    Exactly ``YYYY-MM-DD`` "T" ``HH:MM:SS``, an optional "." fraction, and an offset
    (``Z`` or ``+HH:MM``/``-HH:MM``); "T" and "Z" may be lower case, and a space may stand
    for "T" (RFC 3339 allows it as an application's choice; log files write it). Refused:
    week and ordinal dates, a "," fraction, missing seconds, ``+07``, ``+0700``,
    ``+07:00:30``, non-ASCII digits, and dates and times that do not exist (Feb 30, month
    13, hour 24, minute 60). Fractions are decimal fractions of a second (``.5`` = 500
    ms); digits after the third are dropped (truncated, never rounded up). A leap second
    (``:60``, only where one can be: 23:59:60 UTC on the last day of a month) is read as
    the last millisecond of its minute, ``23:59:59.999`` UTC, whatever its fraction: it
    keeps its order after every other instant of that minute.
    """
    n = len(text)
    if n < 20:
        return None
    prefix = text[:16]
    minute = _MINUTES.get(prefix)
    if minute is None:
        minute = _minute_s(prefix)
        if minute is None:
            return None
        if len(_MINUTES) >= _CACHE_MAX:
            _MINUTES.clear()
        _MINUTES[prefix] = minute
    second = _SECOND.get(text[17:19])
    if second is None or text[16] != ":":
        return None
    last = text[-1]
    if last == "Z" or last == "z":
        offset = 0
        fraction = text[19:-1]
    else:
        if n < 25:
            return None
        offset_s = _OFFSET_S.get(text[-6:])
        if offset_s is None:
            return None
        offset = offset_s
        fraction = text[19:-6]
    ms = 0
    if fraction:
        first = _FRACTION_MS.get(fraction[1:4])
        if first is None or fraction[0] != "." or (
                len(fraction) > 4 and not (fraction[4:].isdigit() and fraction[4:].isascii())):
            return None
        ms = first
    if second == 60:
        if not _is_leap_second_minute(minute + offset):
            return None
        second, ms = 59, 999
    return (minute + offset + second) * 1000 + ms


def format_ms(ms: int) -> str:
    """Epoch milliseconds → RFC 3339 UTC string with milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Decoder:
    """Validates raw Kafka messages against contract v1 for a set of known gates.

    ``max_future_skew_ms``: how far ahead of the worker's clock an event may be (clocks
    drift; a camera writing local time with ``Z`` is hours ahead). Later events are
    rejected as ``from_the_future`` with their gate, so one bad clock cannot move a
    gate's watermark.
    """

    __slots__ = ("_gates", "_max_bytes", "_max_future_ms")

    def __init__(self, gate_ids: Iterable[str], max_bytes: int = 65536,
                 max_future_skew_ms: int = 300_000) -> None:
        self._gates = frozenset(gate_ids)
        self._max_bytes = max_bytes
        self._max_future_ms = max_future_skew_ms

    def _load(self, raw: bytes | None, key: bytes | None) -> dict[str, Any] | Rejection:
        """The message's JSON object, or why it is not one (size, UTF-8, JSON, object)."""
        if raw is None:
            return Rejection("not_json", "empty message (null value)", b"", key)
        if len(raw) > self._max_bytes:
            return Rejection("too_large", f"{len(raw)} bytes > {self._max_bytes}", raw, key)
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return Rejection("not_utf8", "message is not UTF-8", raw, key)
            return Rejection("not_json", f"invalid JSON: {str(exc)[:120]}", raw, key)
        if type(doc) is not dict:
            return Rejection("not_object", f"JSON {type(doc).__name__}, expected object",
                             raw, key)
        return doc

    def _when(self, occurred_at: str, gate_id: str, raw: bytes, key: bytes | None,
              now_ms: int) -> int | Rejection:
        """``occurred_at`` in ms, after the checks every record shares: RFC 3339, after
        2000, a configured gate, the key = the gate, not from the future."""
        ms = parse_timestamp_ms(occurred_at)
        if ms is None:
            return Rejection("bad_timestamp", "occurred_at must be RFC 3339 with an offset, "
                             f"got {occurred_at[:40]!r}", raw, key)
        if ms < _MIN_MS:
            return Rejection("timestamp_out_of_range", "occurred_at must be after 2000",
                             raw, key)
        if gate_id not in self._gates:
            return Rejection("unknown_gate", f"gate_id {gate_id[:64]!r} is not configured",
                             raw, key)
        if key is not None and key != gate_id.encode():
            return Rejection("key_mismatch", "Kafka key must equal gate_id", raw, key)
        if ms > now_ms + self._max_future_ms:
            return Rejection("from_the_future", f"occurred_at is {(ms - now_ms) / 1000:.0f} s "
                             f"ahead of the worker's clock (at most "
                             f"{self._max_future_ms / 1000:g} s allowed)", raw, key, gate_id)
        return ms

    def decode(self, raw: bytes | None, key: bytes | None, now_ms: int
               ) -> CrossingEvent | Rejection:
        """Decode one message; ``now_ms`` (the worker's clock) bounds how far in the
        future events may be."""
        doc = self._load(raw, key)
        if type(doc) is not dict:
            assert isinstance(doc, Rejection)
            return doc
        raw = raw or b""
        for name in _REQUIRED:
            value = doc.get(name)
            if value is None:
                return Rejection("missing_field", f"{name} is required", raw, key)
            if type(value) is not str:
                return Rejection("wrong_type", f"{name} must be a string, got "
                                 f"{type(value).__name__}", raw, key)
        event_id: str = doc["event_id"]
        gate_id: str = doc["gate_id"]
        vehicle_id: str = doc["vehicle_id"]
        etype: str = doc["type"]
        direction: str = doc["direction"]
        if not 0 < len(event_id) <= 64 or _CONTROL(event_id):
            return Rejection("invalid_value", "event_id must be 1-64 characters, no control "
                             "characters", raw, key)
        if not 0 < len(vehicle_id) <= 64 or _CONTROL(vehicle_id):
            return Rejection("invalid_value", "vehicle_id must be 1-64 characters, no control "
                             "characters", raw, key)
        vehicle_id = normalise_plate(vehicle_id)
        if not vehicle_id:
            return Rejection("invalid_value", "vehicle_id has no letters or digits", raw, key)
        if etype not in _TYPES:
            return Rejection("invalid_value", f"type {etype[:32]!r} not in queued, crossed, "
                             "withdrawn", raw, key)
        if direction not in _DIRS:
            return Rejection("invalid_value", f"direction {direction[:32]!r} not in export, "
                             "import", raw, key)
        cargo = doc.get("cargo")
        if cargo is not None and (type(cargo) is not str or cargo not in _CARGOS):
            return Rejection("invalid_value" if type(cargo) is str else "wrong_type",
                             "cargo must be perishable, general or empty", raw, key)
        lane = doc.get("lane")
        if lane is not None and (type(lane) is not str or len(lane) > 32 or _CONTROL(lane)):
            return Rejection("invalid_value" if type(lane) is str else "wrong_type",
                             "lane must be a string of at most 32 characters, no control "
                             "characters", raw, key)
        ms = self._when(doc["occurred_at"], gate_id, raw, key, now_ms)
        if type(ms) is not int:
            assert isinstance(ms, Rejection)
            return ms
        return CrossingEvent(event_id, gate_id, vehicle_id, etype, direction, ms, cargo, lane)

    def decode_count(self, raw: bytes | None, key: bytes | None, now_ms: int
                     ) -> CountObservation | Rejection:
        """Decode one ``gate.counts`` message: ``observation_id``, ``gate_id``,
        ``direction``, ``count`` (a non-negative integer), ``occurred_at`` (RFC 3339 with
        an offset) and ``source`` (one of :data:`COUNT_SOURCES`); the same edge checks as
        events (size, UTF-8, key = gate_id, not from the future)."""
        doc = self._load(raw, key)
        if type(doc) is not dict:
            assert isinstance(doc, Rejection)
            return doc
        raw = raw or b""
        for name in ("observation_id", "gate_id", "direction", "occurred_at", "source"):
            value = doc.get(name)
            if value is None:
                return Rejection("missing_field", f"{name} is required", raw, key)
            if type(value) is not str:
                return Rejection("wrong_type", f"{name} must be a string, got "
                                 f"{type(value).__name__}", raw, key)
        count = doc.get("count")
        if count is None:
            return Rejection("missing_field", "count is required", raw, key)
        if type(count) is not int:
            return Rejection("wrong_type", f"count must be an integer, got "
                             f"{type(count).__name__}", raw, key)
        if not 0 <= count <= 1_000_000:
            return Rejection("invalid_value", "count must be in [0, 1000000]", raw, key)
        obs_id, gate_id, direction, source = (doc["observation_id"], doc["gate_id"],
                                              doc["direction"], doc["source"])
        if not 0 < len(obs_id) <= 64 or _CONTROL(obs_id):
            return Rejection("invalid_value", "observation_id must be 1-64 characters, no "
                             "control characters", raw, key)
        if direction not in _DIRS:
            return Rejection("invalid_value", f"direction {direction[:32]!r} not in export, "
                             "import", raw, key)
        if source not in COUNT_SOURCES:
            return Rejection("invalid_value", f"source {source[:32]!r} not in "
                             f"{', '.join(COUNT_SOURCES)}", raw, key)
        ms = self._when(doc["occurred_at"], gate_id, raw, key, now_ms)
        if type(ms) is not int:
            assert isinstance(ms, Rejection)
            return ms
        return CountObservation(obs_id, gate_id, direction, count, ms, source)


def encode_count(obs: CountObservation) -> bytes:
    """JSON for a count observation on ``gate.counts`` (simulator, tests)."""
    return orjson.dumps({"observation_id": obs.observation_id, "gate_id": obs.gate_id,
                         "direction": obs.direction, "count": obs.count,
                         "occurred_at": format_ms(obs.occurred_at_ms), "source": obs.source})


def encode_event(event: CrossingEvent) -> bytes:
    """Contract-v1 JSON for an event (used by the simulator and tests)."""
    doc: dict[str, str] = {
        "event_id": event.event_id,
        "gate_id": event.gate_id,
        "vehicle_id": event.vehicle_id,
        "type": event.type,
        "direction": event.direction,
        "occurred_at": format_ms(event.occurred_at_ms),
    }
    if event.cargo is not None:
        doc["cargo"] = event.cargo
    if event.lane is not None:
        doc["lane"] = event.lane
    return orjson.dumps(doc)


def encode_window(record: WindowRecord) -> bytes:
    """JSON for a closed window record on ``gate.windows``."""
    return orjson.dumps({
        "gate_id": record.gate_id,
        "window_start": format_ms(record.start_ms),
        "window_end": format_ms(record.end_ms),
        "size_seconds": (record.end_ms - record.start_ms) // 1000,
        "arrivals": {"export": record.arrivals_export, "import": record.arrivals_import,
                     "total": record.arrivals},
        "crossings": {"export": record.crossings_export, "import": record.crossings_import,
                      "total": record.crossings},
        "withdrawals": {"export": record.withdrawals_export,
                        "import": record.withdrawals_import, "total": record.withdrawals},
        "waits": {"count": record.waits_count, "sum_seconds": record.waits_sum_seconds,
                  "max_seconds": record.waits_max_seconds},
        "closed_by": record.closed_by,
        "republished": record.republished,
        "waiting": None if record.waiting_export is None or record.waiting_import is None
        else {"export": record.waiting_export, "import": record.waiting_import,
              "total": record.waiting_export + record.waiting_import},
    })
