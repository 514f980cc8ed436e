"""Every SQL query of the generated dashboards' history panels runs on a real PostgreSQL
(the session's server) holding the history schema (migrated by the store itself), filled
offline with five days of Hữu Nghị traffic and its alerts, and returns rows; for a gate
without history it runs and returns none."""

from __future__ import annotations

import time

import pytest

from gatewatch.tools.dashboards import build_all, expand_sql, sql_queries
from tests.support import ev, gates_yaml, message

pytestmark = pytest.mark.integration

HOUR = 3_600_000


def five_days(now: int) -> list[tuple[bytes, bytes, int]]:
    """A truck every 10 min for 5 days; daytime (+07:00) ones wait 3 h, night ones 20 min:
    a daily queue past the warning and critical thresholds (alerts), as (key, value, time)."""
    rows = []
    start = now - 5 * 24 * HOUR
    for i in range(5 * 144):
        t = start + i * 600_000
        local_hour = (t + 7 * HOUR) // HOUR % 24
        crossed = t + (3 * HOUR if 7 <= local_hour < 17 else HOUR // 3)
        rows.append((*message(ev(f"29D-{i:05d}", "queued", t, event_id=f"d{i}q")), t))
        if crossed < now:
            rows.append((*message(ev(f"29D-{i:05d}", "crossed", crossed, event_id=f"d{i}c")),
                         crossed))
    return rows


def test_every_history_panel_query_runs_on_postgresql(postgres, test_id, tmp_path):
    import psycopg

    from gatewatch.gates import load_gates
    from gatewatch.history.offline import import_events
    from gatewatch.history.store import HistoryStore
    from gatewatch.settings import Settings

    gates = tmp_path / "gates.yaml"
    gates.write_text(gates_yaml({"huu-nghi": "{warning: 5, critical: 10}",
                                 "tan-thanh": "{warning: 5, critical: 10}"}))
    url = postgres.create_database(f"{test_id}_dash")
    store = HistoryStore(url)
    store.migrate()
    now = int(time.time() * 1000)
    result = import_events(store, five_days(now), load_gates(gates), Settings(),
                           updated_ms=now)
    assert result.windows > 500 and result.alerts > 0
    store.close()
    queries = sql_queries(build_all()["gatewatch-gate"])
    assert len(queries) == 4
    to_s = now // 1000
    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="gatewatch",
                         dbname=f"{test_id}_dash") as conn:
        for title, sql in queries:
            # the panel's own range: 7 days (hourly, alerts), 30 days (daily); the
            # hour-of-day pattern reads its 4 weeks before "to" whatever the range
            from_s = to_s - (30 if "30" in title else 7) * 86_400
            rows = conn.execute(expand_sql(sql, "huu-nghi", from_s, to_s)).fetchall()
            assert rows, f"{title}: no rows"
            assert any(v is not None for r in rows for v in r[1:]), f"{title}: all NULL"
            if "Hourly" in title:
                assert len(rows) >= 5 * 24 - 2  # a row per hour of the five days
                assert max(r[1] for r in rows) >= 10  # the daily queue (backlog column)
            if "hour of day" in title:
                assert len(rows) == 24
                assert rows[0][0] == "00:00" and rows[-1][0] == "23:00"
                day = {r[0]: float(r[1]) for r in rows}
                assert day["16:00"] > day["04:00"]  # the daytime queue, in local time
            if "Past alerts" in title:
                assert {r[2] for r in rows} <= {"warning", "critical"}
            # a gate without history: the query runs and finds nothing
            assert conn.execute(expand_sql(sql, "tan-thanh", from_s, to_s)).fetchall() == []
