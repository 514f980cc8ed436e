"""The Faust app factory: wiring only. ``create_app(settings, gates)`` builds a fresh
:class:`faust.App` (no module-level singleton) around one
:class:`~gatewatch.core.processor.Processor` and the :class:`~gatewatch.agents.worker.Worker`
that carries out its effects:

- one agent over ``gate.events`` and ``gate.counts`` (raw bytes in; both keyed by
  gate and created with the same partition count, so Faust's assignor gives a gate's
  events and counts to the same worker). With batch delivery (the default,
  :mod:`gatewatch.agents.delivery`) the consumer hands whole fetched batches to
  ``Worker.process`` and the agent's stream stays idle; otherwise the agent takes
  batches from its stream (``noack_take``) and acks each event after its effects;
- one changelog-backed table, ``vehicle-state``: key ``gate\\0vehicle``, value the
  vehicle's distinct events, written once per changed vehicle per batch to the
  partition of the event's own input partition (co-partitioned with the input);
  after every recovery the processor is rebuilt from it (``Worker.rebuild``);
- 1 s timers: broker health, and ``Worker.tick`` (windows, alerts, expiry sweep);
- HTTP on the configured host: the JSON API (:mod:`gatewatch.web.api`) and the pages
  (:mod:`gatewatch.web.pages`: /metrics, /wall, /runbook, /healthz, /readyz).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import chain
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from gatewatch import __version__
from gatewatch.agents import compat
from gatewatch.agents.delivery import BatchConsumer, RewindingConsumer
from gatewatch.agents.health import BrokerWatch, quiet_repeats
from gatewatch.agents.worker import ProfileSource, Worker, wall_ms
from gatewatch.core.processor import Processor
from gatewatch.gates import GateSet
from gatewatch.history.store import HistoryStore
from gatewatch.kafka import KafkaConfig, ensure_topics
from gatewatch.settings import Settings
from gatewatch.streams.topics import Topics, changelog_configs, leader_configs
from gatewatch.web import api
from gatewatch.web.metrics import GateCollector, GatewatchMetrics
from gatewatch.web.pages import install_pages

__all__ = ["STATE_TABLE", "create_app"]

STATE_TABLE = "vehicle-state"

log = logging.getLogger(__name__)


def create_app(settings: Settings, gates: GateSet, *,
               registry: CollectorRegistry | None = None,
               wall_ms: Callable[[], int] = wall_ms,
               partitions: int | None = None,
               profile_source: ProfileSource | None = None) -> Worker:
    """Build a worker for ``settings`` and ``gates``; ``partitions`` is the input topic's
    partition count (the state table is co-partitioned with it; default
    ``settings.partitions``); ``profile_source`` gives the forecasts past windows (a
    history store's ``windows``)."""
    quiet_repeats()  # aiokafka repeats connection errors every 100 ms while a broker is down
    if settings.broker_compat == "tansu":
        compat.patch_highwaters()
    n_partitions = partitions or settings.partitions
    topics = Topics(settings.topic_prefix)
    kafka = KafkaConfig.from_settings(settings)  # every client of this worker is built from it
    app = faust.App(
        settings.app_id,
        **kafka.faust(),  # broker + broker_credentials
        store="memory://", topic_partitions=n_partitions,
        topic_replication_factor=settings.replication,
        key_serializer="raw", value_serializer="raw", consumer_auto_offset_reset="earliest",
        web_enabled=True, web_bind=settings.web_host,
        web_host=settings.advertised_host,  # the URL peers forward API requests to
        web_port=settings.web_port,
        web_tables_enabled=False,  # would expose table keys (plates)
        web_graph_enabled=False, web_stats_enabled=False, web_router_enabled=True,
        table_standby_replicas=settings.standby_replicas,
        producer_linger=0.005, stream_wait_empty=False,
        **compat.faust_settings(settings.broker_compat),
    )

    def raw_topic(name: str, **kw: Any) -> Any:
        return app.topic(name, key_serializer="raw", value_serializer="raw", **kw)

    def plain_consumer() -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(enable_auto_commit=False, group_id=None, fetch_max_wait_ms=100,
                                **kafka.aiokafka())

    registry = registry if registry is not None else CollectorRegistry()
    table = app.Table(STATE_TABLE, default=None, partitions=n_partitions,
                      key_type=bytes, value_type=bytes)
    # -- input: gate.events and gate.counts (co-partitioned), one agent over both --
    inputs = (topics.events, topics.counts)
    input_topic = app.topic(*inputs, key_serializer="raw", value_serializer="raw",
                            key_type=bytes, value_type=bytes, partitions=n_partitions)
    worker = Worker(app=app, settings=settings, gates=gates,
                    processor=Processor(gates, settings, counts_topic=topics.counts),
                    metrics=GatewatchMetrics(registry, gates), registry=registry,
                    topics=topics, table=table, rejected_topic=raw_topic(topics.rejected),
                    windows_topic=raw_topic(topics.windows),
                    alerts_topic=raw_topic(topics.alerts),
                    reconciliations_topic=raw_topic(topics.reconciliations),
                    consumer_factory=plain_consumer, input_partitions=n_partitions,
                    wall_ms=wall_ms, profile_source=profile_source,
                    advisories_topic=raw_topic(topics.advisories))
    registry.register(GateCollector(worker.processor, wall_ms, worker.lag_samples))

    app.gatewatch_source_topics = set(inputs)  # type: ignore[attr-defined]
    if settings.batch_delivery:
        app.gatewatch_handlers = dict.fromkeys(inputs, worker.process)  # type: ignore[attr-defined]
        app.transport.Consumer = BatchConsumer  # type: ignore[misc]
        app.gatewatch_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    else:
        app.transport.Consumer = RewindingConsumer  # type: ignore[misc]

    @app.agent(input_topic, name="gate-events")
    async def gate_events(stream: Any) -> None:
        # idle with batch delivery; otherwise the stream path
        async for batch in stream.noack_take(settings.batch_size,
                                             within=settings.batch_within_seconds):
            await worker.process([event.message for event in batch])
            for event in batch:
                await stream.ack(event)

    table.on_recover(worker.rebuild)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _on_revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        worker.revoked()

    def recreate_topics() -> None:
        ensure_topics(settings, progress=log.warning, config=kafka, extra={
            table.changelog_topic.get_topic_name(): (n_partitions, changelog_configs()),
            f"{settings.app_id}-__assignor-__leader": (1, leader_configs())})

    async def broker_topics() -> set[str]:
        client = app.producer._ensure_producer().client  # type: ignore[attr-defined]
        return set((await client.fetch_all_metadata()).topics())

    worker.broker = BrokerWatch(broker_topics, topics.events, recreate_topics,
                                lambda up: worker.metrics.broker_up.set(1 if up else 0))
    worker.metrics.broker_up.set(1)
    app.timer(1.0)(worker.broker.check)
    app.timer(1.0)(worker.tick)

    api.install(app, processor=worker.processor, wall_ms=wall_ms, token=settings.api_token,
                cors_origins=settings.api_cors_origins, state_table=STATE_TABLE,
                version=__version__, public_rate_per_minute=settings.public_rate_per_minute,
                history=HistoryStore(settings.history_url, readonly=True),
                utc_offset_minutes=settings.history_utc_offset_minutes,
                kafka_status=lambda: {"reachable": worker.broker is None or worker.broker.up,
                                      "unreachable_seconds": round(
                                          worker.broker.down_seconds(), 1)
                                      if worker.broker else 0.0},
                alert_records=lambda: chain.from_iterable(worker.alert_records.values()),
                advisory_records=lambda: chain.from_iterable(
                    worker.advisory_records.values()),
                cap_sender=settings.cap_sender)
    install_pages(app, registry=registry, metrics=worker.metrics, not_ready=worker.not_ready)
    return worker
