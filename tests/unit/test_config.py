from pathlib import Path

import pytest

from gatewatch.errors import ConfigError
from gatewatch.gates import load_gates, parse_gates
from gatewatch.settings import Settings
from tests.support import ONE_GATE_YAML


def test_bundled_gates_are_the_lang_son_gates():
    gs = load_gates(None)
    assert [g.gate_id for g in gs.gates] == [
        "huu-nghi", "tan-thanh", "chi-ma", "coc-nam", "dong-dang-rail"]
    hn = gs.get("huu-nghi")
    assert hn is not None and "Hữu Nghị" in hn.name
    assert all(g.critical_threshold > g.warning_threshold for g in gs.gates)


BASE = ONE_GATE_YAML


@pytest.mark.parametrize("text,key,reason", [
    (BASE.replace("critical: 20", "critical: 5"), "gates[0].thresholds.critical",
     "greater than warning"),
    (BASE.replace("    yard_capacity: 100\n", ""), "gates[0].yard_capacity", "required"),
    (BASE.replace("yard_capacity: 100", "yard_capacity: lots"), "gates[0].yard_capacity",
     "integer"),
    (BASE.replace("yard_capacity: 100", "yard_capacity: 100\n    colour: red"),
     "gates[0].colour", "unknown key"),
    (BASE.replace("id: huu-nghi", "id: Huu Nghi"), "gates[0].id", "slug"),
    (BASE.replace("id: huu-nghi", 'id: "huu-nghi\\n"'), "gates[0].id", "slug"),
    (BASE + BASE.split("gates:\n")[1], "gates[1].id", "duplicate"),
    ("version: 2\ngates: []", "version", "unsupported"),
    ("gates: [", "line", "not valid YAML"),
    ("version: 1\ngates: []", "gates", "non-empty"),
])
def test_bad_gate_config_names_file_key_and_reason(text, key, reason):
    with pytest.raises(ConfigError) as info:
        parse_gates(text, "site.yaml")
    err = info.value
    assert err.source == "site.yaml"
    assert err.key.startswith(key)
    assert reason in err.reason
    assert str(err).startswith("site.yaml: ")


def test_missing_gate_file(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_gates(tmp_path / "nope.yaml")
    assert "file not found" in str(info.value)
    assert "nope.yaml" in str(info.value)


def test_settings_defaults_and_errors():
    s = Settings.from_env({})
    assert s.bootstrap == "127.0.0.1:9092"
    assert s.web_host == "127.0.0.1" and s.web_port == 6066
    assert s.topic("gate.events") == "gate.events"
    assert Settings.from_env({"GATEWATCH_TOPIC_PREFIX": "t1-"}).topic("gate.events") == \
        "t1-gate.events"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"GATEWATCH_WEB_PORT": "abc"})
    assert info.value.key == "GATEWATCH_WEB_PORT"
    with pytest.raises(ConfigError):
        Settings.from_env({"GATEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


def test_secret_never_in_repr(tmp_path: Path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    s = Settings.from_env({"GATEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                           "GATEWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                           "GATEWATCH_KAFKA_SASL_USERNAME": "gw",
                           "GATEWATCH_KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert s.sasl_password == "hunter2"
    assert "hunter2" not in repr(s)


def test_docs_document_every_setting_and_reject_reason():
    from gatewatch.settings import SETTINGS_DOC
    from gatewatch.streams.records import REJECT_REASONS

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    configuration = (root / "docs" / "configuration.md").read_text()
    for var, _default, _meaning in SETTINGS_DOC:
        assert f"`{var}" in configuration, var
    for reason in REJECT_REASONS:
        assert f"`{reason}`" in readme, reason


def test_registered_secrets_are_redacted_from_every_log_record(caplog):
    import logging

    from gatewatch.redact import register_secret

    register_secret("tok-4b7e9c")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafka.admin.client").debug("config: %s",
                                                      {"sasl_plain_password": "tok-4b7e9c"})
        logging.getLogger("gatewatch").info("plain message")
    assert "tok-4b7e9c" not in caplog.text
    assert "'sasl_plain_password': '***'" in caplog.text and "plain message" in caplog.text


def test_advertised_host_for_peers_and_alert_links():
    import socket

    from gatewatch.agents.app import create_app
    from gatewatch.gates import load_gates

    assert Settings.from_env({}).advertised_url == "http://127.0.0.1:6066"
    wildcard = Settings.from_env({"GATEWATCH_WEB_HOST": "0.0.0.0"})
    assert wildcard.advertised_host == socket.gethostname()  # never "0.0.0.0"
    pod = Settings.from_env({"GATEWATCH_WEB_HOST": "0.0.0.0", "GATEWATCH_WEB_PORT": "7000",
                             "GATEWATCH_ADVERTISED_HOST": "10.1.2.3"})
    assert pod.runbook() == "http://10.1.2.3:7000/runbook"
    gw = create_app(pod, load_gates(None))
    assert str(gw.app.conf.canonical_url).rstrip("/") == "http://10.1.2.3:7000"
    assert gw.app.conf.web_bind == "0.0.0.0"
