"""The hub's OptimizerPort, in-process: the optimizer's domain solve, no gRPC.

The hub's port speaks the optimizer's domain types, so a problem goes straight to `solve`, with zero-valued
options resolved to the service's defaults as the service would (`resolved_options`). It is called
synchronously on the caller's thread: the simulation is single-threaded and its clock does not move while it
solves. The wall time of every solve is kept for the report (these are the only wall-clock figures in the
evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.hub.local_optimizer import resolved_options
from services.hub.ports import OptimizerPort
from services.optimizer import problem as domain
from services.optimizer.settings import OptimizerSettings

SolveFn = Callable[[domain.Problem, domain.Options], domain.Result]


def domain_solve() -> SolveFn:
    """The optimizer's entry point: one problem, one policy, one result.

    The modules its policies import lazily are imported here too, at once, so a worker process runs one
    consistent version of the optimizer for all its runs.
    """
    import services.optimizer.model  # noqa: F401
    import services.optimizer.policies_ibm  # noqa: F401
    from services.optimizer.solve import solve

    return solve


class InProcessOptimizer(OptimizerPort):
    def __init__(
        self,
        solve: SolveFn | None = None,
        settings: OptimizerSettings | None = None,
    ):
        self._solve = solve or domain_solve()
        self.settings = settings or OptimizerSettings()
        self.wall_seconds: list[float] = []
        self.statuses: list[str] = []
        # Solves that raised (the hub retries once, then places with its greedy fallback).
        self.errors: list[str] = []

    async def solve(self, problem: domain.Problem, options: domain.Options) -> domain.Result:
        began = time.perf_counter()
        try:
            result = self._solve(problem, resolved_options(options, self.settings))
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            raise
        self.wall_seconds.append(time.perf_counter() - began)
        self.statuses.append(result.status.value)
        return result
