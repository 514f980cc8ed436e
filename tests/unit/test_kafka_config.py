"""One Kafka configuration (:class:`gatewatch.kafka.KafkaConfig`) for every client.

(a) Its conversions for aiokafka, kafka-python and Faust, for each security protocol,
    and the password kept out of ``repr()``/``str()``.
(b) Every Kafka client of every command is built from it: under SASL settings each
    command runs with the client constructors replaced by recorders, and every
    recorded client (admin, producer, consumer, Faust app) must carry the SASL
    protocol, mechanism and user.

Why record constructor arguments instead of connecting: the embedded test broker has
no SASL listener, so a real SASL connection can only fail, and a failure proves nothing
about *which* clients were configured. A start-up check alone passed while the
simulator's producer ignored SASL (its topic check used it): the admin client failed
first, so nobody saw that the producer would have connected in PLAINTEXT.
``tests/integration/test_security.py`` covers the real start-up failure against the
broker (a clear error, the password never printed).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiokafka
import faust
import kafka as kafka_python
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from gatewatch import cli
from gatewatch.kafka import KafkaConfig, admin_client, ensure_topics
from gatewatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55-word"


def settings_for(protocol: str, **extra: str) -> Settings:
    env = {"GATEWATCH_KAFKA_BOOTSTRAP": "kafka-1.example:9093, kafka-2.example:9093",
           "GATEWATCH_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL"):
        env |= {"GATEWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                "GATEWATCH_KAFKA_SASL_USERNAME": "gw-user",
                "GATEWATCH_KAFKA_SASL_PASSWORD": SECRET}
    return Settings.from_env(env | extra)


# --------------------------------------------------------------------------- (a)

def test_plaintext_conversions():
    cfg = KafkaConfig.from_settings(settings_for("PLAINTEXT"))
    assert cfg.bootstrap_servers == ("kafka-1.example:9093", "kafka-2.example:9093")
    assert cfg.aiokafka() == {"bootstrap_servers": ["kafka-1.example:9093",
                                                    "kafka-2.example:9093"],
                              "security_protocol": "PLAINTEXT"}
    assert cfg.kafka_python() == cfg.aiokafka()
    assert cfg.faust() == {"broker": ["kafka://kafka-1.example:9093",
                                      "kafka://kafka-2.example:9093"],
                           "broker_credentials": None}
    assert credentials_to_aiokafka_auth(cfg.faust()["broker_credentials"]) == {
        "security_protocol": "PLAINTEXT"}


def test_ssl_conversions_share_one_trust_setting(tmp_path):
    cfg = KafkaConfig.from_settings(settings_for("SSL"))
    for kw in (cfg.aiokafka(), cfg.kafka_python()):
        assert kw["security_protocol"] == "SSL"
        assert isinstance(kw["ssl_context"], ssl.SSLContext)
        assert kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert kw["ssl_context"].check_hostname
        assert not any(k.startswith("sasl_") for k in kw)
    creds = cfg.faust()["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"
    # GATEWATCH_KAFKA_SSL_CAFILE is what every client trusts: a missing one fails each
    missing = str(tmp_path / "no-such-ca.pem")
    with_ca = KafkaConfig.from_settings(settings_for("SSL", GATEWATCH_KAFKA_SSL_CAFILE=missing))
    assert with_ca.ssl_cafile == missing
    for convert in (with_ca.aiokafka, with_ca.kafka_python, with_ca.faust):
        with pytest.raises(FileNotFoundError):
            convert()


def test_sasl_plaintext_scram_conversions():
    cfg = KafkaConfig.from_settings(settings_for("SASL_PLAINTEXT"))
    sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "gw-user", "sasl_plain_password": SECRET}
    servers = ["kafka-1.example:9093", "kafka-2.example:9093"]
    assert cfg.aiokafka() == {"bootstrap_servers": servers, **sasl}
    assert cfg.kafka_python() == {"bootstrap_servers": servers, **sasl}
    faust_kw = cfg.faust()
    assert faust_kw["broker"] == [f"kafka://{s}" for s in servers]
    creds = faust_kw["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    # what Faust's own producer, consumer and admin will be given
    assert credentials_to_aiokafka_auth(creds) == {**sasl, "ssl_context": None}


def test_sasl_ssl_conversions():
    cfg = KafkaConfig.from_settings(settings_for("SASL_SSL"))
    for kw in (cfg.aiokafka(), cfg.kafka_python()):
        assert kw["security_protocol"] == "SASL_SSL"
        assert kw["sasl_mechanism"] == "SCRAM-SHA-256"
        assert kw["sasl_plain_username"] == "gw-user"
        assert kw["sasl_plain_password"] == SECRET
        assert isinstance(kw["ssl_context"], ssl.SSLContext)
    auth = credentials_to_aiokafka_auth(cfg.faust()["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert auth["sasl_plain_username"] == "gw-user"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_plain_mechanism_reaches_faust():
    cfg = KafkaConfig.from_settings(settings_for(
        "SASL_PLAINTEXT", GATEWATCH_KAFKA_SASL_MECHANISM="PLAIN"))
    auth = credentials_to_aiokafka_auth(cfg.faust()["broker_credentials"])
    assert auth["sasl_mechanism"] == "PLAIN" == cfg.aiokafka()["sasl_mechanism"]


def test_password_never_printed():
    cfg = KafkaConfig.from_settings(settings_for("SASL_SSL"))
    assert cfg.sasl_password == SECRET
    for text in (repr(cfg), str(cfg), f"{cfg}", cfg.describe(),
                 repr(cfg.faust()["broker_credentials"])):
        assert SECRET not in text
    assert "gw-user" in repr(cfg) and "SCRAM-SHA-256" in cfg.describe()


def test_config_is_frozen():
    cfg = KafkaConfig.from_settings(settings_for("PLAINTEXT"))
    with pytest.raises(AttributeError):
        cfg.security_protocol = "SSL"  # type: ignore[misc]


# --------------------------------------------------------------------------- (b)

SASL_ENV = {
    "GATEWATCH_KAFKA_BOOTSTRAP": "kafka-1.example:9093",
    "GATEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "GATEWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "GATEWATCH_KAFKA_SASL_USERNAME": "gw-user",
    "GATEWATCH_KAFKA_SASL_PASSWORD": SECRET,
    "GATEWATCH_TOPIC_PREFIX": "t-kafka-config-",
}
LOG = ROOT / "examples" / "huu-nghi-log-2021-12-20.csv"
REPLAY_ARGS = ["--map", "gate_id=CuaKhau,vehicle_id=BienSo,occurred_at=ThoiGian,type=SuKien,"
               "direction=Huong,cargo=HangHoa",
               "--types", "queued=vao_bai,crossed=qua_cua,withdrawn=roi_bai",
               "--directions", "export=xuat,import=nhap"]

ADMIN, PRODUCER, CONSUMER, FAUST_APP = "admin", "producer", "consumer", "faust app"


class Built(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a recording constructor to stop the command right there."""


@dataclass
class Recorder:
    """Kafka client constructors replaced by recorders of their keyword arguments."""

    made: list[tuple[str, dict[str, Any]]] = field(repr=False)  # holds the test password
    faust_passthrough: bool = False

    def kinds(self) -> list[str]:
        return [kind for kind, _kw in self.made]

    def assert_all_sasl(self) -> None:
        assert self.made, "no Kafka client was built"
        for kind, kw in self.made:
            if kind == FAUST_APP:
                assert kw["broker"] == ["kafka://kafka-1.example:9093"]
                kw = credentials_to_aiokafka_auth(kw["broker_credentials"])
            else:
                servers = kw["bootstrap_servers"]
                assert servers in (["kafka-1.example:9093"], "kafka-1.example:9093"), kind
            got = (kw.get("security_protocol"), kw.get("sasl_mechanism"),
                   kw.get("sasl_plain_username"), kw.get("sasl_plain_password") == SECRET)
            assert got == ("SASL_PLAINTEXT", "SCRAM-SHA-256", "gw-user", True), (
                f"the {kind} was built without the SASL settings: "
                f"{ {k: v for k, v in kw.items() if k != 'sasl_plain_password'} }")


class _FakeAdmin:
    """Answers ensure_topics as a cluster with no topics yet would."""

    def list_topics(self) -> list[str]:
        return []

    def create_topics(self, topics: list[Any]) -> None:
        pass

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{"partition": p} for p in range(4)]}
                for n in names]

    def close(self) -> None:
        pass


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    for key, value in SASL_ENV.items():
        monkeypatch.setenv(key, value)
    rec = Recorder([])
    real_app = faust.App

    def admin(*args: Any, **kwargs: Any) -> _FakeAdmin:
        rec.made.append((ADMIN, kwargs))
        return _FakeAdmin()  # lets ensure_topics finish, so the command goes on

    def producer(*args: Any, **kwargs: Any) -> Any:
        rec.made.append((PRODUCER, kwargs))
        raise Built(PRODUCER)

    def consumer(*args: Any, **kwargs: Any) -> Any:
        rec.made.append((CONSUMER, kwargs))
        raise Built(CONSUMER)

    def app(*args: Any, **kwargs: Any) -> Any:
        rec.made.append((FAUST_APP, kwargs))
        if rec.faust_passthrough:
            return real_app(*args, **kwargs)
        raise Built(FAUST_APP)

    monkeypatch.setattr(kafka_python, "KafkaAdminClient", admin)
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", producer)
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", consumer)
    monkeypatch.setattr(faust, "App", app)
    yield rec


def test_simulate_builds_every_client_with_sasl(clients: Recorder):
    with pytest.raises(Built):
        cli.main(["simulate", "--duration", "1"])
    assert clients.kinds() == [ADMIN, PRODUCER]
    clients.assert_all_sasl()


def test_scenario_live_builds_every_client_with_sasl(clients: Recorder):
    with pytest.raises(Built):
        cli.main(["scenario", "clearance-collapse-2021", "--live"])
    assert clients.kinds() == [ADMIN, PRODUCER]
    clients.assert_all_sasl()


def test_replay_builds_every_client_with_sasl(clients: Recorder):
    with pytest.raises(Built):
        cli.main(["replay", str(LOG), *REPLAY_ARGS])
    assert clients.kinds() == [ADMIN, PRODUCER]
    clients.assert_all_sasl()


def test_notify_builds_every_client_with_sasl(clients: Recorder):
    with pytest.raises(Built):
        cli.main(["notify", "--webhook-url", "http://127.0.0.1:9/hook",
                  "--alertmanager-url", "http://127.0.0.1:9"])
    assert clients.kinds() == [ADMIN, CONSUMER, CONSUMER]  # webhook + Alertmanager
    clients.assert_all_sasl()


def test_worker_command_builds_every_client_with_sasl(clients: Recorder):
    with pytest.raises(Built):
        cli.main(["worker"])
    assert clients.kinds() == [ADMIN, FAUST_APP]
    clients.assert_all_sasl()


def test_worker_alert_restore_consumer_uses_sasl(clients: Recorder):
    """The worker's own aiokafka consumers (alert state and shipment advisories restored
    after a recovery: one each)."""
    from gatewatch.agents.app import STATE_TABLE, create_app
    from gatewatch.gates import load_gates
    from gatewatch.streams.changelog import encode_state, state_key

    clients.faust_passthrough = True
    settings, gates = Settings.from_env(), load_gates(None)
    gw = create_app(settings, gates)
    assert clients.kinds() == [FAUST_APP]
    # one waiting vehicle in the state table, so the rebuild restores alert state
    now = int(time.time() * 1000)
    events = [(now, 0, 0, 0, "e-1")]  # queued, export, no cargo
    table = gw.app.tables[STATE_TABLE]
    table.data[state_key("huu-nghi", "29C-12345")] = encode_state(events)
    asyncio.run(table.call_recover_callbacks())
    assert clients.kinds() == [FAUST_APP, CONSUMER, CONSUMER]
    clients.assert_all_sasl()


def test_worker_fetch_confirm_consumer_copies_the_faust_consumer():
    """compat's end-offset consumer is built like the Faust consumer it serves."""
    from gatewatch.agents import compat

    cfg = KafkaConfig.from_settings(Settings.from_env(SASL_ENV))
    faust_kw = cfg.faust()

    async def clone() -> dict[str, Any]:
        # the consumer Faust's aiokafka driver builds from our broker_credentials
        inner = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=cfg.aiokafka()["bootstrap_servers"],
            **credentials_to_aiokafka_auth(faust_kw["broker_credentials"]))
        return compat.connection_of(inner._client)

    kw = asyncio.run(clone())
    assert kw["bootstrap_servers"] == ["kafka-1.example:9093"]
    assert (kw["security_protocol"], kw["sasl_mechanism"], kw["sasl_plain_username"],
            kw["sasl_plain_password"] == SECRET) == ("SASL_PLAINTEXT", "SCRAM-SHA-256",
                                                     "gw-user", True)


def test_ensure_topics_and_admin_client_use_sasl(clients: Recorder):
    settings = Settings.from_env()
    assert ensure_topics(settings) == 4
    admin_client(KafkaConfig.from_settings(settings), timeout_seconds=1).close()
    assert clients.kinds() == [ADMIN, ADMIN]
    clients.assert_all_sasl()
