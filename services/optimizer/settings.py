"""Optimizer settings, from CASPIAN_OPTIMIZER_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings
from services.common.settings import load_settings, non_negative, one_of, port, positive, setting

PREFIX = "CASPIAN_OPTIMIZER_"


def _at_least_one(value: int) -> None:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")


def _fraction(value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"expected a fraction in [0, 1), got {value}")


@dataclass(frozen=True)
class OptimizerSettings(ServerSettings):
    port: int = setting(50052, port, "gRPC port; 0 picks a free one")
    time_limit_seconds: float = setting(
        30.0, positive, "wall-clock limit of a solve when the request sets none"
    )
    max_time_limit_seconds: float = setting(300.0, positive, "largest time limit a request may ask for")
    max_jobs: int = setting(20_000, _at_least_one, "most jobs one Solve may carry")
    max_slots: int = setting(2016, _at_least_one, "most time slots in one Solve's grid")
    max_clusters: int = setting(64, _at_least_one, "most clusters in one Solve")
    max_option_cells: int = setting(
        40_000_000, _at_least_one, "most jobs x clusters x slots in one Solve (memory grows with it)"
    )
    default_solver: str = setting("highs", one_of("highs", "cbc"), "MILP solver when the request names none")
    default_policy: str = setting(
        "caspian",
        one_of(
            "caspian",
            "round_robin",
            "least_loaded",
            "greedy_carbon",
            "temporal_only",
            "ibm_caspian",
            "naive_milp",
        ),
        "policy when the request names none",
    )
    migration_cost_gco2: float = setting(
        1.0, non_negative, "cost of moving a planned job to another cluster when the request sets 0"
    )
    lateness_gco2_per_slot: float = setting(
        0.001, non_negative, "tie-breaker cost per slot of delay when the request sets 0"
    )
    preferred_discount: float = setting(
        0.05, _fraction, "emissions discount on a preferred cluster when the request sets 0"
    )
    mip_gap: float = setting(0.01, _fraction, "relative gap at which a solve stops, when the request sets 0")
    solve_workers: int = setting(2, _at_least_one, "solves run at once; further requests wait their turn")


def load(env=None) -> OptimizerSettings:
    return load_settings(OptimizerSettings, PREFIX, env)
