"""A validated Problem turned into arrays every policy shares.

Slots: a job with runtime r on a grid of slot length L occupies d = ceil(r / L) slots; its last slot is charged
pro rata (frac = (r - (d-1) L) / L). Its earliest start slot is e = ceil((earliest - grid.start) / L) and its
latest start slot l is the largest s with s*L + r <= deadline - grid.start and s + d <= slots.

Emissions of job j started at slot s on cluster c (services/common/energy.py):

    watts(j, c) = (cores x watts_per_core + gpus x watts_per_gpu + GiB x watts_per_gib) x PUE
    gCO2(j,c,s) = watts(j, c) / 1000 x L / 3600 x (I[c,s] + ... + I[c,s+d-2] + frac x I[c,s+d-1])

which is energy (kWh) x the mean intensity over the run. The objective cost of an option adds the preference
discount, the migration cost and the lateness tie-breaker:

    cost(j,c,s) = gCO2(j,c,s) x (1 - discount [c preferred]) + migration [c != current] + lateness x (s - e)

Identical jobs (same resources, runtime, window, eligibility, preference, current cluster and priority) form
one class; solvers that can use the multiplicity decide a count per class and option instead of a 0/1 per job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.common.energy import job_watts
from services.common.stable import stable_index
from services.optimizer.problem import Options, Problem, UnplacedReason

CPU, MEMORY, GPU = 0, 1, 2
RESOURCES = 3
PRIORITY_LEVELS = 10
_EPS_SECONDS = 1e-6


def _seconds(delta) -> float:
    return delta.total_seconds()


@dataclass
class Compiled:
    problem: Problem
    options: Options
    slots: int
    slot_s: float
    names: list[str]
    index: dict[str, int]
    intensity: np.ndarray  # [C, T] gCO2/kWh: the forecast, for reported emissions
    # [C, T] what decisions weigh: the forecast x (1 + risk_aversion x relative spread); `intensity` when
    # the forecast is exact or the caller is risk-neutral.
    decision_intensity: np.ndarray
    capacity: np.ndarray  # [C, R]
    free: np.ndarray  # [C, T, R] capacity left after reservations
    # per job
    n: int
    req: np.ndarray  # [n, R]
    runtime_s: np.ndarray  # [n]
    duration: np.ndarray  # [n] slots occupied
    frac: np.ndarray  # [n] share of the last slot in use
    earliest: np.ndarray  # [n] earliest start slot
    latest: np.ndarray  # [n] latest start slot meeting the deadline and the horizon
    deadline_latest: np.ndarray  # [n] latest start slot meeting the deadline alone (may exceed the horizon)
    allowed: np.ndarray  # [n, C] affinity and size allow the cluster
    preferred: np.ndarray  # [n, C]
    current: np.ndarray  # [n] cluster index of the current plan or -1
    home: np.ndarray  # [n] home cluster index (temporal-only baseline)
    previous_cluster: np.ndarray  # [n] the previous plan's cluster index (warm start) or -1
    previous_start: np.ndarray  # [n] the previous plan's start slot on this grid or -1
    weight: np.ndarray  # [n] priority weight of placing the job, 1..PRIORITY_LEVELS
    watts: np.ndarray  # [n, C]
    reason: list[UnplacedReason | None]  # why a job has no option at all
    detail: list[str]
    # per class of identical placeable jobs
    job_class: np.ndarray  # [n] class index or -1
    members: list[np.ndarray]  # class -> job indices
    class_job: np.ndarray  # [K] one representative job per class
    count: np.ndarray  # [K]
    cost: np.ndarray  # [K, C, T] objective cost; inf where the option is not allowed
    penalty_unit: float  # cost of leaving one weight-1 job unplaced; above any difference of plan costs

    @property
    def clusters(self) -> int:
        return len(self.names)

    @property
    def classes(self) -> int:
        return len(self.count)

    def class_cost(self, k: int) -> np.ndarray:
        return self.cost[k]

    def job_cost(self, j: int) -> np.ndarray | None:
        k = self.job_class[j]
        return None if k < 0 else self.cost[k]

    def emissions(self, j: int, c: int, s: int, intensity: np.ndarray | None = None) -> float:
        d, frac = int(self.duration[j]), float(self.frac[j])
        window = (self.intensity if intensity is None else intensity)[c, s : s + d]
        weighted = float(window[:-1].sum() + frac * window[-1])
        return self.watts[j, c] / 1000.0 * self.slot_s / 3600.0 * weighted

    def energy_wh(self, j: int, c: int) -> float:
        return float(self.watts[j, c] * self.runtime_s[j] / 3600.0)

    def option_cost(self, j: int, c: int, s: int) -> float:
        options = self.options
        cost = self.emissions(j, c, s, self.decision_intensity)
        if self.preferred[j, c]:
            cost *= 1.0 - options.preferred_discount
        if self.current[j] >= 0 and self.current[j] != c:
            cost += options.migration_cost_gco2
        return cost + options.lateness_gco2_per_slot * (s - int(self.earliest[j]))


def window_min(values: np.ndarray, width: int) -> np.ndarray:
    """Minimum over [s, s+width) along axis 1 of a [C, T, ...] array -> [C, T-width+1, ...].

    Doubling: after k steps each entry holds the minimum of 2**k consecutive values; one more overlapping
    step covers the rest. O(T log width), with no per-window Python work."""
    out = values
    span = 1
    while span * 2 <= width:
        out = np.minimum(out[:, :-span], out[:, span:])
        span *= 2
    if span < width:
        rest = width - span
        out = np.minimum(out[:, : out.shape[1] - rest], out[:, rest:])
    return out


def fit_starts(
    free: np.ndarray, req: np.ndarray, width: int, first: int = 0, last: int | None = None
) -> np.ndarray:
    """[C, T] bool: True where a job needing `req` for `width` slots fits when started at that slot.

    Only starts in [first, last] are examined (the job's window); the rest are False."""
    clusters, slots, _ = free.shape
    out = np.zeros((clusters, slots), dtype=bool)
    last = slots - width if last is None else min(int(last), slots - width)
    first = max(0, int(first))
    if last < first:
        return out
    needed = req > 0
    if not needed.any():
        out[:, first : last + 1] = True
        return out
    low = window_min(free[:, first : last + width][:, :, needed], width)
    out[:, first : last + 1] = (low >= req[needed]).all(axis=2)
    return out


def compile_problem(problem: Problem, options: Options) -> Compiled:
    grid = problem.grid
    T = grid.slots
    L = _seconds(grid.slot)
    names = [c.name for c in problem.clusters]
    index = {name: i for i, name in enumerate(names)}
    C = len(names)

    intensity = np.zeros((C, T))
    spread = np.zeros((C, T))
    for forecast in problem.forecasts:
        intensity[index[forecast.cluster]] = np.asarray(forecast.gco2_per_kwh[:T], dtype=float)
        if forecast.relative_spread:
            spread[index[forecast.cluster]] = np.asarray(forecast.relative_spread[:T], dtype=float)
    decision_intensity = intensity
    if options.risk_aversion > 0 and spread.any():
        decision_intensity = intensity * (1.0 + options.risk_aversion * spread)
    capacity = np.array([c.capacity.as_tuple() for c in problem.clusters], dtype=float).reshape(C, RESOURCES)
    free = np.repeat(capacity[:, None, :], T, axis=1)
    for reservation in problem.reservations:
        start, end = max(0, reservation.start_slot), min(T, reservation.end_slot)
        if start < end:
            free[index[reservation.cluster], start:end] -= np.asarray(reservation.resources.as_tuple(), float)

    n = len(problem.jobs)
    req = np.array([j.resources.as_tuple() for j in problem.jobs], dtype=float).reshape(n, RESOURCES)
    runtime_s = np.array([_seconds(j.runtime) for j in problem.jobs], dtype=float)
    duration = np.maximum(1, np.ceil(runtime_s / L - 1e-9)).astype(np.int64)
    frac = np.clip((runtime_s - (duration - 1) * L) / L, 0.0, 1.0)
    earliest = np.zeros(n, dtype=np.int64)
    deadline_latest = np.full(n, np.iinfo(np.int32).max, dtype=np.int64)
    for j, job in enumerate(problem.jobs):
        if job.earliest_start is not None:
            earliest[j] = max(0, math.ceil((_seconds(job.earliest_start - grid.start) - _EPS_SECONDS) / L))
        if job.deadline is not None:
            room = _seconds(job.deadline - grid.start) - runtime_s[j]
            deadline_latest[j] = math.floor((room + _EPS_SECONDS) / L) if room > -_EPS_SECONDS else -1
    latest = np.minimum(deadline_latest, T - duration)

    allowed = np.ones((n, C), dtype=bool)
    preferred = np.zeros((n, C), dtype=bool)
    current = np.full(n, -1, dtype=np.int64)
    home = np.full(n, -1, dtype=np.int64)
    weight = np.ones(n, dtype=np.int64)
    fits_size = (req[:, None, :] <= capacity[None, :, :]).all(axis=2)
    for j, job in enumerate(problem.jobs):
        if job.required_clusters:
            mask = np.zeros(C, dtype=bool)
            mask[[index[name] for name in job.required_clusters]] = True
            allowed[j] &= mask
        for name in job.excluded_clusters:
            allowed[j, index[name]] = False
        for name in job.preferred_clusters:
            preferred[j, index[name]] = True
        if job.current_cluster:
            current[j] = index[job.current_cluster]
        weight[j] = 1 + min(max(job.priority, 0), PRIORITY_LEVELS - 1)
    allowed &= fits_size
    previous_cluster = np.full(n, -1, dtype=np.int64)
    previous_start = np.full(n, -1, dtype=np.int64)
    for j, job in enumerate(problem.jobs):
        if job.previous_cluster in index and job.previous_start is not None:
            offset = _seconds(job.previous_start - grid.start) / L
            slot = round(offset)
            # only a start on a slot boundary of this grid is a placement it can hold
            if abs(offset - slot) < 1e-6 and 0 <= slot < T:
                previous_cluster[j], previous_start[j] = index[job.previous_cluster], slot
    for j, job in enumerate(problem.jobs):
        if job.home_cluster and allowed[j, index[job.home_cluster]]:
            home[j] = index[job.home_cluster]
        elif allowed[j].any():
            home[j] = default_home(job.id, allowed[j])

    watts = np.zeros((n, C))
    for c, cluster in enumerate(problem.clusters):
        cap_cpu = cluster.capacity.cpu_millis
        per_unit = [
            job_watts(1000, 0, 0, cluster.power, cap_cpu) / 1000.0,
            job_watts(0, 1, 0, cluster.power, cap_cpu),
            job_watts(0, 0, 1, cluster.power, cap_cpu),
        ]
        watts[:, c] = req @ np.asarray(per_unit)

    compiled = Compiled(
        problem=problem,
        options=options,
        slots=T,
        slot_s=L,
        names=names,
        index=index,
        intensity=intensity,
        decision_intensity=decision_intensity,
        capacity=capacity,
        free=free,
        n=n,
        req=req,
        runtime_s=runtime_s,
        duration=duration,
        frac=frac,
        earliest=earliest,
        latest=latest,
        deadline_latest=deadline_latest,
        allowed=allowed,
        preferred=preferred,
        current=current,
        home=home,
        previous_cluster=previous_cluster,
        previous_start=previous_start,
        weight=weight,
        watts=watts,
        reason=[None] * n,
        detail=[""] * n,
        job_class=np.full(n, -1, dtype=np.int64),
        members=[],
        class_job=np.zeros(0, dtype=np.int64),
        count=np.zeros(0, dtype=np.int64),
        cost=np.zeros((0, C, T)),
        penalty_unit=1.0,
    )
    _explain_structural(compiled)
    _build_classes(compiled)
    return compiled


def _explain_structural(cp: Compiled) -> None:
    """Jobs no placement can serve even on empty clusters get their reason now."""
    for j in range(cp.n):
        if not cp.allowed[j].any():
            cp.reason[j] = UnplacedReason.NO_ELIGIBLE_CLUSTER
            cp.detail[j] = "no cluster is allowed by the affinity rules and large enough for the job"
        elif cp.deadline_latest[j] < cp.earliest[j]:
            cp.reason[j] = UnplacedReason.DEADLINE
            cp.detail[j] = "the deadline leaves less than the runtime after the earliest start"
        elif cp.latest[j] < cp.earliest[j]:
            cp.reason[j] = UnplacedReason.BEYOND_HORIZON
            cp.detail[j] = "the job cannot start and finish inside the planning horizon"


def _build_classes(cp: Compiled) -> None:
    keys: dict[tuple, int] = {}
    members: list[list[int]] = []
    for j in range(cp.n):
        if cp.reason[j] is not None:
            continue
        key = (
            tuple(cp.req[j]),
            cp.runtime_s[j],
            int(cp.earliest[j]),
            int(cp.latest[j]),
            cp.allowed[j].tobytes(),
            cp.preferred[j].tobytes(),
            int(cp.current[j]),
            int(cp.weight[j]),
        )
        k = keys.setdefault(key, len(members))
        if k == len(members):
            members.append([])
        members[k].append(j)
    K, C, T = len(members), cp.clusters, cp.slots
    cp.members = [np.asarray(m, dtype=np.int64) for m in members]
    cp.class_job = np.asarray([m[0] for m in members], dtype=np.int64)
    cp.count = np.asarray([len(m) for m in members], dtype=np.int64)
    for k, m in enumerate(cp.members):
        cp.job_class[m] = k
    cp.cost = np.full((K, C, T), np.inf)
    if K == 0:
        return

    rep = cp.class_job
    options = cp.options
    weigh = cp.decision_intensity
    prefix = np.concatenate([np.zeros((C, 1)), np.cumsum(weigh, axis=1)], axis=1)  # [C, T+1]
    starts = np.arange(T)
    scale = cp.slot_s / 3600.0 / 1000.0
    for d in np.unique(cp.duration[rep]):
        group = np.nonzero(cp.duration[rep] == d)[0]
        jobs = rep[group]
        S = T - d + 1
        s = starts[:S]
        last = s + d - 1
        # sum of intensity over the first d-1 slots, plus the pro-rata last slot: [C, S] then [G, C, S]
        head = prefix[:, last] - prefix[:, s]
        tail = weigh[:, last]
        weighted = head[None, :, :] + cp.frac[jobs][:, None, None] * tail[None, :, :]
        cost = cp.watts[jobs][:, :, None] * scale * weighted
        cost *= np.where(cp.preferred[jobs], 1.0 - options.preferred_discount, 1.0)[:, :, None]
        cur = cp.current[jobs]
        moved = (cur[:, None] >= 0) & (np.arange(C)[None, :] != cur[:, None])
        cost += np.where(moved, options.migration_cost_gco2, 0.0)[:, :, None]
        cost += options.lateness_gco2_per_slot * np.maximum(
            0, s[None, None, :] - cp.earliest[jobs][:, None, None]
        )
        # options outside the window, on disallowed clusters, or where reservations leave no room: inf
        in_window = (s[None, :] >= cp.earliest[jobs][:, None]) & (s[None, :] <= cp.latest[jobs][:, None])
        ok = in_window[:, None, :] & cp.allowed[jobs][:, :, None]
        fits = np.ones((len(jobs), C, S), dtype=bool)
        for r in range(RESOURCES):
            need = cp.req[jobs, r]
            if not (need > 0).any():
                continue
            low = window_min(cp.free[:, :, r], d)  # [C, S]
            fits &= low[None, :, :] >= need[:, None, None]
        ok &= fits
        cp.cost[group, :, :S] = np.where(ok, cost, np.inf)

    finite = np.isfinite(cp.cost)
    has_option = finite.reshape(K, -1).any(axis=1)
    for k in np.nonzero(~has_option)[0]:
        for j in cp.members[k]:
            cp.reason[j] = UnplacedReason.CAPACITY
            cp.detail[j] = "reservations leave no room for the job in its window"
    if not has_option.all():
        keep = np.nonzero(has_option)[0]
        remap = np.full(K, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        cp.job_class = np.where(cp.job_class >= 0, remap[np.maximum(cp.job_class, 0)], -1)
        cp.members = [cp.members[k] for k in keep]
        cp.class_job = cp.class_job[keep]
        cp.count = cp.count[keep]
        cp.cost = cp.cost[keep]
    if len(cp.count):
        worst = np.where(np.isfinite(cp.cost), cp.cost, -np.inf).reshape(len(cp.count), -1).max(axis=1)
        cp.penalty_unit = 1.0 + float((worst * cp.count).sum())


def default_home(job_id: str, allowed: np.ndarray) -> int:
    """The home of a job that names none: one of its allowed clusters, chosen by a stable hash of its id.

    Jobs spread evenly over the clusters, and a job keeps its home from one solve to the next (the hub
    re-plans every cycle). The first allowed cluster by name would put every job on one cluster.
    """
    choices = np.flatnonzero(allowed)
    return int(choices[stable_index(job_id, len(choices))])
