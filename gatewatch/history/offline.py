"""A gate log into the history store, offline: ``gatewatch replay FILE --to-history``.

The log's good rows (already validated by :func:`gatewatch.tools.replay.parse_log`) go
through the worker's own :class:`~gatewatch.core.processor.Processor` in event time, as
``gatewatch scenario`` does: the clock is the events' own time, stepped a minute at a time
while events come and for a while after each (so windows close as they would have live,
with the backlog of their time), then jumping over long silences. The closed windows and
alert records are upserted like ``gatewatch history`` does, so importing the same log
twice, or a log whose days also went through Kafka, never counts anything twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from gatewatch.alerts.evaluator import encode_alert
from gatewatch.core.processor import Effects, Processor, SourceRecord
from gatewatch.gates import GateSet
from gatewatch.history.store import HistoryStore
from gatewatch.settings import Settings
from gatewatch.streams.records import WindowRecord

__all__ = ["ImportResult", "import_events", "seed"]

STEP_MS = 60_000
#: event time between two expiry sweeps (finished trips past the retention, waits past
#: the max wait: without them a long log would keep every vehicle it ever saw)
SWEEP_EVERY_MS = 3_600_000
#: rows written per transaction
WRITE_BATCH = 2000


@dataclass
class ImportResult:
    events: int = 0
    windows: int = 0
    alerts: int = 0
    first_ms: int | None = None
    last_ms: int | None = None


def import_events(store: HistoryStore, events: Sequence[tuple[bytes, bytes, int]],
                  gates: GateSet, settings: Settings, *, updated_ms: int,
                  progress: Callable[[str], None] | None = None,
                  step_ms: int = STEP_MS) -> ImportResult:
    """Play ``events`` ((key, value, occurred_at_ms), any order) through a fresh
    processor in event time, its clock stepped by ``step_ms``, and store its windows and
    alert records."""
    out = ImportResult()
    if not events:
        return out
    good = sorted(events, key=lambda e: e[2])
    proc = Processor(gates, settings)
    runbook = settings.runbook()
    windows: list[WindowRecord] = []
    alerts: list[dict[str, object]] = []
    # after the last event of a stretch, keep stepping until its windows have closed
    settle_ms = (settings.window_seconds + settings.grace_seconds + settings.idle_seconds
                 ) * 1000 + 2 * step_ms

    def take(fx: Effects) -> None:
        windows.extend(fx.windows)
        for change in fx.alerts:
            gate = gates.get(change.alert.gate_id)
            if gate is not None:
                alerts.append(orjson.loads(encode_alert(change, gate, runbook)))
        if len(windows) + len(alerts) >= WRITE_BATCH:
            flush()

    def flush() -> None:
        out.windows += store.put_windows(windows, updated_ms)
        out.alerts += store.put_alerts(alerts)
        windows.clear()
        alerts.clear()

    i, n = 0, len(good)
    now = good[0][2] // step_ms * step_ms
    last_event = now
    next_report = 100_000
    next_sweep = now + SWEEP_EVERY_MS
    while i < n or now < last_event + settle_ms:
        if i < n and now >= last_event + settle_ms and good[i][2] > now + step_ms:
            now = good[i][2] // step_ms * step_ms  # a long silence: jump over it
        now += step_ms
        batch = []
        while i < n and good[i][2] < now:
            key, value, t_ms = good[i]
            batch.append(SourceRecord("history-import", 0, i, t_ms, key, value))
            last_event = t_ms
            i += 1
        if batch:
            fx = proc.apply_batch(batch, now, evaluate_alerts=False)
            out.events += fx.processed
            take(fx)
        take(proc.tick(now))
        if now >= next_sweep:  # expire old vehicle states, as the worker does
            next_sweep = now + SWEEP_EVERY_MS
            for fx in proc.sweep():
                take(fx)
        if progress is not None and i >= next_report:
            next_report = i + 100_000
            progress(f"history import: {i}/{n} events, {out.windows + len(windows)} windows")
    flush()
    out.first_ms, out.last_ms = good[0][2], good[-1][2]
    return out


def seed(store: HistoryStore, gates: GateSet, settings: Settings, *, weeks: float,
         now_ms: int, rate: float = 1.0, seed: int = 7,
         progress: Callable[[str], None] | None = None) -> ImportResult:
    """Fill ``store`` with ``weeks`` of simulated traffic ending at ``now_ms`` (the
    simulator's day profile, no feed faults), played through the processor in event time
    like a real log, its clock in 5-minute steps (windows close up to 5 minutes late:
    their backlog is of that time): history and patterns for a first run. Idempotent like
    any import (the same arguments write the same rows)."""
    from gatewatch.tools.simulate import Faults, TrafficModel

    start = now_ms - int(weeks * 7 * 86_400_000)
    model = TrafficModel(gates, start, rate=rate, seed=seed,
                         faults=Faults(duplicate=0.0, late=0.0, malformed=0.0),
                         day_profile=True)
    events = [(m.key, m.value, m.send_ms) for m in model.advance(now_ms) if m.valid]
    return import_events(store, events, gates, settings, updated_ms=now_ms,
                         progress=progress, step_ms=300_000)
