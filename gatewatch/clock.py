"""The clock of ``gatewatch worker`` and ``gatewatch notify``: the real one, or a
simulated timeline for drills and demos.

With ``GATEWATCH_CLOCK_SPEED``, ``GATEWATCH_CLOCK_ORIGIN`` and
``GATEWATCH_CLOCK_ANCHOR_MS`` (all or none, see :mod:`gatewatch.settings`)::

    simulated now = origin + (real now − anchor) × speed

so every process given the same three values (a drill, a worker, a restarted worker,
the notifier) reads the same simulated time, whenever it was started. Everything the
worker judges against "now" follows it: no-data silence, idle watermarks, alert hold
times, how far ahead an event may be stamped. Its timers still fire in real time: at
speed S a 1 s tick is S simulated seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gatewatch.settings import Settings

__all__ = ["clock_for", "real_ms", "simulated"]


def real_ms() -> int:
    """The real clock: Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def simulated(speed: float, origin_ms: int, anchor_ms: int,
              real: Callable[[], int] = real_ms) -> Callable[[], int]:
    """A clock reading ``origin_ms`` when ``real()`` reads ``anchor_ms``, running
    ``speed`` times as fast as ``real``."""
    if not speed > 0:
        raise ValueError(f"clock speed must be > 0, got {speed!r}")

    def now() -> int:
        return origin_ms + int((real() - anchor_ms) * speed)

    return now


def clock_for(settings: Settings, real: Callable[[], int] = real_ms) -> Callable[[], int]:
    """The clock ``settings`` ask for: ``real`` itself unless a simulated clock is set."""
    if settings.clock_origin_ms is None or settings.clock_anchor_ms is None:
        return real
    return simulated(settings.clock_speed, settings.clock_origin_ms,
                     settings.clock_anchor_ms, real)
