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

__all__ = ["ImportResult", "import_events"]

STEP_MS = 60_000
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
                  progress: Callable[[str], None] | None = None) -> ImportResult:
    """Play ``events`` ((key, value, occurred_at_ms), any order) through a fresh
    processor in event time and store its windows and alert records."""
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
                 ) * 1000 + 2 * STEP_MS

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
    now = good[0][2] // STEP_MS * STEP_MS
    last_event = now
    next_report = 100_000
    while i < n or now < last_event + settle_ms:
        if i < n and now >= last_event + settle_ms and good[i][2] > now + STEP_MS:
            now = good[i][2] // STEP_MS * STEP_MS  # a long silence: jump over it
        now += STEP_MS
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
        if progress is not None and i >= next_report:
            next_report = i + 100_000
            progress(f"history import: {i}/{n} events, {out.windows + len(windows)} windows")
    flush()
    out.first_ms, out.last_ms = good[0][2], good[-1][2]
    return out
