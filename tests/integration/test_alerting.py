"""Alerts end to end with the real binaries: worker → gate.alerts → `gatewatch notify` →
Alertmanager → webhook, and Prometheus's own rule for a stopped worker."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from tests.support import (
    OUTPUT,
    ROOT,
    Service,
    WebhookReceiver,
    binary,
    ev,
    free_port,
    gates_yaml,
    message,
    poll,
    produce,
    start_prometheus,
    wait_http_ready,
)

pytestmark = pytest.mark.integration

GATES = gates_yaml({"huu-nghi": "{warning: 5, critical: 10, warning_clear: 3, critical_clear: 8}"})


@contextlib.contextmanager
def run_alertmanager(tmp_path: Path, test_id: str, hook: WebhookReceiver,
                     port: int | None = None) -> Iterator[str]:
    """Real Alertmanager on a loopback port (``port`` or a free one), routing everything
    to ``hook``; yields its URL once ready."""
    exe = binary("prometheus-alertmanager")
    cfg = {
        "route": {"receiver": "test", "group_by": ["alertname", "gate", "severity"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "inhibit_rules": [{"source_matchers": ['severity="critical"'],
                           "target_matchers": ['severity="warning"'],
                           "equal": ["gate", "kind"]}],
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": hook.url, "send_resolved": True}]}],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(cfg))
    port = port or free_port()
    svc = Service([str(exe), f"--config.file={tmp_path / 'am.yml'}",
                   f"--storage.path={tmp_path / 'am-data'}",
                   f"--web.listen-address=127.0.0.1:{port}",
                   "--cluster.listen-address="], OUTPUT / f"{test_id}-alertmanager.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(url, 30, "alertmanager ready")
        yield url
    finally:
        svc.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, test_id: str) -> Iterator[tuple[str, WebhookReceiver]]:
    """Real Alertmanager on a loopback port, routing everything to a test receiver."""
    with WebhookReceiver() as hook, run_alertmanager(tmp_path, test_id, hook) as url:
        yield url, hook


def queued(i: int, t_ms: int) -> tuple[bytes, bytes]:
    """Vehicle ``i`` (51C-0000i) queues at Hữu Nghị."""
    return message(ev(f"51C-{i:05d}", "queued", t_ms, event_id=f"q{i}"))


def crossed(i: int, t_ms: int) -> tuple[bytes, bytes]:
    """Vehicle ``i`` crosses (sent without cargo)."""
    return message(ev(f"51C-{i:05d}", "crossed", t_ms, event_id=f"c{i}", cargo=None))


def am_alerts(hook: WebhookReceiver) -> list[tuple[str, str, str]]:
    """(status, alertname, severity) of every alert Alertmanager delivered, in order."""
    return [(a["status"], a["labels"]["alertname"], a["labels"].get("severity", ""))
            for body in hook.bodies for a in body["alerts"]]


def test_threshold_crossing_reaches_the_receiver_through_alertmanager_and_resolves(
        bootstrap, worker_factory, test_id, tmp_path, alertmanager):
    am_url, hook = alertmanager
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    # cargo keeps 5 s here: the first 7 trucks, queued a second apart, have waited 6 s
    # while nothing cleared, so the shipment advisory goes to hold_shipments too
    w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_ALERT_RAISE_HOLD_SECONDS="1",
                       GATEWATCH_ALERT_CLEAR_HOLD_SECONDS="2",
                       GATEWATCH_ADVISORY_RAISE_HOLD_SECONDS="1",
                       GATEWATCH_ADVISORY_CLEAR_HOLD_SECONDS="2",
                       GATEWATCH_PERISHABLE_MAX_WAIT_SECONDS="5")
    notify = Service([sys.executable, "-m", "gatewatch", "notify", "--alertmanager-url",
                      am_url, "--resend-seconds", "5"], OUTPUT / f"{test_id}-notify.log",
                     env=w.env)
    try:
        w.wait_ready()
        now = int(time.time() * 1000)
        produce(bootstrap, f"{test_id}-gate.events", [queued(i, now - 60_000 + i * 1000)
                                                      for i in range(7)])
        poll(lambda: ("firing", "GateCongestion", "warning") in am_alerts(hook), 60,
             "firing warning at the receiver")
        # escalation: 12 waiting > critical 10
        produce(bootstrap, f"{test_id}-gate.events", [queued(i, now - 50_000 + i) for i in
                                                      range(7, 12)])
        poll(lambda: ("firing", "GateCongestion", "critical") in am_alerts(hook), 60,
             "firing critical at the receiver")
        # drain the queue: resolved
        produce(bootstrap, f"{test_id}-gate.events", [crossed(i, now + i) for i in range(12)])
        poll(lambda: ("resolved", "GateCongestion", "critical") in am_alerts(hook), 60,
             "resolved at the receiver")
        # the shipment advisory went the same way: trucks waiting longer than the cargo
        # keeps, nothing cleared → hold_shipments; the queue drained → normal, resolved
        poll(lambda: ("resolved", "GateShipmentAdvisory", "critical") in am_alerts(hook), 60,
             "the shipment advisory resolved at the receiver")
        adv = next(a for body in hook.bodies for a in body["alerts"]
                   if a["labels"]["alertname"] == "GateShipmentAdvisory")
        assert adv["status"] == "firing" and adv["labels"]["direction"] == "export"
        assert adv["labels"]["advice"] == "hold_shipments"
        assert adv["annotations"]["summary"].startswith("[HOLD SHIPMENTS]")
        assert "TẠM DỪNG GỬI HÀNG" in adv["annotations"]["summary_vi"]
        alert = next(a for body in hook.bodies for a in body["alerts"]
                     if a["labels"]["severity"] == "critical")
        assert alert["labels"]["gate"] == "huu-nghi"
        assert "Hữu Nghị" in alert["annotations"]["summary_vi"]
        assert "vehicles waiting" in alert["annotations"]["summary"]
        firing = [x for x in am_alerts(hook) if x == ("firing", "GateCongestion", "critical")]
        assert len(firing) == 1  # one notification per incident and level
    finally:
        notify.stop()


def test_prometheus_rule_fires_for_a_stopped_worker(bootstrap, worker_factory, test_id,
                                                     tmp_path, alertmanager):
    am_url, hook = alertmanager
    binary("prometheus")
    w = worker_factory()
    w.wait_ready()
    rules = (ROOT / "deploy" / "prometheus" / "gatewatch-rules.yml").read_text()
    (tmp_path / "gatewatch-rules.yml").write_text(rules.replace(
        "expr: up{job=\"gatewatch\"} == 0\n        for: 1m", "expr: up{job=\"gatewatch\"} == 0\n"
        "        for: 2s"))
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [str(tmp_path / "gatewatch-rules.yml")],
           "alerting": {"alertmanagers": [{"static_configs": [
               {"targets": [am_url.removeprefix("http://")]}]}]},
           "scrape_configs": [{"job_name": "gatewatch", "static_configs": [
               {"targets": [f"127.0.0.1:{w.port}"]}]}]}
    prom, prom_url = start_prometheus(tmp_path, test_id, cfg)
    try:
        import urllib.request

        def scraped_up() -> bool:
            try:
                with urllib.request.urlopen(f"{prom_url}/api/v1/query?query=up",
                                            timeout=2) as r:
                    res = orjson.loads(r.read())["data"]["result"]
            except OSError:
                return False
            return any(x["value"][1] == "1" for x in res)
        poll(scraped_up, 60, "prometheus scraping the worker")
        os.kill(w.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        poll(lambda: ("firing", "GatewatchWorkerDown", "critical") in am_alerts(hook), 60,
             "GatewatchWorkerDown at the receiver")
    finally:
        prom.stop()


def test_webhook_down_for_a_while_loses_no_alert(bootstrap, test_id):
    """Records already on gate.alerts while the receiver is down are all delivered, in
    order, once it is back (the notifier retries with back-off)."""
    port = free_port()
    records = [orjson.dumps({"alert_id": "huu-nghi:congestion", "seq": i, "state": "firing",
                             "kind": "congestion", "gate_id": "huu-nghi"}) for i in range(5)]
    produce(bootstrap, f"{test_id}-gate.alerts", [(b"huu-nghi", r) for r in records])
    env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap,
               GATEWATCH_TOPIC_PREFIX=f"{test_id}-", GATEWATCH_APP_ID=f"{test_id}-app")
    log = OUTPUT / f"{test_id}-notify.log"
    notify = Service([sys.executable, "-m", "gatewatch", "notify", "--webhook-url",
                      f"http://127.0.0.1:{port}/hook"], log, env=env)
    try:
        poll(lambda: log.read_text().count("retrying in") >= 3, 60,
             "the notifier retrying against the dead receiver")
        with WebhookReceiver(port=port, fail_first=2) as hook:  # back, but flaky at first
            poll(lambda: len(hook.bodies) >= 5, 60, "all records delivered")
            assert [b["seq"] for b in hook.bodies] == [0, 1, 2, 3, 4]
    finally:
        notify.stop()


def test_oscillating_backlog_gives_one_notification_per_change(bootstrap, worker_factory,
                                                                test_id, tmp_path):
    """Direct webhook path: fire once, ignore oscillation inside the hysteresis band,
    escalate once, resolve once; every record carries what a coordinator needs."""
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_ALERT_RAISE_HOLD_SECONDS="1",
                       GATEWATCH_ALERT_CLEAR_HOLD_SECONDS="2")
    with WebhookReceiver() as hook:
        notify = Service([sys.executable, "-m", "gatewatch", "notify", "--webhook-url",
                          hook.url], OUTPUT / f"{test_id}-notify.log", env=w.env)
        try:
            w.wait_ready()
            topic = f"{test_id}-gate.events"
            now = int(time.time() * 1000) - 60_000

            def changes() -> list[str]:
                return [b["change"] for b in hook.bodies]

            def waiting_is(n: int) -> bool:
                m = w.metrics()
                return m.get(("gate_vehicles_waiting", frozenset(
                    {("gate", "huu-nghi"), ("direction", "export")}))) == n

            produce(bootstrap, topic, [queued(i, now + i) for i in range(6)])  # 6 ≥ 5
            poll(lambda: changes() == ["fired"], 30, "fired")
            for k in range(3):  # oscillate 6 → 4 → 6: 4 is above warning_clear (3)
                base = 100 + 10 * k
                produce(bootstrap, topic, [crossed(i, now + base + i) for i in
                                           range(2 * k, 2 * k + 2)])
                poll(lambda: waiting_is(4), 30, "4 waiting")
                produce(bootstrap, topic, [queued(i, now + base + 5 + i) for i in
                                           range(20 + 2 * k, 22 + 2 * k)])
                poll(lambda: waiting_is(6), 30, "6 waiting")
            produce(bootstrap, topic, [queued(i, now + 300 + i) for i in range(40, 46)])  # 12
            poll(lambda: changes() == ["fired", "escalated"], 30, "escalated")
            waiting_now = [b["waiting"] for b in hook.bodies]
            produce(bootstrap, topic, [crossed(i, now + 400 + i) for i in
                                       [*range(20, 26), *range(40, 46)]])  # all 12 leave
            poll(lambda: changes() == ["fired", "escalated", "resolved"], 30, "resolved")
            assert waiting_now == [6, 12]
            for body in hook.bodies:
                assert body["gate_id"] == "huu-nghi" and body["kind"] == "congestion"
                assert "estimated_wait_seconds" in body and body["message"]["vi"]
                assert body["message"]["en"]
            assert [b["severity"] for b in hook.bodies] == ["warning", "critical", "critical"]
        finally:
            notify.stop()


def test_receivers_down_while_counting_then_alerts_delivered(bootstrap, worker_factory,
                                                            test_id, tmp_path):
    """Webhook receiver and Alertmanager both unreachable while a backlog builds: the
    worker keeps counting exactly; once they are back the notifier delivers the alert
    to both (it kept its place on gate.alerts and retried)."""
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    hook_port, am_port = free_port(), free_port()
    w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_ALERT_RAISE_HOLD_SECONDS="0")
    log = OUTPUT / f"{test_id}-notify.log"
    notify = Service([sys.executable, "-m", "gatewatch", "notify",
                      "--webhook-url", f"http://127.0.0.1:{hook_port}/hook",
                      "--alertmanager-url", f"http://127.0.0.1:{am_port}"], log, env=w.env)
    try:
        w.wait_ready()
        topic = f"{test_id}-gate.events"
        now = int(time.time() * 1000) - 60_000

        def waiting() -> float | None:
            return w.metrics().get(("gate_vehicles_waiting", frozenset(
                {("gate", "huu-nghi"), ("direction", "export")})))
        for step in range(4):  # 3 vehicles per step: 3, 6 (warning), 9, 12 (critical)
            produce(bootstrap, topic, [queued(i, now + i) for i in range(3 * step, 3 * step + 3)])
            poll(lambda n=3 * step + 3: waiting() == n, 30,  # type: ignore[misc]
                 f"{3 * step + 3} waiting while the receivers are down")
        poll(lambda: log.read_text().count("retrying in") >= 2, 60,
             "the notifier retrying against the dead receivers")
        assert notify.proc.poll() is None
        with WebhookReceiver(port=hook_port) as hook, WebhookReceiver() as am_hook, \
                run_alertmanager(tmp_path, test_id, am_hook, port=am_port):
            poll(lambda: [b["change"] for b in hook.bodies] == ["fired", "escalated"], 60,
                 "the webhook gets the alert's changes, in order, once it is back")
            poll(lambda: ("firing", "GateCongestion", "critical") in am_alerts(am_hook), 60,
                 "Alertmanager gets the critical alert once it is back")
        assert waiting() == 12
    finally:
        notify.stop()
