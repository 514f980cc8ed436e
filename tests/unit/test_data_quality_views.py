"""The data-quality outputs (issue 12) read the gate's signals: vehicles set aside by
reconciliation, camera quality and count checks become bounded metrics, API fields that
match the OpenAPI document, and worker effects (audit records on gate.reconciliations,
dead letters for bad count messages).

The metric and API tests give a real processor's signals set-aside vehicles, cameras and
count checks (``WithQuality``: the core's numbers replaced by known ones), so each output
is checked against exact values; tests/integration/test_data_quality.py drives the
reconciliation itself through a real worker."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
from openapi_schema_validator import OAS30Validator
from prometheus_client import CollectorRegistry

from gatewatch.agents.app import create_app
from gatewatch.core.processor import Effects, Processor, SourceRecord
from gatewatch.core.reconcile import Pairing
from gatewatch.core.signals import CAMERAS, CameraQuality, CountCheck, GateSignals
from gatewatch.gates import load_gates
from gatewatch.settings import Settings
from gatewatch.streams.codec import encode_count, format_ms
from gatewatch.streams.records import CountObservation
from gatewatch.web.api import gate_doc, openapi
from gatewatch.web.metrics import GateCollector, GatewatchMetrics
from tests.support import MIN, T0, ev, gates, message

NOW = T0 + 10 * MIN


class WithQuality(Processor):
    """A processor whose signals carry the given data-quality fields per gate."""

    def __init__(self, quality: dict[str, dict[str, Any]]) -> None:
        super().__init__(gates(), Settings(no_data_seconds=3600))
        self.quality = quality

    def signals(self, gate_id: str, now_ms: int) -> GateSignals:
        return replace(super().signals(gate_id, now_ms), **self.quality.get(gate_id, {}))


QUALITY = {"huu-nghi": dict(
    unconfirmed_export=3, unconfirmed_import=1, paired_export=2,
    cameras=(CameraQuality("export-gate", 40, 10, 6, 900, 45, 30),
             CameraQuality("export-queue", 0, 0, 0, 800, 3, 0)),
    count_checks=(CountCheck("export", 7, "yard_sensor", T0 + 5 * MIN, 12),))}


def _processor() -> WithQuality:
    proc = WithQuality(QUALITY)
    proc.apply_batch([SourceRecord("gate.events", 0, i, T0, *message(
        ev(f"29C-{i:05d}", "queued", T0 + i * 1000))) for i in range(3)], T0)
    return proc


def test_set_aside_vehicles_cameras_and_count_checks_are_metrics_with_bounded_labels():
    registry = CollectorRegistry()
    GatewatchMetrics(registry, gates())
    registry.register(GateCollector(_processor(), lambda: NOW))
    get = registry.get_sample_value
    hn = {"gate": "huu-nghi"}
    assert get("gate_vehicles_unconfirmed", hn | {"direction": "export"}) == 3
    assert get("gate_vehicles_unconfirmed", hn | {"direction": "import"}) == 1
    assert get("gate_vehicles_paired", hn | {"direction": "export"}) == 2
    assert get("gate_vehicles_paired", hn | {"direction": "import"}) == 0
    gate_cam = hn | {"camera": "export-gate"}
    assert get("gate_camera_reads", gate_cam | {"window": "1h"}) == 40
    assert get("gate_camera_unmatched", gate_cam | {"window": "1h"}) == 10
    assert get("gate_camera_paired", gate_cam | {"window": "24h"}) == 30
    assert get("gate_camera_unmatched_ratio", gate_cam | {"window": "1h"}) == 0.25
    assert get("gate_camera_unmatched_ratio", gate_cam | {"window": "24h"}) == 0.05
    # no reads in the hour: no ratio (not 0), the counts are still there
    queue_cam = hn | {"camera": "export-queue", "window": "1h"}
    assert get("gate_camera_unmatched_ratio", queue_cam) is None
    assert get("gate_camera_reads", queue_cam) == 0
    assert get("gate_camera_paired", queue_cam) is None  # a queue-end read is never paired
    # the count check: ledger 12 − observed 7, and when it was observed
    assert get("gate_count_observed", hn | {"direction": "export"}) == 7
    assert get("gate_count_discrepancy", hn | {"direction": "export"}) == 5
    assert get("gate_count_observed_timestamp_seconds",
               hn | {"direction": "export"}) == (T0 + 5 * MIN) / 1000
    assert get("gate_count_discrepancy", hn | {"direction": "import"}) is None  # no check
    # a gate without data or state: nothing set aside is shown as 0, nothing at all
    tt = {"gate": "tan-thanh", "direction": "export"}
    assert get("gate_vehicles_unconfirmed", tt) is None
    assert get("gate_count_discrepancy", tt) is None
    for metric in registry.collect():
        for sample in metric.samples:
            if "camera" in sample.labels:
                assert sample.labels["camera"] in CAMERAS
                assert sample.labels["window"] in ("1h", "24h")
                assert set(sample.labels) == {"gate", "camera", "window"}


def test_the_gate_document_shows_set_aside_vehicles_and_data_quality_as_documented():
    proc = _processor()
    doc = gate_doc(proc.gates.get("huu-nghi"), proc.signals("huu-nghi", NOW),
                   proc.alerts["huu-nghi"])
    assert doc["waiting"]["total"] == 3
    assert doc["unconfirmed"] == {"total": 4, "export": 3, "import": 1}
    assert doc["paired"] == {"total": 2, "export": 2, "import": 0}
    cams = {c["camera"]: c for c in doc["data_quality"]["cameras"]}
    assert cams["export-gate"]["last_hour"] == {"reads": 40, "unmatched": 10, "paired": 6,
                                                "unmatched_share": 0.25}
    assert cams["export-queue"]["last_hour"]["unmatched_share"] is None
    assert doc["data_quality"]["count_checks"] == [{
        "direction": "export", "observed": 7, "source": "yard_sensor",
        "observed_at": format_ms(T0 + 5 * MIN), "ledger": 12, "discrepancy": 5}]
    silent = gate_doc(proc.gates.get("tan-thanh"), proc.signals("tan-thanh", NOW),
                      proc.alerts["tan-thanh"])
    assert silent["unconfirmed"] is None and silent["paired"] is None  # no data, not 0
    assert silent["data_quality"] == {"cameras": [], "count_checks": []}
    spec = openapi("1")
    schema = spec["components"]["schemas"]["Gate"] | {"components": spec["components"]}
    for d in (doc, silent):
        OAS30Validator(schema).validate(orjson.loads(orjson.dumps(d)))
    no_plates = orjson.dumps(doc).decode()
    assert "29C" not in no_plates


class Recorder:
    """Stands in for a Faust topic: records what is sent (no broker in unit tests)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_soon(self, **kw: Any) -> None:
        self.sent.append(kw)

    async def send(self, **kw: Any) -> None:
        self.sent.append(kw)


def _worker() -> Any:
    worker = create_app(Settings.from_env({}), load_gates(None), registry=CollectorRegistry())
    worker.rejected_topic, worker.reconciliations_topic = Recorder(), Recorder()
    return worker


def test_reconciliation_records_are_published_keyed_by_gate():
    worker = _worker()
    pairing = Pairing("12C04567", "12CO4567", T0 + MIN, 0, "confusion 0/O")
    fx = Effects(reconciliations=[("huu-nghi", "paired", pairing),
                                  ("huu-nghi", "unpaired", pairing)])
    asyncio.run(worker.carry_out(fx))
    sent = worker.reconciliations_topic.sent
    assert [s["key"] for s in sent] == [b"huu-nghi", b"huu-nghi"]
    assert orjson.loads(sent[0]["value"]) == {
        "gate_id": "huu-nghi", "kind": "paired", "direction": "export",
        "plates": ["12C04567", "12CO4567"], "waiting_plate": "12C04567",
        "unmatched_plate": "12CO4567", "reason": "confusion 0/O",
        "at": format_ms(T0 + MIN)}
    assert orjson.loads(sent[1]["value"])["kind"] == "unpaired"
    assert worker.registry.get_sample_value("gatewatch_reconciliations_published_total") == 2


def test_count_messages_are_read_and_bad_ones_dead_lettered_with_their_reason():
    worker = _worker()
    counts = worker.topics.counts
    good = encode_count(CountObservation("obs-1", "huu-nghi", "export", 5, T0, "manual"))
    bad = orjson.dumps({"observation_id": "obs-2", "gate_id": "huu-nghi",
                        "direction": "export", "count": -3,
                        "occurred_at": format_ms(T0), "source": "manual"})

    class Msg:
        def __init__(self, offset: int, value: bytes) -> None:
            self.topic, self.partition, self.offset, self.timestamp = counts, 0, offset, T0
            self.key, self.value = b"huu-nghi", value

    worker.wall_ms = lambda: T0 + MIN
    asyncio.run(worker.process([Msg(0, good), Msg(1, bad), Msg(2, b"{not json")]))
    reasons = [dict(d["headers"])["gatewatch-reason"] for d in worker.rejected_topic.sent]
    assert reasons == [b"invalid_value", b"not_json"]
    assert [d["value"] for d in worker.rejected_topic.sent] == [bad, b"{not json"]
    checks = worker.processor.signals("huu-nghi", T0 + MIN).count_checks
    assert [(c.direction, c.observed, c.source) for c in checks] == [("export", 5, "manual")]
    assert worker.registry.get_sample_value("gatewatch_count_observations_total") == 1
    assert worker.registry.get_sample_value("gatewatch_events_rejected_total",
                                            {"reason": "invalid_value"}) == 1


def test_both_dashboards_show_data_quality():
    from gatewatch.tools.dashboards import build_all, panel_queries

    built = build_all()
    wall = " ".join(q for _t, q in panel_queries(built["gatewatch-wall"]))
    gate = " ".join(q for _t, q in panel_queries(built["gatewatch-gate"]))
    for name in ("gate_camera_unmatched_ratio", "gate_vehicles_unconfirmed"):
        assert name in wall and name in gate
    for name in ("gate_vehicles_paired", "gate_count_discrepancy"):
        assert name in gate


def test_the_wall_flags_a_camera_at_the_data_quality_alerts_floor():
    """wall.html's marker thresholds are the data_quality alert's (without its hold)."""
    import re

    from gatewatch.core.congestion import DQ_MIN_READS, DQ_MIN_SHARE
    from tests.support import ROOT

    page = (ROOT / "gatewatch/data/wall.html").read_text(encoding="utf-8")
    found = re.search(r"const DQ_SHARE = ([0-9.]+), DQ_MIN_READS = ([0-9]+);", page)
    assert found is not None
    assert (float(found[1]), int(found[2])) == (DQ_MIN_SHARE, DQ_MIN_READS)
