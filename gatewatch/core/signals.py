"""One signals model per gate: everything people and rules read about a gate, at one instant.

:func:`gate_signals` derives a :class:`GateSignals` from a gate's book once; the JSON
API, the Prometheus collectors, the alert evaluation, the alert texts and the scenarios
all read it, so a number such as the net inflow or the estimated wait has one
definition.

Definitions
    - *backlog*: vehicles waiting now (exact, from per-vehicle state).
    - *last hour*: queue transitions in the hour of windows up to the gate's watermark
      (:class:`Counts`, by kind and direction).
    - *net inflow*: arrivals − crossings − withdrawals over that hour (vehicles/hour).
    - *oldest waits*: event-time age, at the watermark, of the longest-waiting vehicle
      (overall, per direction, of perishable cargo); ``None`` when nobody waits.
    - *estimated wait* for a vehicle joining now: the calibrated *expected wait* of the
      forecast (``expected_wait_seconds``, :mod:`gatewatch.core.estimates`) once the gate
      has a day of windows; before that backlog ÷ crossings per hour, ``None``
      ("unknown") when the gate cleared nothing in that hour.
    - *time until the yard is full* at the current net inflow; ``None`` when not filling.
    - *has data*: an event reached the worker within the gate's no-data silence;
      without data a gate is shown as "no data", never as zero waiting.
    - *set aside* (reconciliation, docs/accuracy.md): a waiting vehicle *paired* with an
      unmatched crossing whose plate is one OCR confusion away, or *unconfirmed*
      (overtaken by far more vehicles than the gate allows since it was last read), is not
      in the backlog (``waiting_*``); it is counted in ``paired_*`` / ``unconfirmed_*``.
    - *cameras*: per camera (direction × queue end or gate line) the reads and the
      unmatched share (:class:`CameraQuality`); *count checks*: the latest
      ``gate.counts`` observation per direction beside the ledger (:class:`CountCheck`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gatewatch.core.ledger import QUALITY_BUCKET_MS, GateBook
from gatewatch.core.reconcile import DUPLICATE_READ, PAIRED, UNCONFIRMED
from gatewatch.gates import GateConfig
from gatewatch.streams.records import DirectionTotals
from gatewatch.streams.vocabulary import DIR_NAME, PERISHABLE

__all__ = ["CAMERAS", "CameraQuality", "CountCheck", "Counts", "GateSignals", "Trend",
           "camera_quality", "estimate_wait_seconds", "gate_signals", "seconds_until_full"]

Trend = Literal["up", "down", "flat"]


def estimate_wait_seconds(backlog: int, crossings_last_hour: int) -> float | None:
    """Queue ahead ÷ crossings per hour, in seconds; None when nothing crossed."""
    if crossings_last_hour <= 0:
        return None
    return backlog / crossings_last_hour * 3600.0


def seconds_until_full(backlog: int, capacity: int, net_inflow_per_hour: int) -> float | None:
    """Time until the yard is full at the current net inflow; None if not filling."""
    if backlog >= capacity:
        return 0.0
    if net_inflow_per_hour <= 0:
        return None
    return (capacity - backlog) / net_inflow_per_hour * 3600.0


@dataclass(frozen=True, slots=True)
class Counts(DirectionTotals):
    """Queue transitions by kind and direction (a window bucket's layout, by name)."""

    arrivals_export: int = 0
    arrivals_import: int = 0
    crossings_export: int = 0
    crossings_import: int = 0
    withdrawals_export: int = 0
    withdrawals_import: int = 0

    @classmethod
    def of(cls, counts: Sequence[int]) -> Counts:
        """From the ``kind * 2 + direction`` layout of window buckets."""
        return cls(*counts[:6])

    def get(self, kind: int, direction: int) -> int:
        """Count of transition ``kind`` (0 arrivals, 1 crossings, 2 withdrawals)."""
        return int(getattr(self, _FIELDS[kind * 2 + direction]))

    @property
    def net_inflow(self) -> int:
        """Arrivals − crossings − withdrawals."""
        return self.arrivals - self.crossings - self.withdrawals


#: The cameras of a gate: direction × position (queue end reads ``queued``, gate line
#: reads ``crossed`` and ``withdrawn``): a bounded label set.
CAMERAS = ("export-queue", "export-gate", "import-queue", "import-gate")


@dataclass(frozen=True, slots=True)
class CameraQuality:
    """Data quality of one camera over the last hour and day (event time).

    Gate-line camera: ``reads`` are its crossings and withdrawals; ``unmatched`` those
    with no ``queued`` read of the same plate (the queue camera missed it, or one of the
    two misread it); ``paired`` those of them reconciliation paired with a waiting
    vehicle. Queue-end camera: ``reads`` are its arrivals; ``unmatched`` the vehicles
    among them now unconfirmed (never seen crossing)."""

    camera: str
    reads_last_hour: int = 0
    unmatched_last_hour: int = 0
    paired_last_hour: int = 0
    reads_last_day: int = 0
    unmatched_last_day: int = 0
    paired_last_day: int = 0

    @property
    def unmatched_share_last_hour(self) -> float | None:
        return self.unmatched_last_hour / self.reads_last_hour if self.reads_last_hour \
            else None

    @property
    def unmatched_share_last_day(self) -> float | None:
        return self.unmatched_last_day / self.reads_last_day if self.reads_last_day else None


@dataclass(frozen=True, slots=True)
class CountCheck:
    """The latest ``gate.counts`` observation of one direction beside the ledger's
    backlog of that direction now."""

    direction: str
    observed: int
    source: str
    observed_at_ms: int
    ledger: int

    @property
    def discrepancy(self) -> int:
        """Ledger − observed: positive when the ledger holds more vehicles."""
        return self.ledger - self.observed


_FIELDS = ("arrivals_export", "arrivals_import", "crossings_export", "crossings_import",
           "withdrawals_export", "withdrawals_import")


@dataclass(frozen=True, slots=True)
class GateSignals:
    """What is known about one gate at one instant (see the module docstring)."""

    gate_id: str
    has_data: bool
    silent_seconds: float | None
    waiting_export: int
    waiting_import: int
    capacity: int
    last_hour: Counts
    oldest_perishable_wait_seconds: float | None = None
    oldest_wait_seconds: float | None = None
    oldest_wait_export_seconds: float | None = None
    oldest_wait_import_seconds: float | None = None
    last_window: Counts | None = None
    #: this worker holds the gate's state (it has seen or restored an event of it)
    owned: bool = True
    last_event_ms: int | None = None
    watermark_ms: int | None = None
    #: transitions of the event set: of the vehicles held plus those expired since the
    #: worker started (the ``_total`` counters)
    totals: Counts = Counts()
    #: measured waits of crossings in the event set, by bucket of WAIT_BUCKETS_MS (the
    #: last: longer), and their sum in seconds
    wait_buckets: tuple[int, ...] = ()
    wait_sum_seconds: float = 0.0
    vehicles_tracked: int = 0
    #: transitions too late for their (closed) window
    late_transitions: int = 0
    #: waiting vehicles set aside by reconciliation (not in ``waiting_*``)
    unconfirmed_export: int = 0
    unconfirmed_import: int = 0
    paired_export: int = 0
    paired_import: int = 0
    cameras: tuple[CameraQuality, ...] = ()
    count_checks: tuple[CountCheck, ...] = ()
    #: calibrated wait (s) of a truck joining now, from the forecast (core/estimates.py);
    #: filled by the processor, None when unknown
    expected_wait_seconds: float | None = None

    @property
    def backlog(self) -> int:
        return self.waiting_export + self.waiting_import

    @property
    def unconfirmed(self) -> int:
        return self.unconfirmed_export + self.unconfirmed_import

    @property
    def paired(self) -> int:
        return self.paired_export + self.paired_import

    @property
    def arrivals_last_hour(self) -> int:
        return self.last_hour.arrivals

    @property
    def crossings_last_hour(self) -> int:
        return self.last_hour.crossings

    @property
    def withdrawals_last_hour(self) -> int:
        return self.last_hour.withdrawals

    @property
    def net_inflow_per_hour(self) -> int:
        return self.last_hour.net_inflow

    @property
    def trend(self) -> Trend:
        net = self.net_inflow_per_hour
        return "up" if net > 0 else "down" if net < 0 else "flat"

    @property
    def estimated_wait_seconds(self) -> float | None:
        """The calibrated expected wait when known, else backlog ÷ last-hour crossings."""
        if self.expected_wait_seconds is not None:
            return self.expected_wait_seconds
        return estimate_wait_seconds(self.backlog, self.crossings_last_hour)

    @property
    def seconds_until_full(self) -> float | None:
        return seconds_until_full(self.backlog, self.capacity, self.net_inflow_per_hour)

    @property
    def occupancy_ratio(self) -> float:
        return self.backlog / self.capacity if self.capacity else 0.0


def gate_signals(gate: GateConfig, book: GateBook, now_ms: int) -> GateSignals:
    """The signals of ``gate`` from its book at wall time ``now_ms``."""
    wm = book.windows.watermark_ms
    last_wall = book.last_event_wall_ms

    def age(first: int | None) -> float | None:
        return None if first is None or wm is None else max(0.0, (wm - first) / 1000)

    last_closed = book.windows.last_closed()
    unconfirmed, misread = [0, 0], [0, 0]
    if book.reconciling:
        for w in book.aside_waiting(UNCONFIRMED):
            unconfirmed[w.direction] += 1
        for w in book.aside_waiting(PAIRED, DUPLICATE_READ):
            misread[w.direction] += 1
    return GateSignals(
        gate_id=gate.gate_id,
        has_data=book.has_data(now_ms),
        silent_seconds=None if last_wall is None else (now_ms - last_wall) / 1000,
        waiting_export=book.confirmed_waiting(0),
        waiting_import=book.confirmed_waiting(1),
        capacity=gate.yard_capacity,
        last_hour=Counts.of(book.windows.rolling_hour()),
        oldest_perishable_wait_seconds=age(book.oldest_waiting_ms(cargo=PERISHABLE)),
        oldest_wait_seconds=age(book.oldest_waiting_ms()),
        oldest_wait_export_seconds=age(book.oldest_waiting_ms(direction=0)),
        oldest_wait_import_seconds=age(book.oldest_waiting_ms(direction=1)),
        last_window=Counts.of(last_closed.counts) if last_closed is not None else None,
        owned=book.last_event_ms is not None,
        last_event_ms=book.last_event_ms,
        watermark_ms=wm,
        totals=Counts.of(book.totals),
        wait_buckets=tuple(book.wait_buckets),
        wait_sum_seconds=book.wait_sum_ms / 1000,
        vehicles_tracked=len(book.vehicles),
        late_transitions=book.windows.late_transitions,
        unconfirmed_export=unconfirmed[0],
        unconfirmed_import=unconfirmed[1],
        paired_export=misread[0],
        paired_import=misread[1],
        cameras=camera_quality(book, wm),
        count_checks=tuple(
            CountCheck(DIR_NAME[d], obs.count, obs.source, obs.occurred_at_ms,
                       book.confirmed_waiting(d))
            for d, obs in sorted(book.counts_observed.items())),
    )


def camera_quality(book: GateBook, watermark_ms: int | None) -> tuple[CameraQuality, ...]:
    """Each camera's reads, unmatched and paired reads over the last hour and day of
    event time up to ``watermark_ms`` (see :class:`CameraQuality`); empty before any
    event."""
    if watermark_ms is None or not book.hourly:
        return ()
    # recomputed after 10 changes, or 5 minutes of event time, whichever comes first
    key = (book.quality_version // 10, watermark_ms // 300_000)
    if book.quality_cache is not None and book.quality_cache[0] == key:
        return book.quality_cache[1]  # type: ignore[return-value]
    out = _camera_quality(book, watermark_ms)
    book.quality_cache = (key, out)
    return out


def _camera_quality(book: GateBook, watermark_ms: int) -> tuple[CameraQuality, ...]:
    hour_from = watermark_ms - 3_600_000
    day_from = watermark_ms - 86_400_000
    # rows: arrivals by direction, ends by direction, unmatched ends by direction
    hour, day = [0] * 6, [0] * 6
    for start, row in book.hourly.items():
        if start + QUALITY_BUCKET_MS <= day_from:
            continue
        for i, n in enumerate(row):
            day[i] += n
            if start + QUALITY_BUCKET_MS > hour_from:
                hour[i] += n
    paired_h, paired_d = [0, 0], [0, 0]
    for p in book.outcome.pairs.values():
        if p.end_ms > day_from:
            paired_d[p.direction] += 1
            if p.end_ms > hour_from:
                paired_h[p.direction] += 1
    queue_h, queue_d = [0, 0], [0, 0]
    for w in book.aside_waiting(UNCONFIRMED, DUPLICATE_READ):
        if w.queued_ms > day_from:
            queue_d[w.direction] += 1
            if w.queued_ms > hour_from:
                queue_h[w.direction] += 1
    out: list[CameraQuality] = []
    for d in (0, 1):
        name = DIR_NAME[d]
        out.append(CameraQuality(f"{name}-queue", hour[d], queue_h[d], 0, day[d], queue_d[d],
                                 0))
        out.append(CameraQuality(f"{name}-gate", hour[2 + d], hour[4 + d], paired_h[d],
                                 day[2 + d], day[4 + d], paired_d[d]))
    return tuple(out)
