"""The rewinding consumer (gatewatch.agents.delivery) when a rebalance races its rewind.

The race (a rebalance takes partitions away between reading the committed offsets and
seeking) was seen once in a CI run: aiokafka raised IllegalStateError, the fetcher
stopped and the worker with it. It cannot be produced on demand against a real broker,
so this test stands in a fake consumer thread and assignment for aiokafka's (a stand-in,
not a real broker: the integration tests cover the rewind itself)."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

from gatewatch.agents.delivery import RewindingConsumer

TP = namedtuple("TP", "topic partition")


class FakeThread:
    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.seeks: list[tuple[TP, ...]] = []

    async def seek_to_beginning(self, *tps: TP) -> None:
        if any(tp not in self.owner.assigned for tp in tps):
            raise IllegalStateError(f"Partitions {set(tps)} are not assigned")
        self.seeks.append(tps)


def test_partitions_taken_away_during_the_rewind_are_skipped_not_fatal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    c = object.__new__(RewindingConsumer)
    c.app = type("App", (), {"gatewatch_source_topics": ("gate.events",)})()  # type: ignore[assignment]
    c.assigned = {TP("gate.events", 2), TP("gate.events", 3)}  # type: ignore[attr-defined]
    c._thread = FakeThread(c)  # type: ignore[assignment]
    monkeypatch.setattr(RewindingConsumer, "assignment", lambda self: self.assigned)

    async def committed(self):  # type: ignore[no-untyped-def]
        # read before the rebalance: partitions 0 and 1 were ours then
        return {TP("gate.events", p): None for p in range(4)} | {TP("other", 0): None}

    monkeypatch.setattr(AIOKafkaConsumer, "seek_to_committed", committed)
    out = asyncio.run(c.seek_to_committed())
    assert len(out) == 5
    assert c._thread.seeks == [(TP("gate.events", 2), TP("gate.events", 3))]  # type: ignore[attr-defined]
