"""Window records over restarts and quiet spells, through the Processor with explicit times:
the last closed window is the last one closed (empty or not), and a rebuild republishes
the records it published before, marked as republished."""

from __future__ import annotations

from dataclasses import replace

import orjson
from prometheus_client import CollectorRegistry

from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.core.signals import Counts
from gatewatch.streams.codec import encode_event, encode_window
from gatewatch.streams.records import CrossingEvent, WindowRecord
from gatewatch.web.metrics import GateCollector, GatewatchMetrics
from tests.support import MIN, T0, ev, gates, processor

_offsets = iter(range(10**9))


def rec(e: CrossingEvent) -> SourceRecord:
    return SourceRecord("gate.events", 0, next(_offsets), e.occurred_at_ms,
                        e.gate_id.encode(), encode_event(e))


# --- item 15: the last closed window, empty or not ---------------------------------------------

def test_last_window_is_the_last_closed_window_even_when_it_was_empty():
    p = processor()
    p.apply_batch([rec(ev("A", "queued", T0 + MIN)), rec(ev("B", "queued", T0 + 2 * MIN))],
                  T0 + 2 * MIN)
    # an event at T0+11 min: [T0, T0+5) closes by event time, [T0+5, T0+10) had nothing
    p.apply_batch([rec(ev("C", "queued", T0 + 11 * MIN + 1000))], T0 + 11 * MIN + 1000)
    assert [w.start_ms for w in p.tick(T0 + 11 * MIN + 1000).windows] == [T0]
    assert p.signals("huu-nghi", T0 + 11 * MIN + 1000).last_window == Counts()
    registry = CollectorRegistry()
    GatewatchMetrics(registry, gates())
    registry.register(GateCollector(p, wall_ms=lambda: T0 + 11 * MIN + 1000))
    assert registry.get_sample_value(
        "gate_arrivals_last_window", {"gate": "huu-nghi", "direction": "export"}) == 0
    # the watermark passes the end of [T0+10, T0+15) + grace: C's window is the last one
    p.apply_batch([rec(ev("D", "queued", T0 + 16 * MIN + 1000))], T0 + 16 * MIN + 1000)
    p.tick(T0 + 16 * MIN + 1000)
    assert p.signals("huu-nghi", T0 + 16 * MIN + 1000).last_window == Counts(
        arrivals_export=1)


# --- item 16: republished windows ---------------------------------------------------------------

def run(p: Processor, events: list[CrossingEvent], end: int
        ) -> tuple[dict[bytes, bytes | None], dict[tuple[str, int], WindowRecord]]:
    """Apply ``events`` at their own time minute by minute, ticking: (table, windows)."""
    table: dict[bytes, bytes | None] = {}
    published: dict[tuple[str, int], WindowRecord] = {}
    pending = sorted(events, key=lambda e: e.occurred_at_ms)
    now = T0
    while now < end:
        now += MIN
        batch = [e for e in pending if now - MIN < e.occurred_at_ms <= now]
        fx = p.apply_batch([rec(e) for e in batch], now)
        table.update({w.key: w.value for w in fx.writes})
        for w in fx.windows + p.tick(now).windows:
            assert (w.gate_id, w.start_ms) not in published
            published[(w.gate_id, w.start_ms)] = w
    return table, published


def traffic(minutes: int) -> list[CrossingEvent]:
    out = []
    for m in range(minutes):
        out.append(ev(f"V{m}", "queued", T0 + m * MIN + 7_000))
        if m >= 4:
            out.append(ev(f"V{m - 4}", "crossed", T0 + m * MIN + 30_000))
    return out


def test_a_rebuild_republishes_the_records_published_before_marked_republished():
    p = processor()
    table, published = run(p, traffic(90), T0 + 90 * MIN)
    fx = processor().rebuild([(k, v, 0) for k, v in table.items()], T0 + 90 * MIN + 1000)
    assert len(fx.windows) >= 10  # the last hour's windows
    for w in fx.windows:
        assert w.republished
        original = published[(w.gate_id, w.start_ms)]
        assert not original.republished
        # same counts and waits; closed_by may differ (documented): after a restart the
        # gate's silence since its last event can close a window by the idle watermark
        assert replace(w, closed_by=original.closed_by) == replace(original, republished=True)
    doc = orjson.loads(encode_window(fx.windows[-1]))
    assert doc["republished"] is True
    assert orjson.loads(encode_window(published[(fx.windows[-1].gate_id,
                                                 fx.windows[-1].start_ms)]))[
        "republished"] is False


def test_a_republished_window_counts_what_was_too_late_for_the_original():
    """The documented case where a republished record differs: an arrival too late for its
    (closed) window is not in the original, but the rebuild derives the window from the
    stored events. The later record (republished) is the one to keep."""
    p = processor()
    late = ev("LATE", "queued", T0 + 20 * MIN + 7_000)
    table, published = run(p, traffic(40), T0 + 40 * MIN)
    fx = p.apply_batch([rec(late)], T0 + 40 * MIN + 1000)
    table.update({w.key: w.value for w in fx.writes})
    assert p.signals("huu-nghi", T0 + 40 * MIN + 1000).late_transitions == 1
    out = processor().rebuild([(k, v, 0) for k, v in table.items()], T0 + 40 * MIN + 2000)
    [again] = [w for w in out.windows if w.start_ms == T0 + 20 * MIN]
    original = published[("huu-nghi", T0 + 20 * MIN)]
    assert again.republished and again.arrivals == original.arrivals + 1
