"""Property: for any delivery order, with duplicates and redelivery, the ledger's
counts equal a straightforward reference model computed from the true trips."""

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
                if draw(st.booleans()):  # camera double read, new id, slightly later
                    n += 1
                    events.append(ev(f"V{v}", "queued", t + draw(st.integers(1, 1_000)), gate,
                                     direction, f"q{n}"))
            if end == "open":
                truth_waiting[(gate, direction)] += 1
                break
            t_end = t + duration
            n += 1
            events.append(ev(f"V{v}", end, t_end, gate, direction, f"x{n}"))
            kind = "cross" if end == "crossed" else "wd"
            truth_windows[(gate, kind, direction, t_end - t_end % WINDOW_MS)] += 1
            if draw(st.booleans()):
                n += 1
                events.append(ev(f"V{v}", end, t_end + draw(st.integers(1, 1_000)), gate,
                                 direction, f"x{n}"))
            t = t_end + draw(st.integers(2_000, 3_600_000))
    # redelivery: some events again with the same id
    redelivered = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    order = draw(st.permutations(events + redelivered))
    return order, truth_waiting, truth_windows


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
    order, truth_waiting, truth_windows = case
    led = ledger(window_seconds=300, grace_seconds=10**9)
    for e in order:
        led.apply(e, T0)
        for book in led:
            assert min(book.waiting_count) >= 0
    got = Counter({(b.gate_id, d): b.waiting_count[i] for b in led
                   for i, d in enumerate(("export", "import")) if b.waiting_count[i]})
    assert got == truth_waiting
    assert window_counts(led) == truth_windows

    # a worker that restarts from the changelog rebuilds exactly the same state
    items = [(state_key(b.gate_id, vid), encode_state(evs)) for b in led
             for vid, evs in b.vehicles.items()]
    rebuilt = ledger(window_seconds=300, grace_seconds=10**9)
    rebuilt.rebuild(items, T0)
    assert [b.waiting_count for b in rebuilt] == [b.waiting_count for b in led]
    assert window_counts(rebuilt) == truth_windows
