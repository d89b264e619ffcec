"""Where CASPIAN's gap comes from on a hard instance: a poor plan or a weak bound.

    python -m bench.optimizer_gap D96-tight 0 --limit 5 --exact-limit 200

Solves the instance with CASPIAN, then asks the independent exact model (bench/exact.py) for the least cost of
the plans placing at least CASPIAN's weight, starting from CASPIAN's plan. With the exact optimum O (or its
bound when it does not finish), CASPIAN's objective U and bound B: (U - O) / U is how far the plan is from the
best plan placing as much, (O - B) / U how far the bound is below it; the reported gap is their sum.
"""

from __future__ import annotations

import argparse
import json

from bench.exact import solve_exact
from bench.hard_instances import make_hard_instance
from services.optimizer.problem import Options
from services.optimizer.solve import solve


def gap_sources(family: str, seed: int, limit: float, exact_limit: float) -> dict:
    problem, load = make_hard_instance(family, seed)
    result = solve(problem, Options(time_limit_s=limit, mip_gap=0.01))
    names = [c.name for c in problem.clusters]
    plan = {j: (names.index(p.cluster), p.start_slot) for j, p in enumerate(result.placements) if p.placed}
    exact = solve_exact(problem, exact_limit, min_weight=result.placed_weight, start_plan=plan)
    row = {
        "instance": f"{family}-{seed}",
        "measured_load": round(load, 3),
        "limit_s": limit,
        "wall_s": round(result.wall_seconds, 2),
        "placed_weight": result.placed_weight,
        "placed_weight_bound": result.placed_weight_bound,
        "objective_g": round(result.objective_gco2, 2),
        "bound_g": round(result.lower_bound_gco2, 2),
        "gap": round(result.gap, 4),
        "exact_cost_g": None if exact.cost is None else round(exact.cost, 2),
        "exact_bound_g": None if exact.cost_bound is None else round(exact.cost_bound, 2),
        "exact_s": round(exact.seconds, 1),
    }
    reference = exact.cost if exact.cost is not None else exact.cost_bound
    if reference is not None and result.objective_gco2 > 0:
        row["plan_share"] = round((result.objective_gco2 - reference) / result.objective_gco2, 4)
        row["bound_share"] = round((reference - result.lower_bound_gco2) / result.objective_gco2, 4)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("seed", type=int)
    parser.add_argument("--limit", type=float, default=5.0)
    parser.add_argument("--exact-limit", type=float, default=200.0)
    args = parser.parse_args(argv)
    print(json.dumps(gap_sources(args.family, args.seed, args.limit, args.exact_limit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
