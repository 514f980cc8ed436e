"""Diversion when a gate closes: "lowest current wait" against capacity-aware shares.

What it simulates (pure, offline, hour by hour, deterministic)
    The bundled Lạng Sơn gates that accept perishable exports (gate configuration
    ``accepts``). Each gate keeps ``--committed`` of its usual arrivals (trucks bound to
    it: local shippers, contracts); the rest of the perishable-export flow is *flexible*
    and follows the advice. Tân Thanh closes from ``+24 h`` to ``+72 h`` (a clearance
    stop on the far side): its committed trucks become flexible too. Advice is given when
    a truck sets off and it arrives ``--eta-hours`` later. Two policies:

    - ``lowest_wait``: every flexible truck goes to the open gate whose wait looks
      shortest *now* (backlog ÷ clearances per hour), the way a driver reads a map;
    - ``capacity``: the trucks are split by :func:`gatewatch.core.recommend.recommend`,
      i.e. by each gate's spare clearance capacity at the arrival (clearances − committed
      arrivals per day, with the yard as a limit), or by throughput when no gate has any.

    Printed: each gate's maximum projected wait (hours; backlog ÷ its clearance rate)
    and maximum backlog under each policy.

Run (from the repo root):
    .venv/bin/python bench/diversion.py --json bench/results-diversion.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gatewatch.core.recommend import Capacity, recommend  # noqa: E402
from gatewatch.gates import GateConfig, load_gates  # noqa: E402

CLOSED_GATE = "tan-thanh"


@dataclass
class _Gate:
    cfg: GateConfig
    clear_per_hour: float
    committed_per_hour: float
    backlog: float = 0.0

    def is_open(self, hour: int, closed: tuple[int, int]) -> bool:
        return not (self.cfg.gate_id == CLOSED_GATE and closed[0] <= hour < closed[1])


def simulate(policy: str, *, hours: int = 120, eta_hours: int = 6, committed: float = 0.8,
             closed: tuple[int, int] = (24, 72)) -> dict[str, dict[str, float]]:
    """Run one policy; per gate its max projected wait (hours) and max backlog."""
    gates = [_Gate(g, g.simulation.clearance_per_hour,
                   committed * g.simulation.arrivals_per_hour)
             for g in load_gates().gates if g.accepts("perishable", "export")]
    flexible_base = sum((1 - committed) * g.cfg.simulation.arrivals_per_hour for g in gates)
    # trucks on the road: arrival hour -> gate -> trucks
    road: dict[int, dict[str, float]] = {}
    worst = {g.cfg.gate_id: {"max_wait_hours": 0.0, "max_backlog": 0.0} for g in gates}
    for hour in range(hours):
        # 1. trucks setting off now: the flexible flow (+ the closed gate's own trucks)
        arrive = hour + eta_hours
        flexible = flexible_base + sum(g.committed_per_hour for g in gates
                                       if not g.is_open(arrive, closed))
        if policy == "lowest_wait":
            candidates = [g for g in gates if g.is_open(hour, closed)]
            best = min(candidates, key=lambda g: g.backlog / g.clear_per_hour)
            shares = {best.cfg.gate_id: 1.0}
        else:
            caps = []
            for g in gates:
                on_road = sum(road.get(h, {}).get(g.cfg.gate_id, 0.0)
                              for h in range(hour, arrive))
                open_at = g.is_open(arrive, closed)
                projected = max(0.0, g.backlog + on_road + eta_hours * (
                    g.committed_per_hour - (g.clear_per_hour if g.is_open(hour, closed)
                                            else 0.0)))
                caps.append(Capacity(g.cfg.gate_id,
                                     24 * g.clear_per_hour if open_at else 0.0,
                                     24 * g.committed_per_hour if open_at else 0.0,
                                     projected, g.cfg.yard_capacity, None))
            shares = {o.capacity.gate_id: o.share for o in recommend(caps)}
        slot = road.setdefault(arrive, {})
        for gate_id, share in shares.items():
            slot[gate_id] = slot.get(gate_id, 0.0) + flexible * share
        # 2. the hour at each gate: committed + arriving flexible trucks, clearances
        arriving = road.pop(hour, {})
        for g in gates:
            if g.is_open(hour, closed):
                g.backlog += g.committed_per_hour
            g.backlog += arriving.get(g.cfg.gate_id, 0.0)
            if g.is_open(hour, closed):
                g.backlog = max(0.0, g.backlog - g.clear_per_hour)
            w = worst[g.cfg.gate_id]
            w["max_backlog"] = round(max(w["max_backlog"], g.backlog), 1)
            w["max_wait_hours"] = round(max(w["max_wait_hours"],
                                            g.backlog / g.clear_per_hour), 1)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=int, default=120)
    ap.add_argument("--eta-hours", type=int, default=6)
    ap.add_argument("--committed", type=float, default=0.8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {p: simulate(p, hours=args.hours, eta_hours=args.eta_hours,
                       committed=args.committed) for p in ("lowest_wait", "capacity")}
    print(f"{'gate':<16}{'lowest current wait':>24}{'capacity-aware shares':>26}")
    print(f"{'':<16}{'max wait h / backlog':>24}{'max wait h / backlog':>26}")
    for gate_id in out["capacity"]:
        lw, ca = out["lowest_wait"][gate_id], out["capacity"][gate_id]
        print(f"{gate_id:<16}{lw['max_wait_hours']:>14.1f} / {lw['max_backlog']:>7.0f}"
              f"{ca['max_wait_hours']:>16.1f} / {ca['max_backlog']:>7.0f}")
    for p in out:
        print(f"{p}: worst gate {max(w['max_wait_hours'] for w in out[p].values()):.1f} h")
    if args.json:
        args.json.write_text(json.dumps({"params": vars(args) | {"json": str(args.json)},
                                         "results": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
