"""Cameras that miss and misread, end to end through a real worker and the real broker:

- a misread ``crossed`` (queued ``12C-04567``, crossed ``12C-O4567``) is paired with the
  waiting vehicle: it leaves the backlog, is counted as paired, and the pairing is on
  ``gate.reconciliations`` with both plates (normalised) and why;
- a vehicle whose ``crossed`` was missed, overtaken by more vehicles than the gate allows
  (``GATEWATCH_UNCONFIRMED_MIN_OVERTAKES`` small here), leaves the backlog as
  *unconfirmed*: ``gate_vehicles_unconfirmed`` and the API say so; read again, it is
  back in the backlog;
- a ``gate.counts`` observation gives ``gate_count_discrepancy`` (ledger − observed);
- a bad count message lands on ``gate.events.rejected`` with its bytes and reason;
- after a restart the count check is still there (read back from ``gate.counts``).
"""

from __future__ import annotations

import time

import orjson
import pytest

from gatewatch.streams.codec import encode_count
from gatewatch.streams.records import CountObservation
from tests.support import MIN, ev, gates_yaml, message, poll, produce, read_all

pytestmark = pytest.mark.integration

GATES = gates_yaml({"huu-nghi": "{warning: 500, critical: 900}",
                    "tan-thanh": "{warning: 500, critical: 900}"})
#: overtakes after which a waiting vehicle is set aside (the floor; the test's gate has
#: no overtaking history to learn a larger allowance from)
OVERTAKES = 5
#: vehicles that queue after the missed one and cross before it
OTHERS = 3 * OVERTAKES


def gauge(w, name: str, **labels: str) -> float | None:
    return w.metrics().get((name, frozenset(labels.items())))


def gate_doc(w, gate: str = "huu-nghi") -> dict:
    status, body = w.get(f"/api/v1/gates/{gate}")
    assert status == 200, body
    return orjson.loads(body)


def test_misreads_and_missed_reads_are_set_aside_audited_and_checked(
        bootstrap, worker_factory, test_id, tmp_path):
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    w = worker_factory(GATEWATCH_GATES=str(gates),
                       GATEWATCH_UNCONFIRMED_MIN_OVERTAKES=str(OVERTAKES))
    w.wait_ready()
    events = f"{test_id}-gate.events"
    t0 = int(time.time() * 1000) - 60 * MIN
    # waiting for real: two vehicles that queue and stay (never overtaken by more than
    # the others that queued before them)
    msgs = [message(ev(f"29H-1000{i}", "queued", t0 + i * 1000, event_id=f"stay-{i}"))
            for i in range(2)]
    # the missed crossing: M queues first, everybody after it crosses, M's crossing is lost
    msgs.append(message(ev("51D-99999", "queued", t0 + 10_000, event_id="missed-q")))
    for i in range(OTHERS):
        t = t0 + MIN + i * 10_000
        msgs.append(message(ev(f"20C-2{i:04d}", "queued", t, event_id=f"o-q{i}")))
        msgs.append(message(ev(f"20C-2{i:04d}", "crossed", t + 5 * MIN, event_id=f"o-c{i}")))
    # the misread: queued as 12C-045.67, crossed read as 12C-O4567 (letter O)
    msgs.append(message(ev("12C-045.67", "queued", t0 + 20 * MIN, event_id="misread-q")))
    msgs.append(message(ev("12C-O4567", "crossed", t0 + 30 * MIN, event_id="misread-c")))
    # the two stayers were overtaken too: they queued before the others; keep them
    # confirmed by reading them again at the end (a re-read confirms a waiting vehicle)
    msgs += [message(ev(f"29H-1000{i}", "queued", t0 + 40 * MIN, event_id=f"stay-again-{i}"))
             for i in range(2)]
    produce(bootstrap, events, msgs)

    # the backlog holds only the two confirmed vehicles; M is unconfirmed, 12C04567 paired
    def settled() -> bool:
        return gauge(w, "gate_vehicles_unconfirmed", gate="huu-nghi",
                     direction="export") == 1 and \
            gauge(w, "gate_vehicles_paired", gate="huu-nghi", direction="export") == 1
    poll(settled, 60, "one unconfirmed and one paired vehicle", alive=w.check_alive,
         progress=lambda: str({k: v for k, v in w.metrics().items()
                               if k[0].startswith(("gate_vehicles_", "gate_camera_"))}))
    assert gauge(w, "gate_vehicles_waiting", gate="huu-nghi", direction="export") == 2
    assert gauge(w, "gate_vehicles_unconfirmed", gate="huu-nghi", direction="import") == 0
    doc = gate_doc(w)
    assert doc["waiting"] == {"total": 2, "export": 2, "import": 0}
    assert doc["unconfirmed"] == {"total": 1, "export": 1, "import": 0}
    assert doc["paired"] == {"total": 1, "export": 1, "import": 0}
    cams = {c["camera"]: c for c in doc["data_quality"]["cameras"]}
    assert cams["export-gate"]["last_day"]["unmatched"] >= 1
    assert cams["export-gate"]["last_day"]["paired"] == 1
    assert gauge(w, "gate_camera_paired", gate="huu-nghi", camera="export-gate",
                 window="24h") == 1

    # the pairing is audited on gate.reconciliations, keyed by gate, plates normalised
    records = [orjson.loads(r.value) for r in read_all(
        bootstrap, f"{test_id}-gate.reconciliations", expect=2, timeout=30)]
    paired = [r for r in records if r["kind"] == "paired"]
    assert paired, records
    assert set(paired[-1]["plates"]) == {"12C04567", "12CO4567"}
    assert paired[-1]["gate_id"] == "huu-nghi" and paired[-1]["reason"]
    # plates are for the audit topic only: never a metric label
    text = w.metrics_text() or ""
    assert "12C" not in text and "51D" not in text

    # M read again (a queue camera sees it): back in the backlog
    produce(bootstrap, events, [message(ev("51D-99999", "queued", t0 + 45 * MIN,
                                           event_id="missed-again"))])
    poll(lambda: gauge(w, "gate_vehicles_waiting", gate="huu-nghi", direction="export") == 3,
         30, "the unconfirmed vehicle back in the backlog", alive=w.check_alive)
    assert gauge(w, "gate_vehicles_unconfirmed", gate="huu-nghi", direction="export") == 0

    # a count observation: the yard sensor counts 1 export truck, the ledger holds 3
    counts = f"{test_id}-gate.counts"
    assert gauge(w, "gate_count_discrepancy", gate="huu-nghi", direction="export") is None
    obs = CountObservation("yard-1", "huu-nghi", "export", 1, t0 + 50 * MIN, "yard_sensor")
    bad = orjson.dumps({"observation_id": "yard-2", "gate_id": "huu-nghi",
                        "direction": "export", "count": "three",
                        "occurred_at": "2021-12-20T08:00:00+07:00", "source": "yard_sensor"})
    produce(bootstrap, counts, [(b"huu-nghi", encode_count(obs)), (b"huu-nghi", bad)])
    poll(lambda: gauge(w, "gate_count_discrepancy", gate="huu-nghi", direction="export") == 2,
         30, "gate_count_discrepancy = 3 − 1", alive=w.check_alive)
    assert gauge(w, "gate_count_observed", gate="huu-nghi", direction="export") == 1
    (check,) = gate_doc(w)["data_quality"]["count_checks"]
    assert (check["observed"], check["ledger"], check["discrepancy"],
            check["source"]) == (1, 3, 2, "yard_sensor")

    # the bad count message is dead-lettered with its bytes, reason and source
    (dead,) = read_all(bootstrap, f"{test_id}-gate.events.rejected", expect=1, timeout=30)
    headers = dict(dead.headers)
    assert dead.value == bad
    assert headers["gatewatch-reason"] == b"wrong_type"
    assert headers["gatewatch-source"].startswith(counts.encode() + b"/")
    assert gauge(w, "gatewatch_events_rejected_total", reason="wrong_type") == 1

    # a restart keeps the count check (read back from gate.counts), sends no dead letter
    # twice, and the set-aside vehicles are set aside again from the restored state
    w.stop()
    w2 = worker_factory(GATEWATCH_GATES=str(gates),
                        GATEWATCH_UNCONFIRMED_MIN_OVERTAKES=str(OVERTAKES))
    w2.wait_ready(90)
    poll(lambda: gauge(w2, "gate_count_discrepancy", gate="huu-nghi", direction="export") == 2,
         30, "the count check back after the restart", alive=w2.check_alive)
    assert gauge(w2, "gate_vehicles_waiting", gate="huu-nghi", direction="export") == 3
    assert gauge(w2, "gate_vehicles_paired", gate="huu-nghi", direction="export") == 1
    assert len(read_all(bootstrap, f"{test_id}-gate.events.rejected", expect=2,
                        timeout=5)) == 1
