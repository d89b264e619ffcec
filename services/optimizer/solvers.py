"""Solver runs under a real wall-clock deadline.

- HiGHS runs in-process on a worker thread (highspy releases the GIL). Its own `time_limit` is set to the time
  left, an interrupt callback stops it once the deadline passes, and if it still has not returned shortly
  after, the thread is abandoned and the caller goes on with the best incumbent seen by the callback.
- CBC runs as a child process on an MPS file and is killed at the deadline: its own `-sec` limit is only
  checked between branch-and-bound nodes, so it is not a wall-clock bound.

Outcomes are data. A solve stopped by a limit is never reported as optimal, whatever PuLP's status says:
the status comes from the solver's model status together with whether it holds a primal solution.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import highspy

# How long an interrupted HiGHS run may take to notice before its thread is abandoned.
ABANDON_GRACE_S = 0.25


class Outcome:
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # stopped by a limit with a solution
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # stopped by a limit without one, or the solver failed


@dataclass
class MipResult:
    outcome: str
    values: list[float] | None  # by the caller's variable order
    objective: float | None
    bound: float | None  # the solver's dual bound, when it reports one


class OutOfTime(Exception):
    """The wall-clock limit passed before a policy had a plan."""


def remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def check_time(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise OutOfTime()


def run_highs(h: highspy.Highs, deadline: float) -> bool:
    """Run `h` until it finishes or the deadline passes; False when the run had to be abandoned."""
    # HiGHS compares an LP's time limit with the run time accumulated over every run of this object
    # (column generation runs it many times), so the limit is that total plus the time left.
    h.setOptionValue("time_limit", h.getRunTime() + max(0.001, remaining(deadline)))
    stop = threading.Event()

    def interrupt(event) -> None:
        if stop.is_set() or time.monotonic() >= deadline:
            event.interrupt()

    h.cbSimplexInterrupt.subscribe(interrupt)
    h.cbMipInterrupt.subscribe(interrupt)
    h.cbIpmInterrupt.subscribe(interrupt)
    worker = threading.Thread(target=h.run, name="highs-solve", daemon=True)
    worker.start()
    worker.join(max(0.0, remaining(deadline)))
    if worker.is_alive():
        stop.set()
        worker.join(ABANDON_GRACE_S)
    if worker.is_alive():
        return False
    h.cbSimplexInterrupt.unsubscribe(interrupt)
    h.cbMipInterrupt.unsubscribe(interrupt)
    h.cbIpmInterrupt.unsubscribe(interrupt)
    return True


def highs_lp_outcome(h: highspy.Highs, finished: bool) -> str:
    if not finished:
        return Outcome.NO_SOLUTION
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return Outcome.OPTIMAL
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return Outcome.INFEASIBLE
    return Outcome.NO_SOLUTION


def solve_mip_highs(
    problem: Any, deadline: float, gap_rel: float, gap_abs: float, warm: dict[Any, float] | None
) -> tuple[MipResult, list]:
    """Solve a PuLP problem with HiGHS in-process; returns the result and PuLP's variable order."""
    import pulp

    solver = pulp.HiGHS(msg=False, gapRel=gap_rel, gapAbs=gap_abs, timeLimit=max(0.001, remaining(deadline)))
    solver.createAndConfigureSolver(problem)
    variables = _load_highs(problem)
    h: highspy.Highs = problem.solverModel
    if warm:
        index = [v.index for v in variables if v in warm]
        values = [float(warm[v]) for v in variables if v in warm]
        h.setSolution(len(index), index, values)
    result = run_highs_mip(h, deadline)
    if result.values is not None:
        result = MipResult(
            result.outcome, [result.values[v.index] for v in variables], result.objective, result.bound
        )
    return result, variables


def run_highs_mip(h: highspy.Highs, deadline: float) -> MipResult:
    """Run a loaded HiGHS MIP until it finishes or the deadline passes; values by HiGHS column order. A run
    cut short keeps the best solution its callback saw, and claims no bound."""
    best: dict[str, Any] = {"values": None, "objective": None}

    def improving(event) -> None:
        best["values"] = list(event.data_out.mip_solution)
        best["objective"] = float(event.data_out.objective_function_value)

    h.cbMipImprovingSolution.subscribe(improving)
    if remaining(deadline) <= 0:
        return MipResult(Outcome.NO_SOLUTION, None, None, None)
    finished = run_highs(h, deadline)
    if not finished:
        values = best["values"]
        outcome = Outcome.FEASIBLE if values is not None else Outcome.NO_SOLUTION
        return MipResult(outcome, values, best["objective"], None)
    h.cbMipImprovingSolution.unsubscribe(improving)
    status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    # The dual bound of a run that returned (optimal, or stopped by the limit or the interrupt) is the global
    # bound of its branch and bound: true whatever the stop. An abandoned run (above) gives none.
    bound = float(info.mip_dual_bound) if abs(info.mip_dual_bound) < 1e300 else None
    if status == highspy.HighsModelStatus.kInfeasible:
        return MipResult(Outcome.INFEASIBLE, None, None, bound)
    if not has_solution:
        return MipResult(Outcome.NO_SOLUTION, None, None, bound)
    outcome = Outcome.OPTIMAL if status == highspy.HighsModelStatus.kOptimal else Outcome.FEASIBLE
    values = list(h.getSolution().col_value)
    return MipResult(outcome, values, float(info.objective_function_value), bound)


def _load_highs(problem: Any) -> list:
    """Hand a PuLP problem to its HiGHS object in a few bulk calls (PuLP's own loader makes one call per
    variable and per integrality change, which dominates the time on large models)."""
    import numpy as np
    import pulp

    h: highspy.Highs = problem.solverModel
    inf = highspy.kHighsInf
    variables = problem.variables()
    for i, v in enumerate(variables):
        v.index = i
    n = len(variables)
    sign = -1.0 if problem.sense == pulp.LpMaximize else 1.0
    objective = problem.objective
    cost = np.array([sign * objective.get(v, 0.0) for v in variables], dtype=float)
    lower = np.array([-inf if v.lowBound is None else v.lowBound for v in variables], dtype=float)
    upper = np.array([inf if v.upBound is None else v.upBound for v in variables], dtype=float)
    h.addCols(n, cost, lower, upper, 0, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0))
    integer = np.array([v.index for v in variables if v.cat == pulp.LpInteger], dtype=np.int32)
    if len(integer):
        kinds = np.full(len(integer), highspy.HighsVarType.kInteger)
        h.changeColsIntegrality(len(integer), integer, kinds)
    starts, index, value, row_lower, row_upper = [], [], [], [], []
    for i, constraint in enumerate(problem.constraints()):
        constraint.index = i
        starts.append(len(index))
        for var, coefficient in constraint.items():
            if coefficient != 0:
                index.append(var.index)
                value.append(coefficient)
        lb, ub = constraint.getLb(), constraint.getUb()
        row_lower.append(-inf if lb is None else lb)
        row_upper.append(inf if ub is None else ub)
    if starts:
        h.addRows(
            len(starts),
            np.asarray(row_lower, dtype=float),
            np.asarray(row_upper, dtype=float),
            len(index),
            np.asarray(starts, dtype=np.int32),
            np.asarray(index, dtype=np.int32),
            np.asarray(value, dtype=float),
        )
    return variables


_CBC_STATUS = re.compile(r"^Result - (?P<text>.+)$", re.M)
_CBC_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf)"
_CBC_BOUND = re.compile(rf"^Lower bound:\s+(?P<value>{_CBC_NUMBER})", re.M)
_CBC_OBJECTIVE = re.compile(rf"^Objective value:\s+(?P<value>{_CBC_NUMBER})", re.M)


def cbc_path() -> str:
    import pulp

    return pulp.PULP_CBC_CMD.pulp_cbc_path


def solve_mip_cbc(
    problem: Any, deadline: float, gap_rel: float, gap_abs: float, warm: dict[Any, float] | None
) -> tuple[MipResult, list]:
    """Solve a PuLP problem with CBC in a child process that is killed at the deadline."""
    import pulp

    helper = pulp.COIN_CMD(path=cbc_path(), msg=False)
    with tempfile.TemporaryDirectory(prefix="caspian-cbc-") as tmp:
        mps, sol, mst = (os.path.join(tmp, name) for name in ("model.mps", "model.sol", "model.mst"))
        variables, var_names, con_names, _ = problem.writeMPS(mps, rename=1)
        args = [cbc_path(), mps]
        if warm:
            for v in variables:
                v.varValue = float(warm.get(v, 0.0))
            helper.writesol(mst, problem, variables, var_names, con_names)
            args += ["-mips", mst]
        left = remaining(deadline)
        if left <= 0:
            return MipResult(Outcome.NO_SOLUTION, None, None, None), variables
        # CBC checks its own limit between nodes only: ask it to stop early enough to write its incumbent.
        own_limit = max(0.01, min(left - 0.2, left * 0.8))
        args += ["-sec", f"{own_limit:.3f}", "-timeMode", "elapsed", "-ratio", f"{gap_rel:g}"]
        args += [
            "-allow",
            f"{gap_abs:g}",
            "-threads",
            "1",
            "-solve",
            "-printingOptions",
            "all",
            "-solution",
            sol,
        ]
        child = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        try:
            log, _ = child.communicate(timeout=max(0.0, remaining(deadline)))
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return MipResult(Outcome.NO_SOLUTION, None, None, None), variables
        if not os.path.exists(sol):
            return MipResult(Outcome.NO_SOLUTION, None, None, None), variables
        with open(sol) as fh:
            first = fh.readline()
        status_text = _CBC_STATUS.search(log)
        result_text = status_text["text"] if status_text else ""
        bound_match = _CBC_BOUND.search(log)
        objective_match = _CBC_OBJECTIVE.search(log)
        _, values, *_ = helper.readsol_MPS(sol, problem, variables, var_names, con_names)
    ordered = [float(values.get(v.name, 0.0) or 0.0) for v in variables]
    objective = float(objective_match["value"]) if objective_match else None
    outcome = cbc_outcome(first)
    del result_text
    if outcome == Outcome.OPTIMAL:
        return MipResult(Outcome.OPTIMAL, ordered, objective, objective), variables
    bound = float(bound_match["value"]) if bound_match and outcome != Outcome.INFEASIBLE else None
    if outcome == Outcome.FEASIBLE:
        return MipResult(Outcome.FEASIBLE, ordered, objective, bound), variables
    return MipResult(outcome, None, None, bound), variables


def cbc_outcome(status_line: str) -> str:
    """The outcome of CBC's solution-file status line. A stopped run holds an integer solution only when the
    line says so: "Stopped on time - objective value X". "Stopped on time (no integer solution -
    continuous used) - objective value X" carries the LP solution, which is no plan (PuLP reads both as
    solved)."""
    if status_line.startswith("Optimal"):
        return Outcome.OPTIMAL
    if status_line.startswith(("Infeasible", "Integer infeasible")):
        return Outcome.INFEASIBLE
    if "no integer solution" in status_line or "objective value" not in status_line:
        return Outcome.NO_SOLUTION
    return Outcome.FEASIBLE


def solve_mip(
    problem: Any, solver: str, deadline: float, gap_rel: float, gap_abs: float, warm: dict[Any, float] | None
) -> tuple[MipResult, list]:
    if solver == "cbc":
        return solve_mip_cbc(problem, deadline, gap_rel, gap_abs, warm)
    return solve_mip_highs(problem, deadline, gap_rel, gap_abs, warm)
