"""`gatewatch alertmanager-config` output checked by the real amtool: `check-config`, and
`config routes test` with label sets proving each subscriber of deploy/subscribers.yaml
gets exactly what they asked for, and not more.

The amtool here is Debian 12's 0.25, which predates ``bot_token_file`` (Alertmanager 0.26
reads it; deploy/compose runs 0.27). So the Telegram receiver's ``bot_token_file`` line
is swapped for a placeholder ``bot_token`` before 0.25 reads the file (a unit test checks
the line itself); everything else amtool checks as generated. Telegram and e-mail cannot
be reached from here: amtool checks their configuration, tests/integration delivers to a
webhook through a real Alertmanager."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, binary

SUBSCRIBERS = ROOT / "deploy" / "subscribers.yaml"
EVERYONE_WARNING = {"sub-dieu-phoi-huu-nghi", "sub-fruit-exporters", "sub-logistics-system"}


def generate(tmp_path: Path, subscribers: Path = SUBSCRIBERS) -> Path:
    out = tmp_path / "am.yml"
    proc = subprocess.run([sys.executable, "-m", "gatewatch", "alertmanager-config",
                           "--subscribers", str(subscribers), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "bot_token_file: /etc/alertmanager/secrets/telegram-bot-token" in text
    # amtool 0.25 cannot read bot_token_file (see the module docstring)
    out.write_text(re.sub(r"bot_token_file: \S+", "bot_token: '123:placeholder'", text))
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("am"))


def test_amtool_accepts_the_generated_config(config):
    proc = subprocess.run([str(binary("amtool")), "check-config", str(config)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "5 receivers" in proc.stdout


def test_amtool_refuses_a_broken_one(config, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(config.read_text().replace("mute_time_intervals:\n    - quiet-",
                                                 "mute_time_intervals:\n    - nope-"))
    assert broken.read_text() != config.read_text()
    proc = subprocess.run([str(binary("amtool")), "check-config", str(broken)],
                          capture_output=True, text=True)
    assert proc.returncode != 0


def receivers(config: Path, **labels: str) -> set[str]:
    proc = subprocess.run([str(binary("amtool")), "config", "routes", "test",
                           f"--config.file={config}",
                           *(f"{k}={v}" for k, v in labels.items())],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return set(proc.stdout.strip().splitlines()[0].split(","))


@pytest.mark.parametrize(("labels", "expected"), [
    # whole-gate congestion, warning, at a gate the Hữu Nghị coordinators follow
    (dict(gate="huu-nghi", kind="congestion", severity="warning", cargo="all",
          direction="all"), EVERYONE_WARNING),
    # the same at Chi Ma: not for the Hữu Nghị / Tân Thanh coordinators
    (dict(gate="chi-ma", kind="congestion", severity="warning", cargo="all",
          direction="all"), {"sub-fruit-exporters", "sub-logistics-system"}),
    # critical: the duty officer (critical only, every gate) joins
    (dict(gate="chi-ma", kind="congestion", severity="critical", cargo="all",
          direction="all"),
     {"sub-fruit-exporters", "sub-province-duty-officer", "sub-logistics-system"}),
    (dict(gate="tan-thanh", kind="perishable_wait", severity="warning", cargo="perishable",
          direction="all"), EVERYONE_WARNING),
    # an alert about general import cargo: not for the perishable-export group
    (dict(gate="huu-nghi", kind="advisory", severity="warning", cargo="general",
          direction="import"), {"sub-dieu-phoi-huu-nghi", "sub-logistics-system"}),
    # perishable, but import: not for the export group either
    (dict(gate="coc-nam", kind="advisory", severity="warning", cargo="perishable",
          direction="import"), {"sub-logistics-system"}),
    (dict(gate="coc-nam", kind="advisory", severity="warning", cargo="perishable",
          direction="export"), {"sub-fruit-exporters", "sub-logistics-system"}),
])
def test_each_subscriber_gets_exactly_what_they_asked_for(config, labels, expected):
    assert receivers(config, source="gatewatch", alertname="GateAlert", **labels) == expected


def test_platform_alerts_reach_no_subscriber(config):
    assert receivers(config, source="prometheus", alertname="GatewatchWorkerDown",
                     severity="critical") == {"gatewatch-unrouted"}
