"""Every topic gatewatch creates gets explicit, documented configs (compaction where the
latest record per key is the truth), so a cluster's default 7-day retention cannot delete
a long-waiting truck's state or a still-firing alert. The embedded broker cannot show
what it would delete (it applies neither), so these tests look at what ``create_topics``
is given; tests/integration/test_topics.py reads the configs back from the broker."""

from __future__ import annotations

import asyncio
from typing import Any

import kafka
import orjson
import pytest
from kafka.errors import InvalidConfigurationError

import gatewatch.agents.app as app_module
from gatewatch import cli
from gatewatch.agents.app import create_app
from gatewatch.alerts.evaluator import encode_alert, firing_states
from gatewatch.core.congestion import AlertChange, AlertState
from gatewatch.core.processor import Effects
from gatewatch.core.signals import Counts, GateSignals
from gatewatch.gates import load_gates
from gatewatch.kafka import ensure_topics
from gatewatch.settings import Settings
from gatewatch.streams.topics import DAY_MS, TOPIC_SPECS, config_table
from tests.support import ROOT, T0

ALERTS_COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(7 * DAY_MS)}


class Admin:
    """A cluster that holds ``topics`` (name -> reported cleanup.policy or None) and
    records what ensure_topics creates."""

    def __init__(self, topics: dict[str, str | None], refuse: str = "") -> None:
        self.topics = topics
        self.refuse = refuse  # a config this cluster does not take
        self.created: dict[str, tuple[int, int, dict[str, str]]] = {}

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def create_topics(self, new: list[Any]) -> None:
        for t in new:
            if self.refuse in t.topic_configs:
                raise InvalidConfigurationError(f"Unknown topic config name: {self.refuse}")
            self.created[t.name] = (t.num_partitions, t.replication_factor, t.topic_configs)

    def describe_configs(self, resources: list[Any], config_filter: str = "modified"
                         ) -> dict[str, Any]:
        assert config_filter == "all"  # "modified" hides a broker default such as delete
        return {"topic": {r.name: ({"cleanup.policy": {"value": self.topics[r.name]}}
                                   if self.topics[r.name] else {}) for r in resources}}

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{"partition": p} for p in range(4)]}
                for n in names]

    def close(self) -> None:
        pass


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def install(topics: dict[str, str | None], refuse: str = "") -> Admin:
        admin = Admin(topics, refuse)
        monkeypatch.setattr(kafka, "KafkaAdminClient", lambda **kw: admin)
        return admin
    return install


def test_ensure_topics_creates_every_topic_with_its_configs(cluster):
    admin = cluster({})
    said: list[str] = []
    settings = Settings.from_env({"GATEWATCH_TOPIC_PREFIX": "p-", "GATEWATCH_PARTITIONS": "6"})
    assert ensure_topics(settings, progress=said.append) == 4
    week, month, season = (str(n * DAY_MS) for n in (7, 30, 90))
    assert admin.created == {
        "p-gate.events": (6, 1, {"cleanup.policy": "delete", "retention.ms": week}),
        "p-gate.counts": (6, 1, {"cleanup.policy": "delete", "retention.ms": week}),
        "p-gate.events.rejected": (6, 1, {"cleanup.policy": "delete", "retention.ms": month}),
        "p-gate.windows": (6, 1, {"cleanup.policy": "delete", "retention.ms": season}),
        "p-gate.reconciliations": (6, 1, {"cleanup.policy": "delete", "retention.ms": month}),
        "p-gate.alerts": (6, 1, ALERTS_COMPACTED),
        "p-gate.advisories": (6, 1, ALERTS_COMPACTED)}
    assert "created topic p-gate.alerts (6 partitions, cleanup.policy=compact, " \
           "min.compaction.lag.ms=604800000)" in said


def test_an_existing_topic_with_another_cleanup_policy_is_named(cluster):
    # gate.alerts made by an older version (broker default: delete); the embedded broker
    # reports no policy for a topic created without one: not judged
    admin = cluster({"gate.events": "delete", "gate.counts": "delete",
                     "gate.events.rejected": None,
                     "gate.windows": "delete", "gate.reconciliations": "delete",
                     "gate.alerts": "delete", "gate.advisories": "compact"})
    said: list[str] = []
    ensure_topics(Settings.from_env({}), progress=said.append)
    assert admin.created == {}  # an existing topic is never altered
    assert said == ["warning: topic gate.alerts exists with cleanup.policy=delete, gatewatch "
                    "creates it with compact (docs/operations.md#topic-configs); change "
                    "it: kafka-configs.sh --alter --entity-type topics --entity-name "
                    "gate.alerts --add-config cleanup.policy=compact"]


def test_a_cluster_refusing_a_config_gets_a_clear_error(cluster, capsys):
    cluster({}, refuse="min.compaction.lag.ms")
    assert cli.main(["simulate", "--duration", "1"]) == 1
    assert capsys.readouterr().err == (
        "gatewatch: error: cannot create topic gate.alerts with cleanup.policy=compact, "
        "min.compaction.lag.ms=604800000: [Error 40] InvalidConfigurationError: Unknown "
        "topic config name: min.compaction.lag.ms; create it yourself with the closest "
        "configs this cluster takes (docs/operations.md#topic-configs)\n")


def test_the_changelog_is_recreated_compacted_as_faust_creates_it(monkeypatch):
    gw = create_app(Settings.from_env({"GATEWATCH_APP_ID": "gw"}), load_gates(None),
                    partitions=8)
    changelog = gw.table.changelog_topic
    # what faust's aiokafka driver turns into the topic's configs on creation:
    # compacting -> cleanup.policy=compact, no deleting, no retention, no extra config
    assert (changelog.compacting, changelog.deleting, changelog.retention,
            dict(changelog.config)) == (True, None, None, {})
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(app_module, "ensure_topics",
                        lambda settings, **kw: calls.append(kw["extra"]))
    assert gw.broker is not None
    gw.broker.recreate()  # what the worker runs when the broker comes back empty
    assert calls == [{"gw-vehicle-state-changelog": (8, {"cleanup.policy": "compact"}),
                      "gw-__assignor-__leader": (1, {"cleanup.policy": "delete"})}]


def test_alert_records_are_keyed_by_alert_id():
    gw = create_app(Settings.from_env({}), load_gates(None))
    sent: list[tuple[bytes, bytes]] = []

    class Topic:
        async def send(self, key: bytes, value: bytes) -> None:
            sent.append((key, value))

    gw.alerts_topic = Topic()
    sig = GateSignals("tan-thanh", True, 1.0, 912, 0, 1200, Counts())
    changes = [AlertChange("fired", AlertState(f"tan-thanh:{kind}", "tan-thanh", kind,
                                               "firing", "warning", 1, 1, T0, T0), sig)
               for kind in ("congestion", "no_data")]
    asyncio.run(gw.carry_out(Effects(alerts=changes)))
    # by gate, compaction would keep only the no_data record of tan-thanh
    assert [k for k, _ in sent] == [b"tan-thanh:congestion", b"tan-thanh:no_data"]


def test_read_back_takes_each_alerts_latest_update_across_partitions():
    gate = load_gates(None).get("huu-nghi")
    assert gate is not None
    sig = GateSignals("huu-nghi", True, 1.0, 500, 0, 1500, Counts())
    fired = AlertState("huu-nghi:congestion", "huu-nghi", "congestion", "firing", "warning",
                       500, 400, T0, T0)
    resolved = AlertState("huu-nghi:congestion", "huu-nghi", "congestion", "resolved",
                          "warning", 100, 400, T0, T0 + 3_600_000, T0 + 3_600_000)
    # written before the key change, `fired` sits on the gate's partition, `resolved` on
    # the alert id's: read back, the resolved one may come first
    docs = [orjson.loads(encode_alert(AlertChange(c, a, sig), gate, "x"))
            for c, a in (("resolved", resolved), ("fired", fired))]
    assert firing_states(docs) == []
    assert [a.alert_id for a in firing_states(docs[1:])] == ["huu-nghi:congestion"]


def test_operations_doc_shows_the_topic_table():
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert config_table() in doc, "regenerate the table from gatewatch.streams.topics"
    assert set(TOPIC_SPECS) == {"gate.events", "gate.counts", "gate.events.rejected",
                                "gate.windows", "gate.reconciliations",
                                "gate.alerts", "gate.alerts.undelivered", "gate.advisories",
                                "<app id>-vehicle-state-changelog",
                                "<app id>-__assignor-__leader"}
    assert TOPIC_SPECS["gate.alerts"].configs == ALERTS_COMPACTED
