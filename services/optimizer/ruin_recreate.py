"""Ruin and recreate: room for jobs left out (placement level), and cheaper plans (carbon level), made by
moving many placed jobs at once.

`place_left_out` (repair.py) moves one blocking job; under tight capacity a left-out job often needs several
neighbours moved, each of which may land where another one was. One step here takes a job left out, frees a
region of the plan around its window (every job placed on one of its clusters, or on every cluster, whose
run meets the window), puts the left-out job in first, then the jobs taken out and the other left-out jobs
whose windows meet the region, the least capacity per unit of weight first (in random order within a
margin), each at its lowest guide price (with a little noise) that fits. The step is kept when the plan
places at least as much weight (a walk on the plateau), otherwise the plan and the ledger go back as they
were; the best plan seen, most weight then least cost, is the result. Every step is a few array
operations, so the deadline is checked between steps and holds.

The carbon level's version (`ruin_and_recreate_carbon`) takes a few placed jobs at once: one drawn with odds
by how much it costs above its class's cheapest option, and a few others whose runs meet its window, on its
cluster and one other of its clusters (or on every cluster). They, and the jobs left out whose windows meet
that region, go back in random order, each at its lowest guide price (with a little noise) that fits. The
step is kept when the plan places more weight, or as much at a lower cost: moving one job at a time
(repair.improve_moves) stops where a cheaper option is taken by a job that could itself move.
"""

from __future__ import annotations

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.plan import Plan, ledger_of
from services.optimizer.solvers import remaining

# Slots added on each side of the left-out job's window when the region is freed.
PAD_SLOTS = 2
# Share of steps that free the region on every cluster instead of one.
ALL_CLUSTERS_SHARE = 0.25
# Relative noise on the guide price when a job is put back (ties and near-ties broken at random).
NOISE = 0.05
# Stop after this many steps in a row without a better plan.
PATIENCE = 400
# Carbon level: jobs taken out per step, and the share of steps whose region is on every cluster.
CARBON_JOBS_PER_STEP = 4
CARBON_ALL_CLUSTERS_SHARE = 0.3
# Steps placing as much weight are kept whatever their cost (a walk on the plateau); the best plan seen (most
# weight, then least cost) is what is returned.


def ruin_and_recreate(
    cp: Compiled,
    plan: Plan,
    guide: np.ndarray,
    deadline: float,
    seed: int = 0,
    patience: int = PATIENCE,
    target: int | None = None,
) -> int:
    """Improve `plan` in place (more weight placed, or as much at no higher cost) until `deadline`, until
    every placeable job is placed or the plan places `target` (a proven most), or until `patience` steps in
    a row find nothing. Returns the weight gained."""
    rng = np.random.default_rng(seed)
    ledger = ledger_of(cp, plan)
    placeable = cp.job_class >= 0
    finite = np.isfinite(cp.cost)
    size = (cp.req / np.maximum(cp.capacity.max(axis=0), 1.0)).sum(axis=1) * cp.duration
    # Least capacity per unit of weight first: the plan placing the most weight leaves out the large jobs.
    order_key = size / cp.weight / max(float((size / cp.weight).max()), 1e-12)
    ends = cp.latest + cp.duration
    job_cost = np.zeros(cp.n)
    placed = plan.cluster >= 0
    job_cost[placed] = cp.cost[cp.job_class[placed], plan.cluster[placed], plan.start[placed]]
    weight = int(cp.weight[placed].sum())
    start_weight, best_weight, best_cost = weight, weight, float(job_cost.sum())
    best = (plan.cluster.copy(), plan.start.copy())
    idle = 0
    while idle < patience and remaining(deadline) > 0 and (target is None or best_weight < target):
        left = np.nonzero((plan.cluster < 0) & placeable)[0]
        if len(left) == 0:
            break
        idle += 1
        j = int(left[rng.integers(len(left))])
        k = int(cp.job_class[j])
        t0 = max(0, int(cp.earliest[j]) - PAD_SLOTS)
        t1 = min(cp.slots, int(ends[j]) + PAD_SLOTS)
        clusters = np.nonzero(finite[k].any(axis=1))[0]
        run_end = plan.start + cp.duration
        meets = (plan.cluster >= 0) & (plan.start < t1) & (run_end > t0)
        if rng.random() >= ALL_CLUSTERS_SHARE:
            meets &= plan.cluster == int(clusters[rng.integers(len(clusters))])
        victims = np.nonzero(meets)[0]
        others = left[(left != j) & (cp.earliest[left] < t1) & (ends[left] > t0)]
        saved = (plan.cluster.copy(), plan.start.copy(), ledger.free.copy(), job_cost.copy())
        for v in victims.tolist():
            ledger.take(int(plan.cluster[v]), int(plan.start[v]), int(cp.duration[v]), cp.req[v], -1)
            plan.unplace(v)
            job_cost[v] = 0.0
        rest = np.concatenate([victims, others])
        rest = rest[np.argsort(order_key[rest] + rng.random(len(rest)) * 0.5, kind="stable")]
        for q in [j, *rest.tolist()]:
            kq, d = int(cp.job_class[q]), int(cp.duration[q])
            fits = ledger.fits(cp.req[q], d, cp.earliest[q], cp.latest[q]) & finite[kq]
            if not fits.any():
                continue
            noisy = guide[kq] * (1.0 + NOISE * rng.random(fits.shape)) + 1e-9 * rng.random(fits.shape)
            c, s = (int(i) for i in np.unravel_index(np.argmin(np.where(fits, noisy, np.inf)), fits.shape))
            ledger.take(c, s, d, cp.req[q])
            plan.place(q, c, s)
            job_cost[q] = cp.cost[kq, c, s]
        new_weight = int(cp.weight[plan.cluster >= 0].sum())
        new_cost = float(job_cost.sum())
        better = new_weight > best_weight or (
            new_weight == best_weight and new_cost < best_cost - 1e-9 * max(1.0, abs(best_cost))
        )
        if better:
            if new_weight > best_weight:
                idle = 0
            best = (plan.cluster.copy(), plan.start.copy())
            best_weight, best_cost = new_weight, new_cost
        if new_weight >= weight:
            weight = new_weight
        else:
            plan.cluster[:], plan.start[:], ledger.free[:], job_cost[:] = saved
    plan.cluster[:], plan.start[:] = best
    return best_weight - start_weight


def ruin_and_recreate_carbon(
    cp: Compiled,
    plan: Plan,
    guide: np.ndarray,
    deadline: float,
    seed: int = 0,
    stop_at: float | None = None,
    jobs_per_step: int = CARBON_JOBS_PER_STEP,
) -> int:
    """Lower `plan`'s cost in place, never its weight, until `deadline` or until its cost is at most
    `stop_at`. Returns how many steps were kept."""
    rng = np.random.default_rng(seed)
    ledger = ledger_of(cp, plan)
    finite = np.isfinite(cp.cost)
    k_of = cp.job_class
    placeable = k_of >= 0
    ends = cp.latest + cp.duration
    class_min = np.where(finite, cp.cost, np.inf).reshape(cp.classes, -1).min(axis=1)
    job_cost = np.zeros(cp.n)
    on = plan.cluster >= 0
    job_cost[on] = cp.cost[k_of[on], plan.cluster[on], plan.start[on]]
    weight, cost = int(cp.weight[on].sum()), float(job_cost.sum())
    kept = 0
    while remaining(deadline) > 0 and (stop_at is None or cost > stop_at):
        on = plan.cluster >= 0
        placed = np.nonzero(on)[0]
        if len(placed) == 0:
            break
        excess = job_cost[placed] - class_min[k_of[placed]]
        odds = excess + 1e-3 * (float(excess.max()) + 1e-9)
        j = int(placed[rng.choice(len(placed), p=odds / odds.sum())])
        t0, t1 = max(0, int(cp.earliest[j]) - PAD_SLOTS), min(cp.slots, int(ends[j]) + PAD_SLOTS)
        meets = on & (plan.start < t1) & (plan.start + cp.duration > t0)
        if rng.random() >= CARBON_ALL_CLUSTERS_SHARE:
            clusters = np.nonzero(finite[k_of[j]].any(axis=1))[0]
            meets &= (plan.cluster == plan.cluster[j]) | (
                plan.cluster == clusters[rng.integers(len(clusters))]
            )
        meets[j] = False
        victims = np.nonzero(meets)[0]
        if len(victims) > jobs_per_step - 1:
            victims = rng.choice(victims, jobs_per_step - 1, replace=False)
        left = np.nonzero(~on & placeable)[0]
        others = left[(cp.earliest[left] < t1) & (ends[left] > t0)]
        saved = (plan.cluster.copy(), plan.start.copy(), ledger.free.copy(), job_cost.copy())
        taken = [j, *victims.tolist()]
        for v in taken:
            ledger.take(int(plan.cluster[v]), int(plan.start[v]), int(cp.duration[v]), cp.req[v], -1)
            plan.unplace(v)
            job_cost[v] = 0.0
        back = np.array(taken + others.tolist())
        for q in back[rng.permutation(len(back))].tolist():
            kq, d = int(k_of[q]), int(cp.duration[q])
            fits = ledger.fits(cp.req[q], d, cp.earliest[q], cp.latest[q]) & finite[kq]
            if not fits.any():
                continue
            noisy = guide[kq] * (1.0 + NOISE * rng.random(fits.shape))
            c, s = (int(i) for i in np.unravel_index(np.argmin(np.where(fits, noisy, np.inf)), fits.shape))
            ledger.take(c, s, d, cp.req[q])
            plan.place(q, c, s)
            job_cost[q] = cp.cost[kq, c, s]
        new_weight, new_cost = int(cp.weight[plan.cluster >= 0].sum()), float(job_cost.sum())
        if new_weight > weight or (new_weight == weight and new_cost < cost - 1e-9 * max(1.0, abs(cost))):
            weight, cost = new_weight, new_cost
            kept += 1
        else:
            plan.cluster[:], plan.start[:], ledger.free[:], job_cost[:] = saved
    return kept
