"""Exceptions raised by gatewatch.

Hierarchy::

    GatewatchError
    ├── ConfigError        bad configuration: names the file (or variable), key and reason
    ├── BrokerError        the embedded broker could not start or stopped unexpectedly
    └── HistoryError       the history store cannot be reached or read (the API: 503)

Bad *data* never raises to the caller of the pipeline: it becomes a
:class:`gatewatch.streams.records.Rejection` and goes to the dead-letter topic.
"""

from __future__ import annotations

__all__ = ["BrokerError", "ConfigError", "GatewatchError", "HistoryError"]


class GatewatchError(Exception):
    """Base class of every gatewatch error."""


class ConfigError(GatewatchError):
    """Configuration that cannot be used; the message names source, key and reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}")


class BrokerError(GatewatchError):
    """The embedded broker could not be started or died."""


class HistoryError(GatewatchError):
    """The history store (``GATEWATCH_HISTORY_URL``) cannot be reached or read."""
