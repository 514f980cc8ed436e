"""The worker's non-API pages: ``/metrics``, ``/wall``, ``/runbook``, ``/healthz``, ``/readyz``.

``/readyz`` answers 200 only when the worker consumes: assigned, state recovered and
the broker reachable; otherwise 503 with a reason (what Kubernetes probes and the fault
drills read).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from gatewatch.web.metrics import GatewatchMetrics, scrape

__all__ = ["install_pages"]


def _data(name: str) -> str:
    return resources.files("gatewatch").joinpath("data", name).read_text("utf-8")


def install_pages(app: Any, *, registry: CollectorRegistry, metrics: GatewatchMetrics,
                  not_ready: Callable[[], str | None]) -> None:
    """Add the pages to a Faust app. ``not_ready()`` returns why the worker is not
    ready, or None when it is."""

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def _metrics(web: Any, request: Any) -> Any:
        return web.bytes(scrape(registry, metrics), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/wall")  # type: ignore[untyped-decorator]
    async def _wall(web: Any, request: Any) -> Any:
        return web.html(_data("wall.html"))

    @app.page("/runbook")  # type: ignore[untyped-decorator]
    async def _runbook(web: Any, request: Any) -> Any:
        return web.text(_data("runbook.md"), content_type="text/markdown; charset=utf-8")

    @app.page("/healthz")  # type: ignore[untyped-decorator]
    async def _healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")  # type: ignore[untyped-decorator]
    async def _readyz(web: Any, request: Any) -> Any:
        reason = not_ready()
        if reason is None:
            return web.json({"status": "ready"})
        return web.json({"status": "not_ready", "reason": reason}, status=503)
