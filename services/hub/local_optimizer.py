"""The optimizer's own domain `solve()`, in-process: the hub's fallback when the optimizer service is down or
times out, and the optimizer port of in-process runs (benchmarks).

The hub never places jobs by a rule of its own: when the service cannot answer, the same `solve()` runs here,
in a worker thread so the event loop stays free, with a fast heuristic policy (`fallback_policy`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from services.optimizer.problem import Options, Policy, Problem, Result
from services.optimizer.settings import OptimizerSettings

# The optimizer's heuristics: each answers in well under a second, whatever the solver does.
HEURISTICS = (Policy.ROUND_ROBIN, Policy.LEAST_LOADED, Policy.GREEDY_CARBON, Policy.TEMPORAL_ONLY)


def fallback_policy(policy: Policy, carbon_blind: bool) -> Policy:
    """The policy of an in-process fallback solve: the configured one if it is a heuristic, else the greedy
    lowest-carbon one (which still follows the forecast); least-loaded when the cycle is carbon-blind."""
    if carbon_blind:
        return Policy.LEAST_LOADED
    return policy if policy in HEURISTICS else Policy.GREEDY_CARBON


def resolved_options(options: Options, settings: OptimizerSettings) -> Options:
    """Zero-valued options take the optimizer's defaults, as the service does with a request."""
    return replace(
        options,
        time_limit_s=options.time_limit_s or settings.time_limit_seconds,
        migration_cost_gco2=options.migration_cost_gco2 or settings.migration_cost_gco2,
        lateness_gco2_per_slot=options.lateness_gco2_per_slot or settings.lateness_gco2_per_slot,
        preferred_discount=options.preferred_discount or settings.preferred_discount,
        mip_gap=options.mip_gap or settings.mip_gap,
    )


class LocalOptimizer:
    """An OptimizerPort that runs `services.optimizer.solve.solve` in a thread."""

    def __init__(self, settings: OptimizerSettings | None = None):
        self.settings = settings or OptimizerSettings()

    async def solve(self, problem: Problem, options: Options) -> Result:
        from services.optimizer.solve import solve

        return await asyncio.to_thread(solve, problem, resolved_options(options, self.settings))
