"""The ``gatewatch`` command: broker, worker, simulate, run.

Configuration errors print ``gatewatch: error: <file or environment>: <key>: <reason>``
and exit with status 2; nothing starts half-configured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from gatewatch import __version__
from gatewatch.errors import ConfigError, GatewatchError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gatewatch.agents.worker import ProfileSource
    from gatewatch.gates import GateSet
    from gatewatch.history.store import HistoryStore
    from gatewatch.settings import Settings
    from gatewatch.streams.records import WindowRecord
    from gatewatch.tools.replay import ReplayReport

__all__ = ["main"]


def _say(msg: str) -> None:
    print(msg, flush=True)


def _load(env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    from gatewatch.gates import load_gates
    from gatewatch.settings import Settings

    settings = Settings.from_env(env)
    return settings, load_gates(settings.gates_path)


def cmd_broker(args: argparse.Namespace) -> int:
    from gatewatch.tools.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port, host=args.host)
    broker.start()
    _say(f"gatewatch broker: embedded Tansu broker ready on {broker.bootstrap} "
         "(memory only: data is lost when it stops). Ctrl-C to stop.")
    stopping = {"flag": False}

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping["flag"]:
            if not broker.alive():
                _say("gatewatch broker: the broker process exited unexpectedly")
                return 1
            time.sleep(0.2)
    finally:
        broker.stop()
        _say("gatewatch broker: stopped")
    return 0


def _say_clock(settings: Settings) -> None:
    """Say so when a simulated clock (a drill or demo) replaces the real one."""
    if settings.clock_origin_ms is not None:
        from gatewatch.clock import clock_for
        from gatewatch.streams.codec import format_ms

        _say(f"gatewatch: SIMULATED CLOCK x{settings.clock_speed:g}, now "
             f"{format_ms(clock_for(settings)())} "
             "(GATEWATCH_CLOCK_SPEED: for drills and demos only)")


def _profile_source(settings: Settings) -> ProfileSource:
    """The forecasts' past windows: the history store's, read-only (none when it cannot
    be read: the forecasts then learn from the worker's own windows)."""
    from gatewatch.history.store import HistoryStore

    store = HistoryStore(settings.history_url, readonly=True)

    def windows(gate_id: str, from_ms: int, to_ms: int) -> Sequence[WindowRecord]:
        try:
            return store.windows(gate_id, from_ms, to_ms)
        except GatewatchError:
            return []
    return windows


def cmd_worker(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.web_port is not None:
        env["GATEWATCH_WEB_PORT"] = str(args.web_port)
    settings, gates = _load(env)
    import faust

    from gatewatch.agents.app import create_app
    from gatewatch.clock import clock_for
    from gatewatch.kafka import ensure_topics

    partitions = ensure_topics(settings, progress=_say)
    gw = create_app(settings, gates, partitions=partitions, wall_ms=clock_for(settings),
                    profile_source=_profile_source(settings))
    _say_clock(settings)
    _say(f"gatewatch worker: {len(gates.gates)} gates from {gates.source}; "
         f"Kafka {settings.bootstrap}; topic {gw.topics.events} ({partitions} partitions); "
         f"{settings.advertised_url}/metrics (bound to {settings.web_host})")
    worker = faust.Worker(gw.app, loglevel=settings.log_level, quiet=True,
                          redirect_stdouts=False)
    worker.execute_from_commandline()  # exits the process when the worker stops
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from gatewatch.kafka import KafkaConfig, ensure_topics
    from gatewatch.streams.codec import parse_timestamp_ms
    from gatewatch.streams.topics import Topics
    from gatewatch.tools import simulate

    settings, gates = _load()
    kafka = KafkaConfig.from_settings(settings)
    ensure_topics(settings, progress=_say, config=kafka)
    start_ms = None
    if args.start:
        start_ms = parse_timestamp_ms(args.start)
        if start_ms is None:
            raise ConfigError("command line", "--start", "must be RFC 3339 with an offset")
    elif args.speed > 1:
        start_ms = int(time.time() * 1000) - 86_400_000
    faults = simulate.Faults(duplicate=args.duplicates, late=args.late, malformed=args.malformed)
    topic = Topics(settings.topic_prefix).events
    _say(f"gatewatch simulate: {len(gates.gates)} gates -> {topic} on {kafka.bootstrap} "
         f"({kafka.describe()}); rate x{args.rate}, speed x{args.speed}, seed {args.seed}")
    asyncio.run(simulate.run(
        kafka, topic, gates, rate=args.rate, speed=args.speed, seed=args.seed,
        faults=faults, duration_seconds=args.duration, initial_backlog=args.initial_backlog,
        start_ms=start_ms, progress=_say, day_profile=args.day_profile))
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    import logging
    import signal as _signal

    from gatewatch.alerts.notify import AlertmanagerPusher, WebhookNotifier
    from gatewatch.alerts.retry import RetryPolicy
    from gatewatch.clock import clock_for
    from gatewatch.kafka import KafkaConfig, ensure_topics
    from gatewatch.streams.topics import Topics

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(message)s")
    settings, _gates = _load()
    webhooks = args.webhook_url or list(settings.webhook_urls)
    am = args.alertmanager_url or settings.alertmanager_url
    if not webhooks and not am:
        raise ConfigError("command line", "--webhook-url/--alertmanager-url",
                          "give at least one receiver (or GATEWATCH_WEBHOOK_URL / "
                          "GATEWATCH_ALERTMANAGER_URL)")
    kafka = KafkaConfig.from_settings(settings)
    ensure_topics(settings, progress=_say, config=kafka)
    topics = Topics(settings.topic_prefix)
    topic = topics.alerts
    policy = RetryPolicy(rejected_attempts=args.rejected_attempts)
    topic = Topics(settings.topic_prefix).alerts
    _say_clock(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tasks = []
        for i, url in enumerate(webhooks):
            group = f"{settings.app_id}-notify-webhook" + (f"-{i}" if i else "")
            tasks.append(WebhookNotifier(kafka, topic, group, url.strip(), policy=policy,
                                         parking_topic=topics.alerts_undelivered).run(stop))
        if am:
            tasks.append(AlertmanagerPusher(
                kafka, topic, am, resend_seconds=args.resend_seconds,
                wall_ms=clock_for(settings), policy=policy,
                parking_topic=topics.alerts_undelivered,
                advisories_topic=topics.advisories).run(stop))
        _say(f"gatewatch notify: {topic} -> " + ", ".join(
            [*(f"webhook {u}" for u in webhooks), *([f"alertmanager {am}"] if am else [])]))
        await asyncio.gather(*tasks)
        _say("gatewatch notify: stopped")

    asyncio.run(main())
    return 0


def cmd_alertmanager_config(args: argparse.Namespace) -> int:
    from gatewatch.alerts.subscriptions import (
        alertmanager_config,
        load_subscriptions,
        render_yaml,
    )

    _settings, gates = _load()
    subs = load_subscriptions(Path(args.subscribers), gates)
    major, _, minor = args.alertmanager_version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ConfigError("command line", "--alertmanager-version",
                          f"{args.alertmanager_version!r} must be MAJOR.MINOR, e.g. 0.27")
    text = render_yaml(alertmanager_config(subs, (int(major), int(minor))), args.subscribers)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        _say(f"wrote {args.out}: {len(subs.subscribers)} subscriber route(s)")
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    from gatewatch.settings import Settings
    from gatewatch.tools.dashboards import push, write_all

    directory = Path(args.dir)
    if args.action == "generate":
        for path in write_all(directory):
            _say(f"wrote {path}")
        return 0
    token = args.token or Settings.from_env().grafana_token
    if not args.grafana_url or not token:
        raise ConfigError("command line", "--grafana-url/--token",
                          "push needs the Grafana URL and an API token "
                          "(or GATEWATCH_GRAFANA_TOKEN)")
    if not any(directory.glob("*.json")):
        raise ConfigError(str(directory), "(directory)", "no dashboard JSON; run "
                          "`gatewatch dashboards generate` first")
    for uid in push(args.grafana_url, token, args.prometheus_url, directory):
        _say(f"pushed dashboard {uid} to {args.grafana_url}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Validate a log, report its bad rows, produce the good ones. The summary is printed
    whatever happens: also when reading or sending stops half-way (then the error
    follows it)."""
    from gatewatch.kafka import KafkaConfig, ensure_topics
    from gatewatch.streams.codec import Decoder
    from gatewatch.streams.topics import Topics
    from gatewatch.tools.replay import ColumnMap, ReplayReport, check_encoding, parse_log

    settings, gates = _load()
    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(str(path), "(file)", "file not found")
    cmap = ColumnMap.parse(args.map, args.types, args.directions, args.default_direction,
                           args.assume_offset)
    encoding = check_encoding(args.encoding)
    decoder = Decoder(gates.ids(), settings.max_message_bytes,
                      settings.max_future_skew_seconds * 1000)
    report = ReplayReport()
    try:
        good, _ = parse_log(path, cmap, decoder, int(time.time() * 1000), args.format,
                            encoding=encoding, max_field_bytes=settings.max_message_bytes,
                            report=report)
    except OSError as exc:
        raise GatewatchError(f"{path}: cannot read: {exc}") from exc
    finally:
        _replay_report(path, report, args)
    if args.dry_run or not good:
        return 0 if not report.errors else 3
    if args.to_history:  # offline, in event time, no Kafka (gatewatch.history.offline)
        from gatewatch.history.offline import import_events
        from gatewatch.streams.codec import format_ms

        store = _history_store(settings)
        done = import_events(store, good, gates, settings, updated_ms=int(time.time() * 1000),
                             progress=_say)
        _say(f"replay: {done.events} events from {format_ms(done.first_ms or 0)} to "
             f"{format_ms(done.last_ms or 0)} -> {done.windows} windows, {done.alerts} alert "
             f"records upserted into {store.describe()}")
        return 0 if not report.errors else 3
    kafka = KafkaConfig.from_settings(settings)
    ensure_topics(settings, progress=_say, config=kafka)
    topic = Topics(settings.topic_prefix).events
    good.sort(key=lambda g: g[2])  # replay in event-time order
    sent = 0

    async def send() -> None:
        nonlocal sent
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(linger_ms=20, **kafka.aiokafka())
        await producer.start()
        try:
            start_wall, first = time.monotonic(), good[0][2]
            for i, (key, value, t_ms) in enumerate(good, start=1):
                if args.speed > 0:
                    due = (t_ms - first) / 1000 / args.speed
                    delay = due - (time.monotonic() - start_wall)
                    if delay > 0:
                        await producer.flush()
                        sent = i - 1
                        await asyncio.sleep(delay)
                await producer.send(topic, value, key=key)
                if i % 10000 == 0:
                    _say(f"replay: {i}/{len(good)} events sent")
            await producer.flush()
            sent = len(good)
        finally:
            await producer.stop()

    try:
        asyncio.run(send())
    except BaseException as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
            f"{type(exc).__name__}: {exc}"
        _say(f"replay: stopped ({what}): {sent}/{len(good)} events confirmed sent to "
             f"{topic} on {kafka.bootstrap}; replaying the file again sends the rest "
             "(the ones already sent are duplicates and change nothing)")
        raise
    _say(f"replay: {len(good)} events sent to {topic} on {kafka.bootstrap}")
    return 0 if not report.errors else 3


def _replay_report(path: Path, report: ReplayReport, args: argparse.Namespace) -> None:
    """The rejected rows (at most ``--show``), the ``--report`` file, the summary."""
    for err in report.errors[: args.show]:
        _say(f"{path}: row {err.row}: {err.reason}: {err.detail}")
    if len(report.errors) > args.show:
        _say(f"... and {len(report.errors) - args.show} more rejected rows")
    if args.report:
        import orjson

        Path(args.report).write_bytes(b"".join(
            orjson.dumps({"row": e.row, "reason": e.reason, "detail": e.detail}) + b"\n"
            for e in report.errors))
        _say(f"wrote the rejected rows to {args.report}")
    _say(f"{path}: {report.summary()}")


def cmd_backtest(args: argparse.Namespace) -> int:
    """Walk forward through scenarios or a gate log, forecasting every hour, and print
    the model's errors beside the baselines' (docs/forecasting.md)."""
    import orjson

    from gatewatch.tools import backtest
    from gatewatch.tools.scenarios import available

    settings, gates = _load()
    names = available() if args.target == "all" else [args.target]
    progress = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.progress \
        else None
    results = []
    for name in names:
        target = backtest.load(name)
        print(f"backtest: {name} ...", file=sys.stderr, flush=True)
        if isinstance(target, Path):
            from gatewatch.tools.replay import ColumnMap, check_encoding

            cmap = ColumnMap.parse(args.map, args.types, args.directions,
                                   assume_offset=args.assume_offset)
            try:
                res = backtest.run_log(target, gates, lead_in_days=args.lead_in_days or 7.0,
                                       settings=settings, cmap=cmap,
                                       encoding=check_encoding(args.encoding),
                                       progress=progress)
            except ValueError as exc:
                raise ConfigError(str(target), "(file)", str(exc)) from None
        else:
            if args.seed is not None:
                from dataclasses import replace

                target = replace(target, seed=args.seed)
            res = backtest.run_scenario(target, gates, lead_in_days=args.lead_in_days or 21.0,
                                        settings=settings, progress=progress)
        results.append(res)
    if args.json:
        doc = {"command": "gatewatch backtest " + " ".join(sys.argv[2:]),
               "results": [r.to_json() for r in results],
               "passed": all(r.passed for r in results)}
        out = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
        if args.json == "-":
            sys.stdout.write(out.decode())
        else:
            Path(args.json).write_bytes(out)
            _say(f"wrote {args.json}")
    if args.json != "-":
        _say(backtest.render(results))
        for r in results:
            for note in r.notes:
                _say(f"{r.name}: {note}")
    return 0 if all(r.passed for r in results) else 1


def _history_store(settings: Settings):  # type: ignore[no-untyped-def]
    """The history store of GATEWATCH_HISTORY_URL, migrated to the latest schema; a
    ConfigError (exit 2) naming the variable when it cannot be opened."""
    from gatewatch.history.store import URL_VARIABLE, HistoryStore

    store = HistoryStore(settings.history_url)
    try:
        revision = store.migrate()
    except GatewatchError as exc:
        raise ConfigError("environment", URL_VARIABLE, str(exc)) from None
    _say(f"gatewatch history: store {store.describe()} (schema {revision})")
    return store


def cmd_history(args: argparse.Namespace) -> int:
    """``gatewatch history``: gate.windows + gate.alerts → the history store
    (:mod:`gatewatch.history.ingest`); ``gatewatch history migrate``: the schema only."""
    import logging
    import signal as _signal

    from prometheus_client import CollectorRegistry

    from gatewatch.history.ingest import HistoryMetrics, HistoryWriter, serve_metrics
    from gatewatch.kafka import KafkaConfig, ensure_topics
    from gatewatch.streams.topics import Topics

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(message)s")
    settings, _gates = _load()
    store = _history_store(settings)
    if args.action == "migrate":
        return 0
    kafka = KafkaConfig.from_settings(settings)
    ensure_topics(settings, progress=_say, config=kafka)
    topics = Topics(settings.topic_prefix)
    group = f"{settings.app_id}-history"
    registry = CollectorRegistry()
    writer = HistoryWriter(kafka, topics, group, store, HistoryMetrics(registry),
                           batch_records=args.batch, progress=_say)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = None
        if args.metrics_port:
            try:
                runner = await serve_metrics(registry, "127.0.0.1", args.metrics_port)
            except OSError as exc:
                raise ConfigError("command line", "--metrics-port",
                                  f"cannot listen on 127.0.0.1:{args.metrics_port}: "
                                  f"{exc.strerror or exc}") from None
        _say(f"gatewatch history: {topics.windows}, {topics.alerts} (group {group}, from the "
             f"start) -> {store.describe()}" + (
                 f"; metrics http://127.0.0.1:{args.metrics_port}/metrics"
                 if args.metrics_port else ""))
        try:
            await writer.run(stop)
        finally:
            if runner is not None:
                await runner.cleanup()
            store.close()
        _say("gatewatch history: stopped")

    asyncio.run(main())
    return 0


def cmd_scenario(args: argparse.Namespace) -> int:
    from gatewatch.tools.scenarios import available, load_scenario, run_offline

    if args.name == "list":
        for name in available():
            _say(f"{name}: {load_scenario(name).description}")
        return 0
    settings, gates = _load()
    sc = load_scenario(args.name)
    if args.what_if:
        from gatewatch.tools.whatif import rehearse
        for line in rehearse(sc, gates, settings, args.what_if).lines:
            _say(line)
        return 0
    if not args.live:
        _say(f"scenario {sc.name}: {sc.description} ({sc.duration_hours:g} h in event time)")
        outcome = run_offline(sc, gates, settings)
        for c in outcome.changes:
            if c["kind"] != "no_data" or args.verbose:
                _say(f"  +{c['hours']:5.1f} h  {c['gate_id']:<15} {c['kind']:<16} "
                     f"{c['change']:<10} {c['severity']:<8} waiting {c['waiting']}")
        _say(f"  waiting at the end: {outcome.final_waiting}")
        if sc.cameras is not None:
            _say(f"  plate reads: {outcome.reads}; largest backlog error (vehicles): "
                 + ", ".join(f"{g} {outcome.max_backlog_error(g)}" for g in outcome.final_waiting))
        for label, ok in outcome.checks:
            _say(f"  {'PASS' if ok else 'FAIL'}  {label}")
        return 0 if outcome.passed else 1
    from gatewatch.kafka import KafkaConfig, ensure_topics
    from gatewatch.streams.topics import Topics
    from gatewatch.tools import simulate

    kafka = KafkaConfig.from_settings(settings)
    ensure_topics(settings, progress=_say, config=kafka)
    topics = Topics(settings.topic_prefix)
    topic = topics.events
    _say(f"scenario {sc.name} live: {sc.duration_hours:g} h at x{args.speed} -> {topic}")
    asyncio.run(simulate.run(
        kafka, topic, gates, rate=sc.rate, speed=args.speed, seed=sc.seed,
        faults=simulate.Faults(), duration_seconds=sc.duration_hours * 3600 / args.speed,
        initial_backlog=sc.initial_backlog, start_ms=sc.start_ms, progress=_say,
        overrides=sc.overrides, day_profile=sc.day_profile, cameras=sc.cameras,
        counts=sc.counts, counts_topic=topics.counts))
    return 0


def _seed_run(store: HistoryStore, gates: GateSet, settings: Settings,
              args: argparse.Namespace, say: Callable[[str], None],
              shown: Callable[[Path], str]) -> None:
    """``gatewatch run``: simulated weeks into an empty history store before the start
    (:mod:`gatewatch.tools.seed`), so patterns and forecasts show something at once."""
    from gatewatch.clock import clock_for
    from gatewatch.tools.seed import seed_history

    if args.scenario:
        say("gatewatch run: no history seeding with --scenario (its own event time)")
        return
    where = shown(store.sqlite_path) if store.sqlite_path else store.describe()
    try:
        store.migrate()
    except GatewatchError as exc:
        from gatewatch.history.store import URL_VARIABLE

        raise ConfigError("environment", URL_VARIABLE, str(exc)) from None
    if store.count("windows"):
        say(f"gatewatch run: history store {where} has rows: not seeded")
        return
    say(f"gatewatch run: seeding {args.seed_weeks:g} weeks of simulated history "
        "(once; --no-seed skips it)")
    say(f"  into {where} ...")
    res = seed_history(store, gates, settings, weeks=args.seed_weeks,
                       now_ms=clock_for(settings)(), progress=lambda m: say(f"  {m}"))
    say(f"gatewatch run: seeded {res.windows} windows and {res.alerts} alert records of "
        f"{len(gates.gates)} gates ({res.events} events) in {res.seconds:.1f} s")


def cmd_run(args: argparse.Namespace) -> int:
    import json
    import shutil
    import urllib.request
    from datetime import datetime

    from gatewatch.tools import live
    from gatewatch.tools.broker import EmbeddedBroker

    if args.refresh <= 0:
        raise ConfigError("command line", "--refresh", "must be a positive number of seconds")
    settings, gates = _load()
    host, _, port = settings.bootstrap.rpartition(":")
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {name: log_dir / f"{name}.log" for name in ("worker", "simulator", "history",
                                                        "broker")
            if name == "broker" or not args.verbose}  # --verbose: the others on stdout
    from gatewatch.history.store import HistoryStore

    history_store = HistoryStore(settings.history_url)  # a bad URL stops here
    history_port = _port_or_free(args.web_port + 1)
    for path in logs.values():
        path.write_bytes(b"")  # one run per file: start empty
    broker = EmbeddedBroker(port=args.broker_port or int(port), host="127.0.0.1",
                            log_path=logs["broker"])
    env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=broker.bootstrap,
               GATEWATCH_WEB_PORT=str(args.web_port), PYTHONUNBUFFERED="1")
    exe = [sys.executable, "-m", "gatewatch"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    files = []
    stopping = {"flag": False, "failed": False}

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping["flag"] = True

    def shown(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path.resolve())

    tty = sys.stdout.isatty() and not args.verbose
    drawn = {"lines": 0}

    def say(msg: str) -> None:  # a message above the live view, which is redrawn later
        sys.stdout.write(live.frame([], drawn["lines"], tty) + msg + "\n")
        sys.stdout.flush()
        drawn["lines"] = 0

    def tail(name: str, n: int = 15) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        text = logs[name].read_bytes().decode("utf-8", "replace").splitlines()[-n:]
        say(f"gatewatch run: the last lines of {shown(logs[name])}:" if text else
            f"gatewatch run: {shown(logs[name])} is empty")
        for line in text:
            say(live.fit("  | " + line, width).rstrip())

    def last_line(name: str) -> list[str]:  # the simulator's latest progress line
        if args.verbose:
            return []
        with open(logs[name], "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            text = f.read().decode("utf-8", "replace").splitlines()
        progress = [t for t in text if t.startswith("simulate: ")]
        # "simulate: N events sent; sim time T; waiting: ..." (the table shows what waits)
        return [f"  simulator: {'; '.join(progress[-1][10:].split('; ')[:2])}"] \
            if progress else []

    wildcard = settings.web_host in ("", "0.0.0.0", "::")  # noqa: S104 - not binding
    base = f"http://{'127.0.0.1' if wildcard else settings.web_host}:{args.web_port}"
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    request = urllib.request.Request(f"{base}/api/v1/gates", headers=headers)  # noqa: S310

    def fetch() -> tuple[dict[str, object] | None, str]:
        try:
            with urllib.request.urlopen(request, timeout=2) as r:  # noqa: S310 - http, ours
                return json.loads(r.read()), ""
        except (OSError, ValueError) as exc:
            return None, str(getattr(exc, "reason", None) or exc)[:60]

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if not args.no_seed:
        _seed_run(history_store, gates, settings, args, say, shown)
    say(f"gatewatch run: starting the embedded broker on {broker.bootstrap} ...")
    broker.start()
    try:
        for name in ("worker", "simulator", "history"):
            if args.verbose:
                out: int | None = None  # inherit: the terminal, as before
            else:
                files.append(open(logs[name], "ab"))  # noqa: SIM115 - closed below
                out = files[-1].fileno()
            cmd = [*exe, "worker"]
            if name == "history":
                cmd = [*exe, "history", "--metrics-port", str(history_port)]
            if name == "simulator":
                cmd = [*exe, "simulate", "--rate", str(args.rate), "--speed", str(args.speed)]
                if args.scenario:
                    cmd = [*exe, "scenario", args.scenario, "--live", "--speed", "600"]
            procs[name] = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out,
                                           stderr=None if out is None else subprocess.STDOUT)
        traffic = (f"scenario {args.scenario} at x600" if args.scenario
                   else "simulated Lạng Sơn traffic")
        say("\n".join([
            "",
            f"gatewatch is running: embedded broker + worker + {traffic}",
            f"  wall      {base}/wall",
            f"  API       {base}/api/v1/gates",
            f"  metrics   {base}/metrics   (Prometheus text, e.g. gate_vehicles_waiting)",
            f"  health    {base}/healthz   ready: {base}/readyz",
            f"  kafka     {broker.bootstrap}   topic {settings.topic('gate.events')}",
            f"  history   http://127.0.0.1:{history_port}/metrics   (gatewatch history)",
            f"  {'':8}  store     " + (shown(history_store.sqlite_path)
                                       if history_store.sqlite_path else
                                       history_store.describe()),
            *(f"  {'logs' if i == 0 else '':8}  {name:9} {shown(path)}"
              for i, (name, path) in enumerate(logs.items())),
            "Ctrl-C stops them all." + ("" if args.verbose else
                                         "  --verbose shows the logs here instead."),
            "",
        ]))
        started = time.monotonic()
        next_draw = started
        answered = False
        while not stopping["flag"]:
            for name, p in list(procs.items()):
                if p.poll() is None:
                    continue
                del procs[name]
                where = f" (log: {shown(logs[name])})" if name in logs else ""
                if name == "simulator" and p.returncode == 0:
                    say(f"gatewatch run: the simulator finished{where}; the worker keeps "
                        "running")
                    continue
                say(f"gatewatch run: the {name} exited with code {p.returncode}{where}; "
                    "stopping")
                if name in logs:
                    tail(name)
                stopping["flag"] = stopping["failed"] = True
            if not broker.alive():
                say(f"gatewatch run: the broker exited; its log: {shown(logs['broker'])}; "
                    "stopping")
                tail("broker")
                stopping["failed"] = True
                break
            if stopping["flag"] or time.monotonic() < next_draw:
                time.sleep(0.2)
                continue
            next_draw = time.monotonic() + args.refresh
            width = shutil.get_terminal_size((100, 24)).columns if tty else 100
            doc, reason = fetch()
            now = datetime.now().astimezone()
            if doc is None:  # not up yet, or not answering any more: say since when
                lines = live.render_waiting(now, time.monotonic() - started,
                                            f"({reason})" if answered else "", width)
            else:
                answered, started = True, time.monotonic()
                lines = live.render(doc, now, refresh_seconds=args.refresh, width=width,
                                    color=tty, notes=last_line("simulator"))
            sys.stdout.write(live.frame(lines, drawn["lines"], tty))
            if not tty:
                sys.stdout.write("\n")
            sys.stdout.flush()
            drawn["lines"] = len(lines)
    finally:
        for p in reversed(procs.values()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs.values()):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        broker.stop()
        for f in files:
            f.close()
        drawn["lines"] = 0  # keep the last view on the screen
        say("gatewatch run: stopped broker, worker, simulator and history")
    return 1 if stopping["failed"] else 0


def _port_or_free(port: int) -> int:
    """``port`` if it is free on 127.0.0.1 now, else any free port."""
    import socket

    from gatewatch.tools.broker import free_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatewatch", description="Streaming congestion monitor for border gates.")
    parser.add_argument("--version", action="version", version=f"gatewatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("worker", help="run one Faust worker (GATEWATCH_* settings)")
    p.add_argument("--web-port", type=int, default=None,
                   help="HTTP port for /metrics, /healthz, /readyz (default 6066)")
    p.set_defaults(func=cmd_worker)

    def sim_args(q: argparse.ArgumentParser, rate: float, speed: float) -> None:
        q.add_argument("--rate", type=float, default=rate,
                       help=f"multiplier of the gates' configured vehicle rates (default {rate})")
        q.add_argument("--speed", type=float, default=speed,
                       help=f"simulated seconds per real second (default {speed})")

    p = sub.add_parser("simulate", help="produce simulated Lạng Sơn traffic")
    sim_args(p, 20.0, 1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument("--duplicates", type=float, default=0.03, help="share of duplicate reads")
    p.add_argument("--late", type=float, default=0.02, help="share of late deliveries")
    p.add_argument("--malformed", type=float, default=0.005, help="share of malformed records")
    p.add_argument("--initial-backlog", type=float, default=0.3,
                   help="start each gate with this share of its warning threshold waiting")
    p.add_argument("--day-profile", action="store_true",
                   help="vary arrivals by the local hour (quiet nights, morning peak)")
    p.add_argument("--start", default=None,
                   help="simulated start time, RFC 3339 (default: now; a day ago if speed > 1)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("notify", help="deliver gate.alerts to Alertmanager and/or webhooks")
    p.add_argument("--webhook-url", action="append", default=[],
                   help="POST every alert record here (repeatable; GATEWATCH_WEBHOOK_URL)")
    p.add_argument("--alertmanager-url", default="",
                   help="Alertmanager base URL, e.g. http://127.0.0.1:9093 "
                        "(GATEWATCH_ALERTMANAGER_URL)")
    p.add_argument("--resend-seconds", type=float, default=60.0,
                   help="re-send active alerts to Alertmanager this often (default 60)")
    p.add_argument("--rejected-attempts", type=_positive_int, default=3,
                   help="tries of a record a receiver rejects (4xx other than 408/425/429) "
                        "before it is parked on gate.alerts.undelivered (default 3); "
                        "5xx, 408, 429 and network errors are retried until delivered")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser("alertmanager-config",
                       help="turn deploy/subscribers.yaml into an Alertmanager configuration")
    p.add_argument("--subscribers", default="deploy/subscribers.yaml")
    p.add_argument("--out", default="-", help="file to write (default: standard output)")
    p.add_argument("--alertmanager-version", default="0.27",
                   help="the Alertmanager that reads it (default 0.27; 0.25 cannot read "
                        "bot_token_file or url_file)")
    p.set_defaults(func=cmd_alertmanager_config)

    p = sub.add_parser("replay", help="import a gate log (CSV / JSON Lines) into gate.events")
    p.add_argument("file")
    p.add_argument("--format", choices=["csv", "jsonl"], default=None,
                   help="default: by extension (.jsonl/.ndjson/.json = JSON Lines)")
    p.add_argument("--map", default="",
                   help="field=Column,... for gate_id, vehicle_id, occurred_at, type, "
                        "direction, cargo, lane, event_id (default: the contract names)")
    p.add_argument("--types", default="",
                   help="contract type=log value(s), e.g. queued=vao_bai,crossed=qua_cua|ra")
    p.add_argument("--directions", default="", help="e.g. export=xuat,import=nhap")
    p.add_argument("--default-direction", default="export", choices=["export", "import"])
    p.add_argument("--assume-offset", default="+07:00",
                   help="offset for timestamps that have none (default +07:00)")
    p.add_argument("--encoding", default="utf-8",
                   help="the file's encoding: utf-8 (default; a byte-order mark is skipped), "
                        "utf-8-sig or cp1258 (Windows-1258)")
    p.add_argument("--speed", type=float, default=0.0,
                   help="replay at N x the original pace (default 0: as fast as possible)")
    p.add_argument("--dry-run", action="store_true", help="validate and report only")
    p.add_argument("--to-history", action="store_true",
                   help="instead of Kafka: run the events through the pipeline offline, in "
                        "event time, and store the windows in the history store "
                        "(GATEWATCH_HISTORY_URL)")
    p.add_argument("--report", default="", help="write rejected rows (JSON Lines) here")
    p.add_argument("--show", type=int, default=20, help="print at most N rejected rows")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("history", help="store gate.windows and gate.alerts in the history "
                       "store (GATEWATCH_HISTORY_URL), backfilling from the topics' start")
    p.add_argument("action", nargs="?", choices=["run", "migrate"], default="run",
                   help="run (default): consume and store; migrate: bring the schema to "
                        "the latest revision and exit")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics (lag, rows written) on 127.0.0.1:PORT")
    p.add_argument("--batch", type=_positive_int, default=2000,
                   help="records per write (default 2000)")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("scenario", help="run a scenario and check its outcome, or play it live")
    p.add_argument("name", help="a bundled scenario, a YAML file, or `list`")
    p.add_argument("--live", action="store_true",
                   help="produce its events to Kafka for a running worker instead")
    p.add_argument("--speed", type=float, default=600.0,
                   help="with --live: simulated seconds per real second (default 600)")
    p.add_argument("--verbose", action="store_true", help="also print no-data changes")
    p.add_argument("--what-if", action="append", default=[], metavar="SPEC",
                   help="rehearse with a change, e.g. huu-nghi.clearance=50%%@+2d, "
                   "tan-thanh.closed@+1d..+3d, *.arrivals=150%%@+1d (repeatable; "
                   "docs/decisions.md#what-if-rehearsals)")
    p.set_defaults(func=cmd_scenario)

    p = sub.add_parser("backtest", help="score the forecast against what happened, beside "
                       "two baselines (docs/forecasting.md)")
    p.add_argument("target", help="a bundled scenario, a scenario YAML, `all` (every bundled "
                   "scenario) or a gate log as `gatewatch replay` reads it")
    p.add_argument("--lead-in-days", type=float, default=None,
                   help="ordinary days simulated before a scenario (default 21), or the days "
                        "of a log used as history only (default 7)")
    p.add_argument("--seed", type=int, default=None, help="a scenario's seed instead of its own")
    p.add_argument("--json", default="", metavar="FILE",
                   help="also write the results as JSON to FILE (`-`: only JSON, to stdout)")
    p.add_argument("--progress", action="store_true", help="progress lines on stderr")
    p.add_argument("--map", default="", help="as for replay: field=Column,...")
    p.add_argument("--types", default="", help="as for replay")
    p.add_argument("--directions", default="", help="as for replay")
    p.add_argument("--assume-offset", default="+07:00", help="as for replay")
    p.add_argument("--encoding", default="utf-8", help="as for replay")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("dashboards", help="generate the Grafana dashboards or push them")
    p.add_argument("action", choices=["generate", "push"])
    p.add_argument("--dir", default="dashboards", help="where the JSON lives (dashboards/)")
    p.add_argument("--grafana-url", default="", help="e.g. http://127.0.0.1:3000")
    p.add_argument("--token", default="", help="Grafana API token (or GATEWATCH_GRAFANA_TOKEN)")
    p.add_argument("--prometheus-url", default="http://127.0.0.1:9090",
                   help="Prometheus URL for the datasource gatewatch creates")
    p.set_defaults(func=cmd_dashboards)

    p = sub.add_parser("run", help="broker + worker + simulator together, with a live view")
    sim_args(p, 20.0, 1.0)
    p.add_argument("--web-port", type=int, default=6066)
    p.add_argument("--broker-port", type=int, default=None)
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="redraw the live view this often (default 5)")
    p.add_argument("--log-dir", default="gatewatch-run-logs",
                   help="where the broker's, worker's and simulator's logs go "
                        "(default ./gatewatch-run-logs)")
    p.add_argument("--verbose", action="store_true",
                   help="stream the worker's and simulator's logs to the terminal instead")
    p.add_argument("--scenario", default="", help="play a scenario (x600) instead of the "
                   "default simulation; `gatewatch scenario list` names them")
    p.add_argument("--no-seed", action="store_true",
                   help="do not seed an empty history store with simulated weeks")
    p.add_argument("--seed-weeks", type=float, default=2.0, metavar="WEEKS",
                   help="weeks of simulated history seeded into an empty store (default 2)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gatewatch: error: {exc}", file=sys.stderr)
        return 2
    except GatewatchError as exc:
        print(f"gatewatch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
