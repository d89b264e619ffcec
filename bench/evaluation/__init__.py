"""The offline evaluation behind `make evaluate` (bench/evaluate.py); see docs/evaluation.md.

workload: instances (clusters, jobs, deadlines, capacities) from the bundled data, by setting and seed.
carbon: true traces, the forecasts the hub sees, emissions on the true trace.
optimizer, dispatcher: the hub's ports, in-process.
simulate: one policy through the real hub on a simulated clock.
oracle: the whole-run MILP with perfect knowledge.
metrics, matrix, report: the figures, the run matrix on a process pool, and the outputs.
"""
