"""Documents of the decision-support routes: ``/api/v1/advisories`` and
``/api/v1/recommendations`` (pure builders; :mod:`gatewatch.web.api` serves them).

Recommendations: ``?direction=export&cargo=perishable&eta_hours=6``. The gates that
accept that cargo and direction and have data, each with its expected wait at the truck's
arrival and its share of new trucks (:func:`gatewatch.core.recommend.recommend`). Gates
another worker holds come from that worker's answer (their capacities, merged here before
the shares are computed); gates left out are listed under ``excluded`` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from gatewatch.alerts.advisories import advisory_doc
from gatewatch.core.advisories import ADVICE
from gatewatch.core.processor import Processor
from gatewatch.core.recommend import Capacity, capacity_of, recommend
from gatewatch.gates import GateConfig
from gatewatch.streams.codec import format_ms
from gatewatch.streams.vocabulary import CARGOS, DIRECTIONS

__all__ = ["ERRORS", "MAX_ETA_HOURS", "NOT_HELD", "RecommendQuery", "advisories_of", "capacity_doc",
           "gate_advisories", "local_capacities", "openapi_paths", "parse_recommend_query",
           "recommendations_doc"]

MAX_ETA_HOURS: Final = 48
#: a gate another worker may hold (asked for next; if nobody answers: no data)
NOT_HELD: Final = "not held by this worker"
_HOUR_MS: Final = 3_600_000


class RecommendQuery:
    """A validated recommendations query."""

    def __init__(self, direction: str, cargo: str | None, eta_hours: float) -> None:
        self.direction, self.cargo, self.eta_hours = direction, cargo, eta_hours


#: the 400 answers of a bad recommendations query: code -> message
ERRORS: Final = {
    "bad_direction": "direction must be export or import",
    "bad_cargo": "cargo must be perishable, general or empty (or left out)",
    "bad_eta": f"eta_hours must be a number of hours from 0 to {MAX_ETA_HOURS}",
}


def parse_recommend_query(query: Mapping[str, str]) -> RecommendQuery | str:
    """The query, or the code of its 400 answer (a key of :data:`ERRORS`)."""
    direction = query.get("direction", "export")
    if direction not in DIRECTIONS:
        return "bad_direction"
    cargo = query.get("cargo")
    if cargo is not None and cargo not in CARGOS:
        return "bad_cargo"
    raw = query.get("eta_hours", "0")
    if len(raw) > 32 or not re.fullmatch(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?", raw):
        return "bad_eta"
    eta = float(raw)
    if not 0 <= eta <= MAX_ETA_HOURS:
        return "bad_eta"
    return RecommendQuery(direction, cargo, eta)


def gate_advisories(processor: Processor, gate: GateConfig) -> dict[str, Any]:
    """A gate's advisories by direction (for its gate document)."""
    ga = processor.advisories.get(gate.gate_id)
    return {} if ga is None else {d: advisory_doc(a, gate) for d, a in ga.current.items()}


def advisories_of(processor: Processor, gates: Iterable[GateConfig]) -> list[dict[str, Any]]:
    """The current advisories of ``gates`` this worker holds, by advisory id."""
    owned = processor.owned_gates()
    out = [doc for g in gates if g.gate_id in owned
           for doc in gate_advisories(processor, g).values()]
    return sorted(out, key=lambda d: str(d["advisory_id"]))


def local_capacities(processor: Processor, gates: Iterable[GateConfig], q: RecommendQuery,
                     now_ms: int) -> tuple[dict[str, Capacity], dict[str, str]]:
    """Capacities of the accepting gates this worker has data for; the others' reasons."""
    caps: dict[str, Capacity] = {}
    excluded: dict[str, str] = {}
    eta_ms = int(q.eta_hours * _HOUR_MS)
    owned = processor.owned_gates()
    for g in gates:
        if not g.accepts(q.cargo, q.direction):
            excluded[g.gate_id] = f"does not handle {q.cargo or 'this'} cargo going " \
                                  f"{q.direction}"
            continue
        sig = processor.signals(g.gate_id, now_ms)
        if g.gate_id not in owned:
            excluded[g.gate_id] = NOT_HELD
            continue
        if not sig.has_data:
            excluded[g.gate_id] = "no data"
            continue
        caps[g.gate_id] = capacity_of(g, sig, processor.forecast_for(g.gate_id, now_ms,
                                                                     q.direction), eta_ms)
    return caps, excluded


def capacity_doc(c: Capacity) -> dict[str, Any]:
    return {"gate_id": c.gate_id, "wait_seconds": c.wait_seconds,
            "backlog_at_arrival": round(c.backlog, 1),
            "clearances_per_day": round(c.clearances_per_day, 1),
            "arrivals_per_day": round(c.arrivals_per_day, 1),
            "spare_per_day": round(c.spare_per_day, 1), "yard_capacity": c.yard_capacity,
            "yard_room": round(c.yard_room, 1), "source": c.source}


def capacity_from_doc(d: Mapping[str, Any]) -> Capacity | None:
    """A peer's option back into a :class:`Capacity` (None if malformed)."""
    try:
        wait = d.get("wait_seconds")
        return Capacity(str(d["gate_id"]), float(d["clearances_per_day"]),
                        float(d["arrivals_per_day"]), float(d["backlog_at_arrival"]),
                        int(d["yard_capacity"]), None if wait is None else float(wait),
                        str(d.get("source", "forecast")))
    except (KeyError, TypeError, ValueError):
        return None


def recommendations_doc(gates: Iterable[GateConfig], q: RecommendQuery,
                        caps: Mapping[str, Capacity], excluded: Mapping[str, str],
                        now_ms: int) -> dict[str, Any]:
    names = {g.gate_id: g for g in gates}
    options = recommend([caps[g] for g in names if g in caps])
    return {
        "direction": q.direction, "cargo": q.cargo, "eta_hours": q.eta_hours,
        "arrival_at": format_ms(now_ms + int(q.eta_hours * _HOUR_MS)),
        "generated_at": format_ms(now_ms),
        "basis": options[0].basis if options else "none",
        "options": [capacity_doc(o.capacity) | {
            "name": names[o.capacity.gate_id].name,
            "name_en": names[o.capacity.gate_id].name_en,
            "share": round(o.share, 4)} for o in options],
        "excluded": [{"gate_id": g, "reason": "no data" if r == NOT_HELD else r}
                     for g, r in sorted(excluded.items()) if g not in caps],
    }


def openapi_paths(ok: Any, err: Any, also: str, preflight: Any, oversized: Any,
                  unauthorized: Any) -> dict[str, Any]:
    """The OpenAPI paths of these routes and of the public feed."""
    num = {"type": "number", "nullable": True}
    advisory = {"type": "object", "properties": {
        "advisory_id": {"type": "string"}, "gate_id": {"type": "string"},
        "gate_name": {"type": "string"}, "gate_name_en": {"type": "string"},
        "direction": {"type": "string", "enum": list(DIRECTIONS)},
        "advice": {"type": "string", "enum": list(ADVICE)},
        "since": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "figures": {"type": "object", "properties": {
            "backlog": {"type": "integer"}, "clearances_per_day": {"type": "number"},
            "arrivals_per_day": {"type": "number"}, "days_to_drain": num,
            "expected_wait_seconds": num, "keeps_seconds": {"type": "number"},
            "perishable": {"type": "boolean"}, "exceeds_keep_time": {"type": "boolean"},
            "yard_full_chance": {"type": "number"},
            "source": {"type": "string", "enum": ["forecast", "last_hour"]}}},
        "message": {"type": "object", "properties": {"vi": {"type": "string"},
                                                     "en": {"type": "string"}}}}}
    option = {"type": "object", "properties": {
        "gate_id": {"type": "string"}, "name": {"type": "string"},
        "name_en": {"type": "string"}, "share": {"type": "number"}, "wait_seconds": num,
        "backlog_at_arrival": {"type": "number"}, "clearances_per_day": {"type": "number"},
        "arrivals_per_day": {"type": "number"}, "spare_per_day": {"type": "number"},
        "yard_capacity": {"type": "integer"}, "yard_room": {"type": "number"},
        "source": {"type": "string", "enum": ["forecast", "last_hour"]}}}
    bad_query = err("bad query parameters", {
        "bad_direction": ("not export or import", ERRORS["bad_direction"]),
        "bad_cargo": ("not perishable, general or empty", ERRORS["bad_cargo"]),
        "bad_eta": ("not a number of hours from 0 to 48", ERRORS["bad_eta"])})
    bad_query["content"] |= oversized["content"]
    limited = err("too many requests from this address (GATEWATCH_PUBLIC_RATE_PER_MINUTE)",
                  {"rate_limited": ("over the per-client rate",
                                    "too many requests; retry after 2 s")},
                  {"Retry-After": {"schema": {"type": "integer"}, "example": 2}})
    bad_format = err("unknown format", {"bad_format": ("not csv or json",
                                                       "format must be csv or json")})
    bad_format["content"] |= oversized["content"]
    cache = {h: {"schema": {"type": "string"}} for h in ("ETag", "Last-Modified",
                                                          "Cache-Control")}
    return {
        "/api/v1/advisories": {"description": also, "options": preflight, "get": {
            "summary": "Current shipment advisories (gate × direction)", "responses": {
                "200": ok({"type": "object", "properties": {"advisories": {
                    "type": "array", "items": advisory}}}),
                "400": oversized, "401": unauthorized}}},
        "/api/v1/recommendations": {"description": also, "options": preflight, "get": {
            "summary": "Which gates to send new trucks to, and what share to each",
            "parameters": [
                {"name": "direction", "in": "query", "schema": {
                    "type": "string", "enum": list(DIRECTIONS), "default": "export"}},
                {"name": "cargo", "in": "query", "schema": {
                    "type": "string", "enum": list(CARGOS)}},
                {"name": "eta_hours", "in": "query", "description":
                 "hours until the trucks arrive", "schema": {
                    "type": "number", "minimum": 0, "maximum": MAX_ETA_HOURS, "default": 0}}],
            "responses": {"200": ok({"type": "object", "properties": {
                "direction": {"type": "string"}, "cargo": {"type": "string", "nullable": True},
                "eta_hours": {"type": "number"},
                "arrival_at": {"type": "string", "format": "date-time"},
                "generated_at": {"type": "string", "format": "date-time"},
                "basis": {"type": "string", "enum": ["spare_capacity", "day_headroom",
                                                     "throughput", "none"]},
                "options": {"type": "array", "items": option},
                "excluded": {"type": "array", "items": {"type": "object", "properties": {
                    "gate_id": {"type": "string"}, "reason": {"type": "string"}}}}}}),
                "400": bad_query, "401": unauthorized}}},
        "/api/v1/public/gates": {"description": "Open data: no token. " + also,
                                 "options": preflight, "get": {
            "summary": "Public gate feed (JSON or CSV; schema_version 1)", "security": [],
            "parameters": [{"name": "format", "in": "query", "schema": {
                "type": "string", "enum": ["json", "csv"]}},
                {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "OK", "headers": cache, "content": {
                    "application/json": {"schema": {
                        "description": "gatewatch/data/public-gates.schema.json",
                        "type": "object", "properties": {
                            "schema_version": {"type": "integer", "enum": [1]},
                            "generated_at": {"type": "string", "format": "date-time"},
                            "gates": {"type": "array", "items": {"type": "object"}}}}},
                    "text/csv": {"schema": {"type": "string"}}}},
                "304": {"description": "not modified (If-None-Match)", "headers": cache},
                "400": bad_format, "429": limited}}},
    }
