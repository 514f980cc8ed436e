"""The rewind of partitions without a committed offset (gatewatch.agents.delivery) when a
rebalance races it.

The race (a rebalance takes partitions away between reading the committed offsets and
seeking) was seen once in a CI run: aiokafka raised IllegalStateError, the fetcher
stopped and the worker with it. It cannot be produced on demand against a real broker,
so these tests give :func:`rewind` an assignment that changes and a seek that refuses
partitions not assigned, as aiokafka's does (the integration tests cover the rewind
itself, through real workers taking over from a killed one)."""

from __future__ import annotations

import asyncio
from collections import namedtuple

from aiokafka.errors import IllegalStateError

from gatewatch.agents.delivery import rewind

TP = namedtuple("TP", "topic partition")
ALL = [TP("gate.events", p) for p in range(4)]


class Consumer:
    """An assignment and a seek with aiokafka's rule: only assigned partitions."""

    def __init__(self, assigned: set[TP], changes: list[set[TP]] | None = None) -> None:
        self.assigned = assigned
        self.changes = changes or []  # assignments a rebalance installs during seeks
        self.sought: list[tuple[TP, ...]] = []

    def assignment(self) -> set[TP]:
        return self.assigned

    async def seek_to_beginning(self, *tps: TP) -> None:
        if self.changes:
            self.assigned = self.changes.pop(0)
        if any(tp not in self.assigned for tp in tps):
            raise IllegalStateError(f"Partitions {set(tps)} are not assigned")
        self.sought.append(tps)


def test_partitions_taken_away_before_the_rewind_are_not_sought():
    c = Consumer({ALL[2], ALL[3]})  # 0 and 1 were ours when the offsets were read
    assert asyncio.run(rewind(ALL, c.assignment, c.seek_to_beginning)) == [ALL[2], ALL[3]]
    assert c.sought == [(ALL[2], ALL[3])]


def test_a_rebalance_during_the_seek_is_tried_again_with_what_is_still_assigned():
    c = Consumer(set(ALL), changes=[{ALL[3]}])
    assert asyncio.run(rewind(ALL, c.assignment, c.seek_to_beginning)) == [ALL[3]]
    assert c.sought == [(ALL[3],)]
