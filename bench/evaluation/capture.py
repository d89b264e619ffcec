"""A capture goal as both reports judge it: a row's capture of the oracle's saving against a goal in percent.

An oracle stopped by its time limit may be far from optimal, which flatters every capture against it: the
goal then holds only if it holds against the oracle's lower bound too.
"""

from __future__ import annotations


def capture_goal(row: dict, goal: float) -> tuple[str, bool]:
    """(measured, met) for `row`'s `oracle_capture_pct` against `goal`."""
    capture, bound_capture = row["oracle_capture_pct"], row["bound_capture_pct"]
    if capture is None:
        return "n/a (the oracle saves nothing)", False
    measured, met = f"{capture:.2f}%", capture >= goal
    if not row["oracle_exact"]:
        bound = "n/a" if bound_capture is None else f"{bound_capture:.2f}%"
        measured += f" ({bound} against the bound of an oracle not proven optimal)"
        met = met and bound_capture is not None and bound_capture >= goal
    return measured, met
