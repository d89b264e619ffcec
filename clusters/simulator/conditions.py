"""Job conditions as the Job controller writes them."""

from __future__ import annotations

from clusters.simulator.store import Obj

_DONE = ("Complete", "Failed")


def condition(type_: str, reason: str, message: str, when: str) -> Obj:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": when,
        "lastTransitionTime": when,
    }


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str, when: str) -> None:
    """Set a condition in place, its transition time moving only when its status changes."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = when
            cond.update(status=value, reason=reason, message=message, lastProbeTime=when)
            return
    conditions.append({**condition(type_, reason, message, when), "status": value})


def condition_time(job: Obj) -> str | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") in _DONE and cond.get("status") == "True":
            return cond.get("lastTransitionTime")
    return None
