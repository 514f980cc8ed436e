"""The history store on SQLite (a real file per test) and its pure aggregations: schema
migrations, idempotent upserts (a republished window replaces, a replay never double
counts, an alert record is stored once), series steps, hour-of-week patterns, URL errors.
The same store against a real PostgreSQL is in tests/integration/test_history.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from gatewatch.errors import ConfigError, HistoryError
from gatewatch.history.aggregate import WEEK_MS, patterns_of, percentile, series_of
from gatewatch.history.schema import metadata
from gatewatch.history.store import HistoryStore, normalize_url
from gatewatch.streams.records import WindowRecord
from tests.support import T0

H = 3_600_000
FIVE = 300_000
VN = 7 * H
MONDAY = 1_638_144_000_000 - VN  # 2021-11-29 (a Monday) 00:00 +07:00


def win(start_ms: int, arrivals: int = 1, crossings: int = 0, *, gate: str = "huu-nghi",
        waits: tuple[float, ...] = (), waiting: int | None = None,
        republished: bool = False) -> WindowRecord:
    return WindowRecord(gate, start_ms, start_ms + FIVE, arrivals, 0, crossings, 0, 0, 0,
                        len(waits), float(sum(waits)), float(max(waits, default=0.0)),
                        "event_time", republished, waiting_export=waiting,
                        waiting_import=None if waiting is None else 0)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    s = HistoryStore(f"sqlite:///{tmp_path}/h/history.sqlite3")
    s.migrate()
    return s


def test_migrate_creates_the_schema_of_schema_py_and_is_idempotent(tmp_path: Path):
    assert HistoryStore(f"sqlite:///{tmp_path}/empty.sqlite3").revision() is None
    s = HistoryStore(f"sqlite:///{tmp_path}/new/h.sqlite3")  # the folder is created too
    assert s.migrate() == "0001"
    assert s.migrate() == "0001"  # again: nothing to do
    insp = inspect(s.engine)
    for table in metadata.sorted_tables:
        cols = {c["name"] for c in insp.get_columns(table.name)}
        assert cols == {c.name for c in table.columns}, table.name
        assert insp.get_pk_constraint(table.name)["constrained_columns"] == \
            [c.name for c in table.primary_key.columns]


def test_a_republished_window_replaces_and_a_replay_does_not_double_count(store):
    first = [win(T0, 3), win(T0 + FIVE, 2), win(T0, 1, gate="tan-thanh")]
    assert store.put_windows(first, updated_ms=T0) == 3
    store.put_windows(first, updated_ms=T0 + 1)  # replayed: same rows
    assert store.count("windows") == 3
    store.put_windows([win(T0, 5, republished=True)], updated_ms=T0 + 2)
    rows = store.windows("huu-nghi", T0, T0 + H)
    assert [(r.start_ms, r.arrivals, r.republished) for r in rows] == \
        [(T0, 5, True), (T0 + FIVE, 2, False)]
    assert store.count("windows", "huu-nghi") == 2
    # a batch holding the same key twice: the later record wins
    store.put_windows([win(T0, 7), win(T0, 8)], updated_ms=T0 + 3)
    assert store.windows("huu-nghi", T0, T0 + 1)[0].arrivals == 8


def test_an_alert_record_is_stored_once_and_bad_records_are_skipped(store):
    rec = {"alert_id": "huu-nghi:backlog", "gate_id": "huu-nghi", "kind": "backlog",
           "state": "firing", "change": "fired", "severity": "warning", "value": 12,
           "threshold": 10, "waiting": 12, "started_at": "2021-12-01T00:00:00Z",
           "updated_at": "2021-12-01T00:00:00Z", "resolved_at": None, "message": "x"}
    resolved = rec | {"state": "resolved", "change": "resolved",
                      "updated_at": "2021-12-01T03:00:00Z"}
    store.put_alerts([rec, rec, {"alert_id": 1}, rec | {"updated_at": "yesterday"}])
    store.put_alerts([rec, resolved])
    assert store.count("alerts") == 2
    got = store.alerts("huu-nghi")
    assert [a["change"] for a in got] == ["fired", "resolved"] and got[0] == rec
    assert store.alerts("tan-thanh") == []


def test_series_sums_steps_and_leaves_out_steps_without_windows():
    rs = [win(T0, 1, 1, waits=(60.0,)), win(T0 + FIVE, 2, 1, waits=(120.0, 180.0)),
          win(T0 + 3 * H, 4)]
    pts = series_of(rs, H)
    assert [(p.start_ms, p.windows, p.arrivals, p.crossings) for p in pts] == \
        [(T0, 2, 3, 2), (T0 + 3 * H, 1, 4, 0)]
    assert pts[0].wait_mean_seconds == pytest.approx(120.0)
    assert pts[0].waits_max_seconds == 180.0 and pts[1].wait_mean_seconds is None
    # days start at local midnight: 16:59Z and 17:00Z are different days at +07:00
    days = series_of([win(T0 + 16 * H + 55 * 60_000), win(T0 + 17 * H)], 24 * H, VN)
    assert [p.start_ms for p in days] == [T0 - VN, T0 + 17 * H]


def test_series_backlog_is_the_last_windows_backlog():
    pts = series_of([win(T0, waiting=5), win(T0 + FIVE, waiting=9),
                     win(T0 + 2 * FIVE, waiting=7)], H)
    assert (pts[0].backlog_end, pts[0].backlog_max) == (7, 9)


def test_percentile_interpolates_like_numpy():
    assert percentile([], 0.9) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)
    assert percentile([10.0, 0.0, 20.0, 30.0, 40.0], 0.5) == 20.0


def test_patterns_by_local_hour_of_week_with_quiet_hours_as_zero():
    monday_8_local = MONDAY + 8 * H
    rs = []
    for week, n in enumerate((2, 4, 6, 8)):
        t = monday_8_local + week * WEEK_MS
        rs += [win(t, n, 1, waits=(600.0,)), win(t + 2 * H, 1)]  # 10:00 too; 09:00 quiet
    pats = patterns_of(rs, VN)
    assert len(pats) == 168
    at8, at9, at10 = pats[8], pats[9], pats[10]
    assert (at8.weekday, at8.hour) == ("mon", 8)
    assert at8.arrivals.samples == 4 and at8.arrivals.mean == 5.0
    assert at8.arrivals.p90 == pytest.approx(7.4)
    assert at8.wait_seconds.mean == 600.0
    assert at9.arrivals.samples == 4 and at9.arrivals.mean == 0.0  # inside the span: quiet
    assert at9.wait_seconds.samples == 0 and at9.wait_seconds.mean is None
    assert at10.crossings.mean == 0.0
    # outside the span (before the first, after the last window): not observed
    assert pats[7].arrivals.samples == 3 and pats[11].arrivals.samples == 3
    assert pats[8 + 24].arrivals.samples == 3  # Tuesday 08:00: 3 instances inside the span


def test_store_patterns_reads_the_weeks_before_now(store):
    monday_8_local = MONDAY + 8 * H
    store.put_windows([win(monday_8_local + w * WEEK_MS, 10 * (w + 1)) for w in range(4)], 0)
    now = monday_8_local + 3 * WEEK_MS + H
    assert store.patterns("huu-nghi", 2, now, VN)[8].arrivals.mean == 35.0  # weeks 3 and 4
    assert store.patterns("huu-nghi", 4, now, VN)[8].arrivals.samples == 4


@pytest.mark.parametrize(("url", "reason"), [
    ("", "must not be empty"),
    ("not a url", "is not a database URL"),
    ("mysql://u@h/db", "'mysql' databases are not supported"),
    ("postgresql+asyncpg://u@h/db", "driver 'postgresql+asyncpg' is not supported"),
    ("postgresql://u@h", "names no database"),
    ("sqlite://", "names no file"),
])
def test_a_bad_url_names_the_variable_and_the_reason(url: str, reason: str):
    with pytest.raises(ConfigError) as exc:
        normalize_url(url)
    assert str(exc.value).startswith("environment: GATEWATCH_HISTORY_URL: ")
    assert reason in str(exc.value)


def test_postgresql_urls_use_psycopg_3():
    assert normalize_url("postgresql://u:pw@h:5/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    s = HistoryStore("postgresql://u:secret@h:5/db")
    assert "secret" not in s.describe() and s.describe().startswith("postgresql://u:***@h:5")


def test_a_read_only_store_creates_nothing_and_fails_clearly(tmp_path: Path):
    path = tmp_path / "missing.sqlite3"
    s = HistoryStore(f"sqlite:///{path}", readonly=True)
    with pytest.raises(HistoryError, match="cannot read windows"):
        s.windows("huu-nghi", 0, T0)
    assert not path.exists()
    w = HistoryStore(f"sqlite:///{path}")
    w.migrate()
    w.put_windows([win(T0)], 0)
    assert [r.arrivals for r in s.windows("huu-nghi", 0, T0 + H)] == [1]
    with pytest.raises(HistoryError, match="cannot write windows"):
        s.put_windows([win(T0 + FIVE)], 0)


def test_gate_windows_records_decode_back_to_the_window_the_worker_published():
    from gatewatch.history.ingest import decode_window
    from gatewatch.streams.codec import encode_window

    for r in (win(T0, 3, 2, waits=(60.0, 90.0), waiting=12, republished=True), win(T0 + H)):
        assert decode_window(encode_window(r)) == r
    for raw in (b"", b"{}", b"[1]", b"not json",
                encode_window(win(T0)).replace(b'"export":1', b'"export":-1')):
        assert decode_window(raw) is None


def test_an_offline_import_closes_windows_in_event_time_and_twice_counts_once(store):
    from gatewatch.history.offline import import_events
    from gatewatch.settings import Settings
    from tests.support import ev, gates, message

    evs = [ev("29C-1", "queued", T0 + 1000), ev("29C-2", "queued", T0 + 2000),
           ev("29C-1", "crossed", T0 + FIVE + 180_000 + 1000),  # after the first closed
           ev("29C-3", "queued", T0 + 3 * H, gate="tan-thanh")]  # after a long silence
    events = [(*message(e), e.occurred_at_ms) for e in reversed(evs)]  # any order
    for _ in range(2):
        done = import_events(store, events, gates(), Settings(), updated_ms=T0)
        assert done.events == 4 and (done.first_ms, done.last_ms) == (T0 + 1000, T0 + 3 * H)
        assert store.count("windows") == 3
    rows = store.windows("huu-nghi", T0, T0 + H)
    assert [(r.start_ms, r.arrivals, r.crossings, r.waits_count) for r in rows] == \
        [(T0, 2, 0, 0), (T0 + FIVE, 0, 1, 1)]
    assert (rows[0].waiting_export, rows[1].waiting_export) == (2, 1)  # backlog at close
    assert rows[1].waits_sum_seconds == 480.0
    assert store.windows("tan-thanh", T0, T0 + 4 * H)[0].start_ms == T0 + 3 * H


def test_seeding_simulated_weeks_fills_every_gate_and_repeats_identically(store):
    from gatewatch.gates import load_gates
    from gatewatch.history.offline import seed
    from gatewatch.settings import Settings

    bundled = load_gates()
    first = seed(store, bundled, Settings(), weeks=0.05, now_ms=T0)  # 8.4 hours
    rows = store.count("windows")
    assert first.events > 100 and rows == first.windows
    assert all(store.count("windows", g.gate_id) > 0 for g in bundled.gates
               if g.gate_id != "dong-dang-rail")
    seed(store, bundled, Settings(), weeks=0.05, now_ms=T0)
    assert store.count("windows") == rows
