"""Greedy fill and repair: place jobs at their lowest-price option that fits, make room for jobs left
out by moving a blocking job, and move single jobs to cheaper options that have room."""

from __future__ import annotations

import numpy as np

from services.optimizer.compiled import Compiled
from services.optimizer.plan import ClassFiller, Ledger, Plan, ledger_of
from services.optimizer.solvers import check_time, remaining

# Blocking jobs tried per option of a job left out.
MAX_BLOCKERS = 32


def fill_greedily(
    cp: Compiled, ledger: Ledger, filler: ClassFiller, price: np.ndarray, deadline: float | None = None
) -> None:
    """Place every job still unplaced at its lowest-price option that fits: jobs with the fewest options
    first (they are the easiest to squeeze out), larger jobs first among equals. Raises OutOfTime once
    `deadline` passes."""
    rep = cp.class_job
    size = (cp.req[rep] / np.maximum(cp.capacity.max(axis=0), 1.0)).sum(axis=1) * cp.duration[rep]
    options = np.isfinite(cp.cost).reshape(cp.classes, -1).sum(axis=1)
    for k in np.lexsort((-size, options)).tolist():
        if filler.remaining(k) <= 0:
            continue
        if deadline is not None:
            check_time(deadline)
        d = int(cp.duration[rep[k]])
        req = cp.req[rep[k]]
        while filler.remaining(k) > 0:
            fits = ledger.fits(req, d, cp.earliest[rep[k]], cp.latest[rep[k]]) & np.isfinite(cp.cost[k])
            if not fits.any():
                break
            c, s = (int(i) for i in np.unravel_index(np.argmin(np.where(fits, price[k], np.inf)), fits.shape))
            count = min(filler.remaining(k), max(1, ledger.copies(c, s, d, req)))
            ledger.take(c, s, d, req, count)
            filler.place(k, c, s, count)


def place_left_out(cp: Compiled, plan: Plan, price: np.ndarray, deadline: float, tries: int = 24) -> int:
    """Make room for jobs left out: move one job that blocks a good option of the left-out job to its
    own best other option, if that frees enough room. Returns how many jobs were placed."""
    ledger = ledger_of(cp, plan)
    left = np.nonzero((plan.cluster < 0) & (cp.job_class >= 0))[0]
    done = 0
    # A job that found no room leaves the ledger as it was, so the other jobs of its class find none either.
    stuck = np.zeros(cp.classes, dtype=bool)
    for j in left.tolist():
        if remaining(deadline) <= 0:
            break
        k, d, req = int(cp.job_class[j]), int(cp.duration[j]), cp.req[j]
        if stuck[k]:
            continue
        fits = ledger.fits(req, d, cp.earliest[j], cp.latest[j]) & np.isfinite(cp.cost[k])
        if fits.any():
            c, s = (int(i) for i in np.unravel_index(np.argmin(np.where(fits, price[k], np.inf)), fits.shape))
            ledger.take(c, s, d, req)
            plan.place(j, c, s)
            done += 1
            continue
        flat = np.where(np.isfinite(cp.cost[k]), price[k], np.inf).reshape(-1)
        order = np.argsort(flat, kind="stable")[:tries]
        placed = False
        for option in order:
            if not np.isfinite(flat[option]) or placed or remaining(deadline) <= 0:
                break
            c, s = divmod(int(option), cp.slots)
            on_c = np.nonzero(plan.cluster == c)[0]
            ends = plan.start[on_c] + cp.duration[on_c]
            blockers = on_c[(plan.start[on_c] < s + d) & (ends > s)]
            # Jobs of one class at one start are interchangeable: trying one of them is trying all.
            _, first = np.unique(cp.job_class[blockers] * cp.slots + plan.start[blockers], return_index=True)
            blockers = blockers[np.sort(first)][:MAX_BLOCKERS]
            for b in blockers.tolist():
                cb, sb, db, rb = int(plan.cluster[b]), int(plan.start[b]), int(cp.duration[b]), cp.req[b]
                ledger.take(cb, sb, db, rb, -1)
                if ledger.copies(c, s, d, req) >= 1:
                    ledger.take(c, s, d, req)
                    kb = int(cp.job_class[b])
                    room = ledger.fits(rb, db, cp.earliest[b], cp.latest[b]) & np.isfinite(cp.cost[kb])
                    if room.any():
                        c2, s2 = np.unravel_index(np.argmin(np.where(room, price[kb], np.inf)), room.shape)
                        ledger.take(int(c2), int(s2), db, rb)
                        plan.place(b, int(c2), int(s2))
                        plan.place(j, c, s)
                        placed = True
                        done += 1
                        break
                    ledger.take(c, s, d, req, -1)
                ledger.take(cb, sb, db, rb)
        if not placed:
            stuck[k] = True
    return done


def improve_moves(cp: Compiled, plan: Plan, deadline: float, max_passes: int = 4) -> int:
    """Move single jobs to cheaper options that have room (and place left-out ones that now fit)."""
    ledger = ledger_of(cp, plan)
    best = cp.cost.reshape(cp.classes, -1).min(axis=1)
    moves = 0
    for _ in range(max_passes):
        k_of = cp.job_class
        current = np.full(cp.n, np.inf)
        on = plan.cluster >= 0
        current[on] = cp.cost[k_of[on], plan.cluster[on], plan.start[on]]
        candidates = np.nonzero((k_of >= 0) & (current > best[np.maximum(k_of, 0)] + 1e-12))[0]
        candidates = candidates[np.argsort(-(current[candidates] - best[k_of[candidates]]), kind="stable")]
        moved = 0
        for j in candidates.tolist():
            if remaining(deadline) <= 0:
                return moves
            k, d, req = int(k_of[j]), int(cp.duration[j]), cp.req[j]
            if plan.cluster[j] >= 0:
                ledger.take(int(plan.cluster[j]), int(plan.start[j]), d, req, -1)
            fits = ledger.fits(req, d, cp.earliest[j], cp.latest[j]) & np.isfinite(cp.cost[k])
            option = np.where(fits, cp.cost[k], np.inf)
            c, s = (int(i) for i in np.unravel_index(np.argmin(option), option.shape))
            if option[c, s] < current[j] - 1e-12:
                plan.place(j, c, s)
                moved += 1
            if plan.cluster[j] >= 0:
                ledger.take(int(plan.cluster[j]), int(plan.start[j]), d, req)
        moves += moved
        if moved == 0:
            break
    return moves
