"""``gatewatch history``: ``gate.windows`` and ``gate.alerts`` → the history store.

One consumer in its own group (``<app_id>-history``) reads both topics from their start
(a new group backfills everything the topics still hold), decodes each record, and
upserts a batch at a time; the batch's offsets are committed only after it is written,
so a crash re-reads it, and the upserts make that harmless. A store that stops answering
is retried with back-off while nothing more is fetched; an undecodable record is counted
and skipped (it came from gatewatch itself: nothing to dead-letter).

Its own metrics, on ``127.0.0.1:<--metrics-port>/metrics``:
``gatewatch_history_lag_records{topic}`` (records not yet stored, from the fetch high
watermarks), ``gatewatch_history_records_total{topic}``,
``gatewatch_history_rows_written_total{table}``, ``gatewatch_history_bad_records_total{topic}``,
``gatewatch_history_write_errors_total``, ``gatewatch_history_last_write_timestamp_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from gatewatch.errors import HistoryError
from gatewatch.history.store import HistoryStore
from gatewatch.kafka import KafkaConfig
from gatewatch.streams.codec import parse_timestamp_ms
from gatewatch.streams.records import WindowRecord
from gatewatch.streams.topics import Topics

__all__ = ["HistoryMetrics", "HistoryWriter", "decode_window", "serve_metrics"]

log = logging.getLogger(__name__)


def _count(doc: Mapping[str, Any], name: str, direction: str) -> int:
    part = doc.get(name)
    value = part.get(direction) if isinstance(part, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}.{direction}")
    return value


def decode_window(raw: bytes | None) -> WindowRecord | None:
    """A ``gate.windows`` record (as :func:`gatewatch.streams.codec.encode_window` writes
    it) back into a :class:`WindowRecord`; ``None`` if it is not one."""
    try:
        doc = orjson.loads(raw or b"")
        start = parse_timestamp_ms(doc["window_start"])
        end = parse_timestamp_ms(doc["window_end"])
        waits = doc["waits"]
        if not isinstance(doc["gate_id"], str) or start is None or end is None:
            return None
        values: dict[str, Any] = {
            "gate_id": doc["gate_id"], "start_ms": start, "end_ms": end,
            "waits_count": int(waits["count"]), "waits_sum_seconds": float(waits["sum_seconds"]),
            "waits_max_seconds": float(waits["max_seconds"]),
            "closed_by": str(doc.get("closed_by", "event_time")),
            "republished": bool(doc.get("republished", False))}
        for name in ("arrivals", "crossings", "withdrawals"):
            for direction in ("export", "import"):
                values[f"{name}_{direction}"] = _count(doc, name, direction)
        waiting = doc.get("waiting")
        for direction in ("export", "import"):
            w = waiting.get(direction) if isinstance(waiting, dict) \
                else doc.get(f"waiting_{direction}")
            values[f"waiting_{direction}"] = w if isinstance(w, int) and w >= 0 else None
        return WindowRecord(**values)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


class HistoryMetrics:
    """The history writer's metrics, against an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge("gatewatch_history_lag_records",
                         "records of the topic not yet stored in the history", ["topic"],
                         registry=registry)
        self.records = Counter("gatewatch_history_records",
                               "records read from the topic", ["topic"], registry=registry)
        self.rows = Counter("gatewatch_history_rows_written",
                            "rows upserted into the history store (a replayed record "
                            "rewrites its row)", ["table"], registry=registry)
        self.bad = Counter("gatewatch_history_bad_records",
                           "records that could not be decoded (skipped)", ["topic"],
                           registry=registry)
        self.write_errors = Counter("gatewatch_history_write_errors",
                                    "failed writes to the history store (retried)",
                                    registry=registry)
        self.last_write = Gauge("gatewatch_history_last_write_timestamp_seconds",
                                "when the history store was last written", registry=registry)


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> Any:
    """``/metrics`` (and ``/healthz``) on ``host:port``; returns the aiohttp runner."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


class HistoryWriter:
    """Reads ``gate.windows`` and ``gate.alerts`` in ``group`` and writes them to ``store``."""

    def __init__(self, kafka: KafkaConfig, topics: Topics, group: str, store: HistoryStore,
                 metrics: HistoryMetrics, *, batch_records: int = 2000,
                 progress: Callable[[str], None] | None = None,
                 progress_seconds: float = 10.0,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.kafka, self.group, self.store, self.metrics = kafka, group, store, metrics
        self.names = {topics.windows: "gate.windows", topics.alerts: "gate.alerts"}
        self.batch_records = batch_records
        self.progress = progress
        self.progress_seconds = progress_seconds
        self.wall_ms = wall_ms
        self.read = 0
        self.written = 0

    async def _lag(self, consumer: Any) -> dict[str, int]:
        """Records not yet read per topic: the fetch's high watermark (the end offset
        ListOffsets reports can be low on the embedded broker) minus the position."""
        lag = dict.fromkeys(self.names.values(), 0)
        parts = consumer.assignment()
        missing = [tp for tp in parts if consumer.highwater(tp) is None]
        ends = await consumer.end_offsets(missing) if missing else {}
        for tp in parts:
            high = consumer.highwater(tp)
            high = ends.get(tp, 0) if high is None else high
            lag[self.names[tp.topic]] += max(0, high - await consumer.position(tp))
        for topic, value in lag.items():
            self.metrics.lag.labels(topic).set(value)
        return lag

    def _write(self, windows: list[WindowRecord], alerts: list[dict[str, Any]]) -> None:
        w = self.store.put_windows(windows, self.wall_ms())
        a = self.store.put_alerts(alerts)
        self.metrics.rows.labels("windows").inc(w)
        self.metrics.rows.labels("alerts").inc(a)
        self.metrics.last_write.set(time.time())
        self.written += w + a

    async def _write_until_done(self, windows: list[WindowRecord],
                                alerts: list[dict[str, Any]], stop: asyncio.Event) -> bool:
        """Write, retrying with capped back-off while the store fails; False if stopped
        before it succeeded (nothing committed: read again next time)."""
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(self._write, windows, alerts)
                return True
            except HistoryError as exc:
                self.metrics.write_errors.inc()
                log.warning("%s; retrying in %.1f s", exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return False
                except TimeoutError:
                    delay = min(delay * 2, 30.0)

    def _decode(self, records: list[Any]) -> tuple[list[WindowRecord], list[dict[str, Any]]]:
        windows: list[WindowRecord] = []
        alerts: list[dict[str, Any]] = []
        for rec in records:
            topic = self.names[rec.topic]
            self.metrics.records.labels(topic).inc()
            if topic == "gate.windows":
                w = decode_window(rec.value)
                if w is not None:
                    windows.append(w)
                    continue
            else:
                try:
                    doc = orjson.loads(rec.value or b"")
                except orjson.JSONDecodeError:
                    doc = None
                if isinstance(doc, dict) and doc.get("alert_id"):
                    alerts.append(doc)
                    continue
            self.metrics.bad.labels(topic).inc()
            log.warning("history: skipped an undecodable record at %s/%s/%s", rec.topic,
                        rec.partition, rec.offset)
        return windows, alerts

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            *self.names, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=500,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, **self.kafka.aiokafka())
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_report = loop.time() + self.progress_seconds
        caught_up = False
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=self.batch_records)
                records = [r for rs in batch.values() for r in rs]
                if records:
                    windows, alerts = self._decode(records)
                    if not await self._write_until_done(windows, alerts, stop):
                        return
                    await consumer.commit()
                    self.read += len(records)
                lag = await self._lag(consumer)
                behind = sum(lag.values())
                if self.progress is not None and self.read and (
                        (behind and loop.time() >= next_report)
                        or (not caught_up and behind == 0)):
                    next_report = loop.time() + self.progress_seconds
                    state = "caught up" if behind == 0 else "backfilling"
                    self.progress(f"gatewatch history: {state}: {self.read} records read, "
                                  f"{self.written} rows written, lag "
                                  + ", ".join(f"{t} {n}" for t, n in lag.items()))
                caught_up = behind == 0 and bool(consumer.assignment())
        finally:
            await consumer.stop()
