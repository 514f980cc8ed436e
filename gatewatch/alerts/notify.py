"""Alert delivery: from the ``gate.alerts`` topic to Alertmanager and to webhooks.

Runs as its own process (``gatewatch notify``), so a slow or dead receiver never
touches the pipeline; the topic is the buffer.

- :class:`WebhookNotifier` posts every alert record, in order, to a URL. It retries
  with exponential back-off until the receiver answers 2xx and only then commits the
  record's offset (consumer group ``<app id>-notify-webhook``): a receiver that is down
  for hours gets every record when it returns (at least once; dedupe on
  ``alert_id`` + ``change`` + ``updated_at``).
- :class:`AlertmanagerPusher` reads the topic from the beginning to know which alerts
  are active, pushes each change to Alertmanager's ``/api/v2/alerts`` at once, and
  re-sends the active ones every ``resend_seconds`` (as Prometheus does) with an
  ``endsAt`` a few intervals ahead; resolved alerts are sent with their resolve time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from gatewatch.streams.codec import format_ms

if TYPE_CHECKING:
    from gatewatch.kafka import KafkaConfig

__all__ = ["AlertmanagerPusher", "WebhookNotifier", "to_alertmanager"]

log = logging.getLogger(__name__)

_ALERTNAMES = {"congestion": "GateCongestion", "perishable_wait": "GatePerishableWait",
               "no_data": "GateNoData"}


def to_alertmanager(record: dict[str, Any], now_ms: int, resend_seconds: float,
                    generator_url: str = "") -> dict[str, Any]:
    """An Alertmanager API v2 ``postableAlert`` for one gatewatch alert record."""
    msg = record.get("message") or {}
    alert: dict[str, Any] = {
        "labels": {"alertname": _ALERTNAMES.get(record["kind"], "GateAlert"),
                   "gate": record["gate_id"], "kind": record["kind"],
                   "severity": record["severity"], "source": "gatewatch"},
        "annotations": {"summary": msg.get("en", ""), "summary_vi": msg.get("vi", ""),
                        "gate_name": record.get("gate_name", ""),
                        "waiting": str(record.get("waiting", "")),
                        "estimated_wait_seconds": str(record.get("estimated_wait_seconds")),
                        "runbook_url": record.get("runbook_url", "")},
        "startsAt": record["started_at"],
    }
    if record["state"] == "resolved":
        alert["endsAt"] = record["resolved_at"] or format_ms(now_ms)
    else:
        alert["endsAt"] = format_ms(now_ms + int(resend_seconds * 4 * 1000))
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def _consumer(kafka: KafkaConfig, topic: str, group: str | None) -> Any:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(topic, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=200,
                            **kafka.aiokafka())


class WebhookNotifier:
    """Delivers every alert record to ``url``; never skips one."""

    def __init__(self, kafka: KafkaConfig, topic: str, group: str, url: str, *,
                 max_backoff_seconds: float = 30.0,
                 on_delivered: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.kafka, self.topic, self.group, self.url = kafka, topic, group, url
        self.max_backoff = max_backoff_seconds
        self.on_delivered = on_delivered
        self.delivered = 0
        self.failures = 0

    async def _post(self, session: aiohttp.ClientSession, body: bytes,
                    stop: asyncio.Event) -> bool:
        backoff = 0.5
        while not stop.is_set():
            try:
                async with session.post(self.url, data=body,
                                        headers={"Content-Type": "application/json"}) as r:
                    if 200 <= r.status < 300:
                        return True
                    reason = f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = type(exc).__name__
            self.failures += 1
            log.warning("webhook %s: %s; retrying in %.1f s", self.url, reason, backoff)
            try:
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            except TimeoutError:
                pass
            backoff = min(self.max_backoff, backoff * 2)
        return False

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import TopicPartition

        consumer = _consumer(self.kafka, self.topic, self.group)
        await consumer.start()
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=500)
                    for tp, records in batch.items():
                        for rec in records:
                            if not await self._post(session, rec.value, stop):
                                return  # stopping: not committed, re-sent next time
                            await consumer.commit({TopicPartition(tp.topic, tp.partition):
                                                   rec.offset + 1})
                            self.delivered += 1
                            if self.on_delivered is not None:
                                self.on_delivered(orjson.loads(rec.value))
        finally:
            await consumer.stop()


class AlertmanagerPusher:
    """Keeps Alertmanager's view of gatewatch's alerts current."""

    def __init__(self, kafka: KafkaConfig, topic: str, url: str, *,
                 resend_seconds: float = 60.0, wall_ms: Callable[[], int]) -> None:
        self.kafka, self.topic = kafka, topic
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.resend_seconds = resend_seconds
        self.wall_ms = wall_ms
        self.active: dict[str, dict[str, Any]] = {}
        self.pushes = 0
        self.failures = 0

    async def _push(self, session: aiohttp.ClientSession, records: list[dict[str, Any]]
                    ) -> bool:
        if not records:
            return True
        now = self.wall_ms()
        body = orjson.dumps([to_alertmanager(r, now, self.resend_seconds) for r in records])
        try:
            async with session.post(self.endpoint, data=body,
                                    headers={"Content-Type": "application/json"}) as r:
                if 200 <= r.status < 300:
                    self.pushes += 1
                    return True
                log.warning("alertmanager %s: HTTP %s %s", self.endpoint, r.status,
                            (await r.text())[:200])
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("alertmanager %s unreachable: %s", self.endpoint, type(exc).__name__)
        self.failures += 1
        return False

    async def run(self, stop: asyncio.Event) -> None:
        consumer = _consumer(self.kafka, self.topic, None)
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_resend = loop.time() + self.resend_seconds
        #: the latest change per alert not yet accepted by Alertmanager
        unsent: dict[str, dict[str, Any]] = {}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=250)
                    for records in batch.values():
                        for rec in records:
                            doc = orjson.loads(rec.value)
                            aid = doc["alert_id"]
                            before = self.active.get(aid)
                            if before is not None and before["severity"] != doc["severity"]:
                                # escalation changes the severity label: end the old one
                                old = dict(before, state="resolved",
                                           resolved_at=doc["updated_at"])
                                unsent[f"{aid}:{before['severity']}"] = old
                            if doc["state"] == "resolved":
                                self.active.pop(aid, None)
                            else:
                                self.active[aid] = doc
                            unsent.pop(aid, None)
                            unsent[aid] = doc
                    if unsent and await self._push(s, list(unsent.values())):
                        unsent = {}
                    if loop.time() >= next_resend:
                        next_resend = loop.time() + self.resend_seconds
                        await self._push(s, list(self.active.values()))
        finally:
            await consumer.stop()
