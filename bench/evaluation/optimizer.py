"""The hub's OptimizerPort, in-process: the optimizer's servicer mapping and its domain solve, no gRPC.

A request goes through the same functions the optimizer's servicer uses (`problem_from_proto`,
`options_from_proto` with the service's default settings, `response_from_result`), and the domain
`solve` is called synchronously on the caller's thread: the simulation is single-threaded and its clock
does not move while it solves. The wall time of every solve is kept for the report (these are the only
wall-clock figures in the evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from caspian.v1 import optimizer_pb2
from services.hub.ports import OptimizerPort
from services.optimizer import problem as domain
from services.optimizer.server import options_from_proto, problem_from_proto, response_from_result
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

    async def solve(self, request: optimizer_pb2.SolveRequest) -> optimizer_pb2.SolveResponse:
        began = time.perf_counter()
        try:
            problem = problem_from_proto(request)
            options = options_from_proto(request.options, self.settings)
            result = self._solve(problem, options)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            raise
        response = response_from_result(result)
        self.wall_seconds.append(time.perf_counter() - began)
        self.statuses.append(result.status.value)
        return response
