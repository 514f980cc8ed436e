"""How far the backlog is off the truth with cameras that miss and misread plates.

:func:`measure` plays a simulated feed (:class:`~gatewatch.tools.simulate.TrafficModel`
with the reader model of :mod:`gatewatch.tools.cameras`) through two
:class:`~gatewatch.core.processor.Processor` objects side by side, in event time with an
explicit ``now``: the exact ledger alone (``GATEWATCH_RECONCILE=0``) and gatewatch with
reconciliation (``GATEWATCH_RECONCILE=1``). Every hour it compares each gate's backlog
(confirmed vehicles waiting, what the wall shows) with the true backlog kept by the
simulator, and counts the trucks truly waiting that gatewatch set aside (paired with a
misread crossing or unconfirmed) although it held them under their true plate.

Where the error comes from (summed over the gates, mean over the hourly samples and at
the end): the backlog holds *phantoms*, plates not truly waiting: ``phantom_real`` (a real
truck whose crossing or withdrawal was missed or misread: it left, gatewatch still counts
it) and ``phantom_misread`` (a plate no truck has: a misread ``queued`` read or re-read);
and it lacks trucks truly waiting: ``missing_unread`` (their queue read was missed or
misread and no re-read has caught them yet) and ``wrongly_set_aside``. Per gate, the
backlog shown − the true backlog = phantoms − missing.

``bench/accuracy.py`` runs it for 14 days and over a sweep of fault rates
(docs/accuracy.md); a unit test runs it for a day.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.gates import GateSet
from gatewatch.settings import Settings
from gatewatch.streams.topics import Topics
from gatewatch.tools.cameras import CameraSet, CameraSpec, CountSensor
from gatewatch.tools.simulate import Faults, TrafficModel

__all__ = ["MODES", "ModeFigures", "measure", "within_goal"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: the two ways of keeping the backlog that are compared: name -> GATEWATCH_RECONCILE
MODES: Mapping[str, str] = {"exact": "0", "reconciled": "1"}
#: the goal: within this share of the true backlog, or this many trucks (the larger)
GOAL_SHARE = 0.01
GOAL_VEHICLES = 5
#: the samples out of goal are listed one by one if there are at most this many
OUT_OF_GOAL_LISTED = 20
#: the parts of the backlog error (module docstring)
PARTS = ("phantom_real", "phantom_misread", "missing_unread", "wrongly_set_aside")


def within_goal(true: int, shown: int) -> bool:
    """True if ``shown`` is within 1 % of ``true`` or 5 trucks."""
    return abs(shown - true) <= max(GOAL_VEHICLES, GOAL_SHARE * true)


@dataclass
class ModeFigures:
    """Backlog error of one mode, per gate and hourly sample (vehicles)."""

    errors: list[int] = field(default_factory=list)
    within: int = 0
    samples: int = 0
    #: largest per-gate error of each day
    daily_max: list[int] = field(default_factory=list)
    final_errors: dict[str, int] = field(default_factory=dict)
    wrongly_set_aside_max: int = 0
    wrongly_set_aside_final: int = 0
    missing_final: int = 0
    set_aside_final: int = 0
    #: sums over the samples and the values at the end of the error's parts (see above)
    parts_sum: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    parts_final: dict[str, int] = field(default_factory=dict)
    sampled: int = 0
    #: the floor of any reconciliation on camera evidence: trucks truly waiting that were
    #: never read (or only misread) at a sample. A perfect one (every phantom gone at
    #: once, nothing set aside wrongly) shows true - never read.
    never_read_max: int = 0
    perfect_within: int = 0
    #: (gate, hour, true, shown, never read) of the samples out of goal (the first
    #: :data:`OUT_OF_GOAL_LISTED`; listed in the summary only if that is all of them)
    out_of_goal: list[tuple[str, float, int, int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = len(self.errors)
        return {
            "mean_abs_error": round(sum(self.errors) / n, 2) if n else 0.0,
            "max_abs_error": max(self.errors, default=0),
            "final_abs_error": max(self.final_errors.values(), default=0),
            "final_abs_error_total": sum(self.final_errors.values()),
            "final_errors": dict(self.final_errors),
            "within_goal_share": round(self.within / self.samples, 4) if self.samples
            else 1.0,
            "daily_max_abs_error": list(self.daily_max),
            "wrongly_set_aside_max": self.wrongly_set_aside_max,
            "wrongly_set_aside_final": self.wrongly_set_aside_final,
            "true_waiting_not_in_backlog_final": self.missing_final,
            "set_aside_final": self.set_aside_final,
            "error_parts_mean": {k: round(v / self.sampled, 1) if self.sampled else 0.0
                                 for k, v in self.parts_sum.items()},
            "error_parts_final": dict(self.parts_final),
            "never_read_max": self.never_read_max,
            "perfect_within_goal_share": round(self.perfect_within / self.samples, 4)
            if self.samples else 1.0,
            "out_of_goal_samples": self.samples - self.within,
            "out_of_goal": [{"gate": g, "hour": h, "true": t, "shown": sh, "never_read": nr}
                            for g, h, t, sh, nr in self.out_of_goal]
            if self.samples - self.within <= OUT_OF_GOAL_LISTED else [],
        }


def _confirmed(proc: Processor, gate_id: str) -> tuple[set[str], dict[str, str]]:
    book = proc.ledger.books[gate_id]
    set_aside = book.set_aside
    return set(book.waiting) - set_aside.keys(), set_aside


def measure(gates: GateSet, *, days: float, missed: float, misread: float, seed: int = 12,
            start_ms: int = 1_637_514_000_000, reread_minutes: float = 60.0,
            night_factor: float = 1.0, counts: CountSensor | None = None,
            faults: Faults | None = None, day_profile: bool = True,
            initial_backlog: float = 0.2, step_ms: int = 300_000,
            modes: Mapping[str, str] = MODES,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Play ``days`` of simulated traffic read with ``missed`` and ``misread`` shares
    through one processor per mode; the figures per mode (see :class:`ModeFigures`)."""
    cameras = CameraSet(CameraSpec(capture=1.0 - missed, misread=misread,
                                   night_factor=night_factor),
                        reread_minutes=reread_minutes)
    model = TrafficModel(gates, start_ms, seed=seed,
                         faults=faults if faults is not None else Faults(malformed=0.002),
                         initial_backlog=initial_backlog, day_profile=day_profile,
                         cameras=cameras, counts=counts)
    counts_topic = Topics("").counts
    model.reader.log.keep = 10_000_000  # every misread: to tell misread phantoms apart
    procs = {name: Processor(gates, Settings.from_env({"GATEWATCH_RECONCILE": flag}),
                             counts_topic) for name, flag in modes.items()}
    figures = {name: ModeFigures() for name in modes}
    end = start_ms + int(days * DAY_MS)
    now, offset, events = start_ms, 0, 0
    true_samples: list[int] = []
    day_max = dict.fromkeys(modes, 0)
    while now < end:
        now = min(end, now + step_ms)
        batch = []
        for msg in model.advance(now):
            topic = counts_topic if msg.topic == "gate.counts" else "gate.events"
            batch.append(SourceRecord(topic, 0, offset, now, msg.key, msg.value))
            offset += 1
        for proc in procs.values():
            proc.apply_batch(batch, now, evaluate_alerts=False)
            proc.tick(now)
        events += len(batch)
        if (now - start_ms) % HOUR_MS and now != end:
            continue
        truth = model.waiting()
        true_samples.extend(truth.values())
        final = now == end
        misread_plates = {read for _, _, _, read in model.reader.log.misreads}
        for name, proc in procs.items():
            fig = figures[name]
            wrongly = missing = aside = 0
            parts = dict.fromkeys(PARTS, 0)
            for gate_id, true in truth.items():
                shown = proc.signals(gate_id, now).backlog
                err = abs(shown - true)
                fig.errors.append(err)
                fig.samples += 1
                ok = within_goal(true, shown)
                fig.within += ok
                day_max[name] = max(day_max[name], err)
                confirmed, set_aside = _confirmed(proc, gate_id)
                plates = set(model.waiting_plates(gate_id))
                wrongly += sum(1 for p in plates if p in set_aside)
                missing += sum(1 for p in plates if p not in confirmed)
                aside += len(set_aside)
                phantoms = confirmed - plates
                n_misread = len(phantoms & misread_plates)
                parts["phantom_misread"] += n_misread
                parts["phantom_real"] += len(phantoms) - n_misread
                never_read = len(plates - proc.ledger.books[gate_id].waiting.keys())
                parts["missing_unread"] += never_read
                fig.never_read_max = max(fig.never_read_max, never_read)
                fig.perfect_within += within_goal(true, true - never_read)
                if not ok and len(fig.out_of_goal) < OUT_OF_GOAL_LISTED:
                    fig.out_of_goal.append((gate_id, (now - start_ms) / HOUR_MS, true, shown,
                                            never_read))
                if final:
                    fig.final_errors[gate_id] = err
            parts["wrongly_set_aside"] = wrongly
            fig.sampled += 1
            for k, v in parts.items():
                fig.parts_sum[k] += v
            if final:
                fig.parts_final = parts
            fig.wrongly_set_aside_max = max(fig.wrongly_set_aside_max, wrongly)
            if final:
                fig.wrongly_set_aside_final, fig.missing_final = wrongly, missing
                fig.set_aside_final = aside
        if (now - start_ms) % DAY_MS == 0 or final:
            day = (now - start_ms) / DAY_MS
            for name in modes:
                figures[name].daily_max.append(day_max[name])
            if progress is not None:
                progress(f"  day {day:5.2f}/{days:g} missed {missed:.0%} misread {misread:.0%}:"
                         f" true backlog {sum(truth.values()):5}, max gate error today "
                         + ", ".join(f"{n} {day_max[n]}" for n in modes))
            day_max = dict.fromkeys(modes, 0)
    return {
        "missed": missed, "misread": misread, "days": days, "seed": seed,
        "reread_minutes": reread_minutes, "night_factor": night_factor,
        "events": events, "reads": model.reader.log.totals(),
        "true_backlog": {"mean_per_gate": round(sum(true_samples) / len(true_samples), 1)
                         if true_samples else 0.0, "max_per_gate": max(true_samples, default=0),
                         "final": model.waiting()},
        "modes": {name: fig.summary() for name, fig in figures.items()},
    }
