"""When to retry an alert delivery, and how long to wait: pure, no I/O, no clock.

A receiver's answer is one of three outcomes (:func:`classify`):

- ``delivered``: a 2xx;
- ``transient``: worth retrying for as long as it takes: 5xx, 408 Request Timeout,
  425 Too Early, 429 Too Many Requests, and network errors and timeouts (status ``None``);
- ``rejected``: every other answer (a 4xx such as 400, 401, 404, 413, or a final 3xx):
  the receiver refuses this record, and retrying it will not change that.

:class:`RetryPolicy` bounds the retries: transient failures are retried with capped
exponential back-off and jitter until they succeed (a receiver that is down for hours gets
every record when it returns) unless ``transient_attempts`` is set; a rejected record is
tried ``rejected_attempts`` times in all, then given up (the notifier parks it and goes on
with the next one). A ``Retry-After`` header (seconds or an HTTP date) is honoured, up to
``max_retry_after_seconds``.
"""

from __future__ import annotations

import dataclasses
import email.utils
from collections.abc import Callable
from typing import Literal

__all__ = ["Outcome", "RetryPolicy", "classify", "parse_retry_after"]

Outcome = Literal["delivered", "transient", "rejected"]

_TRANSIENT_4XX = frozenset({408, 425, 429})


def classify(status: int | None) -> Outcome:
    """The outcome of one attempt: ``status`` is the HTTP status, ``None`` when there was
    no answer (connection refused or reset, timeout, DNS failure)."""
    if status is None:
        return "transient"
    if 200 <= status < 300:
        return "delivered"
    if status >= 500 or status in _TRANSIENT_4XX:
        return "transient"
    return "rejected"


def parse_retry_after(value: str | None, now_seconds: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (``120`` or an HTTP date), given the
    wall clock ``now_seconds``; ``None`` if absent or unreadable; never negative."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now_seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one record is retried."""

    base_seconds: float = 0.5
    """the first back-off; it doubles with each failed attempt"""
    max_backoff_seconds: float = 30.0
    """the back-off never grows beyond this (before jitter)"""
    jitter: float = 0.5
    """each wait is drawn from [(1 - jitter) x back-off, back-off]"""
    rejected_attempts: int = 3
    """attempts in all for a record the receiver rejects (4xx) before it is parked"""
    transient_attempts: int | None = None
    """attempts in all for transient failures before the record is parked; None: no limit"""
    max_retry_after_seconds: float = 300.0
    """a receiver's ``Retry-After`` is honoured up to this"""

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_backoff_seconds < self.base_seconds:
            raise ValueError("need 0 < base_seconds <= max_backoff_seconds")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        if self.rejected_attempts < 1 or (self.transient_attempts is not None
                                          and self.transient_attempts < 1):
            raise ValueError("attempt limits must be at least 1")

    def gives_up(self, outcome: Outcome, attempts: int, rejected: int) -> bool:
        """After ``attempts`` failed attempts of one record, ``rejected`` of them
        rejections and the last one ``outcome``: stop trying (and park it)?"""
        if outcome == "rejected":
            return rejected >= self.rejected_attempts
        return self.transient_attempts is not None and attempts >= self.transient_attempts

    def backoff(self, attempt: int, retry_after: float | None = None,
                rand: Callable[[], float] | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): capped
        exponential back-off with jitter (``rand()`` in [0, 1), default: none), or the
        receiver's ``retry_after`` if longer (capped at ``max_retry_after_seconds``)."""
        exp = min(self.max_backoff_seconds, self.base_seconds * 2.0 ** min(attempt - 1, 60))
        wait = exp * (1 - self.jitter * (rand() if rand is not None else 0.0))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after_seconds))
        return wait
