"""Backtest of the forecast: walk forward through a scenario or a gate log, forecasting
every hour, and compare with what then happened, beside two baselines in the same run.

``gatewatch backtest SCENARIO|FILE``:

- a **scenario** (``gatewatch/data/scenarios/*.yaml``) is preceded by a *lead-in* of
  ``--lead-in-days`` (default 21) days of the same gates, seed, rate and day profile
  *without* the scenario's changes (the ordinary weeks before the event, from which
  the profiles are learned), and followed by a *tail* of 24 h with its changes, so
  every hour of the scenario has its +24 h outcome. Trucks still waiting at the end
  are followed in the simulator (not the worker) until they cross, up to 90 days, so
  their realised waits are known even in a 17-day collapse;
- a **FILE** is a gate log as ``gatewatch replay`` reads it; its first
  ``--lead-in-days`` are history only, and trucks that had not crossed by the end of
  the log are left out of the wait figures (said in the output).

Events go through the worker's own :class:`~gatewatch.core.processor.Processor` (as
``gatewatch scenario`` does), one-minute steps in event time. At every whole hour of
the scored period each gate is forecast from the windows closed so far and its exact
backlog; afterwards it is scored:

- **backlog** at +1 h, +6 h, +24 h against the worker's backlog then;
- **wait** of a truck joining at +0 h, +6 h, +24 h against the mean realised wait of
  the trucks that joined in the 15 minutes from then.

Baselines, computed at the same instants: **persistence** (the backlog stays; the wait
is today's estimate, backlog ÷ last-hour crossings) and **last hour** (the backlog moves
by the last hour's net inflow per hour; the wait is that backlog ÷ last-hour
crossings). A baseline that gives no figure (nothing crossed in the last hour) is left
out of its own mean (``n`` says how many were scored). While a gate shows "no data" (its
feed silent past ``no_data_seconds``) nothing is forecast or scored for it: its backlog
is frozen at the last event, not the queue. The goal is met for a scenario
when the model's MAE is below both baselines' at +6 h and +24 h, for backlog and wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from gatewatch.core.forecast import HOUR_MS, ForecastParams, GateForecast, forecast
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.gates import GateConfig, GateSet
from gatewatch.settings import Settings
from gatewatch.streams.plates import normalise_plate
from gatewatch.streams.codec import Decoder, format_ms, parse_timestamp_ms
from gatewatch.streams.records import WindowRecord
from gatewatch.tools.scenarios import Scenario, load_scenario
from gatewatch.tools.simulate import Faults, TrafficModel

__all__ = ["BACKLOG_HORIZONS", "GOAL_HORIZONS", "METHODS", "WAIT_HORIZONS", "Model",
           "Result", "Score", "default_model", "render", "run", "run_log", "run_scenario"]

STEP_MS = 60_000
BACKLOG_HORIZONS = (1, 6, 24)
WAIT_HORIZONS = (0, 6, 24)
GOAL_HORIZONS = (6, 24)
METHODS = ("model", "persistence", "last_hour")
#: trucks joining in this long after an instant give its realised wait
JOIN_SPAN_MS = 15 * 60_000
#: the simulator follows trucks still waiting at the end for at most this long
DRAIN_MAX_MS = 90 * 24 * HOUR_MS

#: (gate's closed windows, gate, made_at_ms, backlog_now) → forecast
Model = Callable[[Sequence[WindowRecord], GateConfig, int, int], GateForecast]


def default_model(windows: Sequence[WindowRecord], gate: GateConfig, made_at_ms: int,
                  backlog_now: int) -> GateForecast:
    return forecast(windows, gate_id=gate.gate_id, made_at_ms=made_at_ms,
                    backlog_now=backlog_now, yard_capacity=gate.yard_capacity,
                    open_hours=getattr(gate, "open_hours", (0, 24)), hours=25,
                    params=ForecastParams())


@dataclass
class Score:
    """Absolute errors of one method at one horizon (for one metric)."""

    errors: list[float] = field(default_factory=list)
    inside: int = 0  # realised values inside the model's 80 % interval

    @property
    def n(self) -> int:
        return len(self.errors)

    @property
    def mae(self) -> float | None:
        return sum(self.errors) / len(self.errors) if self.errors else None


@dataclass
class Result:
    """Scores by (metric, horizon, method); ``per_gate`` the same per gate."""

    name: str
    scored_from_ms: int
    scored_to_ms: int
    origins: int = 0
    events: int = 0
    scores: dict[tuple[str, int, str], Score] = field(default_factory=dict)
    per_gate: dict[str, dict[tuple[str, int, str], Score]] = field(default_factory=dict)
    waits_realised: int = 0
    waits_censored: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def mae(self, metric: str, horizon: int, method: str) -> float | None:
        s = self.scores.get((metric, horizon, method))
        return s.mae if s else None

    def goal(self) -> list[tuple[str, bool]]:
        """(what, met) for each metric at each goal horizon: the model below both
        baselines (False when the model has no figure)."""
        out = []
        for metric in ("backlog", "wait"):
            for h in GOAL_HORIZONS:
                m = self.mae(metric, h, "model")
                bases = [self.mae(metric, h, b) for b in METHODS[1:]]
                ok = m is not None and all(b is None or m < b for b in bases)
                out.append((f"{metric} +{h}h", ok))
        return out

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.goal())

    def to_json(self) -> dict[str, Any]:
        def table(scores: dict[tuple[str, int, str], Score]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for (metric, h, method), s in sorted(scores.items()):
                row = out.setdefault(metric, {}).setdefault(f"+{h}h", {})
                row[method] = {"mae": None if s.mae is None else round(s.mae, 3), "n": s.n}
                if method == "model" and s.n:
                    row[method]["interval_coverage"] = round(s.inside / s.n, 3)
            return out
        return {"name": self.name, "scored_from": format_ms(self.scored_from_ms),
                "scored_to": format_ms(self.scored_to_ms), "origins": self.origins,
                "events": self.events, "waits_realised": self.waits_realised,
                "waits_censored": self.waits_censored, "seconds": round(self.seconds, 1),
                "goal": {what: ok for what, ok in self.goal()}, "passed": self.passed,
                "mae": table(self.scores),
                "per_gate": {g: table(s) for g, s in sorted(self.per_gate.items())},
                "notes": self.notes}


class _Waits:
    """Realised waits from the events themselves: per (gate, vehicle) the open trip's
    queued time; a crossing closes it (duplicates and re-reads keep the first)."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], int] = {}
        #: gate → [(queued_ms, wait_ms)]
        self.done: dict[str, list[tuple[int, int]]] = {}

    def feed(self, value: bytes) -> None:
        try:
            doc = orjson.loads(value)
            gate, vehicle, kind = doc["gate_id"], doc["vehicle_id"], doc["type"]
            t = parse_timestamp_ms(doc["occurred_at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if not isinstance(gate, str) or not isinstance(vehicle, str) or t is None:
            return
        key = (gate, normalise_plate(vehicle))  # cameras write one plate several ways
        if kind == "queued":
            self.open.setdefault(key, t)
        elif kind in ("crossed", "withdrawn"):
            queued = self.open.pop(key, None)
            if kind == "crossed" and queued is not None and t >= queued:
                self.done.setdefault(gate, []).append((queued, t - queued))


@dataclass
class _Origin:
    gate_id: str
    t_ms: int
    fc: GateForecast
    backlog: int
    net_per_hour: int
    crossings_last_hour: int


def _ratio(backlog: float, crossings: int) -> float | None:
    return backlog / crossings * 3600.0 if crossings > 0 else None


def run(steps: Iterable[tuple[int, list[tuple[bytes | None, bytes]]]], gates: GateSet,
        name: str, scored_from_ms: int, scored_to_ms: int, *,
        settings: Settings | None = None, model: Model = default_model,
        drain: Iterable[bytes] = (), progress: Callable[[str], None] | None = None
        ) -> Result:
    """The walk-forward engine: ``steps`` are (event time, messages) in one-minute steps;
    forecasts at every whole hour in [``scored_from_ms``, ``scored_to_ms``), outcomes up
    to ``scored_to_ms`` + 24 h (the steps must reach it); ``drain``: later messages that
    only complete realised waits."""
    began = time.perf_counter()
    s = settings or Settings()
    proc = Processor(gates, s)
    waits = _Waits()
    windows: dict[str, list[WindowRecord]] = {g.gate_id: [] for g in gates.gates}
    actual: dict[tuple[str, int], int] = {}
    origins: list[_Origin] = []
    res = Result(name, scored_from_ms, scored_to_ms)
    offset = 0
    next_hour = None
    last_say = time.monotonic()
    for now, messages in steps:
        batch = []
        for key, value in messages:
            batch.append(SourceRecord("backtest", 0, offset, now, key, value))
            offset += 1
            waits.feed(value)
        fx = proc.apply_batch(batch, now, evaluate_alerts=False)
        res.events += fx.processed
        for w in proc.tick(now).windows:
            if w.waiting_export is None:  # the backlog when the window closed
                sig = proc.signals(w.gate_id, now)
                w = replace(w, waiting_export=sig.waiting_export,
                            waiting_import=sig.waiting_import)
            windows[w.gate_id].append(w)
        if next_hour is None:
            next_hour = now - now % HOUR_MS + HOUR_MS
        while now >= next_hour:
            t = next_hour
            next_hour += HOUR_MS
            for gate in gates.gates:
                sig = proc.signals(gate.gate_id, now)
                if sig.silent_seconds is None or not sig.has_data:
                    continue  # no data: the worker's backlog is frozen, not the queue
                actual[(gate.gate_id, t)] = sig.backlog
                if scored_from_ms <= t < scored_to_ms:
                    fc = model(windows[gate.gate_id], gate, t, sig.backlog)
                    origins.append(_Origin(gate.gate_id, t, fc, sig.backlog,
                                           sig.net_inflow_per_hour, sig.crossings_last_hour))
                    res.origins += 1
            if progress and time.monotonic() - last_say >= 2:
                last_say = time.monotonic()
                progress(f"backtest {name}: event time {format_ms(t)}, {res.events} events, "
                         f"{res.origins} forecasts")
    horizon = scored_to_ms + 25 * HOUR_MS

    def censored() -> int:
        return sum(1 for q in waits.open.values() if scored_from_ms <= q < horizon)

    stuck, left = 0, -1
    for i, value in enumerate(drain, start=1):
        waits.feed(value)
        if i % 20_000 == 0:
            before, left = left, censored()
            if progress:
                progress(f"backtest {name}: following the waiting trucks, {left} to cross")
            # a few never cross (a plate read twice for two trucks): stop when stuck
            stuck = stuck + 1 if left == before else 0
            if not left or stuck >= 3:
                break
    res.waits_censored = censored()
    joined: dict[str, list[tuple[int, int]]] = {g: sorted(v) for g, v in waits.done.items()}
    res.waits_realised = sum(len(v) for v in joined.values())

    def realised_wait(gate_id: str, t_ms: int) -> float | None:
        rows = joined.get(gate_id, [])
        lo = _bisect(rows, t_ms)
        got = []
        for q, w in rows[lo:]:
            if q >= t_ms + JOIN_SPAN_MS:
                break
            got.append(w / 1000)
        return sum(got) / len(got) if got else None

    def add(gate_id: str, metric: str, h: int, method: str, pred: float | None,
            real: float, interval: tuple[float | None, float | None] | None = None) -> None:
        if pred is None:
            return
        for table in (res.scores, res.per_gate.setdefault(gate_id, {})):
            sc = table.setdefault((metric, h, method), Score())
            sc.errors.append(abs(pred - real))
            if interval is not None:
                lo, hi = interval
                if lo is not None and hi is not None and lo - 1e-6 <= real <= hi + 1e-6:
                    sc.inside += 1

    for o in origins:
        for h in BACKLOG_HORIZONS:
            real = actual.get((o.gate_id, o.t_ms + h * HOUR_MS))
            hf = o.fc.at(o.t_ms + h * HOUR_MS - 1)
            if real is None or hf is None:
                continue
            add(o.gate_id, "backlog", h, "model", hf.backlog, real,
                (hf.backlog_low, hf.backlog_high))
            add(o.gate_id, "backlog", h, "persistence", o.backlog, real)
            add(o.gate_id, "backlog", h, "last_hour", max(0, o.backlog + o.net_per_hour * h),
                real)
        for h in WAIT_HORIZONS:
            t = o.t_ms + h * HOUR_MS
            real_w = realised_wait(o.gate_id, t)
            hf = o.fc.at(t)
            if real_w is None or hf is None:
                continue
            add(o.gate_id, "wait", h, "model", hf.wait_seconds, real_w,
                (hf.wait_low_seconds, hf.wait_high_seconds))
            add(o.gate_id, "wait", h, "persistence", _ratio(o.backlog, o.crossings_last_hour),
                real_w)
            add(o.gate_id, "wait", h, "last_hour", _ratio(
                max(0, o.backlog + o.net_per_hour * h), o.crossings_last_hour), real_w)
    res.seconds = time.perf_counter() - began
    return res


def _bisect(rows: list[tuple[int, int]], t_ms: int) -> int:
    lo, hi = 0, len(rows)
    while lo < hi:
        mid = (lo + hi) // 2
        if rows[mid][0] < t_ms:
            lo = mid + 1
        else:
            hi = mid
    return lo


def run_scenario(sc: Scenario, gates: GateSet, *, lead_in_days: float = 21.0,
                 tail_hours: int = 24, settings: Settings | None = None,
                 model: Model = default_model, progress: Callable[[str], None] | None = None
                 ) -> Result:
    """Backtest a scenario with a lead-in of ordinary days before it (see the module
    docstring)."""
    start = sc.start_ms
    lead_ms = int(lead_in_days * 24 * HOUR_MS)
    end = start + int(sc.duration_hours * HOUR_MS)
    stop = end + tail_hours * HOUR_MS
    sim = TrafficModel(gates, start - lead_ms, rate=sc.rate, seed=sc.seed,
                       faults=Faults(malformed=0.002), initial_backlog=sc.initial_backlog,
                       overrides={}, day_profile=sc.day_profile)

    def steps() -> Iterator[tuple[int, list[tuple[bytes | None, bytes]]]]:
        now = start - lead_ms
        while now < stop:
            now += STEP_MS
            if now > start and not sim.overrides:
                sim.overrides = dict(sc.overrides)  # the event begins
            yield now, [(m.key, m.value) for m in sim.advance(now)]

    def drain() -> Iterator[bytes]:
        """Follow the trucks still waiting until they cross (simulator only)."""
        now = stop
        while now < stop + DRAIN_MAX_MS and any(sim.waiting().values()):
            now += HOUR_MS
            for m in sim.advance(now):
                yield m.value

    res = run(steps(), gates, sc.name, start, end, settings=settings, model=model,
              drain=drain(), progress=progress)
    res.notes.append(f"lead-in {lead_in_days:g} days without the scenario's changes, "
                     f"tail {tail_hours} h with them; waits followed in the simulator "
                     "until the trucks crossed")
    return res


def run_log(path: Path, gates: GateSet, *, lead_in_days: float = 7.0,
            settings: Settings | None = None, model: Model = default_model,
            cmap: Any = None, fmt: str | None = None, encoding: str = "utf-8",
            progress: Callable[[str], None] | None = None) -> Result:
    """Backtest a gate log (``gatewatch replay``'s parser): the first ``lead_in_days``
    are history only; the last 24 h only give outcomes."""
    from gatewatch.tools.replay import ColumnMap, parse_log

    s = settings or Settings()
    decoder = Decoder(gates.ids(), s.max_message_bytes, 2**62)
    good, report = parse_log(path, cmap or ColumnMap(), decoder, 0, fmt, encoding=encoding,
                             max_field_bytes=s.max_message_bytes)
    if not good:
        raise ValueError(f"{path}: no valid events ({report.summary()})")
    good.sort(key=lambda g: g[2])
    first, last = good[0][2], good[-1][2]
    scored_from = first - first % HOUR_MS + int(lead_in_days * 24 * HOUR_MS)
    scored_to = last - last % HOUR_MS - 24 * HOUR_MS
    if scored_to <= scored_from:
        raise ValueError(f"{path}: the log spans {(last - first) / HOUR_MS:.0f} h; a "
                         f"backtest needs the lead-in ({lead_in_days:g} days) + 25 h")

    def steps() -> Iterator[tuple[int, list[tuple[bytes | None, bytes]]]]:
        i = 0
        now = first - first % STEP_MS
        while i < len(good):
            now += STEP_MS
            batch: list[tuple[bytes | None, bytes]] = []
            while i < len(good) and good[i][2] < now:
                batch.append((good[i][0], good[i][1]))
                i += 1
            yield now, batch
        for _ in range(10):  # close the last windows
            now += STEP_MS
            yield now, []

    res = run(steps(), gates, path.name, scored_from, scored_to, settings=s, model=model,
              progress=progress)
    res.notes.append(f"{report.summary()}; first {lead_in_days:g} days history only; "
                     f"{res.waits_censored} trucks had not crossed by the end of the log "
                     "(left out of the wait figures)")
    return res


def render(results: Sequence[Result]) -> str:
    """The text table: MAE by metric and horizon, model beside the baselines."""
    lines = []
    head = f"{'scenario':26} {'metric':8} {'horizon':>7} " + " ".join(
        f"{m:>13}" for m in METHODS) + f" {'80% cover':>9} {'n':>5}  goal"
    lines.append(head)
    lines.append("-" * len(head))
    for r in results:
        goal = dict(r.goal())
        for metric, horizons, unit in (("backlog", BACKLOG_HORIZONS, "veh"),
                                       ("wait", WAIT_HORIZONS, "h")):
            for h in horizons:
                cells = []
                for m in METHODS:
                    v = r.mae(metric, h, m)
                    if v is not None and unit == "h":
                        v /= 3600
                    cells.append(f"{'-' if v is None else f'{v:.1f} {unit}':>13}")
                sc = r.scores.get((metric, h, "model"))
                cover = f"{sc.inside / sc.n:.0%}" if sc and sc.n else "-"
                g = goal.get(f"{metric} +{h}h")
                mark = "" if g is None else ("met" if g else "NOT MET")
                lines.append(f"{r.name[:26]:26} {metric:8} {f'+{h}h':>7} "
                             + " ".join(cells) + f" {cover:>9} {sc.n if sc else 0:>5}  {mark}")
        lines.append(f"{'':26} {'PASSED' if r.passed else 'FAILED'}: {r.origins} forecasts, "
                     f"{r.waits_realised} realised waits, {r.seconds:.0f} s")
    return "\n".join(lines)


def load(name_or_path: str) -> Scenario | Path:
    """A bundled scenario name or YAML file → :class:`Scenario`; anything else → a log."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or not path.exists():
        return load_scenario(name_or_path)
    return path
