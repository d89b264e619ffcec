"""What one cycle did (`CycleReport`), what a what-if answers (`Preview`), the cycle's settings, and the
logger that puts the cycle number on every line."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.optimizer.problem import Policy, Status


class CycleLog(logging.LoggerAdapter):
    """A logger that adds the cycle number to every line, keeping the call's own extra fields."""

    extra: Mapping[str, object]  # always given: {"cycle": n}

    def process(self, msg, kwargs):
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs


@dataclass(frozen=True)
class SchedulerConfig:
    slot_seconds: int = 900
    horizon_slots: int = 96
    policy: Policy = Policy.CASPIAN
    solve_time_limit_seconds: float = 30.0
    migration_cost_gco2: float = 1.0
    lateness_gco2_per_slot: float = 0.01
    preferred_discount: float = 0.05
    mip_gap: float = 0.0
    risk_aversion: float = 0.0
    plan_on_estimate: bool = False
    hedge_far_slots: float = 0.0
    forecast_skill: bool = False
    expected_arrivals: float = 0.0
    carbon_stale_seconds: float = 3600.0
    carbon_blind_after_seconds: float = 21600.0
    dispatch_concurrency: int = 16
    max_dispatch_attempts: int = 5
    watch_history: int = 100_000
    finished_ttl_seconds: float = 0.0
    # One deadline for a cycle's whole solve, retry included (real seconds; 0: none beyond each call's own).
    solve_deadline_seconds: float = 0.0
    # The most jobs one Solve request carries (the optimizer's MAX_JOBS); more are solved in windows.
    solve_max_jobs: int = 20_000

    @classmethod
    def from_settings(cls, settings) -> SchedulerConfig:
        return cls(
            slot_seconds=settings.slot_seconds,
            horizon_slots=settings.horizon_slots,
            policy=Policy(settings.policy),
            solve_time_limit_seconds=settings.solve_time_limit_seconds,
            migration_cost_gco2=settings.migration_cost_gco2,
            lateness_gco2_per_slot=settings.lateness_gco2_per_slot,
            preferred_discount=settings.preferred_discount,
            mip_gap=settings.mip_gap,
            risk_aversion=settings.risk_aversion,
            plan_on_estimate=settings.plan_on_estimate,
            hedge_far_slots=settings.hedge_far_slots,
            forecast_skill=settings.forecast_skill,
            expected_arrivals=settings.expected_arrivals,
            carbon_stale_seconds=settings.carbon_stale_seconds,
            carbon_blind_after_seconds=settings.carbon_blind_after_seconds,
            dispatch_concurrency=settings.dispatch_concurrency,
            max_dispatch_attempts=settings.max_dispatch_attempts,
            watch_history=settings.watch_history,
            finished_ttl_seconds=settings.finished_ttl_seconds,
            solve_deadline_seconds=settings.optimizer_timeout_seconds,
            solve_max_jobs=settings.optimizer_max_jobs,
        )


@dataclass
class CycleReport:
    """What one cycle did; GetStats and TriggerSchedule return it as a CycleSummary."""

    cycle: int
    started_at: datetime
    duration_seconds: float = 0.0
    considered: int = 0
    planned: int = 0
    unplaced: int = 0
    dispatched: int = 0
    unschedulable: int = 0
    solve_status: Status | None = None
    policy: Policy | None = None
    planned_gco2: float = 0.0
    agnostic_gco2: float = 0.0
    gap: float = 0.0
    carbon_stale: bool = False
    carbon_blind: bool = False
    fallback: bool = False
    notes: list[str] = field(default_factory=list)
    # ok | idle (nothing to place) | fallback | error: the label of caspian_schedule_cycles_total.
    outcome: str = "ok"


@dataclass(frozen=True)
class Preview:
    placeable: bool
    cluster: str = ""
    planned_start: datetime | None = None
    planned_gco2: float = 0.0
    start_now_gco2: float = 0.0
    reason: str = ""
    delay_seconds: float = 0.0
    # The cluster behind start_now_gco2 (the carbon-agnostic choice at the earliest start); "" if none fits.
    start_now_cluster: str = ""
    # Interruptible jobs: the planned segments ([start, end) in seconds, on `cluster`), and the best plan of
    # the same job in one piece for comparison (None/0 when there is none; the plan itself for another job).
    segments: tuple[tuple[float, float], ...] = ()
    one_piece_start: datetime | None = None
    one_piece_gco2: float = 0.0
    interruptible: bool = False


def short(exc: BaseException) -> str:
    """An exception as a note: its message, at most 200 characters."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
