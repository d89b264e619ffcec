"""Interruptible jobs in the evaluation (issue 19): their rule, and which policies use it.

A setting named ".../int50" or ".../int100" marks that share of the jobs interruptible (workload.py, drawn by
the seed). Every such job checkpoints (it keeps its progress across a pause), restores in `RESUME_OVERHEAD_S`
and runs no segment shorter than `MIN_SEGMENT_S`; no limit on pauses.

Policies: every policy gets the same AppWrappers, `interruptible` included, and the hub and optimizer decide
what to do with it (CASPIAN and Wait AWhile plan segments; the other policies run every job in one piece).
`caspian_one_piece` is CASPIAN on the same jobs submitted without `interruptible`: what CASPIAN saves
without using interruptibility, so the difference to `caspian` is what pausing brings.
"""

from __future__ import annotations

from datetime import timedelta

from caspian.v1 import common_pb2
from services.common.timeconv import to_duration
from services.optimizer import problem as domain

RESUME_OVERHEAD_S = 300.0
MIN_SEGMENT_S = 3600.0

# Evaluation policy -> (the hub's policy setting, whether interruptible jobs are submitted as such).
POLICY_SETUP: dict[str, tuple[str, bool]] = {"caspian_one_piece": ("caspian", False)}
# Policies added for interruptible settings (matrix.py runs them on those settings only).
INTERRUPTIBLE_POLICIES = ("wait_awhile", "caspian_one_piece")


def hub_policy_of(policy: str) -> tuple[str, bool]:
    """(hub policy, submit interruptible jobs as interruptible) for an evaluation policy name."""
    return POLICY_SETUP.get(policy, (policy, True))


def interruptible_message() -> common_pb2.Interruptible:
    rule = common_pb2.Interruptible()
    rule.resume_overhead.CopyFrom(to_duration(RESUME_OVERHEAD_S))
    rule.min_segment.CopyFrom(to_duration(MIN_SEGMENT_S))
    return rule


def interruptible_rule() -> domain.Interruptible:
    return domain.Interruptible(
        resume_overhead=timedelta(seconds=RESUME_OVERHEAD_S), min_segment=timedelta(seconds=MIN_SEGMENT_S)
    )
