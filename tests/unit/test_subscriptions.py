"""The subscribers file: strict validation (file, key, reason), secrets only by file
reference, and what the generated Alertmanager configuration contains. The real amtool
checks the output in tests/deploy/test_alertmanager_subscriptions.py."""

from __future__ import annotations

import pytest
import yaml

from gatewatch.alerts.notify import to_alertmanager
from gatewatch.alerts.subscriptions import (
    alertmanager_config,
    load_subscriptions,
    parse_subscriptions,
    render_yaml,
)
from gatewatch.errors import ConfigError
from gatewatch.gates import load_gates
from tests.support import ROOT

GATES = load_gates()
HEAD = """version: 1
smtp: {smarthost: "smtp.example.invalid:587", from: "gw@example.invalid"}
subscribers:
"""
OK = '  - {name: a, channel: {type: email, to: "a@example.invalid"}}\n'


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_subscriptions(text, "subs.yaml", GATES)
    return err.value


@pytest.mark.parametrize(("body", "key", "reason"), [
    ('  - {name: a, channel: {type: telegram, chat_id: 5, bot_token: "123:abc"}}\n',
     "subscribers[0].channel.bot_token", "never written inline"),
    ('  - {name: a, channel: {type: webhook, url: "https://u:pw@hooks.example/x"}}\n',
     "subscribers[0].channel.url", "url_file"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid", password: x}}\n',
     "subscribers[0].channel.password", "never written inline"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, gate: [huu-nghi]}\n',
     "subscribers[0].gate", "unknown key"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, gates: [mong-cai]}\n',
     "subscribers[0].gates[0]", "not a configured gate"),
    ('  - {name: a, channel: {type: sms, to: "+84"}}\n', "subscribers[0].channel.type",
     "email, telegram or webhook"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, cargo: [fruit]}\n',
     "subscribers[0].cargo[0]", "perishable, general, empty"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, directions: export}\n',
     "subscribers[0].directions", "'all' or a non-empty list"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, min_severity: info}\n',
     "subscribers[0].min_severity", "warning or critical"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, language: fr}\n',
     "subscribers[0].language", "vi or en"),
    ('  - {name: a, channel: {type: email, to: "a@example.invalid"}, '
     'quiet_hours: ["22-06"]}\n', "subscribers[0].quiet_hours[0]", "HH:MM-HH:MM"),
    ('  - {name: A B, channel: {type: email, to: "a@example.invalid"}}\n',
     "subscribers[0].name", "slug"),
    (OK + OK, "subscribers[1].name", "duplicate"),
    ('  - {name: a, channel: {type: webhook, url: "http://x.example/", url_file: /f}}\n',
     "subscribers[0].channel.url", "not both"),
    ('  - {name: a, channel: {type: telegram, chat_id: "grp", bot_token_file: /f}}\n',
     "subscribers[0].channel.chat_id", "non-zero integer"),
])
def test_bad_subscriptions_name_file_key_and_reason(body, key, reason):
    err = error(HEAD + body)
    assert (err.source, err.key) == ("subs.yaml", key) and reason in err.reason, err


def test_smtp_is_required_for_email_and_its_password_only_by_file():
    err = error("version: 1\nsubscribers:\n" + OK)
    assert err.key == "smtp"
    err = error(HEAD.replace('from: "gw@example.invalid"',
                             'from: "gw@example.invalid", auth_password: pw') + OK)
    assert err.key == "smtp.auth_password" and "auth_password_file" in err.reason
    assert error("version: 1\ntimezone: Mars/Olympus\nsubscribers:\n" + OK).key == "timezone"


def test_the_bundled_file_generates_routes_receivers_and_quiet_hours():
    subs = load_subscriptions(ROOT / "deploy" / "subscribers.yaml", GATES)
    cfg = alertmanager_config(subs)
    routes = {r["receiver"]: r for r in cfg["route"]["routes"]}
    assert set(routes) == {f"sub-{s.name}" for s in subs.subscribers}
    assert all(r["continue"] for r in routes.values())
    fruit = routes["sub-fruit-exporters"]
    assert 'cargo=~"perishable|all"' in fruit["matchers"]
    assert 'direction=~"export|all"' in fruit["matchers"]
    assert fruit["mute_time_intervals"] == ["quiet-fruit-exporters"]
    [quiet] = cfg["time_intervals"]
    assert quiet["time_intervals"] == [{"times": [
        {"start_time": "22:00", "end_time": "24:00"},
        {"start_time": "00:00", "end_time": "06:00"}], "location": "Asia/Ho_Chi_Minh"}]
    assert 'severity="critical"' in routes["sub-province-duty-officer"]["matchers"]
    rx = {r["name"]: r for r in cfg["receivers"]}
    telegram = rx["sub-fruit-exporters"]["telegram_configs"][0]
    assert telegram["bot_token_file"].startswith("/etc/") and "bot_token" not in telegram
    assert "summary_vi" in telegram["message"]
    assert "Annotations.summary " in rx["sub-province-duty-officer"]["email_configs"][0]["text"]
    text = render_yaml(cfg, "deploy/subscribers.yaml")
    assert yaml.safe_load(text) == cfg and text.startswith("# Generated")


def test_alertmanager_0_25_gets_no_file_secret_it_cannot_read():
    subs = load_subscriptions(ROOT / "deploy" / "subscribers.yaml", GATES)
    with pytest.raises(ConfigError) as err:
        alertmanager_config(subs, (0, 25))
    assert err.value.key == "subscribers[1].channel.bot_token_file"
    assert "0.26" in err.value.reason


def test_notify_pushes_the_cargo_and_direction_labels_routes_match_on():
    record = {"kind": "perishable_wait", "gate_id": "huu-nghi", "severity": "warning",
              "state": "firing", "started_at": "2021-12-01T00:00:00.000Z", "message": {}}
    labels = to_alertmanager(record, 0, 60)["labels"]
    assert (labels["cargo"], labels["direction"]) == ("perishable", "all")
    labels = to_alertmanager(dict(record, kind="congestion"), 0, 60)["labels"]
    assert (labels["cargo"], labels["direction"]) == ("all", "all")
    labels = to_alertmanager(dict(record, direction="export", cargo="general"), 0, 60)["labels"]
    assert (labels["cargo"], labels["direction"]) == ("general", "export")
