"""The versioned JSON API (read-only) on the worker's web server.

``GET /api/v1/gates``, ``/api/v1/gates/{gate_id}``, ``/api/v1/gates/{gate_id}/windows``,
``/api/v1/alerts`` and ``/openapi.json``. Pure builders turn the ledger and the alert
evaluator into documents; :func:`install` adds the views to a Faust app.

Scale-out: a worker holds state only for the gates on its partitions. For any other
gate it asks its peers (the workers the Faust assignor knows), so any worker answers
for any gate. Peer requests carry ``X-Gatewatch-Forwarded: 1`` and are never forwarded
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from gatewatch.core.congestion import LEVELS, GateAlerts
from gatewatch.core.processor import Processor
from gatewatch.core.signals import GateSignals
from gatewatch.gates import GateConfig, GateSet
from gatewatch.streams.codec import format_ms, parse_timestamp_ms
from gatewatch.streams.records import WindowRecord

__all__ = ["MAX_PAGE", "ApiError", "gate_doc", "install", "openapi", "window_doc"]

MAX_PAGE = 500
FORWARDED = "X-Gatewatch-Forwarded"


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

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


def gate_doc(gate: GateConfig, s: GateSignals, alerts: GateAlerts) -> dict[str, Any]:
    """One gate's state; ``owned`` says whether this worker holds the gate's state."""
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
        "oldest_wait_seconds": s.oldest_wait_seconds if fresh else None,
        "oldest_perishable_wait_seconds": s.oldest_perishable_wait_seconds if fresh else None,
        "last_hour": {"arrivals": hour.arrivals, "crossings": hour.crossings,
                      "withdrawals": hour.withdrawals},
        "trend": s.trend,
        "last_event_at": format_ms(s.last_event_ms) if s.last_event_ms else None,
        "seconds_since_last_event": round(s.silent_seconds, 3)
        if s.silent_seconds is not None else None,
        "active_alerts": sorted(a.alert_id for a in alerts.active.values()),
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
    """``from``/``to`` (RFC 3339, default: the last 24 h) and ``size`` (page, ≤ MAX_PAGE)."""
    def ts(name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        value = parse_timestamp_ms(raw)
        if value is None:
            raise ApiError(400, "bad_timestamp", f"{name} must be RFC 3339 with an offset, "
                           f"e.g. 2021-12-20T08:00:00+07:00")
        return value
    to = ts("to", now_ms)
    frm = ts("from", to - 86_400_000)
    if frm > to:
        raise ApiError(400, "bad_range", "from must not be after to")
    raw_size = query.get("size", "100")
    try:
        size = int(raw_size)
    except ValueError:
        raise ApiError(400, "bad_size", "size must be an integer") from None
    if not 1 <= size <= MAX_PAGE:
        raise ApiError(400, "bad_size", f"size must be between 1 and {MAX_PAGE}")
    return frm, to, size


def openapi(version: str) -> dict[str, Any]:
    """The OpenAPI 3 document of the JSON API."""
    gate_id = {"name": "gate_id", "in": "path", "required": True,
               "schema": {"type": "string"}, "example": "huu-nghi"}
    err = {"description": "error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
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
        "oldest_wait_seconds": nullable_num, "oldest_perishable_wait_seconds": nullable_num,
        "last_hour": {"type": "object", "properties": {
            k: {"type": "integer"} for k in ("arrivals", "crossings", "withdrawals")}},
        "trend": {"type": "string", "enum": ["up", "down", "flat"]},
        "last_event_at": {"type": "string", "format": "date-time", "nullable": True},
        "seconds_since_last_event": nullable_num,
        "active_alerts": {"type": "array", "items": {"type": "string"}},
        "windows": {"type": "array", "items": {"$ref": "#/components/schemas/Window"}},
    }}
    window = {"type": "object", "properties": {
        "window_start": {"type": "string", "format": "date-time"},
        "window_end": {"type": "string", "format": "date-time"},
        "arrivals": counts, "crossings": counts, "withdrawals": counts,
        "waits": {"type": "object", "properties": {
            "count": {"type": "integer"}, "sum_seconds": {"type": "number"},
            "max_seconds": {"type": "number"}}},
        "closed_by": {"type": "string", "enum": ["event_time", "idle"]}}}
    alert = {"type": "object", "properties": {
        k: {"type": "string"} for k in ("alert_id", "gate_id", "kind", "state", "severity",
                                        "started_at", "updated_at")} | {
        "value": {"type": "number"}, "threshold": {"type": "number"}}}

    def ok(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "gatewatch API", "version": version,
                 "description": "Live border-gate queues (read-only). With a token "
                                "configured, send `Authorization: Bearer <token>`."},
        "paths": {
            "/api/v1/gates": {"get": {"summary": "Every configured gate", "responses": {
                "200": ok({"type": "object", "properties": {
                    "gates": {"type": "array", "items": {"$ref": "#/components/schemas/Gate"}},
                    "generated_at": {"type": "string", "format": "date-time"},
                    "kafka": {"type": "object", "description":
                              "whether this worker reaches Kafka; while not, every number "
                              "is the last known one",
                              "properties": {
                                  "reachable": {"type": "boolean"},
                                  "unreachable_seconds": {"type": "number"}}}}}),
                "401": err}}},
            "/api/v1/gates/{gate_id}": {"get": {
                "summary": "One gate, with its latest closed windows", "parameters": [gate_id],
                "responses": {"200": ok({"$ref": "#/components/schemas/Gate"}), "401": err,
                              "404": err}}},
            "/api/v1/gates/{gate_id}/windows": {"get": {
                "summary": "Closed windows of a gate in a time range (newest first)",
                "parameters": [gate_id,
                               {"name": "from", "in": "query", "schema": {
                                   "type": "string", "format": "date-time"}},
                               {"name": "to", "in": "query", "schema": {
                                   "type": "string", "format": "date-time"}},
                               {"name": "size", "in": "query", "schema": {
                                   "type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                   "default": 100}}],
                "responses": {"200": ok({"type": "object", "properties": {
                    "gate_id": {"type": "string"},
                    "windows": {"type": "array",
                                "items": {"$ref": "#/components/schemas/Window"}}}}),
                    "400": err, "401": err, "404": err}}},
            "/api/v1/alerts": {"get": {"summary": "Active alerts", "responses": {
                "200": ok({"type": "object", "properties": {"alerts": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}}),
                "401": err}}},
        },
        "components": {"schemas": {
            "Gate": gate, "Window": window, "Alert": alert,
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}}}},
    }


def install(app: Any, *, processor: Processor,
            wall_ms: Callable[[], int], token: str,
            cors_origins: tuple[str, ...], state_table: str, version: str,
            kafka_status: Callable[[], dict[str, Any]] | None = None) -> None:
    """Add the API views to a Faust app. ``kafka_status`` returns the ``kafka`` member
    of the gate list (reachable, unreachable_seconds)."""
    spec = openapi(version)
    gates: GateSet = processor.gates
    books = processor.ledger.books

    def doc_of(gate: GateConfig, now_ms: int) -> dict[str, Any]:
        return gate_doc(gate, processor.signals(gate.gate_id, now_ms),
                        processor.alerts[gate.gate_id])

    def headers_for(request: Any) -> dict[str, str]:
        out = {"Cache-Control": "no-store"}
        origin = request.headers.get("Origin")
        if origin and ("*" in cors_origins or origin in cors_origins):
            out["Access-Control-Allow-Origin"] = "*" if "*" in cors_origins else origin
            out["Vary"] = "Origin"
        return out

    def check_token(request: Any) -> None:
        if token and request.headers.get("Authorization", "") != f"Bearer {token}":
            raise ApiError(401, "unauthorized", "a valid bearer token is required")

    def peers() -> list[str]:
        try:
            meta = app.router.table_metadata(state_table)
        except Exception:  # noqa: BLE001 - not assigned yet
            return []
        me = f"{app.conf.web_host}:{app.conf.web_port}"
        urls = []
        for url in meta:
            text = str(url).rstrip("/")
            if not text.startswith("http"):
                text = f"http://{text}"
            if not text.endswith(me):
                urls.append(text)
        return urls

    async def ask_peers(request: Any, path: str) -> list[dict[str, Any]]:
        """Local answers of the other workers for ``path`` (failures are skipped)."""
        urls = peers()
        if not urls or request.headers.get(FORWARDED):
            return []
        hdrs = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            hdrs["Authorization"] = request.headers["Authorization"]
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
                return web.json(body, headers=headers_for(request))
            except ApiError as exc:
                return web.json(exc.body(), status=exc.status, headers=headers_for(request))
        return run()

    def known(gate_id: str) -> GateConfig:
        gate = gates.get(gate_id)
        if gate is None:
            raise ApiError(404, "unknown_gate", f"no gate {gate_id!r}; see /api/v1/gates")
        return gate

    @app.page("/api/v1/gates")
    async def _gates(web: Any, request: Any) -> Any:
        async def body() -> dict[str, Any]:
            now = wall_ms()
            docs = {g.gate_id: doc_of(g, now) for g in gates.gates}
            missing = [g for g, d in docs.items() if not d["owned"]]
            if missing:
                for peer in await ask_peers(request, "/api/v1/gates"):
                    for d in peer.get("gates", []):
                        if d.get("owned") and d.get("gate_id") in missing:
                            docs[d["gate_id"]] = d
            kafka = kafka_status() if kafka_status else {"reachable": True,
                                                          "unreachable_seconds": 0}
            return {"gates": list(docs.values()), "generated_at": format_ms(now),
                    "kafka": kafka}
        return await respond(web, request, body)

    @app.page("/api/v1/gates/{gate_id}")
    async def _gate(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any]:
            gate = known(gate_id)
            now = wall_ms()
            doc = doc_of(gate, now)
            if not doc["owned"]:
                for peer in await ask_peers(request, f"/api/v1/gates/{gate_id}"):
                    if peer.get("owned"):
                        return peer
            history = books[gate_id].windows.history
            doc["windows"] = [window_doc(r) for r in list(history)[-12:][::-1]]
            return doc
        return await respond(web, request, body)

    @app.page("/api/v1/gates/{gate_id}/windows")
    async def _windows(web: Any, request: Any, gate_id: str) -> Any:
        async def body() -> dict[str, Any]:
            known(gate_id)
            frm, to, size = parse_range(request.query, wall_ms())
            book = books[gate_id]
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

    @app.page("/api/v1/alerts")
    async def _alerts(web: Any, request: Any) -> Any:
        async def body() -> dict[str, Any]:
            out = {a["alert_id"]: a for a in alerts_doc(processor, processor.owned_gates())}
            for peer in await ask_peers(request, "/api/v1/alerts"):
                for a in peer.get("alerts", []):
                    out.setdefault(a["alert_id"], a)
            return {"alerts": sorted(out.values(), key=lambda d: d["alert_id"])}
        return await respond(web, request, body)

    @app.page("/openapi.json")
    async def _openapi(web: Any, request: Any) -> Any:
        return web.json(spec, headers=headers_for(request))
