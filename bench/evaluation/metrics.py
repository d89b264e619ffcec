"""Figures of one run, always measured on the true trace whatever forecast the scheduler saw.

emitted_kg             sum over the jobs the oracle places that ran, of energy x mean true intensity over
                       [start, end) (over each run segment, for a job that paused), / 1000. Off-grid jobs (less slack than the wait for the next slot
                       boundary: the hub starts them at once, services/hub/scheduling/offgrid.py) are in it; the oracle
                       places them too, at their arrival, on the cluster it chooses (oracle.py). They are
                       also reported apart (off_grid_jobs, off_grid_ran, off_grid_met, off_grid_kg).
emitted_with_unrun_kg  emitted_kg plus, for each job the oracle places but the run never ran, what the
                       carbon-agnostic run emitted for it. The hub makes a job Unschedulable once its
                       deadline can no longer be met before its planned start comes (a soft-deadline
                       policy's late plan can end that way); this is the figure policies are compared on,
                       so dropping work never counts as a saving.
agnostic_kg            emitted_kg of the least-loaded policy (earliest start, least-loaded cluster) on the
                       same instance: the carbon-agnostic reference
oracle_kg              emitted_kg of the offline oracle's plan (oracle_bound_kg: its true lower bound)
saved_pct              100 x (agnostic - emitted_with_unrun) / agnostic
oracle_capture_pct     100 x (agnostic - emitted_with_unrun) / (agnostic - oracle): the share of the
                       oracle's saving captured (bound_capture_pct: the same against the lower bound)
deadline_met_frac      jobs the oracle places that finished by their deadline / jobs the oracle places.
                       `oracle_unplaced` counts the jobs it cannot place (none, unless capacity is short);
                       `deadline_met_frac_all` is every job finished by its deadline / all jobs.
mean_delay_frac        mean over the jobs the oracle places that ran, of
                       (start - arrival) / (deadline - arrival - runtime)
solve_p50_s, _p99_s    percentiles of the optimizer's wall time per solve (wall clock: not deterministic)
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.timeconv import no_later_than

from ..stats import percentile
from .carbon import job_grams, true_trace
from .oracle import OracleResult, oracle_grams
from .simulate import RunResult
from .workload import Instance

# Keys whose values are wall-clock measurements: left out when runs are compared for determinism.
TIMING_KEYS = ("solve_p50_s", "solve_p99_s", "solve_max_s", "oracle_wall_s")


@dataclass(frozen=True)
class RunFigures:
    emitted_g: float
    # Jobs the oracle places but this run did not run, charged what the carbon-agnostic run emitted for them.
    unrun_g: float
    hub_emitted_g: float
    ran: int
    met: int
    met_feasible: int
    late: int
    not_run_feasible: int
    mean_delay_frac: float
    # Of which off-grid jobs (the hub starts them at once; counted in the figures above too): ran, met, gCO2.
    off_grid_ran: int
    off_grid_met: int
    off_grid_g: float
    solve_p50_s: float
    solve_p99_s: float
    solve_max_s: float
    solves: int
    solves_not_optimal: int


def job_emissions(instance: Instance, run: RunResult) -> dict[str, float]:
    """gCO2 of every job that ran, on the true trace."""
    clusters = {c.name: c for c in instance.clusters}
    out = {}
    for job in instance.jobs:
        o = run.outcomes.get(job.id)
        if o is not None and o.start is not None and o.end is not None:
            cluster = clusters[o.cluster]
            trace = true_trace(cluster.zone, instance.seed)
            # An interruptible job: the intensity integrated over the segments it actually ran.
            spans = getattr(o, "segments", ()) or ((o.start, o.end),)
            out[job.id] = sum(job_grams(job, cluster, trace, a, b) for a, b in spans)
    return out


def run_figures(
    instance: Instance, run: RunResult, feasible: set[str], reference: dict[str, float] | None = None
) -> RunFigures:
    """`reference`: per-job gCO2 of the carbon-agnostic run, to charge jobs this run left out."""
    grams = job_emissions(instance, run)
    emitted = hub = unrun = off_grid_g = 0.0
    ran = met = met_feasible = late = not_run = off_grid_ran = off_grid_met = 0
    delays = []
    for job in instance.jobs:
        outcome = run.outcomes.get(job.id)
        if job.id not in grams:
            if job.id in feasible:
                not_run += 1
                unrun += (reference or {}).get(job.id, 0.0)
            continue
        ran += 1
        on_time = outcome.phase == "succeeded" and no_later_than(outcome.end, job.deadline)
        met += on_time
        late += not on_time
        if job.id not in feasible:
            continue
        if instance.off_grid(job):
            off_grid_ran += 1
            off_grid_met += on_time
            off_grid_g += grams[job.id]
        emitted += grams[job.id]
        hub += outcome.hub_actual_g
        met_feasible += on_time
        if job.slack > 0:
            delays.append((outcome.start - job.arrival) / job.slack)
    seconds = run.solve_seconds
    return RunFigures(
        emitted_g=emitted,
        unrun_g=unrun,
        hub_emitted_g=hub,
        ran=ran,
        met=met,
        met_feasible=met_feasible,
        late=late,
        not_run_feasible=not_run,
        mean_delay_frac=sum(delays) / len(delays) if delays else 0.0,
        off_grid_ran=off_grid_ran,
        off_grid_met=off_grid_met,
        off_grid_g=off_grid_g,
        solve_p50_s=percentile(seconds, 50),
        solve_p99_s=percentile(seconds, 99),
        solve_max_s=max(seconds, default=0.0),
        solves=len(seconds),
        solves_not_optimal=sum(1 for s in run.solve_statuses if s != "optimal"),
    )


def oracle_figures(instance: Instance, oracle: OracleResult) -> RunFigures:
    specs = {j.id: j for j in instance.jobs}
    placed = [j for j in oracle.jobs.values() if j.placed]
    delays = [(j.start - specs[j.id].arrival) / specs[j.id].slack for j in placed if specs[j.id].slack > 0]
    grams = oracle_grams(instance, oracle)
    off_grid = [j for j in placed if instance.off_grid(specs[j.id])]
    return RunFigures(
        emitted_g=grams,
        unrun_g=0.0,
        hub_emitted_g=grams,
        ran=len(placed),
        met=len(placed),
        met_feasible=len(placed),
        late=0,
        not_run_feasible=0,
        mean_delay_frac=sum(delays) / len(delays) if delays else 0.0,
        off_grid_ran=len(off_grid),
        off_grid_met=len(off_grid),
        off_grid_g=oracle_grams(instance, oracle, {j.id for j in off_grid}),
        solve_p50_s=oracle.wall_seconds,
        solve_p99_s=oracle.wall_seconds,
        solve_max_s=oracle.wall_seconds,
        solves=1,
        solves_not_optimal=0 if oracle.status == "optimal" else 1,
    )


def row(
    instance: Instance,
    policy: str,
    forecast: str,
    figures: RunFigures,
    agnostic_g: float,
    oracle: OracleResult,
    oracle_g: float,
    notes: list[str] | None = None,
) -> dict:
    """One object of evaluation.json."""
    jobs = len(instance.jobs)
    feasible = len(oracle.feasible_ids)
    effective = figures.emitted_g + figures.unrun_g
    saving = agnostic_g - oracle_g
    bound_saving = agnostic_g - oracle.bound_g
    out = {
        "setting": instance.setting.name,
        "seed": instance.seed,
        "policy": policy,
        "forecast": forecast,
        "week_start": instance.start.strftime("%Y-%m-%d"),
        "jobs": jobs,
        "cluster_cpus": {c.name: c.cores for c in instance.clusters},
        "oracle_feasible_jobs": feasible,
        "oracle_unplaced": jobs - feasible,
        "off_grid_jobs": sum(1 for j in instance.jobs if instance.off_grid(j)),
        "emitted_kg": round(figures.emitted_g / 1000, 6),
        "emitted_with_unrun_kg": round((figures.emitted_g + figures.unrun_g) / 1000, 6),
        "agnostic_kg": round(agnostic_g / 1000, 6),
        "oracle_kg": round(oracle_g / 1000, 6),
        "oracle_bound_kg": round(oracle.bound_g / 1000, 6),
        "oracle_exact": oracle.exact,
        "saved_pct": round(100 * (agnostic_g - effective) / agnostic_g, 3) if agnostic_g else 0.0,
        "oracle_capture_pct": round(100 * (agnostic_g - effective) / saving, 3) if saving > 0 else None,
        "bound_capture_pct": round(100 * (agnostic_g - effective) / bound_saving, 3)
        if bound_saving > 0
        else None,
        "deadline_met_frac": round(figures.met_feasible / feasible, 6) if feasible else None,
        "deadline_met_frac_all": round(figures.met / jobs, 6),
        "late_jobs": figures.late,
        "not_run_feasible": figures.not_run_feasible,
        "mean_delay_frac": round(figures.mean_delay_frac, 6),
        "off_grid_ran": figures.off_grid_ran,
        "off_grid_met": figures.off_grid_met,
        "off_grid_kg": round(figures.off_grid_g / 1000, 6),
        "hub_accounted_kg": round(figures.hub_emitted_g / 1000, 6),
        "solves": figures.solves,
        "solves_not_optimal": figures.solves_not_optimal,
        "solve_p50_s": round(figures.solve_p50_s, 4),
        "solve_p99_s": round(figures.solve_p99_s, 4),
        "solve_max_s": round(figures.solve_max_s, 4),
    }
    if notes:
        out["notes"] = notes[:5]
    return out


def deterministic(rows: list[dict]) -> list[dict]:
    """The rows without wall-clock figures: what must be byte-identical for the same seed."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]
