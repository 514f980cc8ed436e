"""The Prometheus rules and the Alertmanager config are tested with the real tools
(Debian's promtool and amtool, unpacked into ./tools by `make tools`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "tools" / "root" / "usr" / "bin"
DEPLOY = ROOT / "deploy"


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{path} missing: run `make tools`")
    return path


def test_promtool_unit_tests_every_alerting_rule():
    import yaml

    rules = yaml.safe_load((DEPLOY / "prometheus" / "gatewatch-rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((DEPLOY / "prometheus" / "tests" / "gatewatch-rules.test.yml")
                           .read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert alerts and alerts <= tested, f"untested alerting rules: {alerts - tested}"
    proc = subprocess.run([str(tool("promtool")), "test", "rules", "gatewatch-rules.test.yml"],
                          cwd=DEPLOY / "prometheus" / "tests", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_rejects_a_wrong_expectation(tmp_path):
    broken = (DEPLOY / "prometheus" / "tests" / "gatewatch-rules.test.yml").read_text()
    broken = broken.replace("summary: \"gatewatch worker 127.0.0.1:6066 is down\"",
                            "summary: \"something else\"")
    (tmp_path / "t.yml").write_text(broken.replace(
        "../gatewatch-rules.yml", str(DEPLOY / "prometheus" / "gatewatch-rules.yml")))
    proc = subprocess.run([str(tool("promtool")), "test", "rules", "t.yml"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode != 0


def test_prometheus_config_is_valid():
    proc = subprocess.run([str(tool("promtool")), "check", "config", "prometheus.yml"],
                          cwd=DEPLOY / "prometheus", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_config_is_valid():
    proc = subprocess.run([str(tool("amtool")), "check-config",
                           str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
