"""Simulated Lạng Sơn gate traffic: contract-v1 events with realistic feed faults.

Per gate, vehicles arrive as a Poisson process (``arrivals_per_hour`` × ``--rate``) and
the gate clears its queue first-come-first-served at ``clearance_per_hour`` × ``--rate``
(also Poisson); a few waiting vehicles give up (``withdrawn``). Cargo and direction
follow the gate's shares. The feed is dirty on purpose, at configurable rates:
duplicate camera reads (same event again, or a second read a few seconds later with
a new id), late delivery (sent minutes after it happened, so out of order), and
malformed records (bad JSON, wrong types, unknown gates).

:class:`TrafficModel` is pure and deterministic under a seed, with explicit times;
:func:`run` drives it in (accelerated) real time against Kafka.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import signal
import string
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from gatewatch.gates import GateConfig, GateSet
from gatewatch.streams.codec import encode_event, format_ms
from gatewatch.streams.records import CrossingEvent

if TYPE_CHECKING:
    from gatewatch.kafka import KafkaConfig
    from gatewatch.tools.whatif import WhatIf

__all__ = ["Faults", "Outgoing", "TrafficModel", "run"]

#: Relative arrival rate by local hour (UTC+7) for road gates: quiet nights, a morning
#: peak as trucks arrive from the provinces overnight, an afternoon peak. Mean ≈ 1.
DAY_PROFILE = (0.35, 0.3, 0.3, 0.3, 0.4, 0.6, 0.9, 1.3, 1.6, 1.7, 1.6, 1.4,
               1.2, 1.2, 1.4, 1.5, 1.4, 1.2, 1.0, 0.9, 0.8, 0.7, 0.55, 0.45)
_PROFILE_MAX = max(DAY_PROFILE)
_VN_OFFSET_MS = 7 * 3_600_000


@dataclass(frozen=True, slots=True)
class GateOverride:
    """Scenario changes to one gate's traffic (absolute times in ms)."""

    arrivals_multiplier: float = 1.0
    clearance_per_hour: float | None = None
    perishable_share: float | None = None
    silent: tuple[tuple[int, int], ...] = ()  # the gate's feed sends nothing in these


_PROVINCES = ("12C", "12A", "12B", "12D", "29C", "29H", "30E", "51C", "43C", "14C", "98C",
              "34C", "36C", "37C", "20C", "99C")


@dataclass(frozen=True, slots=True)
class Faults:
    """Shares (0-1) of feed faults."""

    duplicate: float = 0.03
    late: float = 0.02
    malformed: float = 0.005
    late_max_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to produce: key, value bytes, and the sim time it is sent."""

    send_ms: int
    key: bytes
    value: bytes
    valid: bool


class _Gate:
    __slots__ = ("cfg", "queue", "next_arrival", "next_clear", "seq")

    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg
        self.queue: deque[tuple[str, str, str | None]] = deque()
        self.next_arrival = 0.0
        self.next_clear = 0.0
        self.seq = 0


class TrafficModel:
    """Deterministic event generator over simulated time (ms since epoch)."""

    def __init__(self, gates: GateSet, start_ms: int, *, rate: float = 1.0, seed: int = 7,
                 faults: Faults | None = None, initial_backlog: float = 0.0,
                 overrides: dict[str, GateOverride] | None = None,
                 day_profile: bool = False, whatif: WhatIf | None = None) -> None:
        self.rng = random.Random(seed)
        self.whatif = whatif  # what-if changes of rates over time (tools/whatif.py)
        self.overrides = overrides or {}
        self.day_profile = day_profile
        self.rate = rate
        self.faults = faults or Faults()
        self.now_ms = start_ms
        self._pending: list[tuple[int, int, Outgoing]] = []
        self._n = 0
        self._gates = [_Gate(g) for g in gates.gates]
        for g in self._gates:
            g.next_arrival = start_ms + self._gap_ms(self._arrival_rate(g))
            g.next_clear = start_ms + self._gap_ms(self._clearance_rate(g))
            backlog = int(initial_backlog * g.cfg.warning_threshold)
            for i in range(backlog):
                self._arrive(g, start_ms - (backlog - i) * 60_000)

    def _override(self, g: _Gate) -> GateOverride:
        return self.overrides.get(g.cfg.gate_id) or GateOverride()

    def _arrival_rate(self, g: _Gate) -> float:
        """Peak arrivals per hour (thinned by the day profile when it is on)."""
        base = g.cfg.simulation.arrivals_per_hour * self._override(g).arrivals_multiplier
        return base * (_PROFILE_MAX if self.day_profile else 1.0) * self._peak(g, "arrivals")

    def _clearance_rate(self, g: _Gate) -> float:
        o = self._override(g)
        return (o.clearance_per_hour if o.clearance_per_hour is not None else
                g.cfg.simulation.clearance_per_hour) * self._peak(g, "clearance")

    def _peak(self, g: _Gate, kind: str) -> float:
        return 1.0 if self.whatif is None else self.whatif.peak(g.cfg.gate_id, kind)

    def _kept(self, g: _Gate, kind: str, t_ms: float) -> bool:
        """What-if thinning: drawn at the peak rate, kept at the rate of the time."""
        if self.whatif is None:
            return True
        w = self.whatif
        return self.rng.random() * w.peak(g.cfg.gate_id, kind) < w.factor(g.cfg.gate_id,
                                                                          kind, t_ms)

    def _accept_arrival(self, t_ms: float) -> bool:
        if not self.day_profile:
            return True
        hour = int(((t_ms + _VN_OFFSET_MS) // 3_600_000) % 24)
        return self.rng.random() < DAY_PROFILE[hour] / _PROFILE_MAX

    def _gap_ms(self, per_hour: float) -> float:
        lam = per_hour * self.rate / 3_600_000
        return self.rng.expovariate(lam) if lam > 0 else float("inf")

    def _plate(self) -> str:
        return f"{self.rng.choice(_PROVINCES)}-{self.rng.randrange(10000, 99999)}"

    def _event_id(self) -> str:
        self._n += 1
        return f"sim-{self._n:09d}-{''.join(self.rng.choices(string.ascii_lowercase, k=4))}"

    def _emit(self, gate: _Gate, vehicle: str, etype: str, direction: str, cargo: str | None,
              t_ms: int) -> None:
        ev = CrossingEvent(self._event_id(), gate.cfg.gate_id, vehicle, etype, direction, t_ms,
                           cargo, f"L{self.rng.randint(1, 4)}")
        key = gate.cfg.gate_id.encode()
        if any(a <= t_ms < b for a, b in self._override(gate).silent):
            return  # sensor / feed outage: the vehicle moved, nobody reported it
        send = t_ms
        f = self.faults
        r = self.rng.random()
        if r < f.late:
            send = t_ms + int(self.rng.uniform(30, f.late_max_seconds) * 1000)
        self._push(Outgoing(send, key, encode_event(ev), True))
        r = self.rng.random()
        if r < f.duplicate / 2:
            self._push(Outgoing(send + self.rng.randint(0, 3000), key, encode_event(ev), True))
        elif r < f.duplicate:
            again = CrossingEvent(self._event_id(), ev.gate_id, vehicle, etype, direction,
                                  t_ms + self.rng.randint(1000, 5000), cargo, ev.lane)
            self._push(Outgoing(again.occurred_at_ms, key, encode_event(again), True))
        if self.rng.random() < f.malformed:
            self._push(Outgoing(send, key, self._malformed(ev), False))

    def _malformed(self, ev: CrossingEvent) -> bytes:
        kind = self.rng.randrange(5)
        if kind == 0:
            return b'{"event_id": "broken", "gate_id": '
        if kind == 1:
            return orjson.dumps({"event_id": ev.event_id + "-x", "gate_id": ev.gate_id,
                                 "vehicle_id": 12345, "type": ev.type,
                                 "direction": ev.direction,
                                 "occurred_at": format_ms(ev.occurred_at_ms)})
        if kind == 2:
            return orjson.dumps({"event_id": ev.event_id + "-u", "gate_id": "unknown-gate",
                                 "vehicle_id": ev.vehicle_id, "type": ev.type,
                                 "direction": ev.direction,
                                 "occurred_at": format_ms(ev.occurred_at_ms)})
        if kind == 3:
            return b"\xff\xfe not utf-8"
        return orjson.dumps({"event_id": ev.event_id + "-t", "gate_id": ev.gate_id,
                             "vehicle_id": ev.vehicle_id, "type": ev.type,
                             "direction": ev.direction, "occurred_at": "yesterday"})

    def _push(self, out: Outgoing) -> None:
        self._n += 1
        heapq.heappush(self._pending, (out.send_ms, self._n, out))

    def _arrive(self, g: _Gate, t_ms: int) -> None:
        sim = g.cfg.simulation
        direction = "export" if self.rng.random() < sim.export_share else "import"
        r = self.rng.random()
        share = self._override(g).perishable_share
        if share is None:
            month = datetime.fromtimestamp((t_ms + _VN_OFFSET_MS) / 1000, tz=UTC).month
            share = dict(sim.perishable_share_by_month).get(month, sim.perishable_share)
        cargo = "perishable" if r < share else (
            "empty" if r > 0.95 else "general")
        vehicle = self._plate()
        g.queue.append((vehicle, direction, cargo))
        self._emit(g, vehicle, "queued", direction, cargo, t_ms)

    def advance(self, to_ms: int) -> Iterator[Outgoing]:
        """Simulate up to ``to_ms`` and yield the messages due by then, in send order."""
        for g in self._gates:
            while g.next_arrival <= to_ms or g.next_clear <= to_ms:
                if g.next_arrival <= g.next_clear:
                    if self._accept_arrival(g.next_arrival) and \
                            self._kept(g, "arrivals", g.next_arrival):
                        self._arrive(g, int(g.next_arrival))
                    g.next_arrival += self._gap_ms(self._arrival_rate(g))
                else:
                    t = int(g.next_clear)
                    lo, hi = g.cfg.simulation.open_hours
                    hour = ((t + _VN_OFFSET_MS) // 3_600_000) % 24
                    if not lo <= hour < hi:  # closed: the next clearance is at opening time
                        day = (t + _VN_OFFSET_MS) // 86_400_000 * 86_400_000 - _VN_OFFSET_MS
                        opening = day + lo * 3_600_000
                        g.next_clear = opening + (86_400_000 if opening <= t else 0)
                        continue
                    if g.queue and self._kept(g, "clearance", t):
                        if len(g.queue) > 3 and self.rng.random() < 0.02:
                            idx = self.rng.randrange(len(g.queue))
                            vehicle, direction, cargo = g.queue[idx]
                            del g.queue[idx]
                            self._emit(g, vehicle, "withdrawn", direction, cargo, t)
                        else:
                            vehicle, direction, cargo = g.queue.popleft()
                            self._emit(g, vehicle, "crossed", direction, cargo, t)
                    g.next_clear += self._gap_ms(self._clearance_rate(g))
        self.now_ms = to_ms
        while self._pending and self._pending[0][0] <= to_ms:
            yield heapq.heappop(self._pending)[2]

    def waiting(self) -> dict[str, int]:
        """Vehicles in each gate's simulated queue (ground truth)."""
        return {g.cfg.gate_id: len(g.queue) for g in self._gates}

    def in_flight(self) -> list[Outgoing]:
        """The messages not yet due (late ones, re-sends), in send order, without
        simulating further: what ``advance`` would still yield for events already made."""
        return [out for _, _, out in sorted(self._pending)]


async def run(kafka: KafkaConfig, topic: str, gates: GateSet, *, rate: float, speed: float,
              seed: int, faults: Faults, duration_seconds: float | None,
              initial_backlog: float, start_ms: int | None = None,
              progress: Callable[[str], None] = print,
              overrides: dict[str, GateOverride] | None = None, day_profile: bool = False,
              ) -> int:
    """Produce simulated traffic to ``kafka`` until stopped (or ``duration_seconds``);
    returns count."""
    from aiokafka import AIOKafkaProducer

    wall0 = time.time()
    sim0 = start_ms if start_ms is not None else int(wall0 * 1000)
    model = TrafficModel(gates, sim0, rate=rate, seed=seed, faults=faults,
                         initial_backlog=initial_backlog, overrides=overrides,
                         day_profile=day_profile)
    producer = AIOKafkaProducer(linger_ms=20, **kafka.aiokafka())
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sent = 0
    last_report = wall0
    try:
        while not stop.is_set():
            elapsed = time.time() - wall0
            if duration_seconds is not None and elapsed >= duration_seconds:
                break
            sim_now = sim0 + int(elapsed * speed * 1000)
            for out in model.advance(sim_now):
                await producer.send(topic, out.value, key=out.key)
                sent += 1
            if time.time() - last_report >= 10:
                last_report = time.time()
                backlog = ", ".join(f"{k} {v}" for k, v in model.waiting().items())
                progress(f"simulate: {sent} events sent; sim time {format_ms(sim_now)}; "
                         f"waiting: {backlog}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.2)
            except TimeoutError:
                pass
        await producer.flush()
    finally:
        await producer.stop()
    progress(f"simulate: stopped after {sent} events")
    return sent
