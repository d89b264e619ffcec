"""Limits written into the optimizer's contract, which the services on both sides of it check.

A forecast erring by more than ten times its value, or a risk weight above 10, is a mistake, not a setting:
the optimizer refuses them (services/optimizer/validate.py); the hub drops such a spread as malformed and
refuses such a weight in its settings, so it never sends what the optimizer would refuse.
"""

MAX_RELATIVE_SPREAD = 10.0  # ClusterForecast.relative_spread, per slot
MAX_RISK_AVERSION = 10.0  # SolveOptions.risk_aversion
