"""Kafka administration gatewatch needs: creating its topics, reading partition counts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gatewatch.errors import GatewatchError
from gatewatch.settings import Settings
from gatewatch.streams.topics import Topics

__all__ = ["admin_client", "aiokafka_security", "ensure_topics", "kafka_credentials"]


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka client settings for SASL/TLS (empty for PLAINTEXT)."""
    import ssl

    if settings.security_protocol == "PLAINTEXT":
        return {}
    cfg: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        cfg["ssl_context"] = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    if settings.security_protocol.startswith("SASL"):
        cfg.update(sasl_mechanism=settings.sasl_mechanism,
                   sasl_plain_username=settings.sasl_username,
                   sasl_plain_password=settings.sasl_password)
    return cfg



def _security(settings: Settings) -> dict[str, Any]:
    cfg: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        cfg.update(sasl_mechanism=settings.sasl_mechanism,
                   sasl_plain_username=settings.sasl_username,
                   sasl_plain_password=settings.sasl_password)
    if settings.ssl_cafile:
        cfg["ssl_cafile"] = settings.ssl_cafile
    return cfg


def admin_client(settings: Settings, timeout_seconds: float = 30.0,
                 progress: Callable[[str], None] | None = None) -> Any:
    """A kafka-python admin client, retrying until the cluster answers."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_seconds
    last: Exception | None = None
    announced = False
    while time.monotonic() < deadline:
        try:
            return KafkaAdminClient(bootstrap_servers=settings.bootstrap.split(","),
                                    request_timeout_ms=10000, **_security(settings))
        except Exception as exc:  # noqa: BLE001 - NoBrokersAvailable and friends
            last = exc
            if progress and not announced:
                progress(f"waiting for Kafka at {settings.bootstrap} ...")
                announced = True
            time.sleep(0.5)
    how = ""
    if settings.security_protocol != "PLAINTEXT":
        how = (f" with GATEWATCH_KAFKA_SECURITY_PROTOCOL={settings.security_protocol}"
               + (f" ({settings.sasl_mechanism}, user {settings.sasl_username!r})"
                  if settings.security_protocol.startswith("SASL") else "")
               + "; check that the listener speaks it and the credentials")
    raise GatewatchError(f"cannot reach Kafka at {settings.bootstrap} "
                         f"(GATEWATCH_KAFKA_BOOTSTRAP){how} after {timeout_seconds:.0f} s: "
                         f"{last}")


def ensure_topics(settings: Settings, progress: Callable[[str], None] | None = None,
                  extra: dict[str, int] | None = None) -> int:
    """Create gatewatch's topics (and ``extra``: name -> partitions) if missing; return
    the input topic's partition count."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    topics = Topics(settings.topic_prefix)
    admin = admin_client(settings, progress=progress)
    try:
        existing = set(admin.list_topics())
        wanted = {t: settings.partitions for t in topics.all_created()} | (extra or {})
        missing = [t for t in wanted if t not in existing]
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, wanted[name], settings.replication)])
                if progress:
                    progress(f"created topic {name} ({wanted[name]} partitions)")
            except TopicAlreadyExistsError:
                pass
        info = admin.describe_topics([topics.events])
        partitions = len(info[0]["partitions"]) if info and info[0].get("partitions") else 0
        if partitions <= 0:
            raise GatewatchError(f"topic {topics.events} has no partitions on "
                                 f"{settings.bootstrap}")
        return partitions
    finally:
        admin.close()


def kafka_credentials(settings: Settings) -> Any:
    """Faust broker credentials for SASL/TLS settings (None for PLAINTEXT)."""
    import ssl

    import faust
    from faust.types.auth import SASLMechanism

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.sasl_mechanism == "PLAIN":
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password,
                                     ssl_context=context if protocol == "SASL_SSL" else None)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=settings.sasl_password,
                                 mechanism=SASLMechanism(settings.sasl_mechanism),
                                 ssl_context=context if protocol == "SASL_SSL" else None)
