"""The pure batch processor: apply_batch, tick, sweep, rebuild — no broker, explicit times."""

from __future__ import annotations

from gatewatch.core.congestion import AlertState
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.streams.changelog import decode_state, split_key
from gatewatch.streams.codec import encode_event
from gatewatch.streams.records import CrossingEvent
from tests.support import MIN, T0, ev, processor

_offsets = iter(range(10**9))


def rec(e: CrossingEvent, partition: int = 1) -> SourceRecord:
    return SourceRecord("gate.events", partition, next(_offsets), e.occurred_at_ms,
                        e.gate_id.encode(), encode_event(e))


def raw(value: bytes, key: bytes = b"huu-nghi") -> SourceRecord:
    return SourceRecord("gate.events", 0, next(_offsets), T0, key, value)


def fast() -> Processor:
    return processor(alert_raise_hold_seconds=0, alert_clear_hold_seconds=0)


def test_apply_batch_writes_each_changed_vehicle_once_to_its_partition():
    p = fast()
    a1, a2 = ev("A", "queued", T0), ev("A", "crossed", T0 + 30 * MIN)
    fx = p.apply_batch([rec(a1, 2), rec(ev("B", "queued", T0 + MIN), 2), rec(a2, 2)],
                       T0 + 31 * MIN)
    assert fx.processed == 3 and fx.unchanged == 0 and not fx.dead_letters
    assert sorted(split_key(w.key)[1] for w in fx.writes) == ["A", "B"]
    assert {w.partition for w in fx.writes} == {2}
    state_a = next(decode_state(w.value) for w in fx.writes if w.key.endswith(b"A") and w.value)
    assert [e[4] for e in state_a] == [a1.event_id, a2.event_id]
    assert fx.waits == [("huu-nghi", 30 * MIN)]
    assert p.signals("huu-nghi", T0 + 31 * MIN).backlog == 1


def test_duplicates_change_nothing_and_write_nothing():
    p = fast()
    a = ev("A", "queued", T0)
    p.apply_batch([rec(a)], T0)
    fx = p.apply_batch([rec(a), rec(a)], T0 + 1000)
    assert fx.processed == 2 and fx.unchanged == 2 and fx.writes == []
    assert p.signals("huu-nghi", T0 + 1000).backlog == 1


def test_bad_records_become_dead_letters_with_reasons_and_their_source():
    p = fast()
    bad = [raw(b"{not json"), raw(b'{"event_id": "x"}'), raw(b"\xff\xfe")]
    fx = p.apply_batch([*bad, rec(ev("A", "queued", T0))], T0)
    assert [d.rejection.reason for d in fx.dead_letters] == ["not_json", "missing_field",
                                                             "not_utf8"]
    assert [d.source for d in fx.dead_letters] == bad
    assert fx.dead_letters[0].rejection.raw == b"{not json"
    assert fx.processed == 1 and len(fx.writes) == 1


def test_a_bug_dead_letters_only_its_record_and_keeps_the_others_writes():
    p = fast()
    real_apply = p.ledger.apply

    def apply(e, wall):  # type: ignore[no-untyped-def]
        if e.vehicle_id == "BOOM":
            raise RuntimeError("bug")
        return real_apply(e, wall)

    p.ledger.apply = apply  # type: ignore[method-assign]
    boom = rec(ev("BOOM", "queued", T0 + MIN))
    fx = p.apply_batch([rec(ev("A", "queued", T0)), boom, rec(ev("B", "queued", T0 + 2 * MIN))],
                       T0 + 3 * MIN)
    assert [d.rejection.reason for d in fx.dead_letters] == ["internal_error"]
    assert fx.dead_letters[0].source == boom
    # A was applied before the failure: its state write is not lost on the retry
    assert sorted(split_key(w.key)[1] for w in fx.writes) == ["A", "B"]
    assert [r for r, _ in fx.errors] == [None, boom]
    assert p.signals("huu-nghi", T0 + 3 * MIN).backlog == 2


def test_a_bug_after_the_events_are_applied_keeps_their_writes_and_is_reported():
    p = fast()

    def evaluate(now_ms, gates):  # type: ignore[no-untyped-def]
        raise KeyError("a bug in alert evaluation")

    p.evaluate = evaluate  # type: ignore[method-assign]
    fx = p.apply_batch([rec(ev("A", "queued", T0)), rec(ev("B", "queued", T0 + MIN))],
                       T0 + 2 * MIN)
    assert [what for what, _exc in fx.failures] == ["reconciliation or alert evaluation"]
    assert sorted(split_key(w.key)[1] for w in fx.writes) == ["A", "B"]
    assert not fx.errors and not fx.dead_letters


def test_alerts_of_touched_gates_only_when_asked():
    p = fast()
    batch = [rec(ev(f"V{i}", "queued", T0 + i * 1000)) for i in range(12)]
    fx = p.apply_batch(batch, T0 + 20_000, evaluate_alerts=False)
    assert fx.alerts == []
    fx = p.apply_batch([rec(ev("W", "queued", T0 + 30_000))], T0 + 31_000)
    assert [(c.change, c.alert.kind, c.alert.severity) for c in fx.alerts] == [
        ("fired", "congestion", "warning")]
    assert fx.alerts[0].signals.backlog == 13


def test_tick_closes_windows_of_a_silent_gate_and_raises_no_data():
    p = fast()
    p.apply_batch([rec(ev("A", "queued", T0)), rec(ev("A", "crossed", T0 + MIN))], T0 + MIN)
    fx = p.tick(T0 + MIN + 1000)
    assert fx.windows == []  # the window [T0, T0+5min) is still open
    fx = p.tick(T0 + 20 * MIN)  # silent past idle (30 s): the watermark follows the clock
    assert [(w.start_ms, w.arrivals, w.crossings, w.closed_by) for w in fx.windows] == [
        (T0, 1, 1, "idle")]
    assert [c.alert.kind for c in fx.alerts] == ["no_data"]  # silent past 900 s
    assert not p.signals("huu-nghi", T0 + 20 * MIN).has_data


def test_sweep_expires_in_chunks_with_tombstones_to_the_gate_partition():
    p = processor(retention_seconds=3600, max_wait_seconds=5400)
    batch = [rec(ev(f"Q{i}", "queued", T0 + i), 3) for i in range(5)]
    batch += [rec(ev("late", "queued", T0 + 200 * MIN), 3)]
    p.apply_batch(batch, T0 + 200 * MIN)  # the wall clock: events may not run ahead of it
    steps = list(p.sweep(chunk=2))
    assert len(steps) == 3  # 6 vehicles, 2 per step
    gone = sorted(split_key(w.key)[1] for s in steps for w in s.writes)
    assert gone == [f"Q{i}" for i in range(5)]
    assert all(w.value is None and w.partition == 3 for s in steps for w in s.writes)
    assert sum(s.expired_waiting for s in steps) == 5
    assert p.signals("huu-nghi", T0).backlog == 1


def test_sweep_stops_when_told():
    p = processor(retention_seconds=3600, max_wait_seconds=5400)
    p.apply_batch([rec(ev(f"Q{i}", "queued", T0 + i)) for i in range(4)]
                  + [rec(ev("late", "queued", T0 + 200 * MIN))], T0)
    calls = iter([True, False])
    steps = list(p.sweep(proceed=lambda: next(calls), chunk=2))
    assert len(steps) == 1 and p.ledger.books["huu-nghi"].vehicles.keys() >= {"Q2", "Q3"}


def test_rebuild_from_the_writes_gives_the_same_state_and_republishes_the_last_hour():
    a = fast()
    events = [ev("A", "queued", T0), ev("B", "queued", T0 + MIN),
              ev("A", "crossed", T0 + 10 * MIN), ev("C", "queued", T0 + 70 * MIN,
                                                    gate="tan-thanh", direction="import")]
    fx = a.apply_batch([rec(e) for e in events], T0 + 71 * MIN)
    table = {w.key: w.value for w in fx.writes}
    b = fast()
    b.alerts["huu-nghi"].active["huu-nghi:no_data"] = AlertState(
        "huu-nghi:no_data", "huu-nghi", "no_data", "firing", "warning", 1, 1, T0, T0)
    out = b.rebuild([(k, v, 1) for k, v in table.items()], T0 + 72 * MIN)
    for gate in ("huu-nghi", "tan-thanh"):
        sa, sb = a.signals(gate, T0 + 72 * MIN), b.signals(gate, T0 + 72 * MIN)
        assert (sb.waiting_export, sb.waiting_import) == (sa.waiting_export, sa.waiting_import)
    assert b.owned_gates() == {"huu-nghi", "tan-thanh"}
    # huu-nghi's watermark is T0+10min: its windows up to then are closed by the clock
    # and republished (they ended within the hour before the restored watermark)
    assert {(w.gate_id, w.start_ms) for w in out.windows} >= {("huu-nghi", T0)}
    assert b.alerts["huu-nghi"].active  # an owned gate keeps what was restored before


def test_rebuild_forgets_alerts_of_gates_it_no_longer_holds():
    p = fast()
    p.alerts["tan-thanh"].active["tan-thanh:congestion"] = AlertState(
        "tan-thanh:congestion", "tan-thanh", "congestion", "firing", "warning", 12, 10, T0, T0)
    p.rebuild([], T0)
    assert p.alerts["tan-thanh"].active == {} and p.owned_gates() == set()


def test_restore_alerts_takes_firing_alerts_of_owned_gates_only():
    p = fast()
    p.rebuild([], T0)
    p.apply_batch([rec(ev("A", "queued", T0))], T0, evaluate_alerts=False)
    firing = AlertState("huu-nghi:congestion", "huu-nghi", "congestion", "firing", "critical",
                        25, 20, T0, T0)
    other = AlertState("tan-thanh:congestion", "tan-thanh", "congestion", "firing", "warning",
                       12, 10, T0, T0)
    assert p.restore_alerts([firing, other]) == 1
    assert p.alerts["huu-nghi"].level.level == "critical"
    assert p.alerts["tan-thanh"].active == {}


def test_a_weeks_long_wait_with_a_read_every_minute_keeps_the_state_small():
    """Item 1 of the collapse review: 20,000 re-reads grew one vehicle's changelog value to
    938 KiB and cost 1.4 ms per event; a 17-day wait passed the producer's 1 MB limit."""
    p = fast()
    reads = [rec(ev("29C-12345", "queued", T0 + i * MIN)) for i in range(20_000)]
    sizes = []
    for i in range(0, len(reads), 1000):
        fx = p.apply_batch(reads[i:i + 1000], T0 + (i + 1000) * MIN)
        sizes += [len(w.value or b"") for w in fx.writes]
    assert max(sizes) < 200  # bytes: the first and the last read of the chain
    (events,) = p.ledger.books["huu-nghi"].vehicles.values()
    assert [(e[0] - T0) // MIN for e in events] == [0, 19_999]
    s = p.signals("huu-nghi", T0 + 20_000 * MIN)
    assert s.backlog == 1 and s.oldest_wait_seconds == 19_999 * 60
    # the whole run again, redelivered in reverse order: nothing changes, nothing written
    fx = p.apply_batch(reads[::-1], T0 + 20_001 * MIN)
    assert fx.writes == [] and fx.unchanged == 20_000
    fx = p.apply_batch([rec(ev("29C-12345", "crossed", T0 + 20_000 * MIN))], T0 + 20_001 * MIN)
    assert fx.waits == [("huu-nghi", 20_000 * MIN)]


def test_a_future_dated_watermark_cannot_make_day_old_events_look_new():
    """Item 7: an event of a vehicle without state that is older than the retention
    behind the gate's watermark is refused as too_old (it may belong to a trip that
    finished and was forgotten); a vehicle that has state still takes old events."""
    p = processor(retention_seconds=86_400)
    p.apply_batch([rec(ev("A", "queued", T0)), rec(ev("B", "queued", T0 + 25 * 60 * MIN))],
                  T0 + 25 * 60 * MIN)
    old = rec(ev("GONE", "queued", T0 + 30 * MIN))
    late_of_a = rec(ev("A", "crossed", T0 + 60 * MIN))
    fx = p.apply_batch([old, late_of_a], T0 + 25 * 60 * MIN)
    assert [(d.rejection.reason, d.source) for d in fx.dead_letters] == [("too_old", old)]
    assert fx.processed == 1 and fx.waits == [("huu-nghi", 60 * MIN)]
    assert "GONE" not in p.ledger.books["huu-nghi"].vehicles


def test_duplicates_are_not_a_sign_of_life():
    """Item 8: a producer resending the same message kept a dead gate 'fresh' for hours."""
    p = processor(no_data_seconds=900)
    a = ev("A", "queued", T0)
    p.apply_batch([rec(a)], T0)
    for k in range(1, 13):  # the same message every 15 minutes for 3 hours
        p.apply_batch([rec(a)], T0 + k * 15 * MIN)
    s = p.signals("huu-nghi", T0 + 3 * 60 * MIN)
    assert not s.has_data and s.silent_seconds == 3 * 3600


def test_colliding_events_resolve_the_same_in_any_order():
    """Item 14: two reads at the same millisecond with other directions, or a reused
    event_id with other content, kept whichever arrived first."""
    base = [ev("A", "queued", T0, event_id="q1"),
            ev("A", "queued", T0, direction="import", event_id="q2"),
            ev("A", "crossed", T0 + 30 * MIN, event_id="x1"),
            ev("A", "withdrawn", T0 + 40 * MIN, event_id="x1")]
    results = set()
    for order in (base, base[::-1], [base[1], base[3], base[0], base[2]]):
        p = fast()
        fx = p.apply_batch([rec(e) for e in order], T0 + 60 * MIN)
        state = tuple(decode_state(fx.writes[0].value)) if fx.writes[0].value else ()
        s = p.signals("huu-nghi", T0 + 60 * MIN)
        results.add((state, s.totals, s.backlog))
    assert len(results) == 1


def test_after_a_restart_a_dead_feed_stays_dead_and_every_gate_is_swept():
    """Items 3 and 20: the rebuild set every owned gate's last-seen time to 'now' (a dead
    feed looked alive for its no-data silence), and the sweep skipped gates without an
    event since the restart."""
    p = processor(no_data_seconds=900, retention_seconds=3600, max_wait_seconds=7200)
    fx = p.apply_batch([rec(ev("A", "queued", T0), 2), rec(ev("B", "queued", T0 + MIN), 2)],
                       T0 + MIN)
    table = [(w.key, w.value, w.partition) for w in fx.writes]
    restarted = processor(no_data_seconds=900, retention_seconds=3600, max_wait_seconds=7200)
    restarted.rebuild(table, T0 + 60 * MIN)  # the feed died at T0 + 1 min
    s = restarted.signals("huu-nghi", T0 + 60 * MIN)
    assert not s.has_data and s.silent_seconds == 59 * 60
    assert [c.alert.kind for c in restarted.tick(T0 + 60 * MIN).alerts] == ["no_data"]
    # three hours later (event time via the idle watermark) both trucks are over max wait
    restarted.tick(T0 + 4 * 60 * MIN)
    gone = [w.key for step in restarted.sweep() for w in step.writes]
    assert sorted(split_key(k)[1] for k in gone) == ["A", "B"]
    assert {w.partition for step in [] for w in step.writes} == set()


def test_the_rebuild_runs_in_steps():
    p = fast()
    fx = p.apply_batch([rec(ev(f"V{i}", "queued", T0 + i)) for i in range(25)], T0 + MIN)
    table = [(w.key, w.value, w.partition) for w in fx.writes]
    q = fast()
    assert list(q.rebuild_steps(table, chunk=10)) == [10, 20, 25]
    q.finish_rebuild(T0 + MIN)
    assert q.signals("huu-nghi", T0 + MIN).backlog == 25


def test_after_a_restart_an_old_log_replayed_today_is_not_silent_for_years():
    """Last-seen comes from the wall time each vehicle was last changed (stored with its
    state), so a 2021 log replayed into a worker that then restarts is neither 'no data'
    nor pushed five years ahead by the idle watermark (which would expire every vehicle
    and refuse a second replay as too_old)."""
    wall = T0 + 5 * 365 * 24 * 60 * MIN  # years after the log's own times
    p = processor(no_data_seconds=900)
    log = [rec(ev("A", "queued", T0)), rec(ev("B", "queued", T0 + MIN)),
           rec(ev("A", "crossed", T0 + 30 * MIN))]
    fx = p.apply_batch(log, wall)
    restarted = processor(no_data_seconds=900)
    restarted.rebuild([(w.key, w.value, w.partition) for w in fx.writes], wall + MIN)
    s = restarted.signals("huu-nghi", wall + MIN)
    assert s.has_data and s.silent_seconds == 60
    restarted.tick(wall + MIN)
    assert list(restarted.sweep()) and restarted.signals("huu-nghi", wall + MIN).backlog == 1
    again = restarted.apply_batch(log, wall + 2 * MIN)
    assert not again.dead_letters and again.processed == 3 and again.writes == []
