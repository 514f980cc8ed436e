"""Alert latency: the threshold-crossing event entering Kafka → the webhook receiving it.

What it measures
    Starts an embedded broker, a worker (raise/clear hold 0, so the figure is the
    pipeline's own delay, not the configured hold) and `gatewatch notify` with a webhook
    to a local receiver. Each run fills a gate to one below its warning threshold,
    then times until the moment the
    receiver gets the `fired` record, timed from the broker's acknowledgement of the
    crossing event; then drains the queue and waits for `resolved`.
    The path: consumer → core → evaluation of the gates the batch touched → gate.alerts
    → `gatewatch notify` → HTTP. (Hold expiries and no-data are evaluated every second.)
    Add the configured GATEWATCH_ALERT_RAISE_HOLD_SECONDS (default 60 s) for production.

Run (from the repo root):
    .venv/bin/python bench/alert_latency.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gatewatch.tools.broker import EmbeddedBroker  # noqa: E402
from tests.support import (  # noqa: E402
    Service,
    WebhookReceiver,
    WorkerProc,
    ev,
    free_port,
    message,
    poll,
    produce,
)

GATES = """version: 1
gates:
  - id: huu-nghi
    name: "Cửa khẩu Quốc tế Hữu Nghị"
    yard_capacity: 1000
    thresholds: {warning: 50, critical: 500}
"""


def waiting(w: WorkerProc) -> int:
    body = w.metrics_text(1)
    if body is None:
        return -1
    line = 'gate_vehicles_waiting{direction="export",gate="huu-nghi"} '
    i = body.find(line)
    return -1 if i < 0 else int(float(body[i + len(line):body.index("\n", i)]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    services: list[WorkerProc | Service] = []
    latencies: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp, WebhookReceiver() as hook:
            (Path(tmp) / "gates.yaml").write_text(GATES)
            env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=broker.bootstrap,
                       GATEWATCH_GATES=str(Path(tmp) / "gates.yaml"),
                       GATEWATCH_APP_ID="alert-bench", GATEWATCH_ALERT_RAISE_HOLD_SECONDS="0",
                       GATEWATCH_ALERT_CLEAR_HOLD_SECONDS="0")
            log = Path(tmp) / "log"
            w = WorkerProc(env, free_port(), log, stop_grace=20).start()
            services.append(w)
            services.append(Service([sys.executable, "-m", "gatewatch", "notify",
                                     "--webhook-url", hook.url], log, env=env))
            w.wait_ready(60)
            n = 0

            def event(etype: str, vehicle: int) -> tuple[bytes, bytes]:
                """`etype` for vehicle V<vehicle>, now."""
                nonlocal n
                n += 1
                return message(ev(f"V{vehicle}", etype, int(time.time() * 1000),
                                  event_id=f"e{n}", cargo=None))

            def changes() -> list[str]:
                return [b["change"] for b in hook.bodies]

            for run in range(args.runs):
                base = run * 1000
                produce(broker.bootstrap, "gate.events", [event("queued", base + i)
                                                          for i in range(49)])
                poll(lambda: waiting(w) == 49, 30, "49 waiting", 0.005)
                before = len(hook.bodies)
                produce(broker.bootstrap, "gate.events", [event("queued", base + 49)])
                t0 = time.monotonic()  # the broker has acknowledged it: it is in Kafka
                poll(lambda b=before: "fired" in changes()[b:], 30, "fired", 0.005)
                latencies.append(time.monotonic() - t0)
                print(f"run {run + 1}: fired after {latencies[-1] * 1000:.0f} ms", flush=True)
                produce(broker.bootstrap, "gate.events", [event("crossed", base + i)
                                                          for i in range(50)])
                poll(lambda b=before: "resolved" in changes()[b:], 30, "resolved", 0.005)
    finally:
        for service in services:
            service.stop()
        broker.stop()
    result = {"runs": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000),
              "max_ms": round(max(latencies) * 1000), "min_ms": round(min(latencies) * 1000)}
    print(f"\nthreshold-crossing event → webhook: p50 {result['p50_ms']} ms, "
          f"min {result['min_ms']} ms, max {result['max_ms']} ms over {result['runs']} runs "
          "(hold times 0; add GATEWATCH_ALERT_RAISE_HOLD_SECONDS)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
