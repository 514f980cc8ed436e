"""The versioned JSON API (read-only) on the worker's web server.

``GET /api/v1/gates``, ``/api/v1/gates/{gate_id}``, ``/api/v1/gates/{gate_id}/windows``,
``/api/v1/gates/{gate_id}/forecast``, ``/api/v1/alerts``, ``/api/v1/advisories``,
``/api/v1/recommendations``
(:mod:`gatewatch.web.advice`), the public feed ``/api/v1/public/gates`` (no token:
:mod:`gatewatch.web.public`), the CAP feed ``/api/v1/cap.atom`` with its messages
``/api/v1/cap/{identifier}.xml`` (:mod:`gatewatch.alerts.cap`) and ``/openapi.json``; from
the history store (``GATEWATCH_HISTORY_URL``, opened read-only):
``/api/v1/gates/{gate_id}/history`` (JSON or CSV) and ``/api/v1/gates/{gate_id}/patterns``.
Pure builders turn the ledger and the alert evaluator into documents; :func:`install`
adds the views to a Faust app.

Scale-out: a worker holds state only for the gates on its partitions. For any other
gate it asks its peers (the workers the Faust assignor knows), so any worker answers
for any gate. Peer requests carry ``X-Gatewatch-Forwarded: 1`` and are never forwarded
again.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web as aioweb
from faust.web import View

from gatewatch.alerts.advisories import advisory_notices
from gatewatch.alerts.cap import (
    CAP_TYPE,
    Notice,
    alert_notice,
    atom_feed,
    cap_entries,
    cap_message,
    etag,
    find_message,
)
from gatewatch.core.congestion import LEVELS, GateAlerts
from gatewatch.core.estimates import ErrorSummary
from gatewatch.core.forecast import GateForecast
from gatewatch.core.processor import Processor
from gatewatch.core.signals import CAMERAS, GateSignals
from gatewatch.errors import HistoryError
from gatewatch.gates import GateConfig, GateSet
from gatewatch.history.aggregate import STEPS, HourPattern, SeriesPoint, Stat
from gatewatch.streams.codec import format_ms, parse_timestamp_ms
from gatewatch.streams.records import WindowRecord
from gatewatch.web import advice, public

if TYPE_CHECKING:
    from gatewatch.history.store import HistoryStore

__all__ = ["ALLOW", "CSV_COLUMNS", "MAX_FORECAST_HOURS", "MAX_PAGE", "PREFLIGHT_MAX_AGE",
           "ApiError", "authorized", "cors_headers", "forecast_doc", "gate_doc", "history_csv",
           "history_query", "install", "is_self", "openapi", "parse_hours", "parse_range",
           "pattern_doc", "patterns_query", "peer_urls", "point_doc", "quality_doc",
           "quality_schema", "window_doc"]

log = logging.getLogger(__name__)

MAX_PAGE = 500
#: the forecast endpoint's ``hours``: 1 … this (default 48)
MAX_FORECAST_HOURS = 168
FORWARDED = "X-Gatewatch-Forwarded"
#: the methods every API path answers; anything else is a 405 naming these
ALLOW = "GET, HEAD, OPTIONS"
#: seconds a browser may cache a CORS preflight answer
PREFLIGHT_MAX_AGE = 600
#: ``from``/``to`` must stay within what RFC 3339 (and Python's datetime) can write back
MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
DAY_MS = 86_400_000
#: an unencoded ``+`` before the offset arrives as a space: ``08:00:00 07:00``
_PLUS_AS_SPACE = re.compile(r"(.*\d{2}:\d{2}(?:\.\d+)?) (\d{2}:\d{2})")
_EXAMPLE_TS = "2021-12-20T08:00:00%2B07:00 (write + as %2B in a URL) or 2021-12-20T01:00:00Z"


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def window_doc(r: WindowRecord) -> dict[str, Any]:
    return {"window_start": format_ms(r.start_ms), "window_end": format_ms(r.end_ms),
            "arrivals": {"export": r.arrivals_export, "import": r.arrivals_import,
                         "total": r.arrivals},
            "crossings": {"export": r.crossings_export, "import": r.crossings_import,
                          "total": r.crossings},
            "withdrawals": {"export": r.withdrawals_export, "import": r.withdrawals_import,
                            "total": r.withdrawals},
            "waits": {"count": r.waits_count, "sum_seconds": r.waits_sum_seconds,
                      "max_seconds": r.waits_max_seconds},
            "closed_by": r.closed_by}


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def forecast_doc(gate_id: str, fc: GateForecast | None, owned: bool) -> dict[str, Any]:
    """The forecast document (docs/forecasting.md); ``fc`` None: no data for the gate."""
    if fc is None:
        return {"gate_id": gate_id, "owned": owned, "basis": "none", "made_at": None,
                "history_hours": 0, "backlog_now": None, "expected_wait_seconds": None,
                "hours": []}
    return {
        "gate_id": gate_id, "owned": owned, "basis": fc.basis,
        "made_at": format_ms(fc.made_at_ms), "history_hours": fc.history_hours,
        "backlog_now": fc.backlog_now,
        "expected_wait_seconds": _r(fc.wait_now_seconds),
        "expected_wait_interval_seconds": [_r(fc.wait_now_low_seconds),
                                           _r(fc.wait_now_high_seconds)],
        "arrivals_per_day": _r(fc.arrivals_per_day), "clearances_per_day":
        _r(fc.clearances_per_day),
        "level": {"arrivals": _r(fc.arrivals_level, 3), "capacity": _r(fc.capacity_level, 3)},
        "interval": 0.8,
        "hours": [{"start": format_ms(h.start_ms), "arrivals": _r(h.arrivals, 2),
                   "capacity": _r(h.capacity, 2), "clearances": _r(h.clearances, 2),
                   "backlog": _r(h.backlog), "backlog_low": _r(h.backlog_low),
                   "backlog_high": _r(h.backlog_high), "wait_seconds": _r(h.wait_seconds),
                   "wait_low_seconds": _r(h.wait_low_seconds),
                   "wait_high_seconds": _r(h.wait_high_seconds), "p_full": round(h.p_full, 4)}
                  for h in fc.hours]}


def parse_hours(query: Any) -> int:
    """The forecast's ``hours`` (1 … MAX_FORECAST_HOURS, default 48); 400 otherwise."""
    raw = query.get("hours", "48")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= MAX_FORECAST_HOURS:
        raise ApiError(400, "bad_hours",
                       f"hours must be an integer between 1 and {MAX_FORECAST_HOURS}")
    return int(raw)


def gate_doc(gate: GateConfig, s: GateSignals, alerts: GateAlerts,
             advisories: dict[str, Any] | None = None,
             errors: ErrorSummary | None = None) -> dict[str, Any]:
    """One gate's state; ``owned`` says whether this worker holds the gate's state;
    ``advisories``: its shipment advisories by direction; ``errors``: how the expected
    waits shown so far scored against the real waits."""
    fresh = s.has_data
    backlog = s.backlog
    hour = s.last_hour
    return {
        "gate_id": gate.gate_id, "name": gate.name, "name_en": gate.name_en,
        "kind": gate.kind, "owned": s.owned,
        "congestion": alerts.level.level if fresh else "no_data",
        "waiting": {"total": backlog, "export": s.waiting_export,
                    "import": s.waiting_import} if fresh else None,
        "yard": {"capacity": gate.yard_capacity,
                 "occupancy_ratio": round(backlog / gate.yard_capacity, 4) if fresh else None},
        "thresholds": {"warning": gate.warning_threshold, "critical": gate.critical_threshold},
        "estimated_wait_seconds": s.estimated_wait_seconds if fresh else None,
        "estimated": True,
        "wait_estimate": {
            "basis": "forecast" if s.expected_wait_seconds is not None else "last_hour_ratio",
            "scored": errors.scored if errors else 0,
            "mean_absolute_error_seconds": _r(errors.mean_absolute_error_seconds)
            if errors else None,
            "bias_seconds": _r(errors.bias_seconds) if errors else None},
        "oldest_wait_seconds": s.oldest_wait_seconds if fresh else None,
        "oldest_perishable_wait_seconds": s.oldest_perishable_wait_seconds if fresh else None,
        "last_hour": {"arrivals": hour.arrivals, "crossings": hour.crossings,
                      "withdrawals": hour.withdrawals},
        "trend": s.trend,
        "last_event_at": format_ms(s.last_event_ms) if s.last_event_ms else None,
        "seconds_since_last_event": round(s.silent_seconds, 3)
        if s.silent_seconds is not None else None,
        "active_alerts": sorted(a.alert_id for a in alerts.active.values()),
        "advisories": advisories or {},
        **quality_doc(s),
    }


# -- data quality (reconciliation, cameras, count observations) ------------------------

def quality_doc(s: GateSignals) -> dict[str, Any]:
    """A gate's vehicles set aside by reconciliation (``null`` when no data, like
    ``waiting``) and its ``data_quality``: per camera the reads, unmatched reads and
    pairings of the last hour and day, and the latest count observation per direction
    beside the ledger. No plate appears here."""
    fresh = s.has_data

    def split(export: int, import_: int) -> dict[str, int] | None:
        return {"total": export + import_, "export": export, "import": import_} \
            if fresh else None

    def share(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "unconfirmed": split(s.unconfirmed_export, s.unconfirmed_import),
        "paired": split(s.paired_export, s.paired_import),
        "data_quality": {
            "cameras": [{"camera": c.camera,
                         "last_hour": {"reads": c.reads_last_hour,
                                       "unmatched": c.unmatched_last_hour,
                                       "paired": c.paired_last_hour,
                                       "unmatched_share": share(c.unmatched_share_last_hour)},
                         "last_day": {"reads": c.reads_last_day,
                                      "unmatched": c.unmatched_last_day,
                                      "paired": c.paired_last_day,
                                      "unmatched_share": share(c.unmatched_share_last_day)}}
                        for c in s.cameras],
            "count_checks": [{"direction": k.direction, "observed": k.observed,
                              "source": k.source, "observed_at": format_ms(k.observed_at_ms),
                              "ledger": k.ledger, "discrepancy": k.discrepancy}
                             for k in s.count_checks]},
    }


def quality_schema() -> dict[str, Any]:
    """The OpenAPI properties :func:`quality_doc` adds to a gate."""
    split = {"type": "object", "nullable": True, "properties": {
        k: {"type": "integer"} for k in ("total", "export", "import")}}
    period = {"type": "object", "properties": {
        "reads": {"type": "integer"}, "unmatched": {"type": "integer"},
        "paired": {"type": "integer"},
        "unmatched_share": {"type": "number", "nullable": True}}}
    camera = {"type": "object", "properties": {
        "camera": {"type": "string", "enum": list(CAMERAS)},
        "last_hour": period, "last_day": period}}
    check = {"type": "object", "properties": {
        "direction": {"type": "string", "enum": ["export", "import"]},
        "observed": {"type": "integer"}, "source": {"type": "string"},
        "observed_at": {"type": "string", "format": "date-time"},
        "ledger": {"type": "integer"}, "discrepancy": {"type": "integer"}}}
    return {
        "unconfirmed": split | {"description": "waiting vehicles set aside as unconfirmed "
                                "(not in `waiting`); null when no data"},
        "paired": split | {"description": "waiting vehicles set aside as misread: paired "
                           "with an unmatched crossing or withdrawal, or a misread re-read "
                           "(not in `waiting`); null when no data"},
        "data_quality": {"type": "object", "properties": {
            "cameras": {"type": "array", "items": camera},
            "count_checks": {"type": "array", "items": check}}},
    }


def alerts_doc(processor: Processor, gate_ids: set[str] | None = None
               ) -> list[dict[str, Any]]:
    out = []
    for ga in processor.alerts.values():
        if gate_ids is not None and ga.gate_id not in gate_ids:
            continue
        for a in ga.active.values():
            out.append({"alert_id": a.alert_id, "gate_id": a.gate_id, "kind": a.kind,
                        "state": a.state, "severity": a.severity, "value": a.value,
                        "threshold": a.threshold, "started_at": format_ms(a.started_ms),
                        "updated_at": format_ms(a.updated_ms)})
    return sorted(out, key=lambda d: d["alert_id"])


def parse_range(query: Any, now_ms: int) -> tuple[int, int, int]:
    """``from``/``to`` (RFC 3339, default: the last 24 h) and ``size`` (page, ≤ MAX_PAGE)
    from a decoded query mapping; raise :class:`ApiError` (400) on bad input.

    A query string decodes an unencoded ``+`` as a space, so ``08:00:00 07:00`` (a space
    just before a ``hh:mm`` offset, nowhere else) is read as ``08:00:00+07:00``."""
    def ts(name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None:
            return default
        if raw == "":
            raise ApiError(400, "bad_timestamp", f"{name} is empty: leave it out for the "
                           f"default or give an RFC 3339 timestamp, e.g. {_EXAMPLE_TS}")
        plus = _PLUS_AS_SPACE.fullmatch(raw)
        value = parse_timestamp_ms(f"{plus[1]}+{plus[2]}" if plus else raw)
        if value is None:
            raise ApiError(400, "bad_timestamp", f"{name} must be RFC 3339 with an offset, "
                           f"e.g. {_EXAMPLE_TS}")
        if not MIN_MS <= value <= MAX_MS:
            raise ApiError(400, "bad_timestamp",
                           f"{name} must lie between 0001-01-01 and 9999-12-31 (UTC)")
        return value
    to = ts("to", now_ms)
    frm = ts("from", max(MIN_MS, to - DAY_MS))
    if frm > to:
        raise ApiError(400, "bad_range", "from must not be after to")
    raw_size = query.get("size", "100")
    if not re.fullmatch(r"[0-9]{1,6}", raw_size):
        raise ApiError(400, "bad_size", f"size must be an integer between 1 and {MAX_PAGE}")
    size = int(raw_size)
    if not 1 <= size <= MAX_PAGE:
        raise ApiError(400, "bad_size", f"size must be between 1 and {MAX_PAGE}")
    return frm, to, size


# -- history (the history store) ------------------------------------------------------------

#: the default span of ``/history`` per step (``from`` left out), and the most steps it gives
HISTORY_SPAN_MS = {"5m": DAY_MS, "1h": 7 * DAY_MS, "1d": 90 * DAY_MS}
MAX_POINTS = 5000
MAX_WEEKS = 52
#: the CSV's header row (one line per step, oldest first)
CSV_COLUMNS = ("start", "end", "windows", "arrivals_export", "arrivals_import", "arrivals",
               "crossings_export", "crossings_import", "crossings", "withdrawals_export",
               "withdrawals_import", "withdrawals", "waits_count", "wait_mean_seconds",
               "wait_max_seconds", "backlog_end", "backlog_max")


def history_query(query: Any, now_ms: int, accept: str | None) -> tuple[int, int, str, bool]:
    """(from, to, step, as CSV) of a ``/history`` request; ApiError (400) on bad input.
    ``format=csv|json`` wins over ``Accept: text/csv``."""
    step = query.get("step", "1h")
    if step not in STEPS:
        raise ApiError(400, "bad_step", f"step must be one of {', '.join(STEPS)}")
    fmt = query.get("format")
    if fmt not in (None, "json", "csv"):
        raise ApiError(400, "bad_format", "format must be json or csv")
    as_csv = fmt == "csv" or (fmt is None and "text/csv" in (accept or "").lower())
    frm, to, _ = parse_range({k: query[k] for k in ("from", "to") if k in query}, now_ms)
    if "from" not in query:
        frm = max(MIN_MS, to - HISTORY_SPAN_MS[step])
    if (to - frm) // STEPS[step] > MAX_POINTS:
        raise ApiError(400, "bad_range", f"from..to spans more than {MAX_POINTS} steps of "
                       f"{step}; use a larger step or a shorter range")
    return frm, to, step, as_csv


def patterns_query(query: Any) -> int:
    """``weeks`` of a ``/patterns`` request (default 4); ApiError (400) on bad input."""
    raw = query.get("weeks", "4")
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= MAX_WEEKS:
        raise ApiError(400, "bad_weeks", f"weeks must be an integer from 1 to {MAX_WEEKS}")
    return int(raw)


def _mean(total: float, n: int) -> float | None:
    return round(total / n, 3) if n else None


def point_doc(p: SeriesPoint) -> dict[str, Any]:
    return {"start": format_ms(p.start_ms), "end": format_ms(p.end_ms), "windows": p.windows,
            "arrivals": {"export": p.arrivals_export, "import": p.arrivals_import,
                         "total": p.arrivals},
            "crossings": {"export": p.crossings_export, "import": p.crossings_import,
                          "total": p.crossings},
            "withdrawals": {"export": p.withdrawals_export, "import": p.withdrawals_import,
                            "total": p.withdrawals},
            "waits": {"count": p.waits_count,
                      "mean_seconds": _mean(p.waits_sum_seconds, p.waits_count),
                      "max_seconds": p.waits_max_seconds},
            "backlog": {"end": p.backlog_end, "max": p.backlog_max}}


def history_csv(points: Iterable[SeriesPoint]) -> bytes:
    """The steps as CSV (header row :data:`CSV_COLUMNS`; empty cells for no value)."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for p in points:
        mean = _mean(p.waits_sum_seconds, p.waits_count)
        w.writerow([format_ms(p.start_ms), format_ms(p.end_ms), p.windows,
                    p.arrivals_export, p.arrivals_import, p.arrivals,
                    p.crossings_export, p.crossings_import, p.crossings,
                    p.withdrawals_export, p.withdrawals_import, p.withdrawals,
                    p.waits_count, "" if mean is None else mean, p.waits_max_seconds,
                    "" if p.backlog_end is None else p.backlog_end,
                    "" if p.backlog_max is None else p.backlog_max])
    return out.getvalue().encode()


def _stat(s: Stat) -> dict[str, Any]:
    return {"samples": s.samples,
            "mean": None if s.mean is None else round(s.mean, 3),
            "p90": None if s.p90 is None else round(s.p90, 3)}


def pattern_doc(p: HourPattern) -> dict[str, Any]:
    return {"hour_of_week": p.hour_of_week, "weekday": p.weekday, "hour": p.hour,
            "arrivals": _stat(p.arrivals), "crossings": _stat(p.crossings),
            "backlog": _stat(p.backlog), "wait_seconds": _stat(p.wait_seconds)}


def _offset_text(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class Csv:
    """A CSV answer (instead of a JSON document) from a page function."""

    def __init__(self, body: bytes, filename: str) -> None:
        self.body, self.filename = body, filename


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (always true when no
    token is configured). The scheme is case-insensitive (RFC 7235: ``bearer`` is
    ``Bearer``); the credentials are compared in constant time."""
    if not token:
        return True
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8", "surrogatepass"),
                               token.encode("utf-8"))


def cors_headers(origin: str | None, allowed: Iterable[str]) -> dict[str, str]:
    """``Access-Control-Allow-Origin`` (and ``Vary``) for an allowed ``Origin``; nothing
    for a refused or missing one."""
    allowed = tuple(allowed)
    if not origin or not ("*" in allowed or origin in allowed):
        return {}
    return {"Access-Control-Allow-Origin": "*" if "*" in allowed else origin, "Vary": "Origin"}


def is_self(url: str, host: str, port: int) -> bool:
    """Whether a peer's advertised URL names this worker (``host``:``port``): scheme-less
    ``host:port`` is read as ``http://``; host (case-insensitive, IPv6 brackets or not) and
    port (80 when absent) must be equal, not merely a suffix (``110.1.2.3`` is not
    ``10.1.2.3``)."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        peer_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: not us
        return False
    return (parts.hostname or "") == host.strip("[]").lower() and peer_port == port


def peer_urls(advertised: Iterable[object], host: str, port: int) -> list[str]:
    """The base URLs of the other workers (``http://`` added where missing), this one
    (``host``:``port``) left out."""
    urls = []
    for url in advertised:
        text = str(url).strip().rstrip("/")
        if not text.startswith(("http://", "https://")):
            text = f"http://{text}"
        if not is_self(text, host, port):
            urls.append(text)
    return urls


def openapi(version: str, *, token_required: bool = False) -> dict[str, Any]:
    """The OpenAPI 3 document of the JSON API: every status a path can answer, with the
    error codes of each 4xx. ``token_required`` adds the bearer-token requirement."""
    gate_id = {"name": "gate_id", "in": "path", "required": True,
               "schema": {"type": "string"}, "example": "huu-nghi"}

    def err(description: str, examples: dict[str, tuple[str, str]],
            headers: dict[str, Any] | None = None) -> dict[str, Any]:
        """An error response whose ``error.code`` is one of ``examples``' keys."""
        schema = {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "enum": sorted(examples)},
                "message": {"type": "string"}}}}}
        media = {"schema": schema, "examples": {
            code: {"summary": summary, "value": {"error": {"code": code, "message": message}}}
            for code, (summary, message) in examples.items()}}
        out: dict[str, Any] = {"description": description,
                               "content": {"application/json": media}}
        if headers:
            out["headers"] = headers
        return out

    #: aiohttp refuses a request line or header over 8190 bytes before any view runs
    oversized = {"description": "request line or a header longer than 8190 bytes (refused "
                                "by the HTTP server in plain text, before the API)",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}
    bad_request = err("bad query parameters (JSON), or a request over the HTTP server's "
                      "limits (plain text)", {
        "bad_timestamp": ("from/to empty, not RFC 3339 with an offset, or outside the years "
                          "0001-9999 (write `+` as `%2B`; a space before the offset is read "
                          "as `+`)", "from must be RFC 3339 with an offset, e.g. "
                          + _EXAMPLE_TS),
        "bad_range": ("from is after to", "from must not be after to"),
        "bad_size": ("size is not an integer from 1 to 500",
                     f"size must be between 1 and {MAX_PAGE}")})
    bad_request["content"] |= oversized["content"]
    bad_hours = err("bad query parameters (JSON), or a request over the HTTP server's "
                    "limits (plain text)", {"bad_hours": (
                        f"hours is not an integer from 1 to {MAX_FORECAST_HOURS}",
                        f"hours must be an integer between 1 and {MAX_FORECAST_HOURS}")})
    bad_hours["content"] |= oversized["content"]
    unauthorized = err("a token is configured and the request has no valid "
                       "`Authorization: Bearer <token>` (scheme case-insensitive)",
                       {"unauthorized": ("missing or wrong token",
                                         "a valid bearer token is required")},
                       {"WWW-Authenticate": {"schema": {"type": "string"},
                                             "example": 'Bearer realm="gatewatch"'}})
    not_found = err("no such gate", {"unknown_gate": (
        "not a configured gate", "no gate 'mong-cai'; see /api/v1/gates")})
    also = (f"Any other method answers 405 `method_not_allowed` with `Allow: {ALLOW}`; "
            "OPTIONS answers a CORS preflight.")
    preflight = {
        "summary": "CORS preflight (no token needed)",
        "description": "204; for an origin in GATEWATCH_API_CORS_ORIGINS with the "
                       "`Access-Control-Allow-*` headers, for any other origin without them "
                       "(the browser then refuses the request).",
        "security": [],
        "parameters": [{"name": h, "in": "header", "required": False,
                        "schema": {"type": "string"}}
                       for h in ("Origin", "Access-Control-Request-Method",
                                 "Access-Control-Request-Headers")],
        "responses": {"400": oversized,
                      "204": {"description": "preflight answered", "headers": {
            "Allow": {"schema": {"type": "string"}, "example": ALLOW},
            "Access-Control-Allow-Origin": {"schema": {"type": "string"}},
            "Access-Control-Allow-Methods": {"schema": {"type": "string"},
                                             "example": "GET, OPTIONS"},
            "Access-Control-Allow-Headers": {"schema": {"type": "string"},
                                             "example": "Authorization"},
            "Access-Control-Max-Age": {"schema": {"type": "integer"},
                                       "example": PREFLIGHT_MAX_AGE}}}}}
    nullable_num = {"type": "number", "nullable": True}
    counts = {"type": "object", "properties": {
        k: {"type": "integer"} for k in ("export", "import", "total")}}
    gate = {"type": "object", "required": ["gate_id", "name", "congestion", "waiting",
                                           "last_event_at"], "properties": {
        "gate_id": {"type": "string"}, "name": {"type": "string"},
        "name_en": {"type": "string"}, "kind": {"type": "string", "enum": ["road", "rail"]},
        "owned": {"type": "boolean"},
        "congestion": {"type": "string", "enum": [*LEVELS, "no_data"]},
        "waiting": {"type": "object", "nullable": True, "properties": {
            k: {"type": "integer"} for k in ("total", "export", "import")}},
        "yard": {"type": "object", "properties": {
            "capacity": {"type": "integer"}, "occupancy_ratio": nullable_num}},
        "thresholds": {"type": "object", "properties": {
            "warning": {"type": "integer"}, "critical": {"type": "integer"}}},
        "estimated_wait_seconds": nullable_num, "estimated": {"type": "boolean"},
        "wait_estimate": {"type": "object", "description": "how the estimated wait is made "
                          "(`forecast`: the calibrated expected wait, docs/forecasting.md; "
                          "`last_hour_ratio`: backlog ÷ last-hour crossings, while the gate "
                          "has under 24 h of windows) and how the estimates shown scored "
                          "against the real waits of the trucks that then crossed (estimate "
                          "− real; since this worker started)", "properties": {
                              "basis": {"type": "string",
                                        "enum": ["forecast", "last_hour_ratio"]},
                              "scored": {"type": "integer"},
                              "mean_absolute_error_seconds": nullable_num,
                              "bias_seconds": nullable_num}},
        "oldest_wait_seconds": nullable_num, "oldest_perishable_wait_seconds": nullable_num,
        "last_hour": {"type": "object", "properties": {
            k: {"type": "integer"} for k in ("arrivals", "crossings", "withdrawals")}},
        "trend": {"type": "string", "enum": ["up", "down", "flat"]},
        "last_event_at": {"type": "string", "format": "date-time", "nullable": True},
        "seconds_since_last_event": nullable_num,
        "active_alerts": {"type": "array", "items": {"type": "string"}},
        "advisories": {"type": "object", "description": "shipment advisory by direction "
                       "(see /api/v1/advisories)", "additionalProperties": {"type": "object"}},
        "windows": {"type": "array", "items": {"$ref": "#/components/schemas/Window"}},
        **quality_schema(),
    }}
    window = {"type": "object", "properties": {
        "window_start": {"type": "string", "format": "date-time"},
        "window_end": {"type": "string", "format": "date-time"},
        "arrivals": counts, "crossings": counts, "withdrawals": counts,
        "waits": {"type": "object", "properties": {
            "count": {"type": "integer"}, "sum_seconds": {"type": "number"},
            "max_seconds": {"type": "number"}}},
        "closed_by": {"type": "string", "enum": ["event_time", "idle"]}}}
    forecast_hour = {"type": "object", "properties": {
        "start": {"type": "string", "format": "date-time"},
        **{k: {"type": "number"} for k in ("arrivals", "capacity", "clearances", "backlog",
                                            "backlog_low", "backlog_high", "p_full")},
        **{k: nullable_num for k in ("wait_seconds", "wait_low_seconds",
                                     "wait_high_seconds")}}}
    forecast = {"type": "object", "properties": {
        "gate_id": {"type": "string"}, "owned": {"type": "boolean"},
        "basis": {"type": "string", "enum": ["profile", "recent", "none"]},
        "made_at": {"type": "string", "format": "date-time", "nullable": True},
        "history_hours": {"type": "number"},
        "backlog_now": {"type": "integer", "nullable": True},
        "expected_wait_seconds": nullable_num,
        "expected_wait_interval_seconds": {"type": "array", "items": nullable_num},
        "arrivals_per_day": nullable_num, "clearances_per_day": nullable_num,
        "level": {"type": "object", "properties": {"arrivals": nullable_num,
                                                   "capacity": nullable_num}},
        "interval": {"type": "number", "example": 0.8},
        "hours": {"type": "array", "items": forecast_hour}}}
    alert = {"type": "object", "properties": {
        k: {"type": "string"} for k in ("alert_id", "gate_id", "kind", "state", "severity",
                                        "started_at", "updated_at")} | {
        "value": {"type": "number"}, "threshold": {"type": "number"}}}

    def ok(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    def xml(media: str) -> dict[str, Any]:
        return {"description": "OK", "headers": {h: {"schema": {"type": "string"}} for h in (
            "ETag", "Last-Modified")}, "content": {media: {"schema": {"type": "string"}}}}

    not_modified = {"description": "unchanged since the `If-None-Match` ETag"}

    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "gatewatch API", "version": version,
                 "description": "Live border-gate queues (read-only). With a token "
                                "configured, send `Authorization: Bearer <token>`. "
                                + also},
        "paths": {
            "/api/v1/gates": {"description": also, "options": preflight, "get": {
                "summary": "Every configured gate", "responses": {
                    "200": ok({"type": "object", "properties": {
                        "gates": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Gate"}},
                        "generated_at": {"type": "string", "format": "date-time"},
                        "kafka": {"type": "object", "description":
                                  "whether this worker reaches Kafka; while not, every number "
                                  "is the last known one",
                                  "properties": {
                                      "reachable": {"type": "boolean"},
                                      "unreachable_seconds": {"type": "number"}}}}}),
                    "400": oversized, "401": unauthorized}}},
            "/api/v1/gates/{gate_id}": {
                "description": also, "parameters": [gate_id], "options": preflight,
                "get": {"summary": "One gate, with its latest closed windows",
                        "responses": {"200": ok({"$ref": "#/components/schemas/Gate"}),
                                      "400": oversized, "401": unauthorized,
                                      "404": not_found}}},
            "/api/v1/gates/{gate_id}/windows": {
                "description": also, "parameters": [gate_id], "options": preflight,
                "get": {
                    "summary": "Closed windows of a gate in a time range (newest first)",
                    "parameters": [
                        {"name": "from", "in": "query", "description":
                         "RFC 3339 with an offset (default: `to` minus 24 h); not empty",
                         "schema": {"type": "string", "format": "date-time"}},
                        {"name": "to", "in": "query", "description":
                         "RFC 3339 with an offset (default: now); not empty",
                         "schema": {"type": "string", "format": "date-time"}},
                        {"name": "size", "in": "query", "schema": {
                            "type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                            "default": 100}}],
                    "responses": {"200": ok({"type": "object", "properties": {
                        "gate_id": {"type": "string"}, "owned": {"type": "boolean"},
                        "from": {"type": "string", "format": "date-time"},
                        "to": {"type": "string", "format": "date-time"},
                        "size": {"type": "integer"},
                        "windows": {"type": "array",
                                    "items": {"$ref": "#/components/schemas/Window"}}}}),
                        "400": bad_request, "401": unauthorized, "404": not_found}}},
            "/api/v1/gates/{gate_id}/forecast": {
                "description": also, "parameters": [gate_id], "options": preflight,
                "get": {
                    "summary": "Hour-by-hour forecast of a gate: backlog, expected wait, "
                               "chance the yard is full, each with an 80 % interval",
                    "description": "The model and its backtest: docs/forecasting.md. "
                                   "`basis` is `profile` (hour-of-week profiles blended "
                                   "with the recent rates), `recent` (under 24 h of "
                                   "history: the recent rates) or `none` (no data).",
                    "parameters": [{"name": "hours", "in": "query", "schema": {
                        "type": "integer", "minimum": 1, "maximum": MAX_FORECAST_HOURS,
                        "default": 48}}],
                    "responses": {"200": ok({"$ref": "#/components/schemas/Forecast"}),
                                  "400": bad_hours, "401": unauthorized,
                                  "404": not_found}}},
            **_history_paths(also, gate_id, preflight, err, oversized, unauthorized,
                             not_found),
            "/api/v1/alerts": {"description": also, "options": preflight, "get": {
                "summary": "Active alerts", "responses": {
                    "200": ok({"type": "object", "properties": {"alerts": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}}),
                    "400": oversized, "401": unauthorized}}},
            **advice.openapi_paths(ok, err, also, preflight, oversized, unauthorized),
            "/api/v1/cap.atom": {"description": also, "options": preflight, "get": {
                "summary": "CAP feed: an Atom index of the alerts as CAP 1.2 messages",
                "description": "One entry per message (firing alerts, and resolved ones as "
                               "`Cancel` for 24 h), each linking to its CAP 1.2 message "
                               "(`application/cap+xml`). `ETag`/`If-None-Match` give 304.",
                "responses": {"200": xml("application/atom+xml"), "304": not_modified,
                              "400": oversized, "401": unauthorized}}},
            "/api/v1/cap/{identifier}.xml": {
                "description": also, "options": preflight, "parameters": [{
                    "name": "identifier", "in": "path", "required": True,
                    "schema": {"type": "string"},
                    "example": "gatewatch.huu-nghi.congestion.20211220T080000000Z"}],
                "get": {"summary": "One CAP 1.2 message of the feed (vi-VN and en-US info)",
                        "responses": {"200": xml(CAP_TYPE), "304": not_modified,
                                      "400": oversized, "401": unauthorized,
                                      "404": err("not a message of an incident in the feed",
                                                 {"unknown_message": (
                                                     "not in the feed", "no CAP message 'x' "
                                                     "of an incident in the feed")})}}},
        },
        "components": {
            "schemas": {
                "Gate": gate, "Window": window, "Alert": alert, "Forecast": forecast,
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}}}},
            "responses": {"MethodNotAllowed": err(
                f"method not allowed (the `Allow` header lists {ALLOW})",
                {"method_not_allowed": ("any method but GET, HEAD and OPTIONS",
                                        "POST is not allowed; use GET")},
                {"Allow": {"schema": {"type": "string"}, "example": ALLOW}})},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    if token_required:
        doc["security"] = [{"bearer": []}]
    return doc


def _history_paths(also: str, gate_id: dict[str, Any], preflight: dict[str, Any],
                   err: Callable[..., dict[str, Any]], oversized: dict[str, Any],
                   unauthorized: dict[str, Any], not_found: dict[str, Any]
                   ) -> dict[str, Any]:
    """The OpenAPI paths of the history store's views (part of :func:`openapi`)."""
    ts = {"type": "string", "format": "date-time"}
    nullable_num = {"type": "number", "nullable": True}
    counts = {"type": "object", "properties": {
        k: {"type": "integer"} for k in ("export", "import", "total")}}
    stat = {"type": "object", "properties": {"samples": {"type": "integer"},
                                              "mean": nullable_num, "p90": nullable_num}}
    bad = {"bad_timestamp": ("from/to empty or not RFC 3339 with an offset",
                             f"from must be RFC 3339 with an offset, e.g. {_EXAMPLE_TS}"),
           "bad_range": ("from after to, or more than 5000 steps",
                         "from must not be after to"),
           "bad_step": ("step not 5m, 1h or 1d", "step must be one of 5m, 1h, 1d"),
           "bad_format": ("format not json or csv", "format must be json or csv")}
    unavailable = err("the history store cannot be read (not configured, not created yet by "
                      "`gatewatch history`, or its database is down)",
                      {"history_unavailable": ("no history store",
                                               "no history store is configured")})

    def bad_request(codes: dict[str, tuple[str, str]]) -> dict[str, Any]:
        out = err("bad query parameters (JSON), or a request over the HTTP server's limits "
                  "(plain text)", codes)
        out["content"] |= oversized["content"]
        return out

    point = {"type": "object", "properties": {
        "start": ts, "end": ts, "windows": {"type": "integer"},
        "arrivals": counts, "crossings": counts, "withdrawals": counts,
        "waits": {"type": "object", "properties": {
            "count": {"type": "integer"}, "mean_seconds": nullable_num,
            "max_seconds": {"type": "number"}}},
        "backlog": {"type": "object", "description": "vehicles waiting when the step's "
                    "last window closed, and the most at any window's close (null: not "
                    "recorded)", "properties": {
                        "end": {"type": "integer", "nullable": True},
                        "max": {"type": "integer", "nullable": True}}}}}
    history = {"type": "object", "properties": {
        "gate_id": {"type": "string"}, "from": ts, "to": ts,
        "step": {"type": "string", "enum": list(STEPS)},
        "utc_offset": {"type": "string", "example": "+07:00"},
        "points": {"type": "array", "items": point}}}
    hour = {"type": "object", "properties": {
        "hour_of_week": {"type": "integer", "minimum": 0, "maximum": 167},
        "weekday": {"type": "string", "enum": ["mon", "tue", "wed", "thu", "fri", "sat",
                                               "sun"]},
        "hour": {"type": "integer", "minimum": 0, "maximum": 23},
        "arrivals": stat, "crossings": stat, "backlog": stat, "wait_seconds": stat}}
    patterns = {"type": "object", "properties": {
        "gate_id": {"type": "string"}, "weeks": {"type": "integer"}, "from": ts, "to": ts,
        "utc_offset": {"type": "string"}, "hours": {"type": "array", "items": hour}}}
    range_params = [
        {"name": "from", "in": "query", "description": "RFC 3339 with an offset (default: "
         "`to` minus 1 day for 5m, 7 days for 1h, 90 days for 1d); not empty",
         "schema": ts},
        {"name": "to", "in": "query", "description": "RFC 3339 with an offset (default: "
         "now); not empty", "schema": ts}]
    return {
        "/api/v1/gates/{gate_id}/history": {
            "description": also, "parameters": [gate_id], "options": preflight, "get": {
                "summary": "A gate's stored windows summed per step (oldest first; a step "
                           "without windows is left out: no data, not zero), as JSON or "
                           "CSV (`format=csv` or `Accept: text/csv`)",
                "parameters": [*range_params,
                               {"name": "step", "in": "query", "schema": {
                                   "type": "string", "enum": list(STEPS), "default": "1h"}},
                               {"name": "format", "in": "query", "schema": {
                                   "type": "string", "enum": ["json", "csv"]}}],
                "responses": {
                    "200": {"description": "OK", "content": {
                        "application/json": {"schema": history},
                        "text/csv": {"schema": {"type": "string"}, "example": ",".join(
                            CSV_COLUMNS)}}},
                    "400": bad_request(bad), "401": unauthorized, "404": not_found,
                    "503": unavailable}}},
        "/api/v1/gates/{gate_id}/patterns": {
            "description": also, "parameters": [gate_id], "options": preflight, "get": {
                "summary": "Hour-of-week means and 90th percentiles of arrivals, crossings, "
                           "backlog and waits over the last `weeks` weeks (168 hours, Monday "
                           "00:00 local time first)",
                "parameters": [{"name": "weeks", "in": "query", "schema": {
                    "type": "integer", "minimum": 1, "maximum": MAX_WEEKS, "default": 4}}],
                "responses": {
                    "200": {"description": "OK", "content": {
                        "application/json": {"schema": patterns}}},
                    "400": bad_request({"bad_weeks": (
                        "weeks not an integer from 1 to 52",
                        f"weeks must be an integer from 1 to {MAX_WEEKS}")}),
                    "401": unauthorized, "404": not_found, "503": unavailable}}},
    }


def install(app: Any, *, processor: Processor,
            wall_ms: Callable[[], int], token: str,
            cors_origins: tuple[str, ...], state_table: str, version: str,
            kafka_status: Callable[[], dict[str, Any]] | None = None,
            alert_records: Callable[[], Iterable[Mapping[str, Any]]] = lambda: (),
            cap_sender: str = "gatewatch@localhost", public_rate_per_minute: int = 60,
            advisory_records: Callable[[], Iterable[Mapping[str, Any]]] = lambda: (),
            history: HistoryStore | None = None, utc_offset_minutes: int = 420) -> None:
    """Add the API views to a Faust app. ``kafka_status`` returns the ``kafka`` member
    of the gate list (reachable, unreachable_seconds); ``alert_records`` the
    ``gate.alerts`` records of each alert's latest incident this worker knows (the CAP
    feed's source: it lists the latest, and serves the messages it replaced);
    ``public_rate_per_minute``: the public feed's per-client rate limit;
    ``advisory_records`` the same of ``gate.advisories`` (CAP too);
    ``history`` is the history store (read-only; ``None``: the history paths answer 503),
    whose days and hours of the week are local at ``utc_offset_minutes``."""
    spec = openapi(version, token_required=bool(token))
    gates: GateSet = processor.gates

    def doc_of(gate: GateConfig, now_ms: int) -> dict[str, Any]:
        return gate_doc(gate, processor.signals(gate.gate_id, now_ms),
                        processor.alerts[gate.gate_id],
                        advice.gate_advisories(processor, gate),
                        processor.estimates.errors(gate.gate_id))

    def headers_for(request: Any) -> dict[str, str]:
        return {"Cache-Control": "no-store"} | cors_headers(request.headers.get("Origin"),
                                                           cors_origins)

    def check_token(request: Any) -> None:
        if not authorized(request.headers.get("Authorization"), token):
            raise ApiError(401, "unauthorized", "a valid bearer token is required",
                           {"WWW-Authenticate": 'Bearer realm="gatewatch"'})

    def peers() -> list[str]:
        try:
            meta = app.router.table_metadata(state_table)
        except Exception:  # noqa: BLE001 - not assigned yet
            return []
        return peer_urls(meta, str(app.conf.web_host), int(app.conf.web_port))

    async def ask_peers(request: Any, path: str) -> list[dict[str, Any]]:
        """Local answers of the other workers for ``path`` (failures are skipped)."""
        urls = peers()
        if not urls or request.headers.get(FORWARDED):
            return []
        hdrs = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            hdrs["Authorization"] = request.headers["Authorization"]
        elif token:  # the public feed (no token) asks its peers with the configured one
            hdrs["Authorization"] = f"Bearer {token}"
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async def one(url: str) -> dict[str, Any] | None:
                try:
                    async with session.get(url + path, headers=hdrs) as resp:
                        if resp.status == 200:
                            doc: dict[str, Any] = await resp.json()
                            return doc
                except (aiohttp.ClientError, TimeoutError, OSError):
                    return None
                return None
            found = await asyncio.gather(*(one(u) for u in urls))
        return [d for d in found if d is not None]

    def respond(web: Any, request: Any, fn: Any) -> Any:
        async def run() -> Any:
            try:
                check_token(request)
                body = await fn()
                if isinstance(body, Csv):
                    return web.bytes(body.body, headers=headers_for(request) | {
                        "Content-Type": "text/csv; charset=utf-8",
                        "Content-Disposition": f'attachment; filename="{body.filename}"'})
                return web.json(body, headers=headers_for(request))
            except HistoryError as exc:
                log.warning("history API: %s", exc)
                unavailable = ApiError(503, "history_unavailable", "the history store cannot "
                                       "be read now (is `gatewatch history` running? the "
                                       "worker's log has the reason)")
                return web.json(unavailable.body(), status=503, headers=headers_for(request))
            except ApiError as exc:
                return web.json(exc.body(), status=exc.status,
                                headers=headers_for(request) | exc.headers)
        return run()

    class ApiView(View):
        """GET from the page function; OPTIONS answers a CORS preflight (no token: a
        browser never sends one with it)."""

        async def options(self, request: Any, **kwargs: Any) -> Any:
            out = {"Allow": ALLOW, "Cache-Control": "no-store"}
            cors = cors_headers(request.headers.get("Origin"), cors_origins)
            if cors:
                out |= cors | {"Access-Control-Allow-Methods": "GET, OPTIONS",
                               "Access-Control-Allow-Headers": "Authorization",
                               "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE)}
            return self.bytes(b"", status=204, headers=out)

    async def not_allowed(request: aioweb.Request) -> aioweb.Response:
        """Any method but GET, HEAD and OPTIONS: a JSON 405 naming the allowed ones."""
        exc = ApiError(405, "method_not_allowed",
                       f"{request.method[:20]} is not allowed; use GET", {"Allow": ALLOW})
        return aioweb.json_response(exc.body(), status=405,
                                    headers=headers_for(request) | exc.headers)

    def page(path: str) -> Callable[[Any], Any]:
        """``app.page`` with :class:`ApiView` and a JSON 405 for every other method."""
        def register(fn: Any) -> Any:
            view = app.page(path, base=ApiView)(fn)
            app.web.web_app.router.add_route("*", path, not_allowed)
            return view
        return register

    def known(gate_id: str) -> GateConfig:
        gate = gates.get(gate_id)
        if gate is None:
            raise ApiError(404, "unknown_gate", f"no gate {gate_id!r}; see /api/v1/gates")
        return gate

    async def all_gate_docs(request: Any, now: int) -> dict[str, dict[str, Any]]:
        docs = {g.gate_id: doc_of(g, now) for g in gates.gates}
        missing = [g for g, d in docs.items() if not d["owned"]]
        if missing:
            for peer in await ask_peers(request, "/api/v1/gates"):
                for d in peer.get("gates", []):
                    if d.get("owned") and d.get("gate_id") in missing:
                        docs[d["gate_id"]] = d
        return docs

    @page("/api/v1/gates")
    async def _gates(web: Any, request: Any) -> Any:
        async def body() -> dict[str, Any]:
            now = wall_ms()
            docs = await all_gate_docs(request, now)
            kafka = kafka_status() if kafka_status else {"reachable": True,
                                                          "unreachable_seconds": 0}
            return {"gates": list(docs.values()), "generated_at": format_ms(now),
                    "kafka": kafka}
        return await respond(web, request, body)

    @page("/api/v1/gates/{gate_id}")
    async def _gate(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any]:
            gate = known(gate_id)
            now = wall_ms()
            doc = doc_of(gate, now)
            if not doc["owned"]:
                for peer in await ask_peers(request, f"/api/v1/gates/{gate_id}"):
                    if peer.get("owned"):
                        return peer
            # the books are looked up per request: a rebuild replaces them
            history = processor.ledger.books[gate_id].windows.history
            doc["windows"] = [window_doc(r) for r in list(history)[-12:][::-1]]
            return doc
        return await respond(web, request, body)

    @page("/api/v1/gates/{gate_id}/windows")
    async def _windows(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any]:
            known(gate_id)
            frm, to, size = parse_range(request.query, wall_ms())
            book = processor.ledger.books[gate_id]
            if book.last_event_ms is None:
                qs = request.query_string
                for peer in await ask_peers(
                        request, f"/api/v1/gates/{gate_id}/windows" + (f"?{qs}" if qs else "")):
                    if peer.get("owned"):
                        return peer
            rows = [window_doc(r) for r in reversed(book.windows.history)
                    if frm <= r.start_ms and r.end_ms <= to][:size]
            return {"gate_id": gate_id, "owned": book.last_event_ms is not None,
                    "from": format_ms(frm), "to": format_ms(to), "size": size,
                    "windows": rows}
        return await respond(web, request, body)

    @page("/api/v1/gates/{gate_id}/forecast")
    async def _forecast(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any]:
            known(gate_id)
            hours = parse_hours(request.query)
            book = processor.ledger.books[gate_id]
            if book.last_event_ms is None:
                qs = request.query_string
                for peer in await ask_peers(
                        request, f"/api/v1/gates/{gate_id}/forecast" + (f"?{qs}" if qs else "")):
                    if peer.get("owned"):
                        return peer
            fc = processor.forecast(gate_id, wall_ms(), hours=hours)
            return forecast_doc(gate_id, fc, book.last_event_ms is not None)
        return await respond(web, request, body)

    offset_ms = utc_offset_minutes * 60_000

    def store() -> HistoryStore:
        if history is None:
            raise ApiError(503, "history_unavailable", "no history store is configured")
        return history

    @page("/api/v1/gates/{gate_id}/history")
    async def _history(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any] | Csv:
            known(gate_id)
            frm, to, step, as_csv = history_query(request.query, wall_ms(),
                                                  request.headers.get("Accept"))
            points = await asyncio.to_thread(store().series, gate_id, frm, to, step,
                                             offset_ms)
            if as_csv:
                return Csv(history_csv(points), f"{gate_id}-history-{step}.csv")
            return {"gate_id": gate_id, "from": format_ms(frm), "to": format_ms(to),
                    "step": step, "utc_offset": _offset_text(utc_offset_minutes),
                    "points": [point_doc(p) for p in points]}
        return await respond(web, request, body)

    @page("/api/v1/gates/{gate_id}/patterns")
    async def _patterns(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any]:
            known(gate_id)
            weeks = patterns_query(request.query)
            now = wall_ms()
            hours = await asyncio.to_thread(store().patterns, gate_id, weeks, now, offset_ms)
            return {"gate_id": gate_id, "weeks": weeks,
                    "from": format_ms(now - weeks * 7 * DAY_MS), "to": format_ms(now),
                    "utc_offset": _offset_text(utc_offset_minutes),
                    "hours": [pattern_doc(h) for h in hours]}
        return await respond(web, request, body)

    @page("/api/v1/alerts")
    async def _alerts(web: Any, request: Any) -> Any:
        async def body() -> dict[str, Any]:
            out = {a["alert_id"]: a for a in alerts_doc(processor, processor.owned_gates())}
            for peer in await ask_peers(request, "/api/v1/alerts"):
                for a in peer.get("alerts", []):
                    out.setdefault(a["alert_id"], a)
            return {"alerts": sorted(out.values(), key=lambda d: d["alert_id"])}
        return await respond(web, request, body)

    @page("/api/v1/advisories")
    async def _advisories(web: Any, request: Any) -> Any:
        async def body() -> dict[str, Any]:
            out = {a["advisory_id"]: a for a in advice.advisories_of(processor, gates.gates)}
            for peer in await ask_peers(request, "/api/v1/advisories"):
                for a in peer.get("advisories", []):
                    out.setdefault(a["advisory_id"], a)
            return {"advisories": sorted(out.values(), key=lambda d: d["advisory_id"])}
        return await respond(web, request, body)

    @page("/api/v1/recommendations")
    async def _recommendations(web: Any, request: Any) -> Any:
        async def body() -> dict[str, Any]:
            q = advice.parse_recommend_query(request.query)
            if q == "bad_direction":
                raise ApiError(400, "bad_direction", advice.ERRORS[q])
            if q == "bad_cargo":
                raise ApiError(400, "bad_cargo", advice.ERRORS[q])
            if isinstance(q, str):
                raise ApiError(400, "bad_eta", advice.ERRORS["bad_eta"])
            now = wall_ms()
            caps, excluded = advice.local_capacities(processor, gates.gates, q, now)
            if advice.NOT_HELD in excluded.values():
                qs = request.query_string
                for peer in await ask_peers(request, "/api/v1/recommendations"
                                            + (f"?{qs}" if qs else "")):
                    for d in peer.get("options", []):
                        c = advice.capacity_from_doc(d)
                        if c is not None and excluded.get(c.gate_id) == advice.NOT_HELD:
                            caps[c.gate_id] = c
            return advice.recommendations_doc(gates.gates, q, caps, excluded, now)
        return await respond(web, request, body)

    bucket = public.TokenBucket(public_rate_per_minute)

    @page("/api/v1/public/gates")
    async def _public(web: Any, request: Any) -> Any:
        """Open data: no token check (:mod:`gatewatch.web.public`), a per-client limit."""
        hdrs = cors_headers(request.headers.get("Origin"), cors_origins)
        now = wall_ms()
        wait = bucket.take(str(request.remote or "?"), now)
        if wait:
            exc = ApiError(429, "rate_limited", f"too many requests; retry after {wait} s")
            return web.json(exc.body(), status=429, headers=hdrs | {
                "Retry-After": str(wait), "Cache-Control": "no-store"})
        as_csv = public.wants_csv(request.query, request.headers.get("Accept"))
        if as_csv is None:
            exc = ApiError(400, "bad_format", "format must be csv or json")
            return web.json(exc.body(), status=400, headers=hdrs | {"Cache-Control": "no-store"})
        docs = await all_gate_docs(request, now)
        rows = [public.public_row(g, docs[g.gate_id]) for g in gates.gates]
        etag = public.etag_of(rows)
        hdrs |= {"ETag": etag, "Cache-Control": public.CACHE_CONTROL,
                 "Vary": ", ".join(v for v in (hdrs.get("Vary"), "Accept") if v),
                 "Last-Modified": public.last_modified(rows, now)}
        if public.not_modified(request.headers.get("If-None-Match"), etag):
            return web.bytes(b"", status=304, headers=hdrs)
        if as_csv:
            return web.text(public.to_csv(rows), headers=hdrs, content_type="text/csv")
        return web.json(public.public_doc(rows, format_ms(now)), headers=hdrs)

    async def cap(web: Any, request: Any, identifier: str | None) -> Any:
        """The CAP index feed (``identifier`` None) or one CAP message; a peer's request
        gets this worker's alert records as JSON, merged by the asking worker."""
        try:
            check_token(request)
            records, advised = list(alert_records()), list(advisory_records())
            if request.headers.get(FORWARDED):
                return web.json({"records": records, "advisories": advised},
                                headers=headers_for(request))
            for peer in await ask_peers(request, "/api/v1/cap.atom"):
                records += peer.get("records", [])
                advised += peer.get("advisories", [])
            now = wall_ms()
            notices = cap_entries(records, advisory_notices(advised, gates, now), gates=gates,
                                  now_ms=now)
            if identifier is None:
                body, ctype = atom_feed(notices, base_url=str(request.url.origin()),
                                        sender=cap_sender, now_ms=now), "application/atom+xml"
            else:
                def every() -> Iterator[Notice | None]:  # read only if not listed
                    yield from (alert_notice(r, gates) for r in records)
                    yield from advisory_notices(advised, gates, now, every=True)

                found = find_message(identifier, notices, every())
                if found is None:
                    raise ApiError(404, "unknown_message", f"no CAP message {identifier[:80]!r} "
                                   "of an incident in the feed; see /api/v1/cap.atom")
                body, ctype, notices = cap_message(found, cap_sender), CAP_TYPE, [found]
        except ApiError as exc:
            return web.json(exc.body(), status=exc.status,
                            headers=headers_for(request) | exc.headers)
        hdrs = headers_for(request) | {"Cache-Control": "no-cache", "ETag": etag(body)}
        if notices:
            hdrs["Last-Modified"] = formatdate(max(n.sent_ms for n in notices) / 1000,
                                               usegmt=True)
        if hdrs["ETag"] in request.headers.get("If-None-Match", ""):
            return web.bytes(b"", status=304, headers=hdrs)
        return web.bytes(body, content_type=ctype, headers=hdrs)

    @page("/api/v1/cap.atom")
    async def _cap_feed(web: Any, request: Any) -> Any:
        return await cap(web, request, None)

    @page("/api/v1/cap/{identifier}.xml")
    async def _cap_message(web: Any, request: Any, identifier: str) -> Any:
        return await cap(web, request, identifier)

    @app.page("/openapi.json")
    async def _openapi(web: Any, request: Any) -> Any:
        return web.json(spec, headers=headers_for(request))
