"""The settings table is the one source: of Settings, of its defaults, of the README."""

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from gatewatch.cli import main
from gatewatch.errors import ConfigError
from gatewatch.settings import (
    SETTINGS,
    TABLE_BEGIN,
    TABLE_END,
    Settings,
    markdown_table,
    with_table,
)

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"GATEWATCH_[A-Z0-9_]*[A-Z0-9]")


def test_configuration_doc_holds_exactly_the_generated_table():
    readme = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert readme.count(TABLE_BEGIN) == 1 and readme.count(TABLE_END) == 1
    between = readme.split(TABLE_BEGIN)[1].split(TABLE_END)[0]
    assert between.strip("\n") == markdown_table().strip("\n"), \
        "regenerate it: python -m gatewatch.settings docs/configuration.md"
    assert with_table(readme) == readme


def test_generated_table_has_one_row_per_setting():
    rows = [line for line in markdown_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [s.env for s in SETTINGS]
    assert all(row.count(" | ") == 3 for row in rows), "a '|' inside a cell breaks the table"


def _names_in(paths: list[Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_variable_named_in_the_code_is_in_the_table():
    """No stray variable: whatever gatewatch, the benchmarks and the deploy files name
    is a row of the table (tests/ may use test-only ones: GATEWATCH_TEST_BOOTSTRAP)."""
    text = {".py", ".md", ".yaml", ".yml", ".html", ""}  # not results-*.json: records
    sources = [p for top in ("gatewatch", "bench", "deploy") for p in (ROOT / top).rglob("*")
               if p.is_file() and p.suffix in text and "__pycache__" not in p.parts]
    assert ROOT / "deploy" / "Dockerfile" in sources
    found = _names_in(sources)
    assert "GATEWATCH_KAFKA_BOOTSTRAP" in found and "GATEWATCH_WEBHOOK_URL" in found  # scan works
    known = {s.env for s in SETTINGS}
    stray = {name: sorted(where) for name, where in found.items() if name not in known}
    assert stray == {}, f"add these to gatewatch/settings.py SETTINGS: {stray}"


def test_table_and_dataclass_are_one():
    rows = {s.field: s for s in SETTINGS}
    assert len(rows) == len(SETTINGS) and len({s.env for s in SETTINGS}) == len(SETTINGS)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(fields) == set(rows)
    for name, f in fields.items():
        assert f.default == rows[name].parser.parse(rows[name].default), name
        assert f.repr is not rows[name].secret, name
    assert Settings() == Settings.from_env({})


@pytest.mark.parametrize("env,key,reason", [
    ({"GATEWATCH_WEB_PORT": "abc"}, "GATEWATCH_WEB_PORT", "'abc' is not a port number (1-65535)"),
    ({"GATEWATCH_WEB_PORT": "70000"}, "GATEWATCH_WEB_PORT",
     "'70000' must be a port number (1-65535)"),
    ({"GATEWATCH_PARTITIONS": "0"}, "GATEWATCH_PARTITIONS", "'0' must be a positive integer"),
    ({"GATEWATCH_GRACE_SECONDS": "-1"}, "GATEWATCH_GRACE_SECONDS",
     "'-1' must be a non-negative integer"),
    ({"GATEWATCH_BATCH_WITHIN_SECONDS": "soon"}, "GATEWATCH_BATCH_WITHIN_SECONDS",
     "'soon' is not a number of seconds in (0, 10]"),
    ({"GATEWATCH_BATCH_DELIVERY": "2"}, "GATEWATCH_BATCH_DELIVERY", "'2' must be 0 or 1"),
    ({"GATEWATCH_FETCH_MAX_WAIT_MS": "20000"}, "GATEWATCH_FETCH_MAX_WAIT_MS",
     "'20000' must be milliseconds in [0, 10000]"),
    ({"GATEWATCH_BROKER_COMPAT": " Redpanda "}, "GATEWATCH_BROKER_COMPAT",
     "'redpanda' must be tansu or kafka"),
    ({"GATEWATCH_KAFKA_SECURITY_PROTOCOL": "tls"}, "GATEWATCH_KAFKA_SECURITY_PROTOCOL",
     "'TLS' must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    ({"GATEWATCH_KAFKA_SECURITY_PROTOCOL": "sasl_ssl"}, "GATEWATCH_KAFKA_SASL_MECHANISM",
     "'' must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with SASL_SSL"),
    ({"GATEWATCH_KAFKA_BOOTSTRAP": " "}, "GATEWATCH_KAFKA_BOOTSTRAP", "must not be empty"),
    ({"GATEWATCH_LOG_LEVEL": "trace"}, "GATEWATCH_LOG_LEVEL",
     "'trace' must be debug, info, warning or error"),
    ({"GATEWATCH_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"},
     "GATEWATCH_KAFKA_SASL_PASSWORD_FILE", "cannot read /nonexistent/pw: No such file"),
])
def test_bad_values_name_variable_and_reason(env, key, reason):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert (info.value.source, info.value.key) == ("environment", key)
    assert info.value.reason.startswith(reason)


def test_values_are_parsed_as_before():
    s = Settings.from_env({
        "GATEWATCH_APP_ID": "  ", "GATEWATCH_WEB_HOST": "", "GATEWATCH_GATES": " site.yaml ",
        "GATEWATCH_BATCH_DELIVERY": "0", "GATEWATCH_BROKER_COMPAT": "KAFKA",
        "GATEWATCH_API_CORS_ORIGINS": " https://a.vn, ,https://b.vn ",
        "GATEWATCH_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
        "GATEWATCH_KAFKA_SASL_MECHANISM": "plain", "GATEWATCH_KAFKA_SASL_USERNAME": " gw ",
        "GATEWATCH_WEBHOOK_URL": "http://a/hook, http://b/hook,",
        "GATEWATCH_ALERTMANAGER_URL": " http://am:9093 "})
    assert (s.app_id, s.web_host, s.advertised_host) == ("gatewatch", "127.0.0.1", "127.0.0.1")
    assert s.gates_path == Path("site.yaml") and s.batch_delivery is False
    assert s.broker_compat == "kafka" and s.api_cors_origins == ("https://a.vn", "https://b.vn")
    assert (s.security_protocol, s.sasl_mechanism, s.sasl_username) == \
        ("SASL_PLAINTEXT", "PLAIN", " gw ")
    assert s.webhook_urls == ("http://a/hook", "http://b/hook")
    assert s.alertmanager_url == "http://am:9093"


def test_every_secret_is_out_of_repr_and_redacted_from_logs(tmp_path, caplog):
    assert {s.env for s in SETTINGS if s.secret} >= {
        "GATEWATCH_KAFKA_SASL_PASSWORD", "GATEWATCH_API_TOKEN", "GATEWATCH_GRAFANA_TOKEN"}
    pw = tmp_path / "pw"
    pw.write_text(" file-pw-31d7 \n")
    s = Settings.from_env({"GATEWATCH_API_TOKEN": "api-tok-8c1e",
                           "GATEWATCH_GRAFANA_TOKEN": "graf-tok-5a9f",
                           "GATEWATCH_KAFKA_SASL_PASSWORD": "direct-pw-0b2c",
                           "GATEWATCH_KAFKA_SASL_PASSWORD_FILE": str(pw)})
    assert (s.api_token, s.grafana_token, s.sasl_password) == \
        ("api-tok-8c1e", "graf-tok-5a9f", "file-pw-31d7")
    for secret in ("api-tok-8c1e", "graf-tok-5a9f", "file-pw-31d7"):
        assert secret not in repr(s)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("gatewatch").debug("tokens %s %s %s", s.api_token, s.grafana_token,
                                             s.sasl_password)
    assert "tokens *** *** ***" in caplog.text


def test_notify_takes_its_receivers_from_settings(monkeypatch, capsys):
    import gatewatch.kafka

    for s in SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    assert main(["notify"]) == 2
    assert "GATEWATCH_WEBHOOK_URL" in capsys.readouterr().err

    class Reached(Exception):
        pass

    def ensure_topics(settings, progress=None, **kwargs):
        raise Reached(settings.webhook_urls, settings.alertmanager_url)

    monkeypatch.setattr(gatewatch.kafka, "ensure_topics", ensure_topics)
    monkeypatch.setenv("GATEWATCH_ALERTMANAGER_URL", "http://am.example:9093")
    with pytest.raises(Reached):  # past the receiver check: it found the Alertmanager URL
        main(["notify"])


def test_dashboards_push_takes_the_grafana_token_from_settings(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GATEWATCH_GRAFANA_TOKEN", raising=False)
    args = ["dashboards", "push", "--grafana-url", "http://127.0.0.1:9", "--dir", str(tmp_path)]
    assert main(args) == 2
    assert "an API token (or GATEWATCH_GRAFANA_TOKEN)" in capsys.readouterr().err
    monkeypatch.setenv("GATEWATCH_GRAFANA_TOKEN", "graf-tok-77e1")
    assert main(args) == 2  # the token was found: now it is the empty directory
    assert "no dashboard JSON" in capsys.readouterr().err
