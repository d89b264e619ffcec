"""GAIA's "Wait AWhile" baseline (Wiesner et al., Middleware 2021): no spatial shifting; each job, in arrival
order, on its home cluster (the next allowed cluster only when the home has no room, as temporal-only does),
runs in the lowest-carbon slots before its deadline. An interruptible job runs in segments (the exact
pattern of segments.py on the forecast, in the room the earlier jobs leave); a plain job in one piece at its
cheapest start, as temporal-only places it.
"""

from __future__ import annotations

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.plan import Ledger, Plan
from services.optimizer.policies import arrival_order
from services.optimizer.segments import cheapest_pattern, segment_spec, slot_energy_kwh


def wait_awhile(cp: Compiled, deadline: float) -> Plan:
    plan, ledger = Plan.empty(cp.n), Ledger(cp.free)
    for j in arrival_order(cp, deadline):
        home = int(cp.home[j])
        order = [home] + [c for c in range(cp.clusters) if c != home and cp.allowed[j, c]]
        spec = segment_spec(cp, j)
        # A job that cannot split (too short for two segments, or no pause left) runs in one piece.
        if spec is None or not spec.can_split:
            cost = cp.cost[cp.job_class[j]]
            d = int(cp.duration[j])
            fits = ledger.fits(cp.req[j], d, cp.earliest[j], cp.latest[j]) & np.isfinite(cost)
            for c in order:
                if fits[c].any():
                    s = int(np.argmin(np.where(fits[c], cost[c], np.inf)))
                    ledger.take(c, s, d, cp.req[j])
                    plan.place(j, c, s)
                    break
            continue
        for c in order:
            usable = (ledger.free[c] >= cp.req[j] - 1e-9).all(axis=1)
            found = cheapest_pattern(spec, slot_energy_kwh(cp, j, c) * cp.decision_intensity[c], usable)
            if found is not None:
                for a, b in found[1]:
                    ledger.take(c, a, b - a, cp.req[j])
                plan.place_segments(j, c, found[1])
                break
    return plan
