"""Rounding the master LP's solution into a plan: whole units first, the rest greedily by price."""

from __future__ import annotations

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.master_lp import MasterLP
from services.optimizer.plan import ClassFiller, Ledger, Plan
from services.optimizer.repair import fill_greedily
from services.optimizer.solvers import OutOfTime

FRACTION_FLOOR = 0.05


def round_master(
    cp: Compiled, lp: MasterLP, price: np.ndarray, deadline: float | None = None, fractional: bool = False
) -> Plan:
    """Whole units of the LP solution first; with `fractional`, then one job for each fractional column, the
    largest fractions first, where it fits (a dive: at high load the greedy fill alone loses jobs the LP
    packs); the rest greedily by `price`."""
    plan = Plan.empty(cp.n)
    ledger = Ledger(cp.free)
    filler = ClassFiller(cp, plan)
    _, y = lp.primal()
    columns = lp.option_columns()
    whole = np.floor(y + 1e-6).astype(np.int64)
    for i in np.nonzero(whole > 0)[0]:
        k, c, s = (int(v) for v in columns[i])
        d = int(cp.duration[cp.class_job[k]])
        req = cp.req[cp.class_job[k]]
        count = min(int(whole[i]), filler.remaining(k), ledger.copies(c, s, d, req))
        if count > 0:
            ledger.take(c, s, d, req, count)
            filler.place(k, c, s, count)
    if fractional:
        part = y - whole
        for i in np.argsort(-part, kind="stable"):
            if part[i] < FRACTION_FLOOR:
                break
            k, c, s = (int(v) for v in columns[i])
            d = int(cp.duration[cp.class_job[k]])
            req = cp.req[cp.class_job[k]]
            if filler.remaining(k) > 0 and ledger.copies(c, s, d, req) >= 1:
                ledger.take(c, s, d, req)
                filler.place(k, c, s, 1)
    fill_greedily(cp, ledger, filler, price, deadline)
    return plan


def try_round(
    cp: Compiled, lp: MasterLP, price: np.ndarray, deadline: float, fractional: bool = False
) -> Plan | None:
    try:
        return round_master(cp, lp, price, deadline, fractional)
    except OutOfTime:
        return None
