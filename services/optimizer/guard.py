"""The hard wall-clock guard: a policy runs on a worker thread, and when it is late the caller goes on with the
best plan the policy has offered so far.

Every phase of a policy watches its deadline, but a step between two checks (a large numpy pass, a model being
built, a solver that takes a while to notice its interrupt) can overrun it, and on a machine shared with
other work every such step is several times longer. The caller waits for the policy until its deadline plus
a small grace, then takes the incumbent: a copy of the last plan the policy offered (`offer`), which it checks
and answers like any other. The late worker is abandoned: past its deadline it stops at its next check (its
solver runs are interrupted at the deadline), and its result is discarded.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.optimizer.plan import Plan

T = TypeVar("T")

_holder: contextvars.ContextVar[Incumbent | None] = contextvars.ContextVar("caspian_incumbent", default=None)


class Incumbent:
    """The best plan a running policy has offered (a copy, so later in-place moves never reach it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        # Bounds proven so far: on the cost of every plan placing at least the weight of some plan offered
        # (so of the last, which places at least as much), and on the weight any plan places.
        self.carbon_bound = -math.inf
        self.weight_bound: int | None = None

    def offer(self, plan: Plan) -> None:
        copy = Plan(
            plan.cluster.copy(),
            plan.start.copy(),
            dict(plan.notes),
            {j: list(runs) for j, runs in plan.segments.items()},
        )
        with self._lock:
            self._plan = copy

    @property
    def plan(self) -> Plan | None:
        with self._lock:
            return self._plan


def offer(plan: Plan) -> None:
    """Offer `plan` as the running policy's incumbent (a no-op outside a guarded run). Callers offer only
    plans at least as good as the ones they offered before."""
    holder = _holder.get()
    if holder is not None:
        holder.offer(plan)


def offer_bounds(carbon: float | None = None, weight: int | None = None) -> None:
    """Offer bounds the running policy has proven: `carbon` on the cost of every plan placing at least the
    weight of a plan it offered, `weight` on the weight any plan places."""
    holder = _holder.get()
    if holder is None:
        return
    with holder._lock:
        if carbon is not None:
            holder.carbon_bound = max(holder.carbon_bound, carbon)
        if weight is not None:
            holder.weight_bound = weight if holder.weight_bound is None else min(holder.weight_bound, weight)


@dataclass
class Guarded(Generic[T]):
    value: T | None  # the policy's own result, None when it was late or failed
    error: BaseException | None  # what the policy raised, if it finished by raising
    late: bool  # the policy had not finished at the hard deadline
    incumbent: Plan | None  # the last plan offered
    carbon_bound: float = -math.inf  # the bounds offered
    weight_bound: int | None = None


def run_guarded(fn: Callable[[], T], wait_s: float) -> Guarded[T]:
    """Run `fn` on a worker thread for at most `wait_s` seconds."""
    holder = Incumbent()
    box: dict[str, object] = {}

    def work() -> None:
        _holder.set(holder)
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised or reported by the caller, on its own thread
            box["error"] = exc

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name="caspian-policy", daemon=True)
    worker.start()
    worker.join(max(0.0, wait_s))
    if worker.is_alive():
        with holder._lock:
            return Guarded(None, None, True, holder._plan, holder.carbon_bound, holder.weight_bound)
    error = box.get("error")
    return Guarded(
        box.get("value"),  # type: ignore[arg-type]
        error if isinstance(error, BaseException) else None,
        False,
        holder.plan,
    )
