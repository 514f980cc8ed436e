"""Alert delivery retries: the pure policy (which answers are retried, how long to wait),
and the webhook notifier's delivery of one record against a real HTTP receiver with an
injected sleep (no Kafka, no real waiting)."""

from __future__ import annotations

import asyncio
import email.utils

import aiohttp
import pytest

from gatewatch.alerts.notify import WebhookNotifier, safe_url
from gatewatch.alerts.retry import RetryPolicy, classify, parse_retry_after
from gatewatch.kafka import KafkaConfig
from gatewatch.settings import Settings
from tests.support import WebhookReceiver, free_port


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "delivered"), (202, "delivered"), (204, "delivered"),
    (500, "transient"), (502, "transient"), (503, "transient"), (504, "transient"),
    (408, "transient"), (425, "transient"), (429, "transient"), (None, "transient"),
    (400, "rejected"), (401, "rejected"), (403, "rejected"), (404, "rejected"),
    (413, "rejected"), (422, "rejected"), (304, "rejected")])
def test_which_answers_are_retried(status, outcome):
    assert classify(status) == outcome


def test_backoff_doubles_is_capped_and_jittered():
    p = RetryPolicy(base_seconds=0.5, max_backoff_seconds=30, jitter=0.5)
    assert [p.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert p.backoff(1000) == 30  # no overflow however long it lasts
    assert p.backoff(3, rand=lambda: 0.999) == pytest.approx(1.001)  # within [1, 2]
    assert p.backoff(3, rand=lambda: 0.0) == 2


def test_retry_after_is_honoured_up_to_its_cap():
    p = RetryPolicy(max_backoff_seconds=30, max_retry_after_seconds=300)
    assert p.backoff(1, retry_after=7) == 7  # longer than the back-off: the receiver's
    assert p.backoff(8, retry_after=7) == 30  # shorter: the back-off stands
    assert p.backoff(1, retry_after=86_400) == 300
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) is None


def test_rejections_are_bounded_transient_failures_are_not_by_default():
    p = RetryPolicy(rejected_attempts=3)
    assert not p.gives_up("rejected", attempts=2, rejected=2)
    assert p.gives_up("rejected", attempts=3, rejected=3)
    assert not p.gives_up("transient", attempts=10_000, rejected=0)
    assert RetryPolicy(transient_attempts=5).gives_up("transient", attempts=5, rejected=0)
    with pytest.raises(ValueError):
        RetryPolicy(rejected_attempts=0)


def test_receiver_url_in_logs_and_parked_records_drops_credentials():
    assert safe_url("https://user:pw@hooks.example:8443/a/b?token=s3cret#x") == \
        "https://hooks.example:8443/a/b"
    assert safe_url("http://[::1]:9093/api/v2/alerts") == "http://[::1]:9093/api/v2/alerts"


def _deliver(url: str, body: bytes, policy: RetryPolicy, *, stop_after_sleeps: int = 100
             ) -> tuple[object, list[float], WebhookNotifier]:
    """One record through ``WebhookNotifier.deliver`` with a sleep that only records."""
    waits: list[float] = []

    async def run() -> object:
        stop = asyncio.Event()

        async def sleep(seconds: float, _stop: asyncio.Event) -> None:
            waits.append(seconds)
            if len(waits) >= stop_after_sleeps:
                stop.set()
        n = WebhookNotifier(KafkaConfig.from_settings(Settings.from_env({})), "t", "g", url,
                            policy=policy, sleep=sleep, rand=lambda: 0.0,
                            wall_seconds=lambda: 1_700_000_000.0)
        notifiers.append(n)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            return await n.deliver(s, body, stop)
    notifiers: list[WebhookNotifier] = []
    verdict = asyncio.run(run())
    return verdict, waits, notifiers[0]


def test_a_rejected_record_is_given_up_after_a_bounded_number_of_posts():
    with WebhookReceiver(answer=lambda body: 400) as hook:
        verdict, waits, n = _deliver(hook.url, b'{"seq": 1}', RetryPolicy(rejected_attempts=3))
    assert verdict is not None and not verdict.delivered
    assert (verdict.reason, verdict.attempts, verdict.detail) == ("rejected", 3, "HTTP 400")
    assert len(hook.requests) == 3 and n.failures == 3
    assert waits == [0.5, 1.0]  # back-off between the tries, none after the last


def test_transient_errors_are_retried_with_backoff_until_delivered():
    answers = iter([503, 502, 500, 504, 200])
    with WebhookReceiver(answer=lambda body: next(answers)) as hook:
        verdict, waits, _ = _deliver(hook.url, b'{"seq": 1}',
                                     RetryPolicy(rejected_attempts=1, max_backoff_seconds=2))
    assert verdict is not None and verdict.delivered and verdict.attempts == 5
    assert waits == [0.5, 1.0, 2.0, 2.0]
    assert hook.bodies == [{"seq": 1}]


def test_429_retry_after_is_honoured():
    answers = iter([(429, {"Retry-After": "7"}), (503, {"Retry-After": "100000"}), 200])
    with WebhookReceiver(answer=lambda body: next(answers)) as hook:
        verdict, waits, _ = _deliver(hook.url, b"{}", RetryPolicy())
    assert verdict is not None and verdict.delivered
    assert waits == [7.0, 300.0]  # the receiver's wish, capped at max_retry_after_seconds
    assert len(hook.requests) == 3


def test_an_unreachable_receiver_is_retried_until_stopped():
    url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens
    verdict, waits, n = _deliver(url, b"{}", RetryPolicy(max_backoff_seconds=30),
                                 stop_after_sleeps=12)
    assert verdict is None  # never given up: only stopping ends it
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30]
    assert n.failures == 12
