"""``gatewatch run``'s history seeding (gatewatch.tools.seed) into a real SQLite store:
rows for every gate over the seeded span, nothing added by a second run, the flags."""

from __future__ import annotations

from gatewatch.cli import build_parser
from gatewatch.gates import load_gates
from gatewatch.history.store import HistoryStore
from gatewatch.settings import Settings
from gatewatch.tools.seed import seed_history

HOUR = 3_600_000
#: a fixed "now" (2026-11-27 05:00 UTC): no clock in the test
NOW = 1_795_755_600_000


def test_seeding_fills_every_gate_over_the_span_once(tmp_path):
    store = HistoryStore(f"sqlite:///{tmp_path}/history.sqlite3")
    store.migrate()
    gates = load_gates()
    weeks = 0.5
    first = seed_history(store, gates, Settings(), weeks=weeks, now_ms=NOW)
    assert not first.skipped and first.events > 0
    span_from = NOW - int(weeks * 7 * 24 * HOUR)
    assert (first.from_ms, first.to_ms) == (span_from, NOW)
    total = store.count("windows")
    assert total == first.windows > 0
    for gate in gates.gates:
        rows = store.windows(gate.gate_id, span_from - HOUR, NOW + HOUR)
        assert rows, gate.gate_id
        # from the first hours of the span to its last hour, the backlog recorded
        assert rows[0].start_ms < span_from + 6 * HOUR, gate.gate_id
        assert rows[-1].end_ms > NOW - 2 * HOUR, gate.gate_id
        assert all(r.waiting_export is not None for r in rows)
        # every day of the span has windows (the simulated day profile never stops a gate)
        days = {(r.start_ms - span_from) // (24 * HOUR) for r in rows}
        assert days >= set(range(int(weeks * 7))), gate.gate_id
    # a second run finds rows and writes nothing
    again = seed_history(store, gates, Settings(), weeks=weeks, now_ms=NOW + 3 * HOUR)
    assert again.skipped and again.windows == total
    assert store.count("windows") == total
    store.close()


def test_run_flags():
    args = build_parser().parse_args(["run"])
    assert (args.no_seed, args.seed_weeks) == (False, 2.0)
    args = build_parser().parse_args(["run", "--no-seed", "--seed-weeks", "3"])
    assert (args.no_seed, args.seed_weeks) == (True, 3.0)
