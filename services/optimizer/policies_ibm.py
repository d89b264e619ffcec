"""IBM's CASPIAN (MASCOTS 2024), re-implemented from its published description.

For job j on cluster c starting at slot t (run of d slots), three rewards are maximised:

    green(j,c,t) = sum over the run of  use_j / (capacity_c x intensity[c, slot] x power_slope_c)
    on_time(j,t) = 1 / max(1, t + d - deadline_j)        (lateness in slots; 1 when on time)
    early(j,t)   = 1 / (t + d)                            (early completion)

where use/capacity is the job's share of the cluster's CPUs plus its share of its GPUs, and power_slope is the
cluster's watts per core. Each reward is divided by the optimum of the LP relaxation that maximises it alone;
the LP relaxation of the sum is solved, jobs are sorted by their LP mass (the largest fraction any option
got), and each job is placed at the first option in the LP's order that fits: its LP option when that
option is whole, otherwise the fitting option with the highest combined reward. Deadlines are soft: any
start from the earliest start to the end of the horizon is allowed, and a placement ending after the
deadline is marked late.

Differences from the published system, for a like-for-like comparison: the earliest start and the
affinity rules of our requests are honoured, identical jobs share one LP variable (the same LP), the LP is
solved by column generation (the same optimum), and a placement is checked against capacity before it is
kept.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from services.common.energy import job_watts
from services.optimizer.compiled import GPU, Compiled, fit_starts
from services.optimizer.plan import Ledger, Plan
from services.optimizer.solvers import Outcome, remaining

MAX_ROUNDS = 100
COLUMNS_PER_CLASS = 3


def _rewards(cp: Compiled) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(valid [K,C,T], green, on_time, early) for every class and option, soft deadlines."""
    K, C, T = cp.classes, cp.clusters, cp.slots
    rep = cp.class_job
    valid = np.zeros((K, C, T), dtype=bool)
    starts = np.arange(T)
    for k in range(K):
        j = rep[k]
        d = int(cp.duration[j])
        ok = fit_starts(cp.free, cp.req[j], d) & cp.allowed[j][:, None]
        ok &= starts[None, :] >= cp.earliest[j]
        valid[k] = ok
    slope = np.array(
        [job_watts(1000, 0, 0, c.power, c.capacity.cpu_millis) for c in cp.problem.clusters], dtype=float
    )
    share = cp.req[rep][:, None, 0] / np.maximum(cp.capacity[None, :, 0], 1.0)
    gpu_share = np.where(
        cp.capacity[None, :, GPU] > 0,
        cp.req[rep][:, None, GPU] / np.maximum(cp.capacity[None, :, GPU], 1.0),
        0.0,
    )
    use = share + gpu_share  # [K, C]
    inverse = 1.0 / (np.maximum(cp.decision_intensity, 1e-3) * slope[:, None])  # [C, T]
    prefix = np.concatenate([np.zeros((C, 1)), np.cumsum(inverse, axis=1)], axis=1)
    d = cp.duration[rep]
    end = np.minimum(starts[None, :] + d[:, None], T)  # [K, T]
    run_sum = prefix[:, end] - prefix[:, starts][:, None, :]  # [C, K, T]
    green = use[:, :, None] * np.transpose(run_sum, (1, 0, 2))
    deadline_slots = np.array(
        [
            ((job.deadline - cp.problem.grid.start).total_seconds() / cp.slot_s) if job.deadline else float(T)
            for job in (cp.problem.jobs[j] for j in rep)
        ]
    )
    finish = starts[None, :] + cp.runtime_s[rep][:, None] / cp.slot_s  # [K, T]
    lateness = finish - deadline_slots[:, None]
    on_time = 1.0 / np.maximum(1.0, lateness)
    early = 1.0 / (starts[None, :] + d[:, None])
    return (
        valid,
        green,
        np.broadcast_to(on_time[:, None, :], (K, C, T)),
        np.broadcast_to(early[:, None, :], (K, C, T)),
    )


def _lp_maximise(cp: Compiled, valid: np.ndarray, reward: np.ndarray, deadline: float):
    """Max sum reward x, sum_o x[k,o] <= n_k, capacity; by column generation. Returns (value, lp) or None."""
    from services.optimizer.columns import improving_options
    from services.optimizer.master_lp import MasterLP
    from services.optimizer.pricing import LagrangianPrices

    shadow = dataclasses.replace(cp, cost=np.where(valid, -reward, np.inf), penalty_unit=0.0)
    prices = LagrangianPrices(shadow)
    lp = MasterLP(shadow, prices)
    flat = shadow.cost.reshape(cp.classes, -1)
    m = min(COLUMNS_PER_CLASS, flat.shape[1])
    pick = np.argpartition(flat, m - 1, axis=1)[:, :m]
    ks = np.repeat(np.arange(cp.classes), m)
    opts = pick.reshape(-1)
    keep = np.isfinite(flat[ks, opts])
    lp.add(ks[keep], opts[keep] // cp.slots, opts[keep] % cp.slots)
    for _ in range(MAX_ROUNDS):
        if lp.solve(deadline) != Outcome.OPTIMAL:
            return None
        sigma, lam = lp.duals()
        if not lp.add(*improving_options(prices.price(lam), sigma, lp.in_lp, COLUMNS_PER_CLASS)):
            break
        if remaining(deadline) <= 0:
            return None
    return -lp.objective, lp


def ibm_caspian(cp: Compiled, deadline: float) -> tuple[Plan, str]:
    plan = Plan.empty(cp.n)
    if cp.classes == 0:
        return plan, Outcome.OPTIMAL
    valid, green, on_time, early = _rewards(cp)
    # Each reward is scaled to a maximum of 1 before its LP (the green reward is ~1e-8 in raw units, below
    # the solver's tolerances); dividing by the LP optimum of the scaled reward gives the same ratio.
    rewards = [r / max(float(np.max(np.where(valid, r, 0.0))), 1e-300) for r in (green, on_time, early)]
    parts = []
    for reward in rewards:
        solved = _lp_maximise(cp, valid, reward, deadline)
        if solved is None:
            return plan, Outcome.NO_SOLUTION
        parts.append(max(solved[0], 1e-12))
    combined = rewards[0] / parts[0] + rewards[1] / parts[1] + rewards[2] / parts[2]
    solved = _lp_maximise(cp, valid, combined, deadline)
    if solved is None:
        return plan, Outcome.NO_SOLUTION
    _, lp = solved
    _, x = lp.primal()
    columns = lp.option_columns()

    # Disaggregate: each job of a class takes one LP option and its mass (1 for whole units).
    choice: list[tuple[float, int, int, int]] = []  # (mass, job, c, s)
    for k in range(cp.classes):
        members = list(cp.members[k])
        mine = np.nonzero(columns[:, 0] == k)[0]
        mine = mine[np.argsort(-x[mine], kind="stable")]
        parts_left = []
        for i in mine:
            whole = int(np.floor(x[i] + 1e-9))
            for _ in range(min(whole, len(members))):
                choice.append((1.0, members.pop(0), int(columns[i, 1]), int(columns[i, 2])))
            frac = x[i] - whole
            if frac > 1e-9:
                parts_left.append((frac, int(columns[i, 1]), int(columns[i, 2])))
        parts_left.sort(key=lambda item: -item[0])
        for j in members:
            if parts_left:
                frac, c, s = parts_left.pop(0)
                choice.append((frac, j, c, s))
            else:
                choice.append((0.0, j, -1, -1))
    choice.sort(key=lambda item: -item[0])

    ledger = Ledger(cp.free)
    for mass, j, c, s in choice:
        d = int(cp.duration[j])
        req = cp.req[j]
        if mass >= 1.0 - 1e-9 and c >= 0 and ledger.copies(c, s, d, req) >= 1:
            ledger.take(c, s, d, req)
            plan.place(j, c, s)
            continue
        k = cp.job_class[j]
        fits = ledger.fits(req, d, cp.earliest[j]) & valid[k]
        if fits.any():
            c2, s2 = np.unravel_index(np.argmax(np.where(fits, combined[k], -np.inf)), fits.shape)
            ledger.take(int(c2), int(s2), d, req)
            plan.place(j, int(c2), int(s2))
    return plan, Outcome.FEASIBLE
