"""The capacity rows of the LP relaxations and of the Lagrangian bounds: each resource's row, and the same
row rounded to the resource's smallest request.

For a cell (cluster c, slot t) and a resource r whose smallest positive request among the placeable jobs is
u_r, every plan satisfies

    sum_j floor(req[j,r] / u_r) y[j]  <=  floor(free[c,t,r] / u_r)

because the left side is an integer at most sum_j req[j,r] y[j] / u_r <= free[c,t,r] / u_r (a Chvatal-Gomory
cut). With jobs that are large against a cluster (1- to 4-core jobs on 1.8- to 4-core clusters) the LP
relaxation of the plain row runs 1.8 jobs where one fits; the rounded row runs one. On D96-300-0 the
placement level's LP bound falls from 276 to 267 jobs, the proven maximum, and on D96-tight-0 from 538 to
529 (also the proven maximum). Where the rounded row is no stronger, the plain row implies it and the master
LP keeps one of the two (master_lp.py).

The unit comes from the requests alone (not the free capacity), so a problem derived from another one (the
sample of sampling.py, the placement level's shadow) has the same rows and its multipliers fit the other's.
The rows hold for a job run in segments too: each slot it holds, it holds its whole request.
"""

from __future__ import annotations

import numpy as np

from services.optimizer.compiled import RESOURCES, Compiled

# A ratio within this of an integer is that integer (requests are whole millicores, bytes and GPUs).
ROUND_TOL = 1e-9


def rounding_units(cp: Compiled) -> np.ndarray:
    """[R]: each resource's smallest positive request among the placeable jobs; 0 where none asks for it."""
    req = cp.req[cp.job_class >= 0]
    units = np.zeros(RESOURCES)
    for r in range(RESOURCES):
        asked = req[:, r][req[:, r] > 0]
        if len(asked):
            units[r] = float(asked.min())
    return units


def lp_resources(cp: Compiled) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(req [n, R'], free [C, T, R'], capacity [C, R']): the resources, then each resource some job asks for
    rounded to its smallest request. R' = R + the number of resources asked for."""
    units = rounding_units(cp)
    rounded = [r for r in range(RESOURCES) if units[r] > 0]
    u = units[rounded]
    req = np.concatenate([cp.req, np.floor(cp.req[:, rounded] / u + ROUND_TOL)], axis=1)
    free = np.concatenate([cp.free, np.floor(cp.free[:, :, rounded] / u + ROUND_TOL)], axis=2)
    capacity = np.concatenate([cp.capacity, np.floor(cp.capacity[:, rounded] / u + ROUND_TOL)], axis=1)
    return req, free, capacity
