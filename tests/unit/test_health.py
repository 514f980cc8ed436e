"""BrokerWatch state changes and the repeat filter, with an injected clock."""

from __future__ import annotations

import asyncio
import logging

from gatewatch.agents.health import BrokerWatch, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_repeat_filter_lets_one_through_per_interval_and_counts_the_rest():
    clock = Clock()
    flt = RepeatFilter(30, clock)

    def rec(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiokafka.conn", level, "x", 1, msg, None, None)

    assert flt.filter(rec("Unable connect to node %s"))
    assert not any(flt.filter(rec("Unable connect to node %s")) for _ in range(50))
    assert flt.filter(rec("another message"))  # a different template is not held back
    assert flt.filter(rec("Unable connect to node %s", logging.INFO))  # below WARNING: kept
    clock.t += 31
    r = rec("Unable connect to node %s")
    assert flt.filter(r)
    assert "50 more like this" in str(r.msg)


def test_broker_watch_goes_down_recreates_missing_topics_and_comes_back():
    clock = Clock()
    state = {"reachable": True, "topics": {"p-gate.events"}}
    changes: list[bool] = []
    recreated: list[int] = []

    async def metadata() -> set[str]:
        if not state["reachable"]:
            raise ConnectionError("refused")
        return set(state["topics"])  # type: ignore[arg-type]

    def recreate() -> None:
        recreated.append(1)
        state["topics"] = {"p-gate.events"}

    watch = BrokerWatch(metadata, "p-gate.events", recreate, changes.append, clock=clock)

    async def run() -> None:
        assert await watch.check() and watch.up and changes == []
        state["reachable"] = False
        assert not await watch.check()
        clock.t += 12
        assert not await watch.check()
        assert not watch.up and changes == [False] and watch.down_seconds() == 12
        state["reachable"], state["topics"] = True, set()  # back, but empty
        assert await watch.check()
        assert watch.up and changes == [False, True] and recreated == [1]
        assert watch.down_seconds() == 0
        assert await watch.check() and recreated == [1]  # topics there now: nothing to do

    asyncio.run(run())
