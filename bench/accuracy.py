"""Backlog accuracy with cameras that miss and misread plates: the exact ledger alone vs
gatewatch with reconciliation, against the simulator's truth.

What it measures
    A simulated feed at the bundled Lạng Sơn gates' volumes (gatewatch/data/langson-gates.yaml
    simulation rates, with the day profile; duplicates, late deliveries and a few malformed
    records as in the scenarios) read by cameras that miss ``--missed`` and misread
    ``--misread`` of the plates (gatewatch/tools/cameras.py: OCR confusions 0/O/D/Q, 8/B,
    1/I/L/7, 5/S, 2/Z, 6/G, 4/A or a dropped character), the queue cameras re-reading the
    waiting trucks every ``--reread-minutes``, and a yard sensor's head count every 15
    minutes on gate.counts. The feed goes through two ``core.processor.Processor`` objects in
    event time with an explicit now (5-minute batches, a tick after each): (a) the exact
    ledger alone (GATEWATCH_RECONCILE=0) and (b) gatewatch with reconciliation
    (GATEWATCH_RECONCILE=1). Every hour each gate's backlog (confirmed vehicles waiting:
    what the wall shows) is compared with the true backlog: mean and maximum absolute
    error (per gate and hour), the error at the end, the share of samples within the goal
    (1 % of the true backlog or 5 trucks), and the trucks truly waiting that were wrongly
    set aside, and where the error comes from (phantoms of real trucks that left, phantoms
    of misread plates, trucks never read; gatewatch/tools/accuracy.py). First the
    headline (``--days`` at 3 % missed, 1 % misread), then a sweep over missed x misread
    in {0, 1, 3, 5} % for ``--sweep-days`` (each fault alone and both at once; all 16
    pairs with ``--full-grid``).

Run (from the repo root; about 7 minutes on 2 shared cores):
    .venv/bin/python bench/accuracy.py --json bench/results-accuracy.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gatewatch.gates import load_gates  # noqa: E402
from gatewatch.tools.accuracy import MODES, measure  # noqa: E402
from gatewatch.tools.cameras import CountSensor  # noqa: E402

RATES = (0.0, 0.01, 0.03, 0.05)
#: each fault alone, then both together: (missed, misread)
GRID = tuple(sorted({(m, 0.0) for m in RATES} | {(0.0, r) for r in RATES}
                    | {(r, r) for r in RATES} | {(0.03, 0.01)}))
FULL_GRID = tuple((m, r) for m in RATES for r in RATES)
QUICK_GRID = ((0.0, 0.0), (0.03, 0.0), (0.0, 0.01), (0.03, 0.01))


def row(r: dict[str, Any], mode: str) -> str:
    m = r["modes"][mode]
    return (f"{r['missed']:>6.0%} {r['misread']:>7.0%}  {mode:<10} {m['mean_abs_error']:>8.1f} "
            f"{m['max_abs_error']:>7} {m['final_abs_error']:>9} {m['final_abs_error_total']:>9} "
            f"{m['within_goal_share']:>8.1%} {m['wrongly_set_aside_max']:>8} "
            f"{m['wrongly_set_aside_final']:>8}")


HEADER = (f"{'missed':>6} {'misread':>7}  {'mode':<10} {'mean err':>8} {'max err':>7} "
          f"{'final err':>9} {'final sum':>9} {'in goal':>8} {'aside max':>8} "
          f"{'aside end':>8}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=float, default=14.0, help="length of the headline run")
    p.add_argument("--sweep-days", type=float, default=2.0, help="length of each sweep run")
    p.add_argument("--full-grid", action="store_true", help="all 16 (missed, misread) pairs")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--missed", type=float, default=0.03)
    p.add_argument("--misread", type=float, default=0.01)
    p.add_argument("--reread-minutes", type=float, default=60.0,
                   help="the queue cameras re-read waiting trucks this often (0: never)")
    p.add_argument("--night-factor", type=float, default=1.0,
                   help="missed and misread shares x this from 19:00 to 06:00")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="2-day headline, 1-day sweep of 4 pairs (a smoke run)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.quick:
        args.days, args.sweep_days = min(args.days, 2.0), min(args.sweep_days, 1.0)
    gates = load_gates(None)
    sensor = CountSensor(every_minutes=15, noise_vehicles=2)
    common = {"seed": args.seed, "reread_minutes": args.reread_minutes,
              "night_factor": args.night_factor, "counts": sensor}
    t0 = time.perf_counter()
    print(f"headline: {args.days:g} days, {args.missed:.0%} missed, {args.misread:.0%} "
          f"misread, re-reads every {args.reread_minutes:g} min", flush=True)
    headline = measure(gates, days=args.days, missed=args.missed, misread=args.misread,
                       progress=lambda line: print(line, flush=True), **common)
    sweep: list[dict[str, Any]] = []
    if not args.no_sweep:
        grid = QUICK_GRID if args.quick else FULL_GRID if args.full_grid else GRID
        for missed, misread in grid:
            r = measure(gates, days=args.sweep_days, missed=missed, misread=misread,
                        **common)
            sweep.append(r)
            print(f"sweep {args.sweep_days:g} days: " + row(r, "exact").strip()
                  + " | reconciled max err "
                  + str(r["modes"]["reconciled"]["max_abs_error"]), flush=True)
    seconds = time.perf_counter() - t0
    tb = headline["true_backlog"]
    print(f"\nheadline, {args.days:g} days ({headline['events']:,} events; reads "
          f"{headline['reads']}); true backlog per gate: mean {tb['mean_per_gate']}, "
          f"max {tb['max_per_gate']}")
    print(HEADER)
    for mode in MODES:
        print(row(headline, mode))
    print("largest gate error per day:")
    for mode in MODES:
        print(f"  {mode:<10} {headline['modes'][mode]['daily_max_abs_error']}")
    print("where the error comes from, all gates (mean over the hours | at the end):")
    for mode in MODES:
        m = headline["modes"][mode]
        print(f"  {mode:<10} " + ", ".join(
            f"{k} {m['error_parts_mean'][k]} | {m['error_parts_final'][k]}"
            for k in m["error_parts_mean"]))
    m = headline["modes"]["reconciled"] if "reconciled" in headline["modes"] else None
    if m is not None:
        print(f"trucks never read (the floor of any reconciliation on camera evidence): at "
              f"most {m['never_read_max']} at one gate and hour; a perfect reconciliation "
              f"would be in goal in {m['perfect_within_goal_share']:.1%} of the gate-hours")
        for o in m["out_of_goal"]:
            print(f"  out of goal: {o['gate']} hour {o['hour']:g}: true {o['true']}, shown "
                  f"{o['shown']}, never read {o['never_read']}")
    if sweep:
        print(f"\nsweep, {args.sweep_days:g} days each")
        print(HEADER)
        for r in sweep:
            for mode in MODES:
                print(row(r, mode))
    print(f"\n{seconds:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({
            "command": "python bench/accuracy.py " + " ".join(sys.argv[1:]),
            "machine": platform.machine(), "python": platform.python_version(),
            "seconds": round(seconds, 1), "headline": headline, "sweep": sweep},
            indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
