"""Alert delivery against the real broker: the webhook notifier and the Alertmanager
pusher, in this process (their counters are read), against real HTTP receivers that
reject, fail for a while, or ask to slow down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from gatewatch.alerts.notify import AlertmanagerPusher, WebhookNotifier
from gatewatch.alerts.retry import RetryPolicy
from gatewatch.kafka import KafkaConfig, ensure_topics
from gatewatch.settings import Settings
from gatewatch.streams.topics import Topics
from tests.support import WebhookReceiver, committed_offsets, poll, produce, read_all

pytestmark = pytest.mark.integration

FAST = RetryPolicy(base_seconds=0.05, max_backoff_seconds=0.2, rejected_attempts=3)


def _setup(bootstrap: str, test_id: str) -> tuple[KafkaConfig, Topics]:
    settings = Settings.from_env({"GATEWATCH_KAFKA_BOOTSTRAP": bootstrap,
                                  "GATEWATCH_TOPIC_PREFIX": f"{test_id}-",
                                  "GATEWATCH_PARTITIONS": "1"})
    kafka = KafkaConfig.from_settings(settings)
    ensure_topics(settings, config=kafka)
    return kafka, Topics(settings.topic_prefix)


@contextlib.contextmanager
def running(runner: WebhookNotifier | AlertmanagerPusher) -> Iterator[list[BaseException]]:
    """``runner.run`` on its own event loop in a thread until the block ends; yields the
    list its exception lands in."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(runner.run(stop))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
    assert not errors, errors


def record(seq: int, gate: str = "huu-nghi") -> bytes:
    return orjson.dumps({"alert_id": f"{gate}:congestion", "seq": seq, "state": "firing",
                         "kind": "congestion", "gate_id": gate, "severity": "warning",
                         "started_at": "2021-12-01T00:00:00.000Z", "change": "fired",
                         "updated_at": f"2021-12-01T00:00:{seq:02d}.000Z",
                         "message": {"en": "x", "vi": "x"}})


def headers(rec: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in rec.headers}


def test_a_rejected_record_is_parked_and_later_alerts_go_on(bootstrap, test_id, caplog):
    """A 400 no longer blocks the receiver: the record is tried 3 times, parked on
    gate.alerts.undelivered with the reason, counted and logged; the next records are
    delivered, in order, and the group's position moves past all of them."""
    kafka, topics = _setup(bootstrap, test_id)
    produce(bootstrap, topics.alerts, [(b"huu-nghi", record(i)) for i in range(4)])
    group = f"{test_id}-notify-webhook"

    def answer(body: Any) -> int:
        return 400 if body["seq"] == 1 else 200
    with WebhookReceiver(answer=answer) as hook, caplog.at_level(logging.INFO):
        notifier = WebhookNotifier(kafka, topics.alerts, group, hook.url + "?token=s3cret",
                                   parking_topic=topics.alerts_undelivered, policy=FAST)
        with running(notifier) as errors:
            poll(lambda: len(hook.bodies) >= 3 or errors, 60, "the other records delivered")
            poll(lambda: committed_offsets(bootstrap, group, topics.alerts) == {0: 4}, 30,
                 "the group's position past every record")
        assert [b["seq"] for b in hook.bodies] == [0, 2, 3]  # in order, none skipped
        assert [b["seq"] for _, b, _ in hook.requests if b["seq"] == 1] == [1, 1, 1]
        assert (notifier.delivered, notifier.parked) == (3, 1)
    parked = read_all(bootstrap, topics.alerts_undelivered, expect=1)
    assert [(p.key, p.value) for p in parked] == [(b"huu-nghi", record(1))]
    h = headers(parked[0])
    assert h["gatewatch-reason"] == "rejected" and h["gatewatch-detail"] == "HTTP 400"
    assert h["gatewatch-attempts"] == "3"
    assert h["gatewatch-receiver"] == hook.url  # without the token
    assert h["gatewatch-source"] == f"{topics.alerts}/0/1"
    gave_up = [r for r in caplog.records if "parked on" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.WARNING
    assert "huu-nghi:congestion" in gave_up[0].getMessage()
    assert "s3cret" not in caplog.text and '"seq"' not in caplog.text  # no URL token, no body


def test_a_failing_receiver_gets_everything_in_order_and_the_consumer_stays_in_its_group(
        bootstrap, test_id):
    """429 with Retry-After, then 503s for longer than the consumer's max poll interval
    (3 s): the consumer keeps polling meanwhile (its queue of 1 full, its partition
    paused), so it is still a member of its group when the receiver recovers, gets every
    record in order, and commits."""
    kafka, topics = _setup(bootstrap, test_id)
    produce(bootstrap, topics.alerts, [(b"huu-nghi", record(i)) for i in range(3)])
    group = f"{test_id}-notify-webhook"
    healed = threading.Event()
    answers = iter([(429, {"Retry-After": "1"})])

    def answer(body: Any) -> int | tuple[int, dict[str, str]]:
        return next(answers, 200 if healed.is_set() else 503)
    with WebhookReceiver(answer=answer) as hook:
        notifier = WebhookNotifier(kafka, topics.alerts, group, hook.url,
                                   parking_topic=topics.alerts_undelivered,
                                   policy=RetryPolicy(base_seconds=0.1, max_backoff_seconds=0.5),
                                   max_poll_interval_ms=3000, queue_size=1)
        with running(notifier) as errors:
            poll(lambda: len(hook.requests) >= 2 or errors, 30, "a retry after the 429")
            assert hook.requests[1][0] - hook.requests[0][0] >= 1.0  # Retry-After: 1
            polls = notifier.polls
            poll(lambda: time.monotonic() - hook.requests[0][0] > 7 or errors, 30,
                 "failing for more than twice the max poll interval")
            assert notifier.polls > polls + 10  # it kept polling while retrying
            assert hook.bodies == [] and notifier.parked == 0  # 5xx: never given up
            healed.set()
            poll(lambda: len(hook.bodies) >= 3 or errors, 30, "every record once it is back")
            poll(lambda: committed_offsets(bootstrap, group, topics.alerts) == {0: 3}, 30,
                 "the commits of a consumer still in its group")
        assert [b["seq"] for b in hook.bodies] == [0, 1, 2]
        assert notifier.delivered == 3 and notifier.failures >= 10


def test_alertmanager_rejecting_one_alert_still_gets_the_others(bootstrap, test_id):
    """Alertmanager answers 400 to a batch holding one bad alert: the pusher pushes the
    alerts one by one, delivers the good ones, parks the bad one after a bounded number of
    rejections and stops sending it (re-sends of the active alerts go through)."""
    kafka, topics = _setup(bootstrap, test_id)
    produce(bootstrap, topics.alerts, [(b"huu-nghi", record(0)),
                                       (b"bad-gate", record(1, gate="bad-gate")),
                                       (b"tan-thanh", record(2, gate="tan-thanh"))])

    def answer(body: Any) -> int:
        return 400 if any(a["labels"]["gate"] == "bad-gate" for a in body) else 200
    with WebhookReceiver(answer=answer) as am:
        pusher = AlertmanagerPusher(kafka, topics.alerts, f"http://127.0.0.1:{am.port}",
                                    resend_seconds=1, wall_ms=lambda: int(time.time() * 1000),
                                    parking_topic=topics.alerts_undelivered, policy=FAST)
        with running(pusher) as errors:
            poll(lambda: pusher.parked == 1 or errors, 30, "the bad alert parked")
            n = len(am.requests)
            poll(lambda: len(am.requests) > n and 200 <= am.requests[-1][2] < 300, 30,
                 "a re-send of the active alerts accepted")

        def gates(ok: bool) -> list[str]:
            return [a["labels"]["gate"] for _, body, status in am.requests
                    if (200 <= status < 300) == ok for a in body]
        assert {"huu-nghi", "tan-thanh"} <= set(gates(True))
        assert "bad-gate" not in gates(True)
        assert gates(False).count("bad-gate") <= 1 + FAST.rejected_attempts  # bounded
        assert set(pusher.active) == {"huu-nghi:congestion", "tan-thanh:congestion"}
    parked = read_all(bootstrap, topics.alerts_undelivered, expect=1)
    assert [p.key for p in parked] == [b"bad-gate"]
    assert orjson.loads(parked[0].value)["gate_id"] == "bad-gate"
    assert headers(parked[0])["gatewatch-reason"] == "rejected"
