"""Deployment files, checked without Docker or Kubernetes (neither runs here): they parse,
images are pinned, probes point at endpoints the worker really serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def served_paths() -> set[str]:
    text = "".join(p.read_text() for p in (ROOT / "gatewatch").rglob("*.py"))
    return set(re.findall(r'@app\.page\("([^"]+)"\)', text))


def test_compose_services_and_pinned_images():
    doc = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"kafka", "worker-1", "worker-2", "notify", "prometheus", "alertmanager",
            "grafana"} <= set(services)
    for name, svc in services.items():
        image = svc.get("image", "")
        assert image and ":" in image and not image.endswith(":latest"), name
    for name in ("worker-1", "worker-2", "prometheus", "alertmanager", "grafana"):
        for port in services[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for svc in services.values():
        for vol in svc.get("volumes", []):
            if vol.startswith("."):
                src = (DEPLOY / "compose" / vol.split(":")[0]).resolve()
                assert src.exists(), f"missing {src}"


def test_kubernetes_probes_hit_real_endpoints():
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "gatewatch.yaml").read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceMonitor"} <= kinds
    dep = next(d for d in docs if d["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert not container["image"].endswith(":latest")
    paths = served_paths()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics" in paths


def test_dockerfile_is_pinned_and_unprivileged():
    text = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1))
    assert "USER gatewatch" in text and 'ENTRYPOINT ["gatewatch"]' in text
    assert "/healthz" in text


def test_workers_advertise_an_address_their_peers_can_reach():
    """Workers bind 0.0.0.0 in a container; the API forwards requests for other workers'
    gates to each peer's advertised URL, so each must advertise its own reachable name."""
    doc = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    services = doc["services"]
    workers = [n for n, s in services.items() if s.get("command") == ["worker"]]
    assert len(workers) >= 2
    for name in workers:
        env = services[name]["environment"]
        assert env["GATEWATCH_WEB_HOST"] == "0.0.0.0"
        assert env["GATEWATCH_ADVERTISED_HOST"] == name, name
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "gatewatch.yaml").read_text()))
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] >= 2
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GATEWATCH_ADVERTISED_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "status.podIP"
