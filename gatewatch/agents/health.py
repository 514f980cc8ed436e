"""Broker health for readiness, and quieter logs while the broker is away.

:class:`BrokerWatch` asks the broker for cluster metadata every second through the
worker's own Kafka client. While that fails, the worker reports itself not ready
(``/readyz`` 503, ``gatewatch_broker_up 0``) but keeps running, serving its last
known state; Faust and aiokafka reconnect on their own when the broker returns.

A broker can come back *without gatewatch's topics*: the embedded broker keeps
everything in memory, so a restarted one is empty. The watch then recreates the
topics (the same ``ensure_topics`` the worker runs at start-up), so new events are
counted on top of the state the worker still holds in memory. A real Kafka or
Redpanda cluster keeps topics, committed offsets and the state changelog across a
restart, so nothing is recreated and a worker restarted later recovers everything.

:class:`RepeatFilter` keeps aiokafka's connection errors, which repeat every 100 ms
while the broker is down, to one line per message kind per interval, with a count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["AIOKAFKA_LOGGERS", "BrokerWatch", "RepeatFilter", "quiet_repeats"]

log = logging.getLogger(__name__)

#: aiokafka loggers that repeat connection errors while the broker is down
AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.client",
                    "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
                    "aiokafka.producer.sender", "aiokafka.producer.producer")


class RepeatFilter(logging.Filter):
    """Let a message template through once per ``interval`` seconds per logger; the
    next one that passes says how many were held back."""

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last " \
                         f"{self.interval:.0f} s not shown)"
        return True


def quiet_repeats(interval: float = 30.0) -> RepeatFilter:
    """Install one :class:`RepeatFilter` on aiokafka's loggers (idempotent)."""
    for name in AIOKAFKA_LOGGERS:
        for f in logging.getLogger(name).filters:
            if isinstance(f, RepeatFilter):
                return f
    flt = RepeatFilter(interval)
    for name in AIOKAFKA_LOGGERS:
        logging.getLogger(name).addFilter(flt)
    return flt


class BrokerWatch:
    """Tracks whether the broker answers, and recreates missing topics on return.

    ``metadata`` returns the broker's topic names (raises when unreachable);
    ``recreate`` creates gatewatch's topics (blocking is fine: run in a thread).
    """

    def __init__(self, metadata: Callable[[], Awaitable[set[str]]], required: str,
                 recreate: Callable[[], Any], on_change: Callable[[bool], None],
                 timeout: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.metadata = metadata
        self.required = required
        self.recreate = recreate
        self.on_change = on_change
        self.timeout = timeout
        self.clock = clock
        self.up = True
        self.down_since: float | None = None
        self.topics_recreated = 0

    def down_seconds(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    async def check(self) -> bool:
        try:
            topics = await asyncio.wait_for(self.metadata(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            if self.up:
                log.warning("Kafka broker unreachable (%s): not ready until it answers; "
                            "serving the last known state", type(exc).__name__)
                self.up = False
                self.down_since = self.clock()
                self.on_change(False)
            return False
        if self.required not in topics:
            log.warning("broker has no topic %s (a memory-only broker that restarted "
                        "loses everything): recreating gatewatch's topics; counts "
                        "continue from the state this worker holds", self.required)
            await asyncio.get_running_loop().run_in_executor(None, self.recreate)
            self.topics_recreated += 1
        if not self.up:
            log.warning("Kafka broker reachable again after %.0f s", self.down_seconds())
            self.up = True
            self.down_since = None
            self.on_change(True)
        return True
