"""The energy model every service shares: a job's resources, runtime and a cluster's power model -> Wh, gCO2.

    watts(job, cluster) = cores x watts_per_core + gpus x watts_per_gpu + GiB x watts_per_gib
    energy_wh           = watts x PUE x runtime_hours
    gCO2                = energy_wh / 1000 x mean intensity over the run (gCO2/kWh)

watts_per_core, when not given, is the marginal slope of a linear server power model,
(peak_watts - idle_watts) / capacity cores: the extra power a busy core draws. Idle power is
not charged to jobs, since it is drawn whether CASPIAN places a job there or not.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Power:
    idle_watts: float = 0.0
    peak_watts: float = 0.0
    watts_per_core: float = 0.0
    watts_per_gpu: float = 0.0
    watts_per_gib: float = 0.0
    pue: float = 0.0


# Used where a cluster registers no power model: a current dual-socket server core at load (~12 W),
# a data-centre GPU (~300 W), DRAM (~0.375 W/GiB), and a typical PUE.
DEFAULT_POWER = Power(watts_per_core=12.0, watts_per_gpu=300.0, watts_per_gib=0.375, pue=1.2)


def is_unset(power: Power) -> bool:
    return not any((power.peak_watts, power.watts_per_core, power.watts_per_gpu, power.watts_per_gib))


def job_watts(
    cpu_millis: int, memory_bytes: int, gpus: int, power: Power, capacity_cpu_millis: int = 0
) -> float:
    if is_unset(power):
        power = DEFAULT_POWER
    per_core = power.watts_per_core
    if per_core <= 0 and capacity_cpu_millis > 0 and power.peak_watts > power.idle_watts:
        per_core = (power.peak_watts - power.idle_watts) / (capacity_cpu_millis / 1000)
    watts = (
        cpu_millis / 1000 * per_core + gpus * power.watts_per_gpu + memory_bytes / GIB * power.watts_per_gib
    )
    return watts * (power.pue if power.pue > 0 else 1.0)


def energy_wh(
    cpu_millis: int,
    memory_bytes: int,
    gpus: int,
    runtime_s: float,
    power: Power,
    capacity_cpu_millis: int = 0,
) -> float:
    return job_watts(cpu_millis, memory_bytes, gpus, power, capacity_cpu_millis) * runtime_s / 3600.0


def grams(energy_wh_value: float, gco2_per_kwh: float) -> float:
    return energy_wh_value / 1000.0 * gco2_per_kwh
