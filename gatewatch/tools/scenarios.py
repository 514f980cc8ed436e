"""Scenarios: small YAML stories of the Lạng Sơn gates, each with the outcome it must
produce (``gatewatch/data/scenarios/*.yaml``).

:func:`run_offline` plays a scenario through the real pipeline core (the worker's
:class:`~gatewatch.core.processor.Processor`) in one process with event-time control,
with the clock set to simulated time (so 72 hours take seconds), and
the documented expectations are checked. ``gatewatch scenario NAME`` does this, or
with ``--live`` produces the scenario's events to Kafka for a running worker.

Expectations (``expect:``), each for a ``gate`` (or ``"*"`` for every gate):

- ``alert``/``fires``: the alert kind fires (optionally with ``severity``, ``within_hours``
  of the start), or never fires (``fires: false``); ``resolves: true`` it also resolves;
- ``min_estimated_wait_hours``: the estimated wait reaches at least this;
- ``yard_full_predicted``: a time-to-full prediction was made;
- ``no_data_shown``: the gate was reported as "no data" (not as zero waiting);
- ``min_total_waiting``: vehicles waiting at the end (over the named gates);
- ``max_backlog_error`` and/or ``max_backlog_error_share``: at every hourly sample, the
  gate's backlog (confirmed vehicles waiting) is off the true backlog by at most this many
  vehicles, or this share of the true backlog; with both, by at most the larger.

Cameras (``cameras:``) and a yard sensor (``counts:``) make the feed as dirty as real
number-plate readers (:mod:`gatewatch.tools.cameras`); the true backlog is kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from gatewatch.alerts.advisories import encode_advisory
from gatewatch.alerts.evaluator import encode_alert
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.errors import ConfigError
from gatewatch.gates import GateSet
from gatewatch.settings import Settings
from gatewatch.streams.codec import parse_timestamp_ms
from gatewatch.streams.topics import Topics
from gatewatch.tools.cameras import CameraSet, CountSensor, parse_cameras, parse_counts
from gatewatch.tools.simulate import Faults, GateOverride, TrafficModel
from gatewatch.tools.whatif import WhatIf

__all__ = ["Outcome", "Scenario", "available", "load_scenario", "run_offline"]

HOUR = 3_600_000


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start_ms: int
    duration_hours: float
    seed: int
    rate: float
    day_profile: bool
    initial_backlog: float
    overrides: dict[str, GateOverride]
    expect: list[dict[str, Any]]
    cameras: CameraSet | None = None
    counts: CountSensor | None = None
    #: where it was read from (named in configuration errors)
    source: str = ""
    #: the offline run advances simulated time (a batch, a tick) this often
    step_minutes: float = 1.0


def available() -> list[str]:
    folder = resources.files("gatewatch").joinpath("data", "scenarios")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        ref = resources.files("gatewatch").joinpath("data", "scenarios", f"{name_or_path}.yaml")
        if not ref.is_file():
            raise ConfigError("command line", "scenario", f"no scenario {name_or_path!r}; "
                              f"available: {', '.join(available())}")
        text, source = ref.read_text(encoding="utf-8"), f"(bundled) {name_or_path}.yaml"
    doc = yaml.safe_load(text)
    start = parse_timestamp_ms(str(doc.get("start", "")))
    if start is None:
        raise ConfigError(source, "start", "must be RFC 3339 with an offset")
    overrides = {}
    for gate_id, o in (doc.get("gates") or {}).items():
        overrides[gate_id] = GateOverride(
            arrivals_multiplier=float(o.get("arrivals_multiplier", 1.0)),
            clearance_per_hour=None if o.get("clearance_per_hour") is None
            else float(o["clearance_per_hour"]),
            perishable_share=None if o.get("perishable_share") is None
            else float(o["perishable_share"]),
            silent=tuple((start + int(a * HOUR), start + int(b * HOUR))
                         for a, b in o.get("silent", [])))
    return Scenario(str(doc["name"]), str(doc.get("description", "")), start,
                    float(doc["duration_hours"]), int(doc.get("seed", 7)),
                    float(doc.get("rate", 1.0)), bool(doc.get("day_profile", False)),
                    float(doc.get("initial_backlog", 0.0)), overrides,
                    _expectations(doc.get("expect"), source),
                    parse_cameras(doc.get("cameras"), source),
                    parse_counts(doc.get("counts"), source), source,
                    _step_minutes(doc.get("step_minutes", 1), source))


def _step_minutes(value: Any, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise ConfigError(source, "step_minutes", f"must be a number in (0, 60], got {value!r}")
    return float(value)


_ERROR_KEYS = ("max_backlog_error", "max_backlog_error_share")


def _expectations(raw: Any, source: str) -> list[dict[str, Any]]:
    """The ``expect:`` list; the backlog-error bounds are checked here (numbers >= 0)."""
    out = list(raw or [])
    for i, e in enumerate(out):
        if not isinstance(e, dict):
            raise ConfigError(source, f"expect[{i}]", "must be a mapping")
        for name in _ERROR_KEYS:
            if name in e:
                value = e[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(source, f"expect[{i}].{name}",
                                      f"must be a number >= 0, got {value!r}")
    return out


@dataclass
class Outcome:
    """What happened, and which expectations held."""

    scenario: str
    events: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)  # alert records
    advisories: list[dict[str, Any]] = field(default_factory=list)  # advisory records
    max_estimated_wait_hours: dict[str, float] = field(default_factory=dict)
    yard_full_predicted: set[str] = field(default_factory=set)
    no_data_shown: set[str] = field(default_factory=set)
    final_waiting: dict[str, int] = field(default_factory=dict)
    #: per gate, hourly: (hours since the start, true backlog, gatewatch's backlog)
    backlog_samples: dict[str, list[tuple[float, int, int]]] = field(default_factory=dict)
    #: the readers' truth: reads attempted, missed and misread
    reads: dict[str, int] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def max_backlog_error(self, gate_id: str) -> int:
        """The largest |gatewatch − truth| of a gate's hourly samples."""
        return max((abs(mine - true) for _, true, mine in
                    self.backlog_samples.get(gate_id, ())), default=0)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.checks)


def run_offline(sc: Scenario, gates: GateSet, settings: Settings | None = None,
                step_ms: int | None = None, whatif: WhatIf | None = None) -> Outcome:
    """Play ``sc`` through the real :class:`~gatewatch.core.processor.Processor` in
    simulated time (decoder → ledger → windows → alerts), a batch and a tick every
    ``step_ms`` (default: the scenario's ``step_minutes``); check ``expect``. ``whatif``:
    changes of rates over time (:mod:`gatewatch.tools.whatif`)."""
    s = settings or Settings()
    if step_ms is None:
        step_ms = int(sc.step_minutes * 60_000)
    if sc.cameras is not None:
        unknown = sorted(sc.cameras.gates_named() - set(gates.ids()))
        if unknown:
            raise ConfigError(sc.source or sc.name, f"cameras.gates.{unknown[0]}",
                              f"no such gate; configured: {', '.join(gates.ids())}")
    counts_topic = Topics(s.topic_prefix).counts
    proc = Processor(gates, s, counts_topic)
    model = TrafficModel(gates, sc.start_ms, rate=sc.rate, seed=sc.seed,
                         faults=Faults(malformed=0.002), initial_backlog=sc.initial_backlog,
                         overrides=sc.overrides, day_profile=sc.day_profile, whatif=whatif,
                         cameras=sc.cameras, counts=sc.counts)
    out = Outcome(sc.name)
    end = sc.start_ms + int(sc.duration_hours * HOUR)
    now = sc.start_ms
    offset = 0
    runbook = s.runbook()
    next_sample = sc.start_ms + HOUR
    while now < end:
        now = min(end, now + step_ms)
        batch = []
        for msg in model.advance(now):
            topic = counts_topic if msg.topic == "gate.counts" else "scenario"
            batch.append(SourceRecord(topic, 0, offset, now, msg.key, msg.value))
            offset += 1
        fx = proc.apply_batch(batch, now, evaluate_alerts=False)
        out.events += fx.processed
        fx = proc.tick(now)
        for adv in fx.advisories:
            gate = gates.get(adv.advisory.gate_id)
            assert gate is not None
            out.advisories.append(orjson.loads(encode_advisory(adv, gate))
                                  | {"hours": (now - sc.start_ms) / HOUR})
        for change in fx.alerts:
            gate = gates.get(change.alert.gate_id)
            assert gate is not None
            doc = orjson.loads(encode_alert(change, gate, runbook))
            doc["hours"] = (now - sc.start_ms) / HOUR
            out.changes.append(doc)
        for gate in gates.gates:
            sig = proc.signals(gate.gate_id, now)
            if sig.silent_seconds is None:
                continue
            if not sig.has_data:
                out.no_data_shown.add(gate.gate_id)
                continue
            est = sig.estimated_wait_seconds
            if est is not None:
                prev = out.max_estimated_wait_hours.get(gate.gate_id, 0.0)
                out.max_estimated_wait_hours[gate.gate_id] = max(prev, est / 3600)
            if sig.seconds_until_full is not None and sig.net_inflow_per_hour > 0:
                out.yard_full_predicted.add(gate.gate_id)
        if now >= next_sample or now == end:  # hourly (the first step past each hour)
            _sample_backlog(out, proc, model, (now - sc.start_ms) / HOUR, now)
            while next_sample <= now:
                next_sample += HOUR
    out.final_waiting = {g.gate_id: proc.signals(g.gate_id, now).backlog for g in gates.gates}
    out.reads = model.reader.log.totals()
    out.checks = [_check(e, out, gates) for e in sc.expect]
    return out


def _sample_backlog(out: Outcome, proc: Processor, model: TrafficModel, hours: float,
                    now: int) -> None:
    for gate_id, true in model.waiting().items():
        mine = proc.signals(gate_id, now).backlog
        out.backlog_samples.setdefault(gate_id, []).append((hours, true, mine))


def _within_error(e: dict[str, Any], true: int, mine: int) -> bool:
    limits = []
    if "max_backlog_error" in e:
        limits.append(float(e["max_backlog_error"]))
    if "max_backlog_error_share" in e:
        limits.append(float(e["max_backlog_error_share"]) * true)
    return abs(mine - true) <= max(limits)


def _check(e: dict[str, Any], out: Outcome, gates: GateSet) -> tuple[str, bool]:
    names = [g.gate_id for g in gates.gates] if e.get("gate") == "*" else [e["gate"]]
    label = ", ".join(f"{k}={v}" for k, v in e.items())
    if "alert" in e:
        def matching(change: str) -> list[dict[str, Any]]:
            return [c for c in out.changes if c["gate_id"] in names and c["kind"] == e["alert"]
                    and c["change"] in change.split("|")
                    and ("severity" not in e or c["severity"] == e["severity"])]
        within = float(e.get("within_hours", 1e9))
        if e.get("resolves"):
            hits = matching("resolved")
            return label, any(c["hours"] <= within for c in hits)
        hits = matching("fired|escalated")
        if e.get("fires", True):
            return label, any(c["hours"] <= within for c in hits)
        return label, not hits
    if "min_estimated_wait_hours" in e:
        return label, all(out.max_estimated_wait_hours.get(n, 0) >= e["min_estimated_wait_hours"]
                          for n in names)
    if e.get("yard_full_predicted"):
        return label, all(n in out.yard_full_predicted for n in names)
    if e.get("no_data_shown"):
        return label, all(n in out.no_data_shown for n in names)
    if "min_total_waiting" in e:
        return label, sum(out.final_waiting[n] for n in names) >= e["min_total_waiting"]
    if any(k in e for k in _ERROR_KEYS):
        return label, all(_within_error(e, true, mine) for n in names
                          for _, true, mine in out.backlog_samples.get(n, ()))
    raise ConfigError(out.scenario, "expect", f"unknown expectation {label!r}")
