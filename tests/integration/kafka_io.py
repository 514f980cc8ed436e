"""Produce and read test records with aiokafka (synchronous wrappers)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def _run(coro_fn: Any) -> Any:
    """asyncio.run, in a worker thread when this thread already runs a loop (Playwright)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Send (key, value) pairs in order and wait until all are acknowledged."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
    _run(run)


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[Any]:
    """Read a topic from the beginning until ``expect`` records or the deadline."""
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out: list[Any] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(out) < expect and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out.extend(records)
        finally:
            await consumer.stop()
        return out
    return _run(run)


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum over the topic's partitions of the group's committed offsets (0 if none)."""
    return sum(o or 0 for o in committed_offsets(bootstrap, group, topic).values())


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset per partition of ``topic``."""
    async def run() -> dict[int, int | None]:
        from aiokafka import TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            return {p: await consumer.committed(TopicPartition(topic, p)) for p in sorted(parts)}
        finally:
            await consumer.stop()
    return _run(run)


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic``, from the beginning to its (fetch-confirmed) end."""
    from gatewatch.agents.compat import read_to_end

    def factory() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=100)

    async def run() -> list[Any]:
        return await read_to_end(factory, topic, timeout_seconds=30)
    return _run(run)
