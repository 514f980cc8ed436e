"""Keep secrets out of every log line, whoever logs them.

kafka-python logs its whole configuration at DEBUG, SASL password included; an exception
can carry a secret in its message or arguments, and a traceback shows them. Once a
secret is registered, a log-record factory replaces it with ``***`` in every record
before any handler sees it, in each part a handler may print:

- the message and its arguments: the record's message is formatted and redacted, and
  ``args`` dropped;
- the exception (``exc_info``, or ``exc_text`` already set): its traceback, chained
  causes included, is formatted here and redacted into ``exc_text``, and ``exc_info``
  dropped so that no formatter formats the original again;
- ``stack_info``, redacted as it is.

Only records that contain a secret are touched.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["redact", "register_secret"]

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False
_formatter = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for s in sorted(_secrets, key=len, reverse=True):  # a secret inside another: longest first
        text = text.replace(s, "***")
    return text


def _has_secret(text: str) -> bool:
    return any(s in text for s in _secrets)


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken record: show its parts, redacted
        message = f"{record.msg!s} {record.args!r}"
    if _has_secret(message) or (record.args and _has_secret(repr(record.args))):
        record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = _formatter.formatException(record.exc_info)
        if _has_secret(text):
            record.exc_info, record.exc_text = None, redact(text)
    elif record.exc_text and _has_secret(record.exc_text):
        record.exc_info, record.exc_text = None, redact(record.exc_text)
    if record.stack_info and _has_secret(record.stack_info):
        record.stack_info = redact(record.stack_info)


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
                _scrub(record)
            except Exception:  # noqa: BLE001, S110 - never break logging
                pass
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
