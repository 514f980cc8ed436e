"""The odd cases of the per-vehicle state machine, each with explicit timestamps."""

from gatewatch.core.ledger import APPLIED, DUPLICATE, Ledger
from gatewatch.streams.changelog import decode_state, encode_state
from tests.support import MIN, T0, ev, ledger


def waiting(led, gate="huu-nghi"):
    return led.waiting_total(gate)


def test_queued_then_crossed_measures_wait():
    led = ledger()
    led.apply(ev("A", "queued", T0), T0)
    assert waiting(led) == 1
    led.apply(ev("A", "crossed", T0 + 90 * MIN), T0)
    assert waiting(led) == 0
    assert led.books["huu-nghi"].waits_observed == [90 * MIN]


def test_same_event_id_twice_changes_nothing():
    led = ledger()
    e = ev("A", "queued", T0, event_id="x1")
    assert led.apply(e, T0) == APPLIED
    assert led.apply(e, T0) == DUPLICATE
    assert waiting(led) == 1 and led.duplicates == 1


def test_second_queued_for_waiting_vehicle_is_a_duplicate_read():
    led = ledger()
    led.apply(ev("A", "queued", T0), T0)
    led.apply(ev("A", "queued", T0 + 5_000), T0)
    assert waiting(led) == 1
    assert led.books["huu-nghi"].totals[0] == 1  # one arrival


def test_crossed_without_queued_counts_a_crossing_never_negative():
    led = ledger()
    led.apply(ev("B", "crossed", T0), T0)
    assert waiting(led) == 0
    book = led.books["huu-nghi"]
    assert book.totals[2] == 1  # crossing, export
    assert book.waits_observed == []  # no wait measured


def test_crossed_before_queued_reordered_pairs_up():
    led = ledger()
    led.apply(ev("A", "crossed", T0 + 30 * MIN), T0)
    led.apply(ev("A", "queued", T0), T0)
    assert waiting(led) == 0
    book = led.books["huu-nghi"]
    assert book.waits_observed == [30 * MIN]
    assert book.totals[0] == 1 and book.totals[2] == 1


def test_withdrawn_leaves_the_queue():
    led = ledger()
    led.apply(ev("A", "queued", T0, direction="import"), T0)
    assert led.books["huu-nghi"].waiting_count == [0, 1]
    led.apply(ev("A", "withdrawn", T0 + MIN, direction="import"), T0)
    assert led.books["huu-nghi"].waiting_count == [0, 0]
    assert led.books["huu-nghi"].totals[5] == 1  # withdrawal, import


def test_second_trip_after_crossing():
    led = ledger()
    for e in (ev("A", "queued", T0), ev("A", "crossed", T0 + MIN),
              ev("A", "queued", T0 + 60 * MIN)):
        led.apply(e, T0)
    assert waiting(led) == 1


def test_late_crossing_of_earlier_trip_does_not_end_the_current_one():
    led = ledger()
    for e in (ev("A", "queued", T0), ev("A", "queued", T0 + 60 * MIN),
              ev("A", "crossed", T0 + 10 * MIN)):
        led.apply(e, T0)
    # sorted: q0, c10, q60: the vehicle is waiting again since 60
    assert waiting(led) == 1
    assert led.books["huu-nghi"].waiting["A"].queued_ms == T0 + 60 * MIN


def test_double_crossing_read_is_one_crossing():
    led = ledger()
    for e in (ev("A", "queued", T0), ev("A", "crossed", T0 + MIN),
              ev("A", "crossed", T0 + MIN + 2_000)):
        led.apply(e, T0)
    assert led.books["huu-nghi"].totals[2] == 1


def test_gates_are_independent():
    led = ledger()
    led.apply(ev("A", "queued", T0, gate="huu-nghi"), T0)
    led.apply(ev("A", "queued", T0, gate="tan-thanh"), T0)
    assert waiting(led, "huu-nghi") == 1 and waiting(led, "tan-thanh") == 1


def test_state_round_trips_and_rebuild_restores_counts():
    led = ledger()
    events = [ev("A", "queued", T0), ev("B", "queued", T0 + MIN), ev("A", "crossed", T0 + 5 * MIN),
              ev("C", "queued", T0 + 6 * MIN, gate="tan-thanh", direction="import")]
    for e in events:
        led.apply(e, T0)
    items = []
    for book in led:
        for vid, evs in book.vehicles.items():
            assert decode_state(encode_state(evs)) == evs
            items.append(((book.gate_id + "\x00" + vid).encode(), encode_state(evs)))
    other = ledger()
    other.rebuild(items, T0)
    for gate in ("huu-nghi", "tan-thanh"):
        assert other.books[gate].waiting_count == led.books[gate].waiting_count
        assert other.books[gate].windows.open.keys() == led.books[gate].windows.open.keys()


def test_expiry_drops_old_finished_and_stale_waiting_vehicles():
    led = ledger()
    led.apply(ev("A", "queued", T0), T0)
    led.apply(ev("A", "crossed", T0 + MIN), T0)
    led.apply(ev("B", "queued", T0 + MIN), T0)
    led.apply(ev("C", "queued", T0 + 100 * MIN), T0)
    book = led.books["huu-nghi"]
    removed, expired_waiting = book.expire(retention_ms=60 * MIN, max_wait_ms=90 * MIN)
    assert sorted(removed) == ["A", "B"]
    assert expired_waiting == 1
    assert book.waiting_count == [1, 0]


def test_expiry_in_chunks_matches_the_one_pass_sweep():
    def fresh() -> Ledger:
        led = ledger()
        led.apply(ev("A", "queued", T0), T0)
        led.apply(ev("A", "crossed", T0 + MIN), T0)
        led.apply(ev("B", "queued", T0 + MIN), T0)
        led.apply(ev("D", "queued", T0 + 2 * MIN, direction="import"), T0)
        led.apply(ev("C", "queued", T0 + 100 * MIN), T0)
        return led

    one = fresh().books["huu-nghi"]
    expected = one.expire(retention_ms=60 * MIN, max_wait_ms=90 * MIN)
    chunked = fresh().books["huu-nghi"]
    ids = list(chunked.vehicles) + ["gone"]  # an id removed meanwhile is skipped
    removed: list[str] = []
    waiting = 0
    for start in range(0, len(ids), 2):
        r, w = chunked.expire(60 * MIN, 90 * MIN, only=ids[start:start + 2])
        removed += r
        waiting += w
    assert (sorted(removed), waiting) == (sorted(expected[0]), expected[1])
    assert chunked.vehicles.keys() == one.vehicles.keys() == {"C"}
    assert chunked.waiting_count == one.waiting_count == [1, 0]


def test_oldest_waiting_follows_departures():
    led = ledger()
    book = led.books["huu-nghi"]
    led.apply(ev("A", "queued", T0, cargo="perishable"), T0)
    led.apply(ev("B", "queued", T0 + MIN), T0)
    led.apply(ev("C", "queued", T0 + 2 * MIN, cargo="perishable"), T0)
    assert book.oldest_waiting_ms(direction=0) == T0
    assert book.oldest_waiting_ms(cargo=1) == T0
    led.apply(ev("A", "crossed", T0 + 3 * MIN), T0)
    assert book.oldest_waiting_ms(direction=0) == T0 + MIN
    assert book.oldest_waiting_ms(cargo=1) == T0 + 2 * MIN
    assert book.oldest_waiting_ms(direction=1) is None
    assert book.oldest_waiting_ms() == T0 + MIN
