"""Subscriptions end to end: a subscribers file → `gatewatch alertmanager-config` → a real
Alertmanager loaded with the result; a real worker raises an alert at Hữu Nghị and
`gatewatch notify` pushes it. The Hữu Nghị subscriber's webhook gets it (firing, then
resolved); the Tân Thanh subscriber's does not; a Hữu Nghị subscriber in quiet hours (a
range around the current local time) gets nothing either. E-mail and Telegram cannot be
reached from here: their receivers are checked by amtool in tests/deploy."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

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
    wait_http_ready,
)

pytestmark = pytest.mark.integration

GATES = gates_yaml({"huu-nghi": "{warning: 5, critical: 10}",
                    "tan-thanh": "{warning: 5, critical: 10}"})


def quiet_now() -> str:
    """A local (Asia/Ho_Chi_Minh) range from 2 h ago to 2 h ahead."""
    now = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    return f"{(now - timedelta(hours=2)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"


def statuses(hook: WebhookReceiver) -> list[tuple[str, str]]:
    return [(a["status"], a["labels"]["gate"]) for b in hook.bodies for a in b["alerts"]]


def test_a_subscriber_gets_its_gates_alert_through_a_real_alertmanager(
        bootstrap, worker_factory, test_id, tmp_path):
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    with WebhookReceiver() as hn, WebhookReceiver() as tt, WebhookReceiver() as quiet:
        subs = tmp_path / "subscribers.yaml"
        subs.write_text(f"""version: 1
timezone: Asia/Ho_Chi_Minh
subscribers:
  - {{name: huu-nghi-desk, channel: {{type: webhook, url: "{hn.url}"}}, gates: [huu-nghi]}}
  - {{name: tan-thanh-desk, channel: {{type: webhook, url: "{tt.url}"}}, gates: [tan-thanh]}}
  - name: night-desk
    channel: {{type: webhook, url: "{quiet.url}"}}
    gates: [huu-nghi]
    quiet_hours: ["{quiet_now()}"]
""")
        am_yml = tmp_path / "am.yml"
        proc = subprocess.run([sys.executable, "-m", "gatewatch", "alertmanager-config",
                               "--subscribers", str(subs), "--out", str(am_yml)],
                              capture_output=True, text=True, cwd=ROOT,
                              env={"GATEWATCH_GATES": str(gates), "PATH": "/usr/bin:/bin",
                                   "PYTHONPATH": ":".join(sys.path)})
        assert proc.returncode == 0, proc.stderr
        # the generated timings, shortened so the test does not wait 10 s per group
        am_yml.write_text(am_yml.read_text().replace("group_wait: 10s", "group_wait: 1s")
                          .replace("group_interval: 1m", "group_interval: 1s"))
        port = free_port()
        am = Service([str(binary("prometheus-alertmanager")), f"--config.file={am_yml}",
                      f"--storage.path={tmp_path / 'am-data'}",
                      f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                     OUTPUT / f"{test_id}-alertmanager.log")
        w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_ALERT_RAISE_HOLD_SECONDS="1",
                           GATEWATCH_ALERT_CLEAR_HOLD_SECONDS="2")
        notify = Service([sys.executable, "-m", "gatewatch", "notify", "--alertmanager-url",
                          f"http://127.0.0.1:{port}", "--resend-seconds", "5"],
                         OUTPUT / f"{test_id}-notify.log", env=w.env)
        try:
            wait_http_ready(f"http://127.0.0.1:{port}", 30, "alertmanager ready")
            w.wait_ready()
            now = int(time.time() * 1000)
            topic = f"{test_id}-gate.events"
            produce(bootstrap, topic, [message(ev(f"30A-{i:05d}", "queued", now - 60_000 + i,
                                                  event_id=f"q{i}")) for i in range(7)])
            poll(lambda: ("firing", "huu-nghi") in statuses(hn), 60,
                 "the Hữu Nghị subscriber notified")
            [alert] = [a for b in hn.bodies for a in b["alerts"]]
            assert alert["labels"]["cargo"] == "all" and alert["labels"]["direction"] == "all"
            assert "Hữu Nghị" in alert["annotations"]["summary_vi"]
            produce(bootstrap, topic, [message(ev(f"30A-{i:05d}", "crossed", now + i,
                                                  event_id=f"c{i}", cargo=None))
                                       for i in range(7)])
            poll(lambda: ("resolved", "huu-nghi") in statuses(hn), 60,
                 "the Hữu Nghị subscriber told it resolved")
            # both other routes flushed in the same rounds as the first one did
            assert tt.bodies == [], "Tân Thanh's subscriber got a Hữu Nghị alert"
            assert quiet.bodies == [], "a subscriber in quiet hours was notified"
        finally:
            notify.stop()
            am.stop()
