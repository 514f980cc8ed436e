"""Property: for any delivery order, with duplicates and redelivery, the ledger's
counts equal a straightforward reference model computed from the true trips.

A vehicle's trips are more than an hour apart (``REREAD_GAP_MS``: re-reads closer than
that are one chain, see ``gatewatch.core.trips.add_read``); within a trip a camera may
read the waiting vehicle many times."""

from bisect import bisect_left
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.core.ledger import WAIT_BUCKETS_MS
from gatewatch.core.trips import REREAD_GAP_MS
from gatewatch.streams.changelog import encode_state, state_key
from tests.support import T0, ev, ledger

WINDOW_MS = 300_000
GATES = ("huu-nghi", "tan-thanh")


@st.composite
def scenario(draw):
    """True trips per vehicle, and the (dirty) events a feed would deliver for them."""
    vehicles = draw(st.integers(1, 6))
    truth_waiting: Counter = Counter()
    truth_windows: Counter = Counter()
    truth_waits: list[tuple[str, int]] = []
    events = []
    n = 0
    for v in range(vehicles):
        gate = draw(st.sampled_from(GATES))
        t = T0 + draw(st.integers(0, 3_600_000))
        trips = draw(st.integers(1, 3))
        for k in range(trips):
            direction = draw(st.sampled_from(("export", "import")))
            last = k == trips - 1
            end = draw(st.sampled_from(("crossed", "withdrawn", "open") if last
                                       else ("crossed", "withdrawn")))
            lose_queued = k == 0 and end == "crossed" and draw(st.booleans())
            duration = draw(st.integers(2_000, 7_200_000))
            if not lose_queued:
                n += 1
                events.append(ev(f"V{v}", "queued", t, gate, direction, f"q{n}"))
                truth_windows[(gate, "arr", direction, t - t % WINDOW_MS)] += 1
                # camera re-reads while it waits, new ids, before the trip ends
                reread_ms = draw(st.integers(1, 120_000))
                for r in range(draw(st.integers(0, 12))):
                    t_read = t + (r + 1) * reread_ms
                    if end != "open" and t_read >= t + duration:
                        break
                    n += 1
                    events.append(ev(f"V{v}", "queued", t_read, gate, direction, f"q{n}"))
            if end == "open":
                truth_waiting[(gate, direction)] += 1
                break
            t_end = t + duration
            n += 1
            events.append(ev(f"V{v}", end, t_end, gate, direction, f"x{n}"))
            kind = "cross" if end == "crossed" else "wd"
            truth_windows[(gate, kind, direction, t_end - t_end % WINDOW_MS)] += 1
            if kind == "cross" and not lose_queued:
                truth_waits.append((gate, t_end - t))
            if draw(st.booleans()):
                n += 1
                events.append(ev(f"V{v}", end, t_end + draw(st.integers(1, 1_000)), gate,
                                 direction, f"x{n}"))
            t = t_end + REREAD_GAP_MS + draw(st.integers(1_000, 3_600_000))
    # redelivery: some events again with the same id
    redelivered = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    order = draw(st.permutations(events + redelivered))
    return order, truth_waiting, truth_windows, truth_waits


def window_counts(led):
    out: Counter = Counter()
    names = ("arr", "cross", "wd")
    dirs = ("export", "import")
    for book in led:
        for start, bucket in book.windows.open.items():
            for i, v in enumerate(bucket.counts):
                if v:
                    out[(book.gate_id, names[i // 2], dirs[i % 2], start)] = v
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_any_order_with_duplicates_equals_reference(case):
    order, truth_waiting, truth_windows, truth_waits = case
    led = ledger(window_seconds=300, grace_seconds=10**9)
    for e in order:
        led.apply(e, T0)
        for book in led:
            assert min(book.waiting_count) >= 0
    got = Counter({(b.gate_id, d): b.waiting_count[i] for b in led
                   for i, d in enumerate(("export", "import")) if b.waiting_count[i]})
    assert got == truth_waiting
    assert window_counts(led) == truth_windows
    # the _total counters and the wait histogram are functions of the event set too
    assert totals(led) == totals_of(truth_windows)
    assert waits(led) == waits_of(truth_waits)

    # a worker that restarts from the changelog rebuilds exactly the same state
    items = [(state_key(b.gate_id, vid), encode_state(evs)) for b in led
             for vid, evs in b.vehicles.items()]
    rebuilt = ledger(window_seconds=300, grace_seconds=10**9)
    rebuilt.rebuild(items, T0)
    assert [b.waiting_count for b in rebuilt] == [b.waiting_count for b in led]
    assert window_counts(rebuilt) == truth_windows
    assert totals(rebuilt) == totals_of(truth_windows)
    assert waits(rebuilt) == waits_of(truth_waits)


def totals(led):
    names = ("arr", "cross", "wd")
    return Counter({(b.gate_id, names[i // 2], ("export", "import")[i % 2]): v
                    for b in led for i, v in enumerate(b.totals) if v})


def totals_of(truth_windows):
    out: Counter = Counter()
    for (gate, kind, direction, _start), n in truth_windows.items():
        out[(gate, kind, direction)] += n
    return out


def waits(led):
    return {b.gate_id: (tuple(b.wait_buckets), b.wait_sum_ms) for b in led
            if any(b.wait_buckets)}


def waits_of(truth_waits):
    out = {}
    for gate in GATES:
        mine = [w for g, w in truth_waits if g == gate]
        if mine:
            buckets = [0] * (len(WAIT_BUCKETS_MS) + 1)
            for w in mine:
                buckets[bisect_left(WAIT_BUCKETS_MS, w)] += 1
            out[gate] = (tuple(buckets), sum(mine))
    return out
