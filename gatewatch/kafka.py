"""Kafka for gatewatch: one connection configuration for every client, and the topic
administration gatewatch needs (creating its topics, reading partition counts).

:class:`KafkaConfig` is built once per command from :class:`~gatewatch.settings.Settings`
and converted for each client library: ``.aiokafka()`` (producers and consumers),
``.kafka_python()`` (the admin client) and ``.faust()`` (the worker's ``faust.App``).
Every Kafka client of every command (worker, notify, simulate, scenario ``--live``,
replay, topic administration) is built from it, so the security settings
(``GATEWATCH_KAFKA_SECURITY_PROTOCOL``, ``..._SASL_*``, ``..._SSL_CAFILE``) apply to all
of them or to none.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from gatewatch.errors import GatewatchError
from gatewatch.settings import Settings
from gatewatch.streams.topics import Topics

__all__ = ["KafkaConfig", "admin_client", "ensure_topics"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class KafkaConfig:
    """How to reach the Kafka cluster; build with :meth:`from_settings`.

    The SASL password is never part of ``repr()``/``str()``; only the conversions
    (handed straight to a client constructor) carry it.
    """

    bootstrap_servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = dataclasses.field(default="", repr=False)
    ssl_cafile: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConfig:
        servers = tuple(s.strip() for s in settings.bootstrap.split(",") if s.strip())
        sasl = settings.security_protocol.startswith("SASL")
        return cls(bootstrap_servers=servers,
                   security_protocol=settings.security_protocol,
                   sasl_mechanism=settings.sasl_mechanism if sasl else "",
                   sasl_username=settings.sasl_username if sasl else "",
                   sasl_password=settings.sasl_password if sasl else "",
                   ssl_cafile=settings.ssl_cafile)

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers as written in GATEWATCH_KAFKA_BOOTSTRAP (for messages)."""
        return ",".join(self.bootstrap_servers)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """The protocol, mechanism and user (never the password), for messages."""
        if not self.uses_sasl:
            return self.security_protocol
        return f"{self.security_protocol} ({self.sasl_mechanism}, user {self.sasl_username!r})"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client uses (system CAs, or GATEWATCH_KAFKA_SSL_CAFILE);
        None without TLS."""
        if not self.uses_tls:
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile or None)

    def _client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"bootstrap_servers": list(self.bootstrap_servers),
                              "security_protocol": self.security_protocol}
        if self.uses_tls:
            kw["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kw.update(sasl_mechanism=self.sasl_mechanism,
                      sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        return kw

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer`` / ``AIOKafkaConsumer``."""
        return self._client_kwargs()

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (``KafkaAdminClient`` ...).

        The same names as aiokafka's; the TLS trust comes from the same ``ssl_context``
        (kafka-python then ignores its other ``ssl_*`` options)."""
        return self._client_kwargs()

    def faust(self) -> dict[str, Any]:
        """``faust.App`` settings: ``broker`` URLs and ``broker_credentials``."""
        import faust

        broker = [f"kafka://{s}" for s in self.bootstrap_servers]
        credentials: Any = None
        context = self.ssl_context()
        if self.uses_sasl:
            credentials = faust.SASLCredentials(
                username=self.sasl_username, password=self.sasl_password,
                mechanism=self.sasl_mechanism, ssl_context=context)
        elif context is not None:
            credentials = faust.SSLCredentials(context)
        return {"broker": broker, "broker_credentials": credentials}


def admin_client(config: KafkaConfig, timeout_seconds: float = 30.0,
                 progress: Callable[[str], None] | None = None) -> Any:
    """A kafka-python admin client, retrying until the cluster answers."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_seconds
    last: Exception | None = None
    announced = False
    while time.monotonic() < deadline:
        try:
            # one attempt must not outlast the caller's deadline (a SASL handshake
            # against a plaintext listener hangs for the whole request timeout)
            left_ms = max(1000, int((deadline - time.monotonic()) * 1000))
            return KafkaAdminClient(request_timeout_ms=min(10_000, left_ms),
                                    bootstrap_timeout_ms=left_ms, **config.kafka_python())
        except Exception as exc:  # noqa: BLE001 - NoBrokersAvailable and friends
            last = exc
            if progress and not announced:
                progress(f"waiting for Kafka at {config.bootstrap} ...")
                announced = True
            time.sleep(0.5)
    how = ""
    if config.security_protocol != "PLAINTEXT":
        how = (f" with GATEWATCH_KAFKA_SECURITY_PROTOCOL={config.describe()}"
               "; check that the listener speaks it and the credentials")
    raise GatewatchError(f"cannot reach Kafka at {config.bootstrap} "
                         f"(GATEWATCH_KAFKA_BOOTSTRAP){how} after {timeout_seconds:.0f} s: "
                         f"{last}")


def ensure_topics(settings: Settings, progress: Callable[[str], None] | None = None,
                  extra: Mapping[str, tuple[int, Mapping[str, str]]] | None = None, *,
                  config: KafkaConfig | None = None) -> int:
    """Create gatewatch's topics (and ``extra``: name -> (partitions, configs)) if
    missing, each with its configs from :data:`~gatewatch.streams.topics.TOPIC_SPECS`;
    return the input topic's partition count. ``config`` defaults to the settings' own.

    Existing topics are never altered; one whose ``cleanup.policy`` differs from the
    table's is named in a warning (where the broker reports its configs)."""
    from kafka.admin import NewTopic
    from kafka.errors import (
        InvalidConfigurationError,
        PolicyViolationError,
        TopicAlreadyExistsError,
    )

    topics = Topics(settings.topic_prefix)
    admin = admin_client(config or KafkaConfig.from_settings(settings), progress=progress)
    try:
        existing = set(admin.list_topics())
        wanted = {t: (settings.partitions, c) for t, c in topics.configs().items()} \
            | dict(extra or {})
        for name, (partitions, configs) in wanted.items():
            if name in existing:
                continue
            try:
                admin.create_topics([NewTopic(name, partitions, settings.replication,
                                              topic_configs=dict(configs))])
                if progress:
                    progress(f"created topic {name} ({partitions} partitions, "
                             + ", ".join(f"{k}={v}" for k, v in configs.items()) + ")")
            except TopicAlreadyExistsError:
                pass
            except (InvalidConfigurationError, PolicyViolationError) as exc:
                raise GatewatchError(
                    f"cannot create topic {name} with " + ", ".join(
                        f"{k}={v}" for k, v in configs.items())
                    + f": {exc}; create it yourself with the closest configs this cluster "
                    "takes (docs/operations.md#topic-configs)") from exc
        for warning in _policy_warnings(admin, {t: c for t, (_, c) in wanted.items()
                                                if t in existing}):
            (progress or log.warning)(warning)
        info = admin.describe_topics([topics.events])
        partitions = len(info[0]["partitions"]) if info and info[0].get("partitions") else 0
        if partitions <= 0:
            raise GatewatchError(f"topic {topics.events} has no partitions on "
                                 f"{settings.bootstrap}")
        return partitions
    finally:
        admin.close()


def _policy_warnings(admin: Any, wanted: Mapping[str, Mapping[str, str]]) -> list[str]:
    """A warning for each existing topic whose reported ``cleanup.policy`` is not the one
    gatewatch would create it with (a topic the broker reports no policy for is not
    judged: the embedded broker reports only configs set at creation)."""
    if not wanted:
        return []
    from kafka.admin import ConfigResource, ConfigResourceType

    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(wanted)],
            config_filter="all").get("topic", {})
    except Exception as exc:  # noqa: BLE001 - a broker or ACL that does not allow it
        log.info("could not read the configs of existing topics: %s", exc)
        return []
    out = []
    for name, configs in sorted(wanted.items()):
        want = configs.get("cleanup.policy")
        got = (described.get(name) or {}).get("cleanup.policy", {}).get("value")
        if want and got and got != want:
            out.append(f"warning: topic {name} exists with cleanup.policy={got}, gatewatch "
                       f"creates it with {want} (docs/operations.md#topic-configs); "
                       f"change it: kafka-configs.sh --alter --entity-type topics "
                       f"--entity-name {name} --add-config cleanup.policy={want}")
    return out
