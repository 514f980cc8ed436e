"""Keep secrets out of every log line, whoever logs them.

kafka-python logs its whole configuration at DEBUG, SASL password included. Once a
secret is registered, a log-record factory replaces it with ``***`` in every record's
message before any handler sees it (only records whose message contains it are
touched).
"""

from __future__ import annotations

import logging
import threading

__all__ = ["register_secret"]

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: str) -> None:
    """Redact ``value`` from all log records from now on (ignored if shorter than 4)."""
    global _installed
    if len(value) < 4:
        return
    with _lock:
        _secrets.add(value)
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken record stays as it is
                return record
            if any(s in message for s in _secrets):
                for s in _secrets:
                    message = message.replace(s, "***")
                record.msg, record.args = message, None
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
