"""Topic configs on a real broker: every topic gatewatch creates carries the configs of
``TOPIC_SPECS`` (read back with DescribeConfigs), and the state changelog Faust creates
when a worker starts has the same config as the one the worker recreates after a broker
lost it. The embedded broker applies neither retention nor compaction but stores and
reports the configs a topic was created with (asked for all keys: it reports none as
"modified"); on a real cluster the same checks hold."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from gatewatch.kafka import KafkaConfig, admin_client, ensure_topics
from gatewatch.settings import Settings
from gatewatch.streams.topics import TOPIC_SPECS, changelog_configs, leader_configs
from tests.support import poll

pytestmark = pytest.mark.integration


def reported(admin: Any, names: list[str]) -> dict[str, dict[str, str]]:
    got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names],
                                 config_filter="all")["topic"]
    return {n: {k: c["value"] for k, c in got.get(n, {}).items()} for n in names}


def test_ensure_topics_creates_every_topic_with_its_configs(bootstrap, test_id):
    settings = Settings.from_env({"GATEWATCH_KAFKA_BOOTSTRAP": bootstrap,
                                  "GATEWATCH_TOPIC_PREFIX": f"{test_id}-"})
    changelog = f"{test_id}-app-vehicle-state-changelog"
    leader = f"{test_id}-app-__assignor-__leader"
    admin = admin_client(KafkaConfig.from_settings(settings))
    try:
        # an alerts topic left by an older version: created as a delete-policy topic
        admin.create_topics([NewTopic(f"{test_id}-gate.alerts", 4, 1,
                                      topic_configs={"cleanup.policy": "delete"})])
        said: list[str] = []
        ensure_topics(settings, progress=said.append,
                      extra={changelog: (4, changelog_configs()), leader: (1, leader_configs())})
        want = {f"{test_id}-{n}": TOPIC_SPECS[n].configs
                for n in ("gate.events", "gate.events.rejected", "gate.windows")}
        want |= {changelog: changelog_configs(), leader: leader_configs()}
        got = reported(admin, sorted(want))
        for name, configs in want.items():
            assert {k: got[name].get(k) for k in configs} == dict(configs), name
        assert reported(admin, [f"{test_id}-gate.alerts"])[f"{test_id}-gate.alerts"][
            "cleanup.policy"] == "delete"  # never altered, but named:
        assert [s for s in said if s.startswith("warning:")] == [
            f"warning: topic {test_id}-gate.alerts exists with cleanup.policy=delete, "
            "gatewatch creates it with compact (docs/operations.md#topic-configs); "
            "change it: kafka-configs.sh --alter --entity-type topics --entity-name "
            f"{test_id}-gate.alerts --add-config cleanup.policy=compact"]
    finally:
        admin.close()


def test_the_worker_creates_compacted_alerts_and_changelog(bootstrap, test_id, worker_factory):
    w = worker_factory()
    w.wait_ready()
    alerts, changelog = f"{test_id}-gate.alerts", f"{test_id}-app-vehicle-state-changelog"
    admin = admin_client(KafkaConfig(bootstrap_servers=(bootstrap,)))
    try:
        poll(lambda: changelog in admin.list_topics(), 30, "Faust creating the changelog")
        got = reported(admin, [alerts, changelog])
    finally:
        admin.close()
    assert got[alerts].get("cleanup.policy") == "compact"
    # Faust's own creation (the table's changelog, compacting=True) gives the config the
    # worker uses when it recreates the changelog after a broker restart
    assert {k: got[changelog].get(k) for k in changelog_configs()} == dict(changelog_configs())
