"""Event-time tumbling windows per gate, with grace and a wall-clock watermark.

Each gate has a watermark: the highest event time seen. When the gate has been
silent (no events) for ``idle_ms`` of wall-clock time, its watermark follows the wall
clock from there, so a jammed or dead gate still gets its last windows closed. The
watermark never moves backwards.

A window ``[start, start + size)`` closes once ``watermark >= start + size + grace``.
Transitions for a window that has closed are *late*: they still change the queue
(waiting counts are exact regardless) but not the published window, and are counted.
Only windows that saw at least one transition are published; the *last closed* window
(:meth:`GateWindows.last_closed`) is the latest one closed, empty or not.

All times are explicit milliseconds; nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from gatewatch.core.trips import CROSSING, Transition
from gatewatch.streams.records import WindowRecord

__all__ = ["Bucket", "GateWindows"]

HOUR_MS = 3_600_000


@dataclass(slots=True)
class Bucket:
    """Counts of one window: index ``kind * 2 + direction``; waits of crossings."""

    start_ms: int
    counts: list[int] = field(default_factory=lambda: [0] * 6)
    waits_ms: list[int] = field(default_factory=list)

    def add(self, tr: Transition, sign: int) -> None:
        kind, _t, direction, wait = tr
        self.counts[kind * 2 + direction] += sign
        if kind == CROSSING and wait >= 0:
            if sign > 0:
                self.waits_ms.append(wait)
            elif wait in self.waits_ms:
                self.waits_ms.remove(wait)

    def empty(self) -> bool:
        return not any(self.counts) and not self.waits_ms


class GateWindows:
    """Open and recently closed windows of one gate, and its watermark."""

    __slots__ = ("gate_id", "size_ms", "grace_ms", "idle_ms", "open", "closed",
                 "watermark_ms", "max_event_ms", "last_event_wall_ms", "late_transitions",
                 "history", "history_ms", "last_closed_start_ms")

    def __init__(self, gate_id: str, size_ms: int, grace_ms: int, idle_ms: int,
                 history_ms: int = 86_400_000) -> None:
        self.gate_id = gate_id
        self.size_ms = size_ms
        self.grace_ms = grace_ms
        self.idle_ms = idle_ms
        self.open: dict[int, Bucket] = {}
        self.closed: deque[Bucket] = deque()
        self.watermark_ms: int | None = None
        self.max_event_ms: int | None = None
        self.last_event_wall_ms: int | None = None
        self.late_transitions = 0
        #: closed window records of the last ``history_ms`` (for the API), oldest first
        self.history: deque[WindowRecord] = deque()
        self.history_ms = history_ms
        #: start of the latest window closed by :meth:`advance` (empty or not)
        self.last_closed_start_ms: int | None = None

    def observe(self, event_ms: int, wall_ms: int) -> None:
        """Record that an event with time ``event_ms`` arrived at wall time ``wall_ms``."""
        if self.max_event_ms is None or event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
        self.last_event_wall_ms = wall_ms
        if self.watermark_ms is None or event_ms > self.watermark_ms:
            self.watermark_ms = event_ms

    def window_start(self, t_ms: int) -> int:
        return t_ms - t_ms % self.size_ms

    def is_closed(self, start_ms: int) -> bool:
        wm = self.watermark_ms
        return wm is not None and wm >= start_ms + self.size_ms + self.grace_ms

    def apply(self, tr: Transition, sign: int, *, force: bool = False) -> bool:
        """Add (+1) or retract (-1) a transition; False if its window already closed.

        ``force`` adds it even so (restoring state, where nothing is late).
        """
        start = self.window_start(tr[1])
        if not force and self.is_closed(start):
            self.late_transitions += 1
            return False
        bucket = self.open.get(start)
        if bucket is None:
            bucket = self.open[start] = Bucket(start)
        bucket.add(tr, sign)
        return True

    def advance(self, wall_ms: int, waiting: tuple[int, int] | None = None
                ) -> list[WindowRecord]:
        """Move the watermark (wall clock if idle) and close due windows, oldest first;
        ``waiting``: the gate's backlog by direction now, recorded in each closed window."""
        if self.max_event_ms is None or self.last_event_wall_ms is None:
            return []
        closed_by = "event_time"
        silent = wall_ms - self.last_event_wall_ms
        wm = self.watermark_ms if self.watermark_ms is not None else self.max_event_ms
        if silent >= self.idle_ms:
            idle_wm = self.max_event_ms + silent
            if idle_wm > wm:
                wm = idle_wm
                closed_by = "idle"
        self.watermark_ms = wm
        records: list[WindowRecord] = []
        for start in sorted(self.open):
            if not self.is_closed(start):
                break
            bucket = self.open.pop(start)
            if bucket.empty():
                continue
            self.closed.append(bucket)
            rec = self._record(bucket, closed_by)
            if waiting is not None:
                rec = replace(rec, waiting_export=waiting[0], waiting_import=waiting[1])
            records.append(rec)
            self.history.append(rec)
        # the latest window whose end + grace the watermark has reached
        last = self.window_start(wm - self.size_ms - self.grace_ms)
        if self.last_closed_start_ms is None or last > self.last_closed_start_ms:
            self.last_closed_start_ms = last
        horizon = wm - HOUR_MS - self.size_ms
        while self.closed and self.closed[0].start_ms < horizon:
            self.closed.popleft()
        while self.history and self.history[0].start_ms < wm - self.history_ms:
            self.history.popleft()
        return records

    def _record(self, b: Bucket, closed_by: str) -> WindowRecord:
        c = b.counts
        waits = b.waits_ms
        return WindowRecord(
            gate_id=self.gate_id, start_ms=b.start_ms, end_ms=b.start_ms + self.size_ms,
            arrivals_export=c[0], arrivals_import=c[1], crossings_export=c[2],
            crossings_import=c[3], withdrawals_export=c[4], withdrawals_import=c[5],
            waits_count=len(waits), waits_sum_seconds=sum(waits) / 1000,
            waits_max_seconds=max(waits) / 1000 if waits else 0.0, closed_by=closed_by,
        )

    def last_closed(self) -> Bucket | None:
        """Counts of the latest closed window: an empty :class:`Bucket` when nothing
        happened in it (an empty window is neither kept nor published); None before the
        first :meth:`advance`."""
        start = self.last_closed_start_ms
        if start is None:
            return None
        if self.closed and self.closed[-1].start_ms == start:
            return self.closed[-1]
        return Bucket(start)

    def rolling_hour(self) -> list[int]:
        """Counts (same layout as Bucket.counts) of the hour of windows up to the watermark."""
        total = [0] * 6
        if self.watermark_ms is None:
            return total
        lo = self.window_start(self.watermark_ms) - HOUR_MS + self.size_ms
        for bucket in self.open.values():
            if lo <= bucket.start_ms <= self.watermark_ms:
                for i, v in enumerate(bucket.counts):
                    total[i] += v
        for bucket in reversed(self.closed):
            if bucket.start_ms < lo:
                break
            for i, v in enumerate(bucket.counts):
                total[i] += v
        return total
