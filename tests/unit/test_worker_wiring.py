"""Small pieces of the worker's wiring that need no broker."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from gatewatch.agents.worker import partition_of, source_record
from gatewatch.gates import load_gates


def test_a_gate_is_held_by_the_partition_the_producer_sends_it_to():
    for n in (1, 4, 12):
        for gate in load_gates(None).gates:
            key = gate.gate_id.encode()
            assert partition_of(key, n) == DefaultPartitioner()(key, list(range(n)), [])


class _Record:
    def __init__(self, timestamp: object) -> None:
        self.topic, self.partition, self.offset = "gate.events", 3, 7
        self.key, self.value, self.timestamp = b"huu-nghi", b"{}", timestamp


def test_records_are_normalised_to_milliseconds_at_the_adapter():
    assert source_record(_Record(1_790_000_000_123)).timestamp_ms == 1_790_000_000_123  # aiokafka
    assert source_record(_Record(1_790_000_000.123)).timestamp_ms == 1_790_000_000_123  # Faust
    assert source_record(_Record(None)).timestamp_ms == 0


def test_a_state_write_the_broker_refuses_is_dead_lettered_and_the_batch_goes_on():
    """Item 1 of the collapse review: a MessageSizeTooLargeError from the producer escaped
    the batch and stalled the partition. The vehicle state is bounded now, so a real
    worker cannot produce such a record any more; this drives the worker's write path
    with aiokafka's own exception from a stand-in ``send`` (no broker refuses on demand
    here), and a recording dead-letter topic."""
    import asyncio

    from aiokafka.errors import MessageSizeTooLargeError
    from prometheus_client import CollectorRegistry

    from gatewatch.agents.app import create_app
    from gatewatch.core.processor import StateWrite
    from gatewatch.settings import Settings

    registry = CollectorRegistry()
    worker = create_app(Settings.from_env({}), load_gates(None), registry=registry)
    sent: list[bytes] = []
    dead: list[dict] = []

    async def send(topic, value, key, partition):  # type: ignore[no-untyped-def]
        if key == b"huu-nghi\x00BIG":
            raise MessageSizeTooLargeError("too large")
        sent.append(key)

    class Recorder:
        def send_soon(self, **kw):  # type: ignore[no-untyped-def]
            dead.append(kw)

    worker.rejected_topic = Recorder()
    writes = [StateWrite(b"huu-nghi\x00A", b"[]", 1), StateWrite(b"huu-nghi\x00BIG", b"x" * 99, 1),
              StateWrite(b"huu-nghi\x00B", b"[]", 1)]
    asyncio.run(worker.write_changelog(writes, send=send))
    assert sent == [b"huu-nghi\x00A", b"huu-nghi\x00B"]
    assert [d["key"] for d in dead] == [b"huu-nghi\x00BIG"]
    assert dict(dead[0]["headers"])["gatewatch-reason"] == b"state_write_failed"
    assert registry.get_sample_value("gatewatch_state_writes_failed_total") == 1

    async def broker_away(topic, value, key, partition):  # type: ignore[no-untyped-def]
        from aiokafka.errors import KafkaConnectionError
        raise KafkaConnectionError("down")

    import pytest
    with pytest.raises(Exception, match="down"):  # not a record error: the batch is retried
        asyncio.run(worker.write_changelog(writes[:1], send=broker_away))


def test_events_from_the_future_and_too_old_are_counted_per_gate():
    """Item 2: a camera clock hours ahead is dead-lettered and counted for its gate."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from gatewatch.agents.app import create_app
    from gatewatch.core.processor import SourceRecord
    from gatewatch.settings import Settings
    from gatewatch.streams.codec import encode_event
    from gatewatch.streams.records import CrossingEvent

    now = 1_790_000_000_000
    registry = CollectorRegistry()
    worker = create_app(Settings.from_env({}), load_gates(None), registry=registry,
                        wall_ms=lambda: now)
    dead: list[dict] = []

    class Recorder:
        def send_soon(self, **kw):  # type: ignore[no-untyped-def]
            dead.append(kw)

    worker.rejected_topic = Recorder()
    ahead = CrossingEvent("e1", "tan-thanh", "12C-1", "queued", "export", now + 7 * 3_600_000)
    fx = worker.processor.apply_batch(
        [SourceRecord("gate.events", 2, 0, now, b"tan-thanh", encode_event(ahead))], now)
    asyncio.run(worker.carry_out(fx))
    get = registry.get_sample_value
    assert get("gate_events_rejected_total", {"gate": "tan-thanh",
                                              "reason": "from_the_future"}) == 1
    assert get("gatewatch_events_rejected_total", {"reason": "from_the_future"}) == 1
    assert dict(dead[0]["headers"])["gatewatch-reason"] == b"from_the_future"
    assert worker.processor.signals("tan-thanh", now).watermark_ms is None  # not moved


class _FlakyTopic:
    """A ``gate.windows`` topic whose first ``fail`` sends raise as aiokafka does while the
    broker is away (a rebuild republishes the last hour's windows: after a broker restart
    this is a likely way for it to fail), then records what it is sent. ``on_fail`` runs
    at each failure. A stand-in: no broker here refuses on demand."""

    def __init__(self, fail: int, on_fail=lambda: None):  # type: ignore[no-untyped-def]
        self.fail, self.on_fail, self.calls, self.sent = fail, on_fail, 0, []

    async def send(self, key, value):  # type: ignore[no-untyped-def]
        from aiokafka.errors import KafkaConnectionError

        self.calls += 1
        if self.calls <= self.fail:
            self.on_fail()
            raise KafkaConnectionError("broker away")
        self.sent.append(key)


class _Store(dict):  # type: ignore[type-arg]
    """The state table's store as ``Worker._rebuild`` reads it."""

    def __init__(self, items):  # type: ignore[no-untyped-def]
        super().__init__((k, v) for k, v, _p in items)
        self._key_partition = {k: p for k, _v, p in items}


def _rebuild_worker(windows: _FlakyTopic):  # type: ignore[no-untyped-def]
    """A real worker (no broker) whose state table holds one truck queued at Hữu Nghị
    30 min ago, with ``windows`` as its windows topic; the read-backs of
    gate.alerts/advisories fail at once (and are logged, as without a broker)."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from gatewatch.agents.app import create_app
    from gatewatch.core.processor import Processor, SourceRecord
    from gatewatch.settings import Settings
    from gatewatch.streams.codec import encode_event
    from tests.support import MIN, T0, ev

    gates = load_gates(None)
    p = Processor(gates, Settings.from_env({}))
    fx = p.apply_batch([SourceRecord("gate.events", 0, 0, T0, b"huu-nghi", encode_event(
        ev("29C-00001", "queued", T0)))], T0)
    registry = CollectorRegistry()
    worker = create_app(Settings.from_env({}), gates, registry=registry)
    worker.table = SimpleNamespace(data=_Store([(w.key, w.value, w.partition)
                                                for w in fx.writes]))
    worker.windows_topic = windows
    worker.wall_ms = lambda: T0 + 30 * MIN

    def no_broker():  # type: ignore[no-untyped-def]
        raise RuntimeError("no broker in this test")

    worker.consumer_factory = no_broker
    worker.rebuild_retry_seconds = (0.0,)
    return worker, registry


def test_a_failed_rebuild_is_tried_again_and_the_worker_becomes_ready():
    """A rebuild that raised (here: republishing a window while the broker is away) left
    the worker not ready until the next rebalance, and Faust then resumed the input over
    a core it had not finished rebuilding. Now it is tried again."""
    import asyncio

    windows = _FlakyTopic(fail=2)
    worker, registry = _rebuild_worker(windows)
    asyncio.run(worker.rebuild())
    assert worker.ready and worker.processor.vehicles_waiting() == 1
    assert windows.sent  # the windows were republished at the third attempt
    assert registry.get_sample_value("gatewatch_rebuild_failures_total") == 2


def test_a_newer_rebalance_takes_over_a_failing_rebuild():
    import asyncio

    windows = _FlakyTopic(fail=10**9)
    worker, registry = _rebuild_worker(windows)
    windows.on_fail = lambda: worker.revoked() if windows.calls == 3 else None
    asyncio.run(worker.rebuild())  # returns: the new rebalance's recovery rebuilds
    assert not worker.ready and windows.calls == 3
    assert registry.get_sample_value("gatewatch_rebuild_failures_total") == 3
