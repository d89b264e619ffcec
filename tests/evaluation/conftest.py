"""Small instances of the evaluation, built from the same bundled data as the full matrix."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.evaluation.matrix import Cell, Matrix
from bench.evaluation.workload import Instance, Setting, build_instance

TINY = {"jobs": 20, "span_hours": 6, "max_runtime_s": 3600}


def tiny_matrix(policies, forecasts=("perfect", "dacf"), seed: int = 0) -> Matrix:
    return Matrix(
        (Cell(Setting("default", "slack3", 0.5), seed, tuple(forecasts)),),
        policies=tuple(policies),
        oracle_time_limit_s=30.0,
        **TINY,
    )


def roomy(instance: Instance) -> Instance:
    """The same instance with clusters big enough for every job at once: capacity never binds."""
    cores = sum(j.cpus for j in instance.jobs)
    return replace(instance, clusters=tuple(replace(c, cores=cores) for c in instance.clusters))


@pytest.fixture
def tiny_instance() -> Instance:
    return build_instance(Setting("default", "slack3", 0.5), 0, **TINY)
