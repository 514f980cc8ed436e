"""Topic names, and the configs every topic gatewatch creates is created with.

Every name gets the configured prefix (tests use uuid prefixes). :data:`TOPIC_SPECS` is
the one table of topic configs: :func:`gatewatch.kafka.ensure_topics` creates each missing
topic with its row, the worker recreates its Faust changelog with the same row after a
broker lost it, and docs/operations.md ("Topics and records") documents it
(tests/unit/test_topics.py keeps the two equal).

Why explicit configs: a cluster's defaults (Apache Kafka: ``cleanup.policy=delete``,
``retention.ms`` 7 days) would silently delete what gatewatch reads back from the start
after a restart: the vehicle states (a truck can wait longer than 7 days) and the firing
alerts (a deleted ``fired`` record makes a restarted worker notify an old incident as
new). Those two topics are compacted: the latest record per key is the truth, kept for
as long as the topic lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DAY_MS", "TOPIC_SPECS", "TopicSpec", "Topics", "alert_key", "changelog_configs",
           "config_table", "leader_configs"]

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic (name without the prefix; ``<app id>`` stands for ``GATEWATCH_APP_ID``):
    its key, the configs it is created with, and why."""

    name: str
    key: str
    configs: Mapping[str, str]
    why: str


#: topic -> configs; keys are Kafka topic configs, values as the broker takes them
TOPIC_SPECS: dict[str, TopicSpec] = {s.name: s for s in (
    TopicSpec("gate.events", "`gate_id`",
              {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
              "input: the state lives in the changelog, so events are needed only until "
              "processed; 7 days covers a worker outage of a week (replay older logs with "
              "`gatewatch replay`)"),
    TopicSpec("gate.counts", "`gate_id`",
              {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
              "optional input: head counts of waiting vehicles (yard sensors, manual "
              "counts) checked against the ledger; dead letters go to "
              "`gate.events.rejected`"),
    TopicSpec("gate.events.rejected", "the original key",
              {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
              "dead letters: a month to look at and re-feed them"),
    TopicSpec("gate.windows", "`gate_id`",
              {"cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS)},
              "closed windows: a season of history for downstream consumers (the worker "
              "never reads them back)"),
    TopicSpec("gate.reconciliations", "`gate_id`",
              {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
              "audit of reconciliation: which waiting vehicle an unmatched read was paired "
              "with or set aside as unconfirmed, and why (plates: for audit here, never in "
              "metrics or INFO logs); a month to check the pairings"),
    TopicSpec("gate.alerts", "alert id (`gate_id:kind`)",
              {"cleanup.policy": "compact", "min.compaction.lag.ms": str(7 * DAY_MS)},
              "read back from the start after every restart: compaction keeps each alert's "
              "latest record (a `fired` one as long as the incident lasts), and every "
              "change stays for at least 7 days for `gatewatch notify`"),
    TopicSpec("gate.advisories", "advisory id (`gate_id:direction`)",
              {"cleanup.policy": "compact", "min.compaction.lag.ms": str(7 * DAY_MS)},
              "shipment advisories (normal / slow_down / hold_shipments): compaction keeps "
              "each advisory's latest record, every change stays 7 days for "
              "`gatewatch notify`"),
    TopicSpec("gate.alerts.undelivered", "the alert record's key",
              {"cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS)},
              "alert records a receiver refused for good (parked by `gatewatch notify`, "
              "reason in the headers): a season to look at and re-send them"),
    TopicSpec("<app id>-vehicle-state-changelog", "gate + vehicle",
              {"cleanup.policy": "compact"},
              "the state table's changelog: the latest record per vehicle is its state; "
              "created by Faust with the same config, recreated by the worker with this one"),
    TopicSpec("<app id>-__assignor-__leader", "(none)", {"cleanup.policy": "delete"},
              "Faust's leader election topic; nothing is written to it"),
)}


def config_table() -> str:
    """The Markdown table of :data:`TOPIC_SPECS` that docs/operations.md shows."""
    def value(k: str, v: str) -> str:
        days = f" ({int(v) // DAY_MS} days)" if k.endswith(".ms") and v.isdigit() \
            and int(v) % DAY_MS == 0 else ""
        return f"`{k}={v}`{days}"
    rows = ["| topic (after `GATEWATCH_TOPIC_PREFIX`) | key | created with | why |",
            "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.key} | "
             + ", ".join(value(k, v) for k, v in s.configs.items()) + f" | {s.why} |"
             for s in TOPIC_SPECS.values()]
    return "\n".join(rows) + "\n"


def alert_key(alert_id: str) -> bytes:
    """The ``gate.alerts`` key of an alert's records: its id (``gate_id:kind``), so that
    compaction keeps the latest record of every alert, not one per gate."""
    return alert_id.encode()


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics gatewatch reads and writes, for one prefix."""

    prefix: str = ""

    @property
    def events(self) -> str:
        """Crossing events, contract v1, key = gate_id (input)."""
        return f"{self.prefix}gate.events"

    @property
    def counts(self) -> str:
        """Count observations of waiting vehicles (optional input, key = gate_id)."""
        return f"{self.prefix}gate.counts"

    @property
    def rejected(self) -> str:
        """Dead letters: original bytes and key, reason in headers."""
        return f"{self.prefix}gate.events.rejected"

    @property
    def windows(self) -> str:
        """Closed window counts per gate (JSON, key = gate_id)."""
        return f"{self.prefix}gate.windows"

    @property
    def reconciliations(self) -> str:
        """Reconciliation audit records (JSON, key = gate_id): pairings and set-asides."""
        return f"{self.prefix}gate.reconciliations"

    @property
    def alerts(self) -> str:
        """Alert records (JSON, key = alert id ``gate_id:kind``, compacted)."""
        return f"{self.prefix}gate.alerts"

    @property
    def advisories(self) -> str:
        """Shipment advisory records (JSON, key = ``gate_id:direction``, compacted)."""
        return f"{self.prefix}gate.advisories"

    @property
    def alerts_undelivered(self) -> str:
        """Alert records a receiver rejected for good (``gatewatch notify`` parks them
        here): original key and bytes, reason, receiver and attempts in headers."""
        return f"{self.prefix}gate.alerts.undelivered"

    def all_created(self) -> tuple[str, ...]:
        """Topics the worker creates if missing (changelogs are Faust's own)."""
        return (self.events, self.counts, self.rejected, self.windows,
                self.reconciliations, self.alerts, self.alerts_undelivered, self.advisories)

    def configs(self) -> dict[str, Mapping[str, str]]:
        """Each topic of :meth:`all_created` -> the configs it is created with."""
        return {f"{self.prefix}{name}": TOPIC_SPECS[name].configs
                for name in ("gate.events", "gate.counts", "gate.events.rejected",
                             "gate.windows", "gate.reconciliations", "gate.alerts",
                             "gate.advisories")}


def changelog_configs() -> Mapping[str, str]:
    """The configs of a state table's changelog (as Faust creates it: compacted)."""
    return TOPIC_SPECS["<app id>-vehicle-state-changelog"].configs


def leader_configs() -> Mapping[str, str]:
    """The configs of Faust's assignor leader topic."""
    return TOPIC_SPECS["<app id>-__assignor-__leader"].configs
