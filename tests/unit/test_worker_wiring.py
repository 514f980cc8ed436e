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
