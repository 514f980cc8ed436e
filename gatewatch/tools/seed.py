"""Simulated weeks of history for a first run: ``gatewatch run`` seeds an empty history
store before it starts, so the wall's sparklines, the patterns and the forecasts show
something at once (``--no-seed`` skips it; a store that has rows is left alone).

The traffic is the simulator's (day profile, no feed faults) at the gates' configured
rates, played offline in event time through the worker's own
:class:`~gatewatch.core.processor.Processor` by the history import
(:func:`gatewatch.history.offline.import_events`), so the rows are what a live worker
would have written. Two shortcuts keep it to seconds (figures in docs/operations.md):
the processor runs without reconciliation (simulated plates are read right) and without
its forecasts (a processor that is thrown away needs no wait estimates; refitting them
every hour over weeks of windows is most of an import's time), and its clock steps
:data:`STEP_MS` at a time (windows close up to that late; their backlog is of that time).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gatewatch.core.estimates import Estimates
from gatewatch.core.processor import Processor
from gatewatch.gates import GateSet
from gatewatch.history.offline import import_events
from gatewatch.history.store import HistoryStore
from gatewatch.settings import Settings
from gatewatch.streams.records import WindowRecord

__all__ = ["DEFAULT_WEEKS", "STEP_MS", "SeedResult", "seed_history"]

DEFAULT_WEEKS = 2.0
#: the import's clock step (the windows are 10 minutes)
STEP_MS = 900_000
_WEEK_MS = 7 * 86_400_000


@dataclass(frozen=True)
class SeedResult:
    skipped: bool  # the store already had windows: nothing written
    windows: int  # windows in the store after seeding (or found there)
    alerts: int = 0
    events: int = 0
    seconds: float = 0.0
    from_ms: int | None = None
    to_ms: int | None = None


class _NoForecasts(Estimates):
    """A processor's estimates that learn nothing and show no wait: for a processor used
    once, offline, only for its windows and alert records."""

    def add_windows(self, records: Iterable[WindowRecord]) -> int:
        return 0

    def expected_wait(self, gate_id: str, at_ms: int, backlog: int) -> float | None:
        return None


def seed_history(store: HistoryStore, gates: GateSet, settings: Settings, *,
                 weeks: float = DEFAULT_WEEKS, now_ms: int, rate: float = 1.0, seed: int = 7,
                 progress: Callable[[str], None] | None = None) -> SeedResult:
    """Fill an empty ``store`` (migrated) with ``weeks`` of simulated traffic ending at
    ``now_ms``; a store that has windows is left as it is (``skipped``)."""
    from gatewatch.tools.simulate import Faults, TrafficModel

    found = store.count("windows")
    if found:
        return SeedResult(skipped=True, windows=found)
    started = time.monotonic()
    start_ms = now_ms - int(weeks * _WEEK_MS)
    model = TrafficModel(gates, start_ms, rate=rate, seed=seed,
                         faults=Faults(duplicate=0.0, late=0.0, malformed=0.0),
                         day_profile=True)
    events = [(m.key, m.value, m.send_ms) for m in model.advance(now_ms) if m.valid]
    if progress is not None:
        progress(f"seeding: {len(events)} simulated events over {weeks:g} weeks, "
                 f"{time.monotonic() - started:.1f} s")
    offline = dataclasses.replace(settings, reconcile=False)
    processor = Processor(gates, offline)
    processor.estimates = _NoForecasts(gates)
    result = import_events(store, events, gates, offline, updated_ms=now_ms,
                           progress=progress, step_ms=STEP_MS, processor=processor)
    return SeedResult(skipped=False, windows=result.windows, alerts=result.alerts,
                      events=result.events, seconds=time.monotonic() - started,
                      from_ms=start_ms, to_ms=now_ms)
