"""Reconciliation (gatewatch.core.reconcile) through the Processor: misread and missed
plates set aside from the backlog, put back when the evidence goes, in any order."""

import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.core.processor import SourceRecord
from gatewatch.core.reconcile import overtake_limit
from gatewatch.streams.plates import confusion_edit, normalise_plate
from tests.support import MIN, T0, ev, event_json, ledger, processor

GATE = "huu-nghi"
_offsets = itertools.count()


def rec(e, topic="gate.events"):
    return SourceRecord(topic, 0, next(_offsets), e.occurred_at_ms, e.gate_id.encode(),
                        orjson.dumps(event_json(e)))


def count_rec(gate, direction, count, t_ms, obs_id="c1", source="yard_sensor"):
    from gatewatch.streams.codec import format_ms
    doc = {"observation_id": obs_id, "gate_id": gate, "direction": direction, "count": count,
           "occurred_at": format_ms(t_ms), "source": source}
    return SourceRecord("gate.counts", 0, next(_offsets), t_ms, gate.encode(),
                        orjson.dumps(doc))


def feed(proc, events, now=None):
    fx = proc.apply_batch([rec(e) for e in events],
                          now if now is not None else max(e.occurred_at_ms for e in events))
    return fx


def settle(proc, now):
    return proc.reconcile_now(now)


def sig(proc, now, gate=GATE):
    return proc.signals(gate, now)


def test_plates_are_normalised_and_confusions_named():
    assert normalise_plate("12c-045.67") == normalise_plate(" 12C 04567 ") == "12C04567"
    assert confusion_edit("12C04567", "12CO4567") == "confusion 0/O"
    assert confusion_edit("12C04567", "12C0456") == "dropped 7"
    assert confusion_edit("12C04567", "12C34567") is None  # 0/3 is not a confusion
    assert confusion_edit("12C04567", "12C04567") is None


def test_a_misread_crossing_is_paired_then_undone_by_the_true_one():
    p = processor()
    feed(p, [ev("12C04567", "queued", T0)])
    made = feed(p, [ev("12CO4567", "crossed", T0 + 30 * MIN)]).reconciliations
    made += settle(p, T0 + 30 * MIN).reconciliations
    s = sig(p, T0 + 30 * MIN)
    assert (s.backlog, s.paired) == (0, 1)
    assert [(g, kind, pr.waiting_id, pr.unmatched_id, pr.reason)
            for g, kind, pr in made] == [
        (GATE, "paired", "12C04567", "12CO4567", "confusion 0/O")]
    # the true crossing arrives late: the pairing is undone, the truck is still not waiting
    made = feed(p, [ev("12C04567", "crossed", T0 + 40 * MIN)]).reconciliations
    made += settle(p, T0 + 40 * MIN).reconciliations
    s = sig(p, T0 + 40 * MIN)
    assert (s.backlog, s.paired) == (0, 0)
    assert [kind for _g, kind, _p in made] == ["unpaired"]


def test_two_candidates_are_ambiguous_and_nothing_is_paired():
    p = processor()
    feed(p, [ev("12C04567", "queued", T0), ev("12CO4567", "queued", T0 + MIN)])
    feed(p, [ev("12CD4567", "crossed", T0 + 30 * MIN)])
    settle(p, T0 + 30 * MIN)
    assert sig(p, T0 + 30 * MIN).backlog == 2


def test_a_misread_queued_read_pairs_its_phantom_with_the_unmatched_crossing():
    p = processor()
    feed(p, [ev("51C67B90", "queued", T0, direction="import")])  # 8 read as B
    feed(p, [ev("51C67890", "crossed", T0 + 40 * MIN, direction="import")])
    settle(p, T0 + 40 * MIN)
    s = sig(p, T0 + 40 * MIN)
    assert (s.waiting_import, s.paired_import) == (0, 1)
    gate_cam = {c.camera: c for c in s.cameras}["import-gate"]
    assert (gate_cam.reads_last_hour, gate_cam.unmatched_last_hour,
            gate_cam.paired_last_hour) == (1, 1, 1)


def test_a_misread_re_read_is_a_duplicate_of_the_truck_read_around_it():
    p = processor()
    feed(p, [ev("29H12345", "queued", T0), ev("29H12345", "queued", T0 + 20 * MIN),
             ev("29H1234S", "queued", T0 + 10 * MIN)])  # 5 read as S once
    settle(p, T0 + 20 * MIN)
    assert (sig(p, T0 + 20 * MIN).backlog, sig(p, T0 + 20 * MIN).paired) == (1, 1)
    # after the truck crossed, its misread re-read is still recognised by its trip
    feed(p, [ev("29H12345", "crossed", T0 + 60 * MIN)])
    settle(p, T0 + 60 * MIN)
    assert sig(p, T0 + 60 * MIN).backlog == 0


def overtaken_truck():
    """99Z11111 queued at T0, its crossing missed: eleven trucks that joined after it
    crossed by minute 40 (the floor is 5 at this quiet lane). Settled at minute 41."""
    p = processor(unconfirmed_min_overtakes=10)
    feed(p, [ev("99Z11111", "queued", T0)])
    later = []
    for i in range(11):
        later += [ev(f"30E{20000 + 37 * i}", "queued", T0 + (i + 1) * MIN),
                  ev(f"30E{20000 + 37 * i}", "crossed", T0 + (i + 30) * MIN)]
    feed(p, later)
    now = T0 + 41 * MIN
    settle(p, now)
    return p, now


def test_a_truck_whose_crossing_was_missed_becomes_unconfirmed_and_comes_back_when_read():
    p, now = overtaken_truck()
    s = sig(p, now)
    assert (s.backlog, s.unconfirmed_export) == (0, 1)
    assert s.oldest_wait_seconds is None  # set aside: not the gate's oldest wait
    feed(p, [ev("99Z11111", "queued", T0 + 42 * MIN)])  # read again: waiting again
    settle(p, T0 + 42 * MIN)
    s = sig(p, T0 + 42 * MIN)
    assert (s.backlog, s.unconfirmed_export) == (1, 0)
    assert s.oldest_wait_seconds == 42 * 60


def test_trucks_behind_a_re_read_truck_that_pass_the_gate_after_its_last_read_overtake_it():
    """Read on arrival and again at minute 40, then gone unseen: the twelve trucks that
    joined behind it and crossed after minute 40 overtook it, though all of them joined
    before its last read."""
    p = processor(unconfirmed_min_overtakes=10)
    feed(p, [ev("99Z11111", "queued", T0), ev("99Z11111", "queued", T0 + 40 * MIN)])
    behind = []
    for i in range(12):
        behind += [ev(f"30E{20000 + 37 * i}", "queued", T0 + (i + 1) * MIN),
                   ev(f"30E{20000 + 37 * i}", "crossed", T0 + (i + 45) * MIN)]
    feed(p, behind)
    settle(p, T0 + 57 * MIN)
    s = sig(p, T0 + 57 * MIN)
    assert (s.backlog, s.unconfirmed_export) == (0, 1)


def test_a_vehicle_set_aside_that_crosses_before_the_next_reconciliation_is_simply_gone():
    """Reconciliation runs at most every 5 s; a truck it set aside may cross in between.
    The signals of that moment count it nowhere (this once raised KeyError in the
    worker's agent and stopped it)."""
    p, now = overtaken_truck()
    assert sig(p, now).unconfirmed_export == 1
    fx = feed(p, [ev("99Z11111", "crossed", T0 + 41 * MIN)], now)  # within the 5 s
    assert not fx.errors
    s = sig(p, now)
    assert (s.backlog, s.unconfirmed_export, s.waiting_export) == (0, 0, 0)
    assert p.ledger.books[GATE].set_aside == {}
    settle(p, now + 5_000)
    assert sig(p, now + 5_000).backlog == 0


def test_a_green_lane_for_fruit_overtaking_general_cargo_sets_nobody_aside():
    p = processor(unconfirmed_min_overtakes=10)
    feed(p, [ev(f"29C{i:05d}", "queued", T0 + i * 1000, cargo="general") for i in range(5)])
    fruit = []
    for i in range(30):
        fruit += [ev(f"12F{70000 + 13 * i}", "queued", T0 + (i + 1) * MIN, cargo="perishable"),
                  ev(f"12F{70000 + 13 * i}", "crossed", T0 + (i + 20) * MIN,
                     cargo="perishable")]
    feed(p, fruit)
    settle(p, T0 + 60 * MIN)
    s = sig(p, T0 + 60 * MIN)
    assert (s.backlog, s.unconfirmed) == (5, 0)


def test_a_quiet_lane_sets_a_missed_crossing_aside_within_hours():
    p = processor()  # floor 50, but this lane crosses 12 trucks in 6 hours
    feed(p, [ev("99K00001", "queued", T0, direction="import", cargo="empty")])
    later = []
    for i in range(12):
        plate = f"21K{31000 + 17 * i}"
        later += [ev(plate, "queued", T0 + (i * 30 + 1) * MIN, direction="import",
                     cargo="empty"),
                  ev(plate, "crossed", T0 + (i * 30 + 20) * MIN, direction="import",
                     cargo="empty")]
    feed(p, later)
    settle(p, T0 + 6 * 60 * MIN)
    s = sig(p, T0 + 6 * 60 * MIN)
    assert (s.waiting_import, s.unconfirmed_import) == (0, 1)


def rereads(plate, start, until, every=30, direction="export"):
    """A truck read on arrival at ``start`` (minutes from T0) and re-read every ``every``
    minutes before ``until``."""
    return [ev(plate, "queued", T0 + t * MIN, GATE, direction)
            for t in range(start, until, every)]


def learned_trips():
    """30 trucks re-read every 30 minutes that crossed at every moment of their re-read
    cycle: what the gate learns its camera's re-read interval from (about 30 min)."""
    out = []
    for i in range(30):
        plate = f"29H{50000 + 113 * i}"
        out += rereads(plate, i, 100 + 3 * i)
        out.append(ev(plate, "crossed", T0 + (100 + 3 * i) * MIN))
    return out


def test_a_truck_the_queue_camera_stopped_re_reading_has_left():
    p = processor()
    reads = learned_trips()
    for i in range(12):
        # the first one left unseen after its read at minute 30
        reads += rereads(f"36C{40000 + 101 * i}", 30 + i, 60 if i == 0 else 300)
    feed(p, reads)
    book = p.ledger.books[GATE]
    # the median tail is 16 min: an interval of 32 min, a silence of 2.5 x 32 min
    assert book.reread_silence(T0 + 300 * MIN) == int(2.5 * 32 * MIN)
    settle(p, T0 + 300 * MIN)
    s = sig(p, T0 + 300 * MIN)
    assert (s.backlog, s.unconfirmed) == (11, 1)
    assert book.set_aside == {"36C40000": "unconfirmed"}


def test_phantoms_never_read_again_are_set_aside_even_when_they_outnumber_the_trucks():
    """Misread first reads (plates no truck has) are never re-read; twenty of them and
    twelve real trucks: the rule is learned from crossed trips, so the phantoms cannot
    switch it off."""
    p = processor()
    reads = learned_trips()
    for i in range(12):
        reads += rereads(f"36C{40000 + 101 * i}", 30 + i, 300)
    reads += [ev(f"77K{61000 + 7 * i}", "queued", T0 + (40 + i) * MIN) for i in range(20)]
    feed(p, reads)
    settle(p, T0 + 300 * MIN)
    s = sig(p, T0 + 300 * MIN)
    assert (s.backlog, s.unconfirmed) == (12, 20)


def test_a_queue_camera_that_stops_re_reading_sets_nobody_aside():
    """The camera stops re-reading at minute 120; trucks that cross after that were
    unread for hours: the rule turns off rather than empty the backlog."""
    p = processor()
    reads = learned_trips()
    for i in range(12):
        reads += rereads(f"36C{40000 + 101 * i}", 30 + i, 120)
    for i in range(4):
        plate = f"51D{70000 + 17 * i}"
        reads += rereads(plate, 40 + i, 120)
        reads.append(ev(plate, "crossed", T0 + (250 + i) * MIN))
    feed(p, reads)
    assert p.ledger.books[GATE].reread_silence(T0 + 300 * MIN) is None
    settle(p, T0 + 300 * MIN)
    s = sig(p, T0 + 300 * MIN)
    assert (s.backlog, s.unconfirmed) == (12, 0)


def test_a_misread_re_read_that_dropped_a_character_is_a_duplicate_read():
    p = processor()
    feed(p, rereads("12C04567", 0, 120))
    feed(p, [ev("12C0457", "queued", T0 + 45 * MIN)])  # a re-read that lost the 6
    settle(p, T0 + 120 * MIN)
    s = sig(p, T0 + 120 * MIN)
    assert (s.backlog, s.paired) == (1, 1)
    assert p.ledger.books[GATE].set_aside == {"12C0457": "duplicate_read"}


def test_a_misread_first_read_is_set_aside_when_the_true_plate_turns_up_at_the_re_read():
    """The arrival read 12CO4567 (O for 0); the re-read half an hour later reads the true
    plate. Until the truck is read again, the two reads are one truck, either way round
    (the later one is taken for a misread re-read of the earlier): the count is right.
    Once the true plate is read again and the misread has gone unread for 1.1 re-read
    intervals, the misread is the duplicate read, well before the silence rule (2.5)."""
    p = processor()
    feed(p, learned_trips())
    feed(p, [ev("12CO4567", "queued", T0 + 200 * MIN),
             ev("12C04567", "queued", T0 + 230 * MIN)])
    settle(p, T0 + 230 * MIN)
    s = sig(p, T0 + 230 * MIN)
    assert (s.backlog, s.paired) == (1, 1)  # one truck; which plate is true: not yet known
    feed(p, [ev("12C04567", "queued", T0 + 262 * MIN)])  # its next re-read
    settle(p, T0 + 262 * MIN)  # 62 min unread > 1.1 x the 32-min interval
    s = sig(p, T0 + 262 * MIN)
    assert (s.backlog, s.paired, s.unconfirmed) == (1, 1, 0)
    assert p.ledger.books[GATE].set_aside == {"12CO4567": "duplicate_read"}


def test_a_misread_re_read_is_a_duplicate_read_before_the_truck_is_read_again():
    """A truck read at 200 and due again at 232: the read at 232 is a plate one confusion
    away (12CO4567) never seen before, and the truck's own plate is not read then. That
    read is the truck's misread re-read at once, not a second truck until the next one."""
    p = processor()
    feed(p, learned_trips())
    feed(p, [ev("12C04567", "queued", T0 + 168 * MIN), ev("12C04567", "queued", T0 + 200 * MIN),
             ev("12CO4567", "queued", T0 + 232 * MIN)])
    settle(p, T0 + 232 * MIN)
    s = sig(p, T0 + 232 * MIN)
    assert (s.backlog, s.paired) == (1, 1)
    assert p.ledger.books[GATE].set_aside == {"12CO4567": "duplicate_read"}
    # a truck last read three intervals before is not due: the read is a truck of its own
    q = processor()
    feed(q, learned_trips())
    feed(q, [ev("12C04567", "queued", T0 + 100 * MIN), ev("12C04567", "queued", T0 + 132 * MIN),
             ev("12CO4567", "queued", T0 + 232 * MIN)])
    settle(q, T0 + 232 * MIN)
    assert q.ledger.books[GATE].set_aside.get("12CO4567") is None


def test_a_truck_that_missed_its_re_read_and_was_overtaken_has_left():
    """Trucks behind it crossing and a re-read that did not come: each alone is weak
    evidence (the lane allows 18 overtakers here, half its crossings of 6 hours; a
    truck misses a re-read now and then), together they say the truck has left. Unread
    for 1.2 intervals and overtaken by more than the lane's 99th percentile (at least
    5): unconfirmed, long before the silence rule (2.5 intervals)."""
    p = processor()
    reads = learned_trips() + [ev("36C40000", "queued", T0 + 200 * MIN)]  # left unseen
    for i in range(6):  # six trucks behind it cross
        plate = f"15C{61000 + 137 * i}"
        reads += [ev(plate, "queued", T0 + (201 + i) * MIN),
                  ev(plate, "crossed", T0 + (210 + i) * MIN)]
    reads.append(ev("37C70007", "queued", T0 + 207 * MIN))  # joined after them: not overtaken
    feed(p, reads)
    settle(p, T0 + 216 * MIN)
    assert sig(p, T0 + 216 * MIN).unconfirmed == 0  # not due for a re-read yet
    feed(p, [ev("51D70001", "queued", T0 + 250 * MIN)])  # event time moves on
    settle(p, T0 + 250 * MIN)  # 50 min unread > 1.2 x the 32-min interval < 2.5 x
    s = sig(p, T0 + 250 * MIN)
    assert (s.backlog, s.unconfirmed) == (2, 1)
    assert p.ledger.books[GATE].set_aside == {"36C40000": "unconfirmed"}


def test_the_overtaking_limit_is_learned_from_the_gate_with_a_floor():
    fifo = [(T0 + i * MIN, T0 + (i + 60) * MIN) for i in range(100)]
    assert overtake_limit(fifo, floor=30) == 30
    # every 10th truck is overtaken by the 40 joining after it (a priority lane)
    jumbled = [(T0 + i * MIN, T0 + (i + 60 + (41 if i % 10 == 0 else 0)) * MIN)
               for i in range(200)]
    assert 3 * 35 <= overtake_limit(jumbled, floor=30) <= 3 * 41


def test_without_reconciliation_the_ledger_is_left_as_it_is():
    p = processor(reconcile=False)
    feed(p, [ev("12C04567", "queued", T0), ev("12CO4567", "crossed", T0 + 30 * MIN)])
    settle(p, T0 + 30 * MIN)
    assert (sig(p, T0 + 30 * MIN).backlog, sig(p, T0 + 30 * MIN).paired) == (1, 0)


def test_count_observations_are_checked_and_a_lasting_discrepancy_raises_data_quality():
    p = processor(alert_raise_hold_seconds=0)
    feed(p, [ev(f"14A9{i:04d}", "queued", T0 + i * 1000) for i in range(50)])
    bad = SourceRecord("gate.counts", 0, 1, T0, GATE.encode(), b'{"gate_id": "huu-nghi"}')
    p.counts_topic = "gate.counts"
    fx = p.apply_batch([count_rec(GATE, "export", 20, T0 + MIN), bad], T0 + MIN)
    assert fx.counts == 1
    assert [d.rejection.reason for d in fx.dead_letters] == ["missing_field"]
    s = sig(p, T0 + MIN)
    assert [(c.direction, c.observed, c.ledger, c.discrepancy) for c in s.count_checks] == [
        ("export", 20, 50, 30)]
    kinds = [(c.alert.kind, c.change) for c in p.evaluate(T0 + MIN)]
    assert ("data_quality", "fired") not in kinds  # must hold for 30 min first
    fx = feed(p, [ev("14A80000", "queued", T0 + 31 * MIN)])  # still 31 more than counted
    kinds = [(c.alert.kind, c.change) for c in fx.alerts + p.evaluate(T0 + 32 * MIN)]
    assert ("data_quality", "fired") in kinds


def test_a_camera_whose_unmatched_share_jumps_raises_data_quality():
    p = processor()
    day = [ev(f"88B{i:05d}", k, T0 + i * 10 * MIN + (0 if k == "queued" else 5 * MIN))
           for i in range(120) for k in ("queued", "crossed")]
    feed(p, day, T0 + 20 * 60 * MIN)
    dead_queue_camera = [ev(f"77K{i:05d}", "crossed", T0 + 21 * 60 * MIN + i * MIN)
                         for i in range(30)]  # the queue-end reader died: no queued reads
    now = T0 + 21 * 60 * MIN + 30 * MIN
    feed(p, dead_queue_camera, now)
    cam = {c.camera: c for c in sig(p, now).cameras}["export-gate"]
    assert cam.unmatched_share_last_hour == 1.0 and cam.reads_last_hour == 30
    p.evaluate(now)
    fx = feed(p, [ev(f"77L{i:05d}", "crossed", now + i * MIN) for i in range(1, 32)])
    kinds = [(c.alert.kind, c.change) for c in fx.alerts + p.evaluate(now + 31 * MIN)]
    assert ("data_quality", "fired") in kinds


def test_a_paired_truck_expires_with_its_unmatched_crossing_and_a_rebuild_agrees():
    p = processor(retention_seconds=3600)
    feed(p, [ev("12C04567", "queued", T0), ev("12CO4567", "crossed", T0 + 30 * MIN)])
    settle(p, T0 + 30 * MIN)
    book = p.ledger.books[GATE]
    items = [(k, v, 0) for k, v in (
        (w.key, w.value) for w in feed(p, [ev("29H12345", "queued", T0 + 31 * MIN)]).writes)]
    assert book.outcome.pairs
    # a restart rebuilds the same outcome from the state table
    from gatewatch.streams.changelog import encode_state, state_key
    items = [(state_key(GATE, vid), encode_state(evs), 0) for vid, evs in book.vehicles.items()]
    q = processor(retention_seconds=3600)
    q.rebuild(items, T0 + 31 * MIN)
    q.reconcile_now(T0 + 31 * MIN)
    assert q.ledger.books[GATE].outcome.set_aside() == book.outcome.set_aside()
    # far later, the unmatched crossing and its pair go together
    feed(p, [ev("29H12345", "crossed", T0 + 200 * MIN)])
    p.gate_partition[GATE] = 0
    removed = [w.key for fx in p.sweep() for w in fx.writes]
    assert {state_key(GATE, "12C04567"), state_key(GATE, "12CO4567")} <= set(removed)
    assert "12C04567" not in book.vehicles and not book.outcome.pairs
    assert sig(p, T0 + 200 * MIN).backlog == 0


# -- the property: any delivery order, the same outcome, and the truth when unambiguous ----

PLATES = ("29H12345", "51C67890", "12C04567", "30E24680", "88B13579", "14A97531")
#: a re-read misread by a confusion (a dropped character is caught only by the
#: pairing of an unmatched end, or as unconfirmed: see gatewatch.core.reconcile)
REREAD_MISREAD = {"29H12345": "29H1234S", "51C67890": "51C6789O", "12C04567": "I2C04567",
                  "30E24680": "30E2468O", "88B13579": "8BB13579", "14A97531": "I4A97531"}
MISREAD = {"29H12345": "29H1234S", "51C67890": "51C67B90", "12C04567": "12CO4567",
           "30E24680": "30E2468O", "88B13579": "88B1357", "14A97531": "14A9753I"}


@st.composite
def dirty_feed(draw):
    """Trucks at one gate with one trip each; a camera may misread the crossing, the
    (only) queued read, or a re-read in the middle of an open trip."""
    events, truth = [], 0
    for i, plate in enumerate(draw(st.lists(st.sampled_from(PLATES), min_size=1, max_size=6,
                                             unique=True))):
        t = T0 + draw(st.integers(0, 60)) * MIN
        direction = draw(st.sampled_from(("export", "import")))
        fate = draw(st.sampled_from(("open", "crossed", "misread_cross", "misread_queue",
                                     "open_reread_misread")))
        if fate == "misread_queue":
            events.append(ev(MISREAD[plate], "queued", t, GATE, direction, f"q{i}"))
        else:
            events.append(ev(plate, "queued", t, GATE, direction, f"q{i}"))
        if fate == "open_reread_misread":
            events.append(ev(REREAD_MISREAD[plate], "queued", t + 5 * MIN, GATE, direction,
                             f"m{i}"))
            events.append(ev(plate, "queued", t + 10 * MIN, GATE, direction, f"r{i}"))
        end = t + draw(st.integers(20, 120)) * MIN
        if fate in ("open", "open_reread_misread"):
            truth += 1
        elif fate == "misread_cross":
            events.append(ev(MISREAD[plate], "crossed", end, GATE, direction, f"x{i}"))
        else:
            events.append(ev(plate, "crossed", end, GATE, direction, f"x{i}"))
    first = draw(st.permutations(events))
    second = draw(st.permutations(events))
    return first, second, truth


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dirty_feed())
def test_any_order_gives_the_same_reconciled_backlog_and_it_is_the_truth(case):
    first, second, truth = case
    outcomes = []
    for order in (first, second):
        led = ledger(reconciling=True)
        for e in order:
            led.apply(e, T0)
        book = led.books[GATE]
        book.reconcile(relearn=True)
        outcomes.append((book.confirmed_waiting(0) + book.confirmed_waiting(1),
                         book.outcome.set_aside()))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == truth
