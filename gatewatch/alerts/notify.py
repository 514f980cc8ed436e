"""Alert delivery: from the ``gate.alerts`` topic to Alertmanager and to webhooks.

Runs as its own process (``gatewatch notify``), so a slow or dead receiver never
touches the pipeline; the topic is the buffer.

- :class:`WebhookNotifier` posts every alert record, in order, to a URL, and commits the
  record's offset (consumer group ``<app id>-notify-webhook``) once it is delivered or
  parked. Transient failures (5xx, 408, 425, 429 with its Retry-After, no answer) are
  retried with capped exponential back-off and jitter for as long as they last: a receiver
  that is down for hours gets every record when it returns (at least once; dedupe on
  ``alert_id`` + ``change`` + ``updated_at``). A record the receiver rejects (any other
  4xx) is tried ``rejected_attempts`` times, then parked on ``gate.alerts.undelivered``
  (:class:`Parking`), logged and counted, and the next record goes on. The consumer keeps
  polling while a record is retried, so it stays in its group.
- :class:`AlertmanagerPusher` reads the topic from the beginning to know which alerts
  are active, pushes each change to Alertmanager's ``/api/v2/alerts`` at once, and
  re-sends the active ones every ``resend_seconds`` (as Prometheus does) with an
  ``endsAt`` a few intervals ahead; resolved alerts are sent with their resolve time.
  Failed pushes back off the same way; an alert Alertmanager rejects is parked too.
  Given ``advisories_topic``, it also pushes the shipment advisories of
  ``gate.advisories`` as ``alertname=GateShipmentAdvisory`` (labels ``direction`` and
  ``advice``; severity warning for ``slow_down``, critical for ``hold_shipments``; back
  to ``normal`` resolves it).

When to retry and how long to wait: :mod:`gatewatch.alerts.retry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from gatewatch.alerts.advisories import as_alert_record
from gatewatch.alerts.retry import Outcome, RetryPolicy, classify, parse_retry_after
from gatewatch.streams.codec import format_ms

if TYPE_CHECKING:
    from gatewatch.kafka import KafkaConfig

__all__ = ["AlertmanagerPusher", "Parking", "Verdict", "WebhookNotifier", "safe_url",
           "to_alertmanager"]

log = logging.getLogger(__name__)

_ALERTNAMES = {"congestion": "GateCongestion", "perishable_wait": "GatePerishableWait",
               "no_data": "GateNoData", "shipment_advisory": "GateShipmentAdvisory"}


def to_alertmanager(record: dict[str, Any], now_ms: int, resend_seconds: float,
                    generator_url: str = "") -> dict[str, Any]:
    """An Alertmanager API v2 ``postableAlert`` for one gatewatch alert record."""
    msg = record.get("message") or {}
    alert: dict[str, Any] = {
        "labels": {"alertname": _ALERTNAMES.get(record["kind"], "GateAlert"),
                   "gate": record["gate_id"], "kind": record["kind"],
                   "severity": record["severity"], "source": "gatewatch",
                   # what the alert concerns ("all": every cargo / the whole gate); the
                   # routes `gatewatch alertmanager-config` writes match on them
                   "cargo": record.get("cargo") or ("perishable" if record["kind"] ==
                                                    "perishable_wait" else "all"),
                   "direction": record.get("direction") or "all"},
        "annotations": {"summary": msg.get("en", ""), "summary_vi": msg.get("vi", ""),
                        "gate_name": record.get("gate_name", ""),
                        "waiting": str(record.get("waiting", "")),
                        "estimated_wait_seconds": str(record.get("estimated_wait_seconds")),
                        "runbook_url": record.get("runbook_url", "")},
        "startsAt": record["started_at"],
    }
    if record.get("advice"):  # a shipment advisory
        alert["labels"]["advice"] = str(record["advice"])
    if record["state"] == "resolved":
        alert["endsAt"] = record["resolved_at"] or format_ms(now_ms)
    else:
        alert["endsAt"] = format_ms(now_ms + int(resend_seconds * 4 * 1000))
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def _consumer(kafka: KafkaConfig, topic: str | None, group: str | None,
              *also: str, **extra: Any) -> Any:
    from aiokafka import AIOKafkaConsumer

    topics = tuple(t for t in (topic, *also) if t)
    return AIOKafkaConsumer(*topics, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=200,
                            **kafka.aiokafka(), **extra)


def safe_url(url: str) -> str:
    """``url`` without user info, query and fragment (webhook URLs often carry a token
    there): what log lines and parked records name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def _wait(seconds: float, stop: asyncio.Event) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _loads(value: bytes | None) -> dict[str, Any]:
    """An alert record's JSON object, or ``{}`` if it is not one."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _snippet(body: bytes) -> str:
    """The start of a receiver's answer, on one line, for the reason of a rejection."""
    return " ".join(body[:200].decode("utf-8", "replace").split())


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """How the delivery of one record ended."""

    delivered: bool
    attempts: int
    reason: str = ""
    """why it was given up: ``rejected`` (the receiver refused it) or ``gave_up``"""
    detail: str = ""
    """the last answer, e.g. ``HTTP 400: missing field``"""


class Parking:
    """Writes records no receiver would take to ``gate.alerts.undelivered``: the original
    key and bytes, with headers ``gatewatch-reason``, ``gatewatch-detail`` (the last
    answer), ``gatewatch-receiver`` (URL without query), ``gatewatch-attempts`` and
    ``gatewatch-source`` (``topic/partition/offset``; empty for Alertmanager)."""

    def __init__(self, kafka: KafkaConfig, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self._producer: Any = None

    async def park(self, key: bytes | None, value: bytes, *, reason: str, detail: str,
                   receiver: str, attempts: int, source: str = "") -> None:
        """Write one record and wait for the broker's acknowledgement."""
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(**self.kafka.aiokafka())
            await producer.start()
            self._producer = producer
        await self._producer.send_and_wait(self.topic, value, key=key, headers=[
            ("gatewatch-reason", reason.encode()),
            ("gatewatch-detail", detail.encode()[:500]),
            ("gatewatch-receiver", receiver.encode()),
            ("gatewatch-attempts", str(attempts).encode()),
            ("gatewatch-source", source.encode())])

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class WebhookNotifier:
    """Delivers every alert record to ``url``, in order; parks the ones it refuses.

    Two tasks: the consumer loop keeps polling Kafka (so the consumer stays in its group
    however long a receiver takes) and fills a bounded queue, pausing its partitions while
    the queue is full; the delivery loop posts the queued records one at a time, retrying
    as :class:`RetryPolicy` says, and commits each record's offset once it is delivered or
    parked. ``sleep``, ``rand`` and ``wall_seconds`` are injectable for tests."""

    def __init__(self, kafka: KafkaConfig, topic: str, group: str, url: str, *,
                 parking_topic: str | None = None, policy: RetryPolicy | None = None,
                 queue_size: int = 100, max_poll_interval_ms: int = 300_000,
                 on_delivered: Callable[[dict[str, Any]], None] | None = None,
                 sleep: Callable[[float, asyncio.Event], Awaitable[None]] = _wait,
                 rand: Callable[[], float] = random.random,
                 wall_seconds: Callable[[], float] = time.time) -> None:
        self.kafka, self.topic, self.group, self.url = kafka, topic, group, url
        self.receiver = safe_url(url)
        self.parking = Parking(kafka, parking_topic or topic + ".undelivered")
        self.policy = policy or RetryPolicy()
        self.queue_size = queue_size
        self.max_poll_interval_ms = max_poll_interval_ms
        self.on_delivered = on_delivered
        self.sleep, self.rand, self.wall_seconds = sleep, rand, wall_seconds
        self.delivered = 0
        """records the receiver took"""
        self.parked = 0
        """records given up and written to the parking topic"""
        self.failures = 0
        """failed attempts (each retry of each record)"""
        self.polls = 0
        """consumer polls (they go on while a record is being retried)"""
        self._queue: deque[Any] = deque()
        self._ready = asyncio.Event()

    async def deliver(self, session: aiohttp.ClientSession, body: bytes,
                      stop: asyncio.Event) -> Verdict | None:
        """POST ``body`` until it is delivered or the policy gives it up; ``None`` if
        ``stop`` was set first."""
        attempts = rejected = 0
        while not stop.is_set():
            attempts += 1
            status: int | None = None
            retry_after: float | None = None
            try:
                async with session.post(self.url, data=body,
                                        headers={"Content-Type": "application/json"}) as r:
                    status = r.status
                    if classify(status) == "delivered":
                        return Verdict(True, attempts)
                    detail = f"HTTP {status}"
                    retry_after = parse_retry_after(r.headers.get("Retry-After"),
                                                    self.wall_seconds())
                    if text := _snippet(await r.read()):
                        detail += f": {text}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                detail = type(exc).__name__
            outcome = classify(status)
            self.failures += 1
            rejected += outcome == "rejected"
            if self.policy.gives_up(outcome, attempts, rejected):
                return Verdict(False, attempts,
                               "rejected" if outcome == "rejected" else "gave_up", detail)
            wait = self.policy.backoff(attempts, retry_after, self.rand)
            log.warning("webhook %s: %s; retrying in %.1f s", self.receiver, detail, wait)
            await self.sleep(wait, stop)
        return None

    def _revoked(self, revoked: Any) -> None:
        """Partitions taken away by a rebalance: their queued records are the new
        owner's now (it starts from the committed offset)."""
        gone = {(tp.topic, tp.partition) for tp in revoked}
        kept = [r for r in self._queue if (r.topic, r.partition) not in gone]
        self._queue.clear()
        self._queue.extend(kept)

    async def _park(self, rec: Any, verdict: Verdict, stop: asyncio.Event) -> bool:
        """Park ``rec``, retrying while Kafka refuses; False if stopping first."""
        from aiokafka.errors import KafkaError

        attempt = 0
        while not stop.is_set():
            try:
                await self.parking.park(
                    rec.key, rec.value, reason=verdict.reason, detail=verdict.detail,
                    receiver=self.receiver, attempts=verdict.attempts,
                    source=f"{rec.topic}/{rec.partition}/{rec.offset}")
                return True
            except KafkaError as exc:
                attempt += 1
                wait = self.policy.backoff(attempt, None, self.rand)
                log.warning("webhook %s: cannot park a record on %s: %s; retrying in %.1f s",
                            self.receiver, self.parking.topic, type(exc).__name__, wait)
                await self.sleep(wait, stop)
        return False

    async def _deliver_loop(self, consumer: Any, session: aiohttp.ClientSession,
                            stop: asyncio.Event) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError

        while not stop.is_set():
            if not self._queue:
                self._ready.clear()
                stop_wait = asyncio.ensure_future(stop.wait())
                ready_wait = asyncio.ensure_future(self._ready.wait())
                await asyncio.wait({stop_wait, ready_wait},
                                   return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                ready_wait.cancel()
                continue
            rec = self._queue[0]
            verdict = await self.deliver(session, rec.value, stop)
            if verdict is None:
                return  # stopping: not committed, re-sent next time
            if not verdict.delivered:
                doc = _loads(rec.value)
                if not await self._park(rec, verdict, stop):
                    return
                self.parked += 1
                log.warning("webhook %s: gave up alert %s (%s/%s/%s) after %d attempts "
                            "(%s: %s); parked on %s (%d parked so far)", self.receiver,
                            doc.get("alert_id", "?"), rec.topic, rec.partition, rec.offset,
                            verdict.attempts, verdict.reason, verdict.detail,
                            self.parking.topic, self.parked)
            if not self._queue or self._queue[0] is not rec:
                continue  # revoked meanwhile: the partition's new owner delivers it again
            self._queue.popleft()
            try:
                await consumer.commit({TopicPartition(rec.topic, rec.partition):
                                       rec.offset + 1})
            except KafkaError as exc:  # e.g. rebalanced meanwhile: at least once
                log.warning("webhook %s: could not commit %s/%s/%s: %s", self.receiver,
                            rec.topic, rec.partition, rec.offset, type(exc).__name__)
            if verdict.delivered:
                self.delivered += 1
                if self.on_delivered is not None:
                    self.on_delivered(_loads(rec.value))

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import ConsumerRebalanceListener

        notifier = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                notifier._revoked(revoked)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                pass

        consumer = _consumer(self.kafka, None, self.group,
                             max_poll_interval_ms=self.max_poll_interval_ms)
        consumer.subscribe([self.topic], listener=Listener())
        await consumer.start()
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                delivery = asyncio.create_task(self._deliver_loop(consumer, session, stop))
                try:
                    while not stop.is_set() and not delivery.done():
                        room = self.queue_size - len(self._queue)
                        if room <= 0:  # full: keep polling (and heartbeating), fetch none
                            consumer.pause(*consumer.assignment())
                        elif consumer.paused():
                            consumer.resume(*consumer.paused())
                        batch = await consumer.getmany(timeout_ms=200,
                                                       max_records=max(1, room))
                        self.polls += 1
                        for records in batch.values():
                            self._queue.extend(records)
                        if self._queue:
                            self._ready.set()
                    await delivery  # a failure of the delivery loop is raised here
                finally:
                    if not delivery.done():
                        delivery.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await delivery
        finally:
            await self.parking.close()
            await consumer.stop()


class AlertmanagerPusher:
    """Keeps Alertmanager's view of gatewatch's alerts current.

    A push that fails for a transient reason (5xx, 408, 429, no answer) is retried with
    capped back-off, while the topic is still read. When Alertmanager rejects a batch
    (400: one bad alert spoils the whole request), each alert of the batch is pushed on its
    own; one it rejects ``policy.rejected_attempts`` times is parked on the parking topic
    and no longer sent (not even re-sent), so the others go through."""

    def __init__(self, kafka: KafkaConfig, topic: str, url: str, *,
                 resend_seconds: float = 60.0, wall_ms: Callable[[], int],
                 parking_topic: str | None = None, policy: RetryPolicy | None = None,
                 rand: Callable[[], float] = random.random,
                 advisories_topic: str | None = None) -> None:
        self.kafka, self.topic = kafka, topic
        self.advisories_topic = advisories_topic
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.receiver = safe_url(self.endpoint)
        self.resend_seconds = resend_seconds
        self.wall_ms = wall_ms
        self.parking = Parking(kafka, parking_topic or topic + ".undelivered")
        self.policy = policy or RetryPolicy()
        self.rand = rand
        self.active: dict[str, dict[str, Any]] = {}
        self.pushes = 0
        """pushes Alertmanager accepted"""
        self.failures = 0
        """pushes that failed"""
        self.parked = 0
        """alert changes Alertmanager rejected for good, written to the parking topic"""
        self.skipped = 0
        """records on the topic that are not alert records (logged, ignored)"""

    async def _push(self, session: aiohttp.ClientSession, records: list[dict[str, Any]]
                    ) -> tuple[Outcome, float | None, str]:
        """One POST: its outcome, the receiver's Retry-After, and what it answered."""
        now = self.wall_ms()
        body = orjson.dumps([to_alertmanager(r, now, self.resend_seconds) for r in records])
        status: int | None = None
        retry_after: float | None = None
        try:
            async with session.post(self.endpoint, data=body,
                                    headers={"Content-Type": "application/json"}) as r:
                status = r.status
                detail = f"HTTP {status}"
                if classify(status) != "delivered":
                    retry_after = parse_retry_after(r.headers.get("Retry-After"), now / 1000)
                    if text := _snippet(await r.read()):
                        detail += f": {text}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = type(exc).__name__
        outcome = classify(status)
        if outcome == "delivered":
            self.pushes += 1
        else:
            self.failures += 1
        return outcome, retry_after, detail

    async def _isolate(self, session: aiohttp.ClientSession,
                       unsent: dict[str, dict[str, Any]], rejections: dict[str, int]
                       ) -> tuple[Outcome, float | None, str]:
        """After a rejected batch: push each alert alone; park the ones rejected too
        often. Returns the first transient failure met (the rest waits), else delivered."""
        from aiokafka.errors import KafkaError

        for key, doc in list(unsent.items()):
            outcome, retry_after, detail = await self._push(session, [doc])
            if outcome == "transient":
                return outcome, retry_after, detail
            if outcome == "delivered":
                del unsent[key]
                rejections.pop(key, None)
                continue
            rejections[key] = rejections.get(key, 0) + 1
            if rejections[key] < self.policy.rejected_attempts:
                continue
            try:
                await self.parking.park(str(doc.get("gate_id", "")).encode(),
                                        orjson.dumps(doc), reason="rejected", detail=detail,
                                        receiver=self.receiver, attempts=rejections[key])
            except KafkaError as exc:  # kept pending: parked on a later round
                return "transient", None, f"cannot park on {self.parking.topic}: " \
                                          f"{type(exc).__name__}"
            del unsent[key]
            del rejections[key]
            if self.active.get(key) is doc:
                del self.active[key]  # or every re-send would be rejected with it
            self.parked += 1
            log.warning("alertmanager %s: gave up alert %s (%s) after %d rejections (%s); "
                        "parked on %s (%d parked so far)", self.receiver, key,
                        doc.get("change", "?"), self.policy.rejected_attempts, detail,
                        self.parking.topic, self.parked)
        if unsent:
            return "rejected", None, "some alerts rejected"
        return "delivered", None, ""

    def _take(self, value: bytes | None, unsent: dict[str, dict[str, Any]],
              rejections: dict[str, int]) -> None:
        """Fold one ``gate.alerts`` record into the active set and the pending changes."""
        doc = _loads(value)
        if "advisory_id" in doc:
            doc = as_alert_record(doc) or {}
        aid = doc.get("alert_id")
        if not isinstance(aid, str) or not {"state", "severity", "kind", "gate_id",
                                            "started_at"} <= doc.keys():
            self.skipped += 1
            log.warning("alertmanager: skipped a record that is not an alert record "
                        "(%d skipped so far)", self.skipped)
            return
        before = self.active.get(aid)
        if before is not None and before["severity"] != doc["severity"]:
            # escalation changes the severity label: end the old one
            old = dict(before, state="resolved", resolved_at=doc.get("updated_at"))
            unsent[f"{aid}:{before['severity']}"] = old
        if doc["state"] == "resolved":
            self.active.pop(aid, None)
        else:
            self.active[aid] = doc
        unsent.pop(aid, None)
        unsent[aid] = doc
        rejections.pop(aid, None)  # a new change of the alert: a fresh start

    async def run(self, stop: asyncio.Event) -> None:
        also = (self.advisories_topic,) if self.advisories_topic else ()
        consumer = _consumer(self.kafka, self.topic, None, *also)
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_resend = loop.time() + self.resend_seconds
        #: the latest change per alert not yet accepted by Alertmanager
        unsent: dict[str, dict[str, Any]] = {}
        rejections: dict[str, int] = {}  # rejected pushes per pending alert
        failed, next_try = 0, 0.0  # consecutive failed rounds; no push before next_try
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=250)
                    for records in batch.values():
                        for rec in records:
                            self._take(rec.value, unsent, rejections)
                    if unsent and loop.time() >= next_try:
                        if rejections:  # a rejected alert is pending: one by one again
                            outcome = "rejected"
                        else:
                            outcome, retry_after, detail = await self._push(
                                s, list(unsent.values()))
                        if outcome == "rejected":
                            outcome, retry_after, detail = await self._isolate(
                                s, unsent, rejections)
                        if outcome == "delivered":
                            unsent, rejections, failed = {}, {}, 0
                        else:
                            failed += 1
                            wait = self.policy.backoff(failed, retry_after, self.rand)
                            next_try = loop.time() + wait
                            log.warning("alertmanager %s: %s; retrying in %.1f s",
                                        self.receiver, detail, wait)
                    if loop.time() >= next_resend and loop.time() >= next_try:
                        next_resend = loop.time() + self.resend_seconds
                        if self.active:
                            await self._push(s, list(self.active.values()))
        finally:
            await self.parking.close()
            await consumer.stop()
