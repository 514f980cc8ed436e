"""The ledger: exact per-gate queue state derived from per-vehicle events.

``Ledger`` is the pure core the Faust agent drives. It holds, for every configured
gate, each vehicle's distinct events (see :mod:`gatewatch.core.trips`), the
vehicles waiting now, and the gate's event-time windows. Applying an event
re-derives that one vehicle's trips and applies the *difference* in transitions to
the counters, so a late event that re-pairs a trip moves counts instead of adding
to them. Everything takes explicit times; nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from heapq import heapify, heappop, heappush

import orjson

from gatewatch.core.trips import (
    ARRIVAL,
    CARGO_CODE,
    DIR_CODE,
    TYPE_CODE,
    Transition,
    VehicleEvent,
    add_event,
    derive_trips,
    transitions,
)
from gatewatch.core.windows import GateWindows
from gatewatch.gates import GateSet
from gatewatch.streams.records import CrossingEvent, WindowRecord

__all__ = ["APPLIED", "ARRIVAL", "DUPLICATE", "UNCHANGED", "GateBook", "Ledger", "decode_state",
           "encode_state",
           "state_key", "split_key"]

#: outcomes of applying an event
APPLIED = "applied"      # stored, and it changed the queue or the windows
UNCHANGED = "unchanged"  # stored (it may matter later), but changed no count: a re-read
DUPLICATE = "duplicate"  # already known (same id, or same type at the same ms): dropped
_SEP = b"\x00"


def state_key(gate_id: str, vehicle_id: str) -> bytes:
    """Changelog key of one vehicle's state at one gate."""
    return gate_id.encode() + _SEP + vehicle_id.encode()


def split_key(key: bytes) -> tuple[str, str]:
    gate, _, vehicle = key.partition(_SEP)
    return gate.decode(), vehicle.decode()


def encode_state(events: list[VehicleEvent]) -> bytes:
    # orjson's result keeps its ~4 KiB output buffer allocated (seen with orjson 3.13);
    # these values live in the table for hours, so keep a compact copy instead.
    return bytes(memoryview(orjson.dumps(events)))


def decode_state(raw: bytes) -> list[VehicleEvent]:
    return [(int(e[0]), int(e[1]), int(e[2]), int(e[3]), str(e[4])) for e in orjson.loads(raw)]


def _diff(old: list[Transition], new: list[Transition]
          ) -> tuple[list[Transition], list[Transition]]:
    """(removed, added) between two small transition multisets."""
    if not old:
        return [], new
    added = list(new)
    removed: list[Transition] = []
    for tr in old:
        if tr in added:
            added.remove(tr)
        else:
            removed.append(tr)
    return removed, added


@dataclass(frozen=True, slots=True)
class Waiting:
    """A vehicle waiting now."""

    queued_ms: int
    direction: int
    cargo: int


class GateBook:
    """All state of one gate."""

    __slots__ = ("gate_id", "vehicles", "waiting", "waiting_count", "windows", "totals",
                 "last_event_ms", "last_event_wall_ms", "waits_observed", "_heaps",
                 "no_data_ms")

    def __init__(self, gate_id: str, windows: GateWindows, no_data_ms: int = 900_000) -> None:
        self.gate_id = gate_id
        #: wall-clock silence after which the gate is "no data" (never "zero waiting")
        self.no_data_ms = no_data_ms
        self.vehicles: dict[str, list[VehicleEvent]] = {}
        self.waiting: dict[str, Waiting] = {}
        self.waiting_count = [0, 0]
        self.windows = windows
        #: transitions first seen, by ``kind * 2 + direction`` (monotonic, for _total counters)
        self.totals = [0] * 6
        self.last_event_ms: int | None = None
        self.last_event_wall_ms: int | None = None
        #: measured waits (ms) not yet taken by the metrics histogram
        self.waits_observed: list[int] = []
        #: min-heaps of (queued_ms, vehicle) per direction and for perishable cargo, with
        #: lazy deletion, so the oldest wait costs O(log n) per scrape, not a full scan
        self._heaps: dict[tuple[str, int], list[tuple[int, str]]] = {
            ("d", 0): [], ("d", 1): [], ("c", CARGO_CODE["perishable"]): []}

    def has_data(self, now_ms: int) -> bool:
        """True if an event reached the worker within ``no_data_ms`` of ``now_ms``."""
        last = self.last_event_wall_ms
        return last is not None and now_ms - last <= self.no_data_ms

    def _set_waiting(self, vehicle_id: str, events: list[VehicleEvent]) -> None:
        trips = derive_trips(events)
        last = trips[-1] if trips else None
        was = self.waiting.pop(vehicle_id, None)
        if was is not None:
            self.waiting_count[was.direction] -= 1
        if last is not None and last.waiting and last.queued_ms is not None:
            self.waiting[vehicle_id] = Waiting(last.queued_ms, last.direction, last.cargo)
            self.waiting_count[last.direction] += 1
            if was is None or was.queued_ms != last.queued_ms:
                item = (last.queued_ms, vehicle_id)
                heappush(self._heaps[("d", last.direction)], item)
                cargo_heap = self._heaps.get(("c", last.cargo))
                if cargo_heap is not None:
                    heappush(cargo_heap, item)

    def apply(self, ev: CrossingEvent, wall_ms: int) -> str:
        """Apply one valid event; returns APPLIED or DUPLICATE."""
        vid = ev.vehicle_id
        events = self.vehicles.get(vid)
        item: VehicleEvent = (ev.occurred_at_ms, TYPE_CODE[ev.type], DIR_CODE[ev.direction],
                              CARGO_CODE[ev.cargo], ev.event_id)
        self.windows.observe(ev.occurred_at_ms, wall_ms)
        self.last_event_wall_ms = wall_ms
        if self.last_event_ms is None or ev.occurred_at_ms > self.last_event_ms:
            self.last_event_ms = ev.occurred_at_ms
        if events is None:
            events = self.vehicles[vid] = []
            old: list[Transition] = []
        else:
            old = transitions(derive_trips(events))
        if not add_event(events, item):
            return DUPLICATE
        trips = derive_trips(events)
        removed, added = _diff(old, transitions(trips))
        if not removed and not added:
            return UNCHANGED
        for tr in removed:
            self.windows.apply(tr, -1)
        # a transition re-added with another wait (its queued event arrived late) is an
        # update, not a new arrival/crossing, for the monotonic totals
        updated = {tr[:3] for tr in removed}
        for tr in added:
            self.windows.apply(tr, +1)
            if tr[:3] not in updated:
                self.totals[tr[0] * 2 + tr[2]] += 1
            if tr[3] >= 0:
                self.waits_observed.append(tr[3])
        self._set_waiting(vid, events)
        return APPLIED

    def load(self, vehicle_id: str, events: list[VehicleEvent]) -> None:
        """Restore one vehicle's events (recovery); windows are filled without lateness."""
        self.vehicles[vehicle_id] = events
        for tr in transitions(derive_trips(events)):
            self.windows.apply(tr, +1, force=True)
        if events:
            last = max(e[0] for e in events)
            if self.last_event_ms is None or last > self.last_event_ms:
                self.last_event_ms = last
        self._set_waiting(vehicle_id, events)

    def expire(self, retention_ms: int, max_wait_ms: int, copy: bool = False,
               only: Iterable[str] | None = None) -> tuple[list[str], int]:
        """Drop finished vehicles idle past retention and waiting ones past max wait.

        Returns (vehicle ids removed, how many of them were still waiting). ``only``
        limits the check to those vehicle ids (the worker sweeps in chunks and yields to
        the event loop between them). The state is walked in place and only the ids to
        drop are collected: copying every vehicle into a list of (id, events) tuples
        (``copy=True``, the old way; bench/ keeps its figures) made hundreds of
        thousands of tracked objects per sweep, and the full garbage-collector passes
        they set off stalled the event loop for 0.7-0.9 s with 300k vehicles.
        """
        wm = self.windows.watermark_ms
        if wm is None:
            return [], 0
        vehicles, waiting = self.vehicles, self.waiting
        wait_cutoff, done_cutoff = wm - max_wait_ms, wm - retention_ms
        if only is None:
            items: Iterable[tuple[str, list[VehicleEvent]]] = \
                list(vehicles.items()) if copy else vehicles.items()
        else:
            items = ((vid, ev) for vid in only if (ev := vehicles.get(vid)) is not None)
        removed = [vid for vid, events in items
                   if ((w := waiting.get(vid)) is not None and w.queued_ms < wait_cutoff)
                   or (w is None and (not events or events[-1][0] < done_cutoff))]
        expired_waiting = 0
        for vid in removed:
            w = waiting.pop(vid, None)
            if w is not None:
                expired_waiting += 1
                self.waiting_count[w.direction] -= 1
            del vehicles[vid]
        return removed, expired_waiting

    def oldest_waiting_ms(self, direction: int | None = None, cargo: int | None = None
                          ) -> int | None:
        """Queued time of the oldest vehicle still waiting, by direction or cargo."""
        if direction is None and cargo is None:
            firsts = [t for d in (0, 1) if (t := self.oldest_waiting_ms(direction=d)) is not None]
            return min(firsts) if firsts else None
        heap = self._heaps[("d", direction)] if direction is not None else \
            self._heaps.get(("c", cargo if cargo is not None else -1))
        if heap is None:
            return None
        waiting = self.waiting
        if len(heap) > 64 and len(heap) > 2 * len(waiting) + 64:
            heap[:] = [(t, v) for t, v in heap if (w := waiting.get(v)) is not None
                       and w.queued_ms == t]
            heapify(heap)
        while heap:
            t, vid = heap[0]
            w = waiting.get(vid)
            if w is not None and w.queued_ms == t and (
                    direction is None or w.direction == direction) and (
                    cargo is None or w.cargo == cargo):
                return t
            heappop(heap)
        return None


class Ledger:
    """Gate books for every configured gate."""

    def __init__(self, gates: GateSet, window_seconds: int, grace_seconds: int,
                 idle_seconds: int, no_data_seconds: int = 900) -> None:
        self.gates = gates
        self.books: dict[str, GateBook] = {
            g.gate_id: GateBook(g.gate_id, GateWindows(
                g.gate_id, window_seconds * 1000, grace_seconds * 1000, idle_seconds * 1000),
                (g.no_data_seconds or no_data_seconds) * 1000)
            for g in gates.gates
        }
        self._settings = (window_seconds, grace_seconds, idle_seconds, no_data_seconds)
        self.duplicates = 0

    def apply(self, ev: CrossingEvent, wall_ms: int) -> str:
        outcome = self.books[ev.gate_id].apply(ev, wall_ms)
        if outcome is not APPLIED:
            self.duplicates += 1
        return outcome

    def vehicle_state(self, gate_id: str, vehicle_id: str) -> list[VehicleEvent] | None:
        return self.books[gate_id].vehicles.get(vehicle_id)

    def advance(self, wall_ms: int) -> list[WindowRecord]:
        out: list[WindowRecord] = []
        for book in self.books.values():
            out.extend(book.windows.advance(wall_ms))
        return out

    def reset(self) -> None:
        """Forget everything (before a rebuild from the changelog)."""
        fresh = Ledger(self.gates, *self._settings)
        self.books = fresh.books

    def rebuild(self, items: Iterable[tuple[bytes, bytes]], wall_ms: int
                ) -> list[WindowRecord]:
        """Reset and restore from (changelog key, value) pairs; returns windows to republish.

        Windows that had already closed more than an hour before the restored
        watermark are closed silently (they were published before the restart); the
        last hour's are returned so a window that closed during a crash is not lost
        (consumers treat ``gate_id`` + ``window_start`` as the record's identity).
        """
        self.reset()
        for key, value in items:
            gate_id, vehicle_id = split_key(key)
            book = self.books.get(gate_id)
            if book is None or value is None:
                continue
            book.load(vehicle_id, decode_state(value))
        out: list[WindowRecord] = []
        for book in self.books.values():
            if book.last_event_ms is None:
                continue
            book.windows.observe(book.last_event_ms, wall_ms)
            horizon = book.last_event_ms - 3_600_000
            for rec in book.windows.advance(wall_ms):
                if rec.end_ms >= horizon:
                    out.append(rec)
        return out

    def __iter__(self) -> Iterator[GateBook]:
        return iter(self.books.values())

    def waiting_total(self, gate_id: str) -> int:
        return sum(self.books[gate_id].waiting_count)

