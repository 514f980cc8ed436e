"""Kafka security settings against a real broker: a clear error, and the secret never
appears in it or in any log line."""

from __future__ import annotations

import logging

import pytest

from gatewatch.errors import GatewatchError
from gatewatch.kafka import KafkaConfig, admin_client
from gatewatch.settings import Settings

pytestmark = pytest.mark.integration


def test_sasl_against_a_plaintext_listener_fails_clearly_without_the_password(
        bootstrap, caplog):
    secret = "s3cr3t-Pa55-word"
    settings = Settings.from_env({
        "GATEWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "GATEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "GATEWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "GATEWATCH_KAFKA_SASL_USERNAME": "gw", "GATEWATCH_KAFKA_SASL_PASSWORD": secret})
    progress: list[str] = []
    with caplog.at_level(logging.DEBUG), pytest.raises(GatewatchError) as info:
        admin_client(KafkaConfig.from_settings(settings), timeout_seconds=3,
                     progress=progress.append)
    message = str(info.value)
    assert "GATEWATCH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT" in message
    assert "SCRAM-SHA-256" in message and "'gw'" in message
    everything = message + "\n".join(progress) + caplog.text
    assert secret not in everything
