"""Keeping options open: far, uncertain slots valued at what the forecast can be expected to deliver.

The plan is re-made every cycle, so only what starts now is committed; the rest of it is an option that a
later cycle, with a nearer forecast, may take or drop. Valuing a slot 10 hours ahead at its raw forecast
treats that forecast as certain, and the optimizer's curse follows: among many noisy slots the cleanest-
looking ones are, on average, those whose error happened to be low, so the plan defers work to them and
finds them dirtier when they come near, after the good near slots have passed.

`hedged_series` values each slot at its expected intensity given the forecast (the best linear predictor
of the actual under a normal model): with the forecast's typical relative error at that slot's lead (the
carbon service's `relative_spread`, half the 10-90% range) as the noise, and the zone's forecast over the
horizon as the prior (its mean and spread), slot i is valued at

    f_i - w_i (f_i - m),    w_i = e_i^2 / (e_i^2 + s^2),

where m is the horizon's mean forecast, e_i = k x spread_i x m / 1.2816 the slot's error (standard
deviation; k scales it), and s^2 the signal's variance: the forecast's variance over the horizon less the
mean noise variance (floored at a tenth of the forecast's variance, so the prior never becomes a point).
A slot whose value is known (spread 0: begun, or an exact forecast) keeps its forecast; the further and
noisier a slot, the closer it is valued to the mean, so a far dip must be deeper to draw work away from a
good slot now. Only slot values change: jobs, deadlines and capacity are untouched, so no plan can break a
deadline it would otherwise have met. k = 0 (the default, `CASPIAN_HUB_HEDGE_FAR_SLOTS`) leaves every value
as the forecast gave it. Pure and deterministic: the same series give the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

# Half the 10-90% range of a normal distribution, in standard deviations.
_HALF_10_90 = 1.2816
# The prior's variance never falls below this share of the forecast's own variance.
_MIN_SIGNAL_SHARE = 0.1


def hedged_series(values: Sequence[float], spread: Sequence[float], k: float) -> list[float]:
    """`values` (one zone's forecast per slot) with each slot shrunk toward the horizon's mean by the weight
    its relative error `spread` earns (see the module docstring); unchanged when k is 0, the spread is
    missing (not one per slot) or zero everywhere, or the forecast is flat."""
    out = [float(v) for v in values]
    n = len(out)
    if k <= 0 or n < 2 or len(spread) != n or not any(s > 0 for s in spread):
        return out
    mean = sum(out) / n
    variance = sum((v - mean) ** 2 for v in out) / n
    if mean <= 0 or variance <= 0:
        return out
    noise = [(k * max(0.0, s) * mean / _HALF_10_90) ** 2 for s in spread]
    signal = max(variance - sum(noise) / n, _MIN_SIGNAL_SHARE * variance)
    return [v - (e / (e + signal)) * (v - mean) for v, e in zip(out, noise, strict=True)]


def hedged_forecasts(
    series: dict[str, list[float]], spread: dict[str, list[float]], k: float
) -> dict[str, list[float]]:
    """`hedged_series` for every zone: a zone without a spread keeps its forecast."""
    return {zone: hedged_series(values, spread.get(zone, []), k) for zone, values in series.items()}
