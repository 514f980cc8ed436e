"""The public gate feed (``/api/v1/public/gates``): open data for drivers, shippers and
other agencies, like the CBP border wait times feed.

No token (even when ``GATEWATCH_API_TOKEN`` is set), no plates, nothing a worker holds
about one vehicle: per gate the vehicles waiting, the expected wait, the congestion
level, the shipment advisory per direction, lanes and opening hours, the last update and
a stale flag. Versioned: ``schema_version`` (now 1) changes only when a field is removed
or changes meaning; the JSON Schema is ``gatewatch/data/public-gates.schema.json``.

HTTP: JSON, or CSV with ``Accept: text/csv`` or ``?format=csv``; a strong ``ETag`` over
the content (``generated_at`` left out) with ``If-None-Match`` → 304, ``Last-Modified``
(the newest gate update), ``Cache-Control: public, max-age=30``. A token bucket per
client address (``GATEWATCH_PUBLIC_RATE_PER_MINUTE``, burst of the same size) answers
429 with ``Retry-After`` and the JSON error body.

Everything here is pure (times are arguments); :mod:`gatewatch.web.api` serves it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from importlib import resources
from typing import Any, Final

import orjson

from gatewatch.gates import GateConfig
from gatewatch.streams.codec import parse_timestamp_ms

__all__ = ["CACHE_CONTROL", "CSV_COLUMNS", "SCHEMA_VERSION", "TokenBucket", "etag_of",
           "last_modified", "not_modified", "public_doc", "public_row", "schema", "to_csv",
           "wants_csv"]

SCHEMA_VERSION: Final = 1
CACHE_CONTROL: Final = "public, max-age=30"
TIMEZONE: Final = "Asia/Ho_Chi_Minh"
CSV_COLUMNS: Final = ("gate_id", "name", "name_en", "kind", "waiting",
                      "expected_wait_seconds", "level", "advisory_export", "advisory_import",
                      "lanes", "open_from", "open_to", "last_update", "stale")
#: clients remembered by the rate limiter (the least recently seen are forgotten)
MAX_CLIENTS: Final = 10_000


def public_row(gate: GateConfig, doc: Mapping[str, Any]) -> dict[str, Any]:
    """One gate's public row from its API gate document (this worker's or a peer's)."""
    waiting = doc.get("waiting")
    advisories = doc.get("advisories") or {}
    lo, hi = gate.open_hours
    return {
        "gate_id": gate.gate_id, "name": gate.name, "name_en": gate.name_en,
        "kind": gate.kind,
        "waiting": waiting.get("total") if isinstance(waiting, Mapping) else None,
        "expected_wait_seconds": _round(doc.get("estimated_wait_seconds")),
        "level": doc.get("congestion", "no_data"),
        "advisory": {d: (advisories.get(d) or {}).get("advice")
                     for d in gate.accepts_directions},
        "accepts": {"cargo": list(gate.accepts_cargo),
                    "directions": list(gate.accepts_directions)},
        "lanes": gate.lanes,
        "open_hours": {"from": f"{lo:02d}:00", "to": f"{hi:02d}:00", "timezone": TIMEZONE},
        "last_update": doc.get("last_event_at"),
        "stale": doc.get("congestion", "no_data") == "no_data",
    }


def _round(value: Any) -> float | None:
    return round(float(value), 0) if isinstance(value, int | float) else None


def public_doc(rows: Iterable[dict[str, Any]], generated_at: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "generated_at": generated_at,
            "gates": list(rows)}


def etag_of(rows: Iterable[Mapping[str, Any]]) -> str:
    """A strong ETag over the rows (what changes when the content does)."""
    digest = hashlib.sha256(orjson.dumps(list(rows), option=orjson.OPT_SORT_KEYS))
    return f'"v{SCHEMA_VERSION}-{digest.hexdigest()[:32]}"'


def last_modified(rows: Iterable[Mapping[str, Any]], fallback_ms: int) -> str:
    """``Last-Modified``: the newest ``last_update`` (an HTTP date), else ``fallback_ms``."""
    times = [parse_timestamp_ms(str(r["last_update"])) for r in rows if r.get("last_update")]
    newest = max((t for t in times if t is not None), default=fallback_ms)
    return formatdate(newest / 1000, usegmt=True)


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, lists, ``*``)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def wants_csv(query: Mapping[str, str], accept: str | None) -> bool | None:
    """CSV (True), JSON (False), or None for an unknown ``format``."""
    fmt = query.get("format")
    if fmt is not None:
        return {"csv": True, "json": False}.get(fmt.lower())
    types = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    return "text/csv" in types and "application/json" not in types


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as CSV (RFC 4180, header first); cells a spreadsheet would run as a
    formula are quoted with a leading ``'``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        adv = r.get("advisory") or {}
        hours = r.get("open_hours") or {}
        cells = [r["gate_id"], r["name"], r["name_en"], r["kind"], r["waiting"],
                 r["expected_wait_seconds"], r["level"], adv.get("export"), adv.get("import"),
                 r["lanes"], hours.get("from"), hours.get("to"), r["last_update"],
                 "true" if r["stale"] else "false"]
        w.writerow(["" if c is None else _cell(c) for c in cells])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") and not _numeric(text) else text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def schema() -> dict[str, Any]:
    """The feed's JSON Schema (``gatewatch/data/public-gates.schema.json``)."""
    ref = resources.files("gatewatch").joinpath("data", "public-gates.schema.json")
    doc: dict[str, Any] = orjson.loads(ref.read_bytes())
    return doc


class TokenBucket:
    """A token bucket per client: ``rate_per_minute`` requests a minute, bursts of as
    many. :meth:`take` answers 0 (go ahead) or the seconds to wait."""

    def __init__(self, rate_per_minute: int, max_clients: int = MAX_CLIENTS) -> None:
        self.capacity = float(rate_per_minute)
        self.per_ms = rate_per_minute / 60_000
        self.max_clients = max_clients
        self._clients: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def take(self, client: str, now_ms: int) -> int:
        tokens, last = self._clients.pop(client, (self.capacity, now_ms))
        tokens = min(self.capacity, tokens + max(0, now_ms - last) * self.per_ms)
        wait = 0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = max(1, math.ceil((1 - tokens) / self.per_ms / 1000))
        self._clients[client] = (tokens, now_ms)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return wait
