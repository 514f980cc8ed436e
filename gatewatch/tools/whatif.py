"""What-if rehearsals: a scenario played again with a change applied.

``gatewatch scenario NAME --what-if SPEC [--what-if SPEC ...]`` runs the scenario offline
(:func:`gatewatch.tools.scenarios.run_offline`) as it is and with the changes, and prints
when each gate first reaches ``warning``, ``critical`` and ``hold_shipments`` in both runs,
to rehearse thresholds and staffing before a harvest.

Grammar (times are offsets from the scenario's start; ``d`` days, ``h`` hours)::

    SPEC    := TARGET "." CHANGE
    TARGET  := a gate id | "*" (every gate)
    CHANGE  := ("clearance" | "arrivals") "=" PERCENT "%" [ "@" WINDOW ]
             | "closed" "@" WINDOW
    WINDOW  := OFFSET [ ".." OFFSET ]          from (inclusive) .. until (exclusive)
    OFFSET  := "+" NUMBER ("d" | "h")

Examples: ``huu-nghi.clearance=50%@+2d`` (Hữu Nghị clears half as many trucks from day 2
on), ``tan-thanh.closed@+1d..+3d`` (Tân Thanh clears nothing from day 1 to day 3),
``*.arrivals=150%@+1d`` (half as many trucks again everywhere from day 1). Without
``@``, a change holds from the start. Changes of one gate and kind multiply. A bad spec is
a :class:`~gatewatch.errors.ConfigError` naming the spec and the reason.

How a change is applied: the simulator keeps drawing its arrivals and clearances at the
highest rate a change asks for and keeps each with probability (factor at that time ÷
that rate) (thinning), so a rate may change at any instant, even to 0 and back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatewatch.errors import ConfigError
from gatewatch.gates import GateSet

if TYPE_CHECKING:
    from gatewatch.settings import Settings
    from gatewatch.tools.scenarios import Scenario

__all__ = ["Change", "Rehearsal", "WhatIf", "milestones", "parse_whatif", "rehearse", "render_milestones"]

_HOUR_MS = 3_600_000
_OFFSET = r"\+(\d+(?:\.\d+)?)([dh])"
_SPEC = re.compile(
    r"(?P<target>\*|[a-z0-9][a-z0-9-]{0,62})\."
    r"(?:(?P<kind>clearance|arrivals)=(?P<pct>\d+(?:\.\d+)?)%|(?P<closed>closed))"
    rf"(?:@(?P<from>{_OFFSET})(?:\.\.(?P<until>{_OFFSET}))?)?")
MILESTONES = ("warning", "critical", "hold_shipments")


@dataclass(frozen=True, slots=True)
class Change:
    """One change: ``kind`` (``clearance``/``arrivals``) of ``gate_id`` (``*``: every gate)
    times ``factor`` in [``from_ms``, ``until_ms``) after the start (None: to the end)."""

    spec: str
    gate_id: str
    kind: str
    factor: float
    from_ms: int
    until_ms: int | None


def _offset_ms(text: str) -> int:
    m = re.fullmatch(_OFFSET, text)
    assert m is not None
    return int(float(m[1]) * (24 if m[2] == "d" else 1) * _HOUR_MS)


def parse_whatif(spec: str, gates: GateSet) -> Change:
    """One spec (see the module docstring) → :class:`Change`; ConfigError if bad."""
    def bad(reason: str) -> ConfigError:
        return ConfigError("--what-if", repr(spec), reason)
    m = _SPEC.fullmatch(spec.strip())
    if m is None:
        raise bad("expected GATE.clearance=N%[@+Nd[..+Nd]], GATE.arrivals=N%[@...] or "
                  "GATE.closed@+Nd[..+Nd] (GATE a gate id or *; offsets in d or h)")
    target = m["target"]
    if target != "*" and gates.get(target) is None:
        raise bad(f"no gate {target!r}; gates: {', '.join(sorted(gates.ids()))} or *")
    if m["closed"] and m["from"] is None:
        raise bad("closed needs a time: closed@+1d..+3d (from .. until)")
    start = _offset_ms(m["from"]) if m["from"] else 0
    until = _offset_ms(m["until"]) if m["until"] else None
    if until is not None and until <= start:
        raise bad(f"the window ends ({m['until']}) before it starts ({m['from']})")
    if m["closed"]:
        return Change(spec, target, "clearance", 0.0, start, until)
    pct = float(m["pct"])
    if pct > 1000:
        raise bad(f"{pct:g}% is more than 1000%")
    return Change(spec, target, str(m["kind"]), pct / 100, start, until)


class WhatIf:
    """The changes of a rehearsal, over a scenario starting at ``start_ms``: the factor of
    a gate's rate at a time, and the highest factor (the simulator's thinning rate)."""

    def __init__(self, changes: Sequence[Change], start_ms: int) -> None:
        self.changes = tuple(changes)
        self.start_ms = start_ms

    def _mine(self, gate_id: str, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind and c.gate_id in (gate_id, "*")]

    def factor(self, gate_id: str, kind: str, t_ms: float) -> float:
        f = 1.0
        for c in self._mine(gate_id, kind):
            rel = t_ms - self.start_ms
            if c.from_ms <= rel and (c.until_ms is None or rel < c.until_ms):
                f *= c.factor
        return f

    def peak(self, gate_id: str, kind: str) -> float:
        """The highest factor at any time (≥ 1: the base rate is always possible)."""
        mine = self._mine(gate_id, kind)
        edges = {0, *(c.from_ms for c in mine), *(c.until_ms for c in mine if c.until_ms)}
        return max([1.0, *(self.factor(gate_id, kind, self.start_ms + e) for e in edges)])


def milestones(changes: Iterable[dict[str, Any]], advisories: Iterable[dict[str, Any]]
               ) -> dict[str, dict[str, float]]:
    """gate → milestone → hours from the start when it was first reached: ``warning`` and
    ``critical`` from congestion alert records, ``hold_shipments`` from advisory records."""
    out: dict[str, dict[str, float]] = {}
    for c in changes:
        if c["kind"] == "congestion" and c["change"] in ("fired", "escalated"):
            levels = ("warning", "critical") if c["severity"] == "critical" else ("warning",)
            for level in levels:
                out.setdefault(c["gate_id"], {}).setdefault(level, c["hours"])
    for a in advisories:
        if a["advice"] == "hold_shipments":
            out.setdefault(a["gate_id"], {}).setdefault("hold_shipments", a["hours"])
    return out


def render_milestones(gates: GateSet, base: dict[str, dict[str, float]],
                      changed: dict[str, dict[str, float]]) -> list[str]:
    """The table printed by ``--what-if``: per gate, as planned → with the changes."""
    def cell(m: dict[str, float], key: str) -> str:
        return f"+{m[key]:.1f} h" if key in m else "never"
    lines = [f"{'gate':<16}" + "".join(f"{k:>26}" for k in MILESTONES),
             f"{'':<16}" + "".join(f"{'as planned → what-if':>26}" for _ in MILESTONES)]
    for g in gates.gates:
        b, c = base.get(g.gate_id, {}), changed.get(g.gate_id, {})
        lines.append(f"{g.gate_id:<16}" + "".join(
            f"{cell(b, k) + ' → ' + cell(c, k):>26}" for k in MILESTONES))
    return lines


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """A scenario as planned and with the changes: milestones (gate → milestone → hours)
    and vehicles waiting at the end, of each run; :attr:`lines` is what is printed."""

    planned: dict[str, dict[str, float]]
    what_if: dict[str, dict[str, float]]
    planned_waiting: dict[str, int]
    what_if_waiting: dict[str, int]
    lines: list[str]


def rehearse(sc: Scenario, gates: GateSet, settings: Settings, specs: Sequence[str]
             ) -> Rehearsal:
    """Run ``sc`` as planned and with ``specs`` applied."""
    from gatewatch.tools.scenarios import run_offline

    changes = [parse_whatif(s, gates) for s in specs]  # every spec checked before running
    base = run_offline(sc, gates, settings)
    changed = run_offline(sc, gates, settings, whatif=WhatIf(changes, sc.start_ms))
    planned = milestones(base.changes, base.advisories)
    what_if = milestones(changed.changes, changed.advisories)
    lines = [f"scenario {sc.name}: {sc.description} ({sc.duration_hours:g} h in event time)",
             "what-if: " + "; ".join(changes_text(c) for c in changes), ""]
    lines += render_milestones(gates, planned, what_if)
    lines += ["", f"waiting at the end: as planned {sum(base.final_waiting.values())}, "
                  f"what-if {sum(changed.final_waiting.values())}"]
    return Rehearsal(planned, what_if, base.final_waiting, changed.final_waiting, lines)


def changes_text(c: Change) -> str:
    """A change in words: ``tan-thanh clearance x0 from +24 h until +72 h``."""
    until = f" until +{c.until_ms / _HOUR_MS:g} h" if c.until_ms is not None else ""
    return f"{c.gate_id} {c.kind} x{c.factor:g} from +{c.from_ms / _HOUR_MS:g} h{until}"
