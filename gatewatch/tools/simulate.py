"""Simulated Lạng Sơn gate traffic: contract-v1 events with realistic feed faults.

Per gate, vehicles arrive as a Poisson process (``arrivals_per_hour`` × ``--rate``) and
the gate clears its queue first-come-first-served at ``clearance_per_hour`` × ``--rate``
(also Poisson); a few waiting vehicles give up (``withdrawn``). Cargo and direction
follow the gate's shares. The feed is dirty on purpose, at configurable rates:
duplicate camera reads (same event again, or a second read a few seconds later with
a new id), late delivery (sent minutes after it happened, so out of order), and
malformed records (bad JSON, wrong types, unknown gates).

Plates are read by cameras (:mod:`gatewatch.tools.cameras`): by default perfect readers;
with a :class:`~gatewatch.tools.cameras.CameraSet` they miss and misread plates, the queue
cameras may re-read waiting trucks, and a yard sensor may send head counts
(``gate.counts``). The truth stays beside the feed: :meth:`TrafficModel.waiting`,
:meth:`TrafficModel.waiting_by_direction`, :meth:`TrafficModel.waiting_plates` and the
readers' :class:`~gatewatch.tools.cameras.ReadLog`.

:class:`TrafficModel` is pure and deterministic under a seed, with explicit times (the
traffic, the feed faults and the readers each draw from their own random stream, so the
same seed gives the same trucks whatever the faults); :func:`run` drives it in
(accelerated) real time against Kafka.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import signal
import string
from collections import Counter
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from gatewatch.gates import GateConfig, GateSet
from gatewatch.streams.codec import encode_count, encode_event, format_ms
from gatewatch.streams.records import CountObservation, CrossingEvent
from gatewatch.tools.cameras import (
    CAMERA_OF_TYPE,
    CameraSet,
    CountSensor,
    ReaderModel,
    vietnamese_plate,
)

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


@dataclass(frozen=True, slots=True)
class Faults:
    """Shares (0-1) of feed faults."""

    duplicate: float = 0.03
    late: float = 0.02
    malformed: float = 0.005
    late_max_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to produce: key, value bytes, and the sim time it is sent; ``topic``
    is the logical topic (``gate.events`` or ``gate.counts``)."""

    send_ms: int
    key: bytes
    value: bytes
    valid: bool
    topic: str = "gate.events"


class _Gate:
    __slots__ = ("cfg", "queue", "next_arrival", "next_clear", "next_scan", "next_count")

    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg
        #: the true queue: (normalised plate, direction, cargo), first come first served
        self.queue: deque[tuple[str, str, str | None]] = deque()
        self.next_arrival = 0.0
        self.next_clear = 0.0
        self.next_scan = float("inf")  # the queue cameras' next re-read of waiting trucks
        self.next_count = float("inf")  # the yard sensor's next head count


class TrafficModel:
    """Deterministic event generator over simulated time (ms since epoch)."""

    def __init__(self, gates: GateSet, start_ms: int, *, rate: float = 1.0, seed: int = 7,
                 faults: Faults | None = None, initial_backlog: float = 0.0,
                 overrides: dict[str, GateOverride] | None = None,
                 day_profile: bool = False, whatif: WhatIf | None = None,
                 cameras: CameraSet | None = None, counts: CountSensor | None = None) -> None:
        self.rng = random.Random(seed)  # the traffic: arrivals, clearances, plates
        self.whatif = whatif  # what-if changes of rates over time (tools/whatif.py)
        self.feed_rng = random.Random(f"feed:{seed}")  # feed faults, ids, lanes
        self.reader = ReaderModel(cameras, seed)
        self.counts = counts
        self._count_rng = random.Random(f"counts:{seed}")
        self._in_yard: set[str] = set()
        self.overrides = overrides or {}
        self.day_profile = day_profile
        self.rate = rate
        self.faults = faults or Faults()
        self.now_ms = start_ms
        self._pending: list[tuple[int, int, Outgoing]] = []
        self._n = 0
        self._gates = [_Gate(g) for g in gates.gates]
        reread_ms = self.reader.cameras.reread_minutes * 60_000
        for g in self._gates:
            g.next_arrival = start_ms + self._gap_ms(self._arrival_rate(g))
            g.next_clear = start_ms + self._gap_ms(self._clearance_rate(g))
            if reread_ms > 0:
                g.next_scan = start_ms + reread_ms
            if counts is not None:
                g.next_count = start_ms + counts.every_minutes * 60_000
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
        """A true plate, unique among the trucks in the yards now."""
        while True:
            plate = vietnamese_plate(self.rng)
            if plate not in self._in_yard:
                self._in_yard.add(plate)
                return plate

    def _event_id(self) -> str:
        self._n += 1
        return (f"sim-{self._n:09d}-"
                f"{''.join(self.feed_rng.choices(string.ascii_lowercase, k=4))}")

    def _read(self, gate: _Gate, vehicle: str, etype: str, direction: str,
              t_ms: int) -> str | None:
        """What the camera writes for ``vehicle`` (a spelling of its read), or None."""
        reader = self.reader
        seen = reader.read(gate.cfg.gate_id, direction, CAMERA_OF_TYPE[etype], vehicle, t_ms)
        return None if seen is None else reader.spell(seen, vehicle)

    def _emit(self, gate: _Gate, vehicle: str, etype: str, direction: str, cargo: str | None,
              t_ms: int) -> None:
        if any(a <= t_ms < b for a, b in self._override(gate).silent):
            return  # sensor / feed outage: the vehicle moved, nobody reported it
        rng = self.feed_rng
        read = self._read(gate, vehicle, etype, direction, t_ms)
        if read is None:
            return  # the camera missed the plate
        ev = CrossingEvent(self._event_id(), gate.cfg.gate_id, read, etype, direction, t_ms,
                           cargo, f"L{rng.randint(1, 4)}")
        key = gate.cfg.gate_id.encode()
        send = t_ms
        f = self.faults
        r = rng.random()
        if r < f.late:
            send = t_ms + int(rng.uniform(30, f.late_max_seconds) * 1000)
        self._push(Outgoing(send, key, encode_event(ev), True))
        r = rng.random()
        if r < f.duplicate / 2:
            self._push(Outgoing(send + rng.randint(0, 3000), key, encode_event(ev), True))
        elif r < f.duplicate:  # a second read a few seconds later: read again
            again_ms = t_ms + rng.randint(1000, 5000)
            read = self._read(gate, vehicle, etype, direction, again_ms)
            if read is not None:
                again = CrossingEvent(self._event_id(), ev.gate_id, read, etype, direction,
                                      again_ms, cargo, ev.lane)
                self._push(Outgoing(again.occurred_at_ms, key, encode_event(again), True))
        if rng.random() < f.malformed:
            self._push(Outgoing(send, key, self._malformed(ev), False))

    def _rereads(self, g: _Gate, t_ms: int) -> None:
        """The queue cameras read every waiting truck again (each read may be missed or
        misread); no feed faults on these."""
        key = g.cfg.gate_id.encode()
        for i, (vehicle, direction, cargo) in enumerate(g.queue):
            at = t_ms + i % 1000  # one sweep of the yard, a read per millisecond or so
            if any(a <= at < b for a, b in self._override(g).silent):
                continue
            read = self._read(g, vehicle, "queued", direction, at)
            if read is not None:
                ev = CrossingEvent(self._event_id(), g.cfg.gate_id, read, "queued", direction,
                                   at, cargo)
                self._push(Outgoing(at, key, encode_event(ev), True))

    def _count(self, g: _Gate, t_ms: int) -> None:
        """The yard sensor's head count per direction: the truth plus noise."""
        sensor = self.counts
        assert sensor is not None
        by_dir = Counter(direction for _, direction, _ in g.queue)
        for direction in ("export", "import"):
            noise = round(self._count_rng.gauss(0.0, sensor.noise_vehicles))
            self._n += 1
            obs = CountObservation(f"cnt-{self._n:09d}", g.cfg.gate_id, direction,
                                   max(0, by_dir[direction] + noise), t_ms, sensor.source)
            self._push(Outgoing(t_ms, g.cfg.gate_id.encode(), encode_count(obs), True,
                                "gate.counts"))

    def _malformed(self, ev: CrossingEvent) -> bytes:
        kind = self.feed_rng.randrange(5)
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
            while g.next_arrival <= to_ms or g.next_clear <= to_ms \
                    or g.next_scan <= to_ms or g.next_count <= to_ms:
                if g.next_scan <= min(g.next_arrival, g.next_clear, g.next_count):
                    self._rereads(g, int(g.next_scan))
                    g.next_scan += self.reader.cameras.reread_minutes * 60_000
                elif g.next_count <= min(g.next_arrival, g.next_clear):
                    self._count(g, int(g.next_count))
                    assert self.counts is not None
                    g.next_count += self.counts.every_minutes * 60_000
                elif g.next_arrival <= g.next_clear:
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
                        self._in_yard.discard(vehicle)
                    g.next_clear += self._gap_ms(self._clearance_rate(g))
        self.now_ms = to_ms
        while self._pending and self._pending[0][0] <= to_ms:
            yield heapq.heappop(self._pending)[2]

    def waiting(self) -> dict[str, int]:
        """Vehicles in each gate's simulated queue (ground truth)."""
        return {g.cfg.gate_id: len(g.queue) for g in self._gates}

    def waiting_by_direction(self) -> dict[str, dict[str, int]]:
        """Vehicles truly waiting per gate and direction (ground truth)."""
        out = {}
        for g in self._gates:
            by_dir = Counter(direction for _, direction, _ in g.queue)
            out[g.cfg.gate_id] = {"export": by_dir["export"], "import": by_dir["import"]}
        return out

    def waiting_plates(self, gate_id: str) -> list[str]:
        """The normalised true plates waiting at ``gate_id``, first come first."""
        return [plate for g in self._gates if g.cfg.gate_id == gate_id
                for plate, _, _ in g.queue]

    def in_flight(self) -> list[Outgoing]:
        """The messages not yet due (late ones, re-sends), in send order, without
        simulating further: what ``advance`` would still yield for events already made."""
        return [out for _, _, out in sorted(self._pending)]


async def run(kafka: KafkaConfig, topic: str, gates: GateSet, *, rate: float, speed: float,
              seed: int, faults: Faults, duration_seconds: float | None,
              initial_backlog: float, start_ms: int | None = None,
              progress: Callable[[str], None] = print,
              overrides: dict[str, GateOverride] | None = None, day_profile: bool = False,
              cameras: CameraSet | None = None, counts: CountSensor | None = None,
              counts_topic: str | None = None) -> int:
    """Produce simulated traffic to ``kafka`` until stopped (or ``duration_seconds``);
    returns count. Count observations (``counts``) go to ``counts_topic``."""
    from aiokafka import AIOKafkaProducer

    wall0 = time.time()
    sim0 = start_ms if start_ms is not None else int(wall0 * 1000)
    model = TrafficModel(gates, sim0, rate=rate, seed=seed, faults=faults,
                         initial_backlog=initial_backlog, overrides=overrides,
                         day_profile=day_profile, cameras=cameras, counts=counts)
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
                to = topic if out.topic == "gate.events" else counts_topic
                if to is None:
                    continue
                await producer.send(to, out.value, key=out.key)
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
