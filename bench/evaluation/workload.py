"""Evaluation instances: clusters in real grid zones, a week of real job arrivals, deadlines and capacities.

- Set-ups: `default` is the three spokes of the project (carbon-kr in KR, carbon-jp in JP-TK, carbon-cn in
  CN, synthetic); `real` uses only zones with bundled Electricity Maps traces (KR, JP-TK, US-CAL-CISO,
  DE-LU, GB); `solarwind` puts US-CAL-CISO (solar) and DE-LU (wind) in place of KR and JP-TK; `dayahead`
  is the two zones with real day-ahead forecasts (CISO-2021, DE-2021: the DACF files' actuals).
- Week: the seed draws a day of 2023 (00:00 UTC) far enough from the year's end for the longest deadline;
  for `dayahead`, a day of the DACF files' span (2021-07-01 to 2021-12-31).
- Jobs: every row of data/workloads/pai_1k.csv (arrival_time, length, cpus; seconds), arrivals offset from
  the week start. Each CPU comes with 4 GiB of memory.
- Deadlines: arrival + slack x length (slack 1.5, 3 or 6), or a 24-hour deadline, arrival + max(24 h,
  1.5 x length), so the ten jobs longer than a day keep the tightest slack of the matrix instead of none.
- Homes: none; temporal-only keeps a job on the home the optimizer gives a job that names none (a stable
  hash of its id over the allowed clusters), as in the product.
- Interruptible jobs: settings named ".../int50" or ".../int100" mark that share of the jobs, drawn by the
  seed, as checkpointing and interruptible (resume overhead 5 min, min segment 1 h: interruptible.py).
- Capacities: the carbon-agnostic plan (every job at the first slot boundary after its arrival, as the hub's
  grid allows) has a peak of P cores in some slot; the clusters share ceil(P / load) cores equally, so
  that peak is `load` (50% or 80%) of the total.

Everything is a pure function of (setting, seed): the same arguments give the same instance.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from services.common.energy import GIB, Power
from services.common.timeconv import no_later_than

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "data" / "workloads" / "pai_1k.csv"

SLOT_SECONDS = 900
# The hub's horizon must hold the longest job (59.7 h in pai_1k): 72 h of 15-minute slots.
HORIZON_SLOTS = 288
MEMORY_PER_CPU = 4 * GIB
# One server generation everywhere, so clusters differ only in their grid.
POWER = Power(watts_per_core=12.0, watts_per_gib=0.375, pue=1.2)
WEEK = timedelta(days=7)
# Room after the week start for the latest deadline (6 x 59.7 h after a day-7 arrival is under 22 days).
TAIL_DAYS = 28

SETUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "default": (("carbon-kr", "KR"), ("carbon-jp", "JP-TK"), ("carbon-cn", "CN")),
    "real": (
        ("carbon-kr", "KR"),
        ("carbon-jp", "JP-TK"),
        ("carbon-us", "US-CAL-CISO"),
        ("carbon-de", "DE-LU"),
        ("carbon-gb", "GB"),
    ),
    # Other grid shapes in place of KR and JP-TK: California's solar curve and Germany's wind.
    "solarwind": (("carbon-us", "US-CAL-CISO"), ("carbon-de", "DE-LU"), ("carbon-cn", "CN")),
    # The two zones with real day-ahead forecasts, on the actuals of the same files (2021-07..12).
    "dayahead": (("carbon-us", "CISO-2021"), ("carbon-de", "DE-2021")),
    # One grid, no spatial shifting: what pausing alone brings, as "Let's Wait Awhile" measured it.
    "onegrid-de": (("carbon-de", "DE-LU"),),
    "onegrid-us": (("carbon-us", "US-CAL-CISO"),),
}
# Set-ups whose weeks are drawn from the DACF files' span instead of 2023.
DAYAHEAD_FIRST = datetime(2021, 7, 1, tzinfo=UTC)
DAYAHEAD_DAYS = 184
DEADLINES = ("slack1.5", "slack3", "slack6", "24h")
LOADS = (0.5, 0.8)


@dataclass(frozen=True)
class Setting:
    setup: str
    deadline: str
    load: float
    # Share of the jobs that are interruptible (bench/evaluation/interruptible.py): "/int50" in the name.
    interruptible: float = 0.0

    @property
    def name(self) -> str:
        name = f"{self.setup}/{self.deadline}/load{round(self.load * 100)}"
        return name + (f"/int{round(self.interruptible * 100)}" if self.interruptible else "")

    @classmethod
    def parse(cls, name: str) -> Setting:
        setup, deadline, load, *rest = name.split("/")
        share = int(rest[0].removeprefix("int")) / 100 if rest else 0.0
        return cls(setup, deadline, int(load.removeprefix("load")) / 100, share)


@dataclass(frozen=True)
class JobSpec:
    id: str
    arrival: float  # unix seconds
    runtime: float  # seconds
    cpus: int
    deadline: float  # unix seconds
    # It checkpoints and may be paused (resume overhead and min segment: interruptible.py).
    interruptible: bool = False

    @property
    def slack(self) -> float:
        return self.deadline - self.arrival - self.runtime

    @property
    def cpu_millis(self) -> int:
        return self.cpus * 1000

    @property
    def memory_bytes(self) -> int:
        return self.cpus * MEMORY_PER_CPU


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    zone: str
    cores: int
    power: Power = POWER

    @property
    def cpu_millis(self) -> int:
        return self.cores * 1000

    @property
    def memory_bytes(self) -> int:
        return self.cores * MEMORY_PER_CPU


@dataclass(frozen=True)
class Instance:
    setting: Setting
    seed: int
    start: datetime
    jobs: tuple[JobSpec, ...]
    clusters: tuple[ClusterSpec, ...]
    slot_seconds: int = SLOT_SECONDS
    horizon_slots: int = HORIZON_SLOTS

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(c.zone for c in self.clusters)

    @property
    def end(self) -> float:
        """Latest deadline: nothing happens after it."""
        return max(j.deadline for j in self.jobs)

    def cluster(self, name: str) -> ClusterSpec:
        return next(c for c in self.clusters if c.name == name)

    def off_grid(self, job: JobSpec) -> bool:
        """No slot boundary at or after its arrival leaves time to finish by the deadline: the hub starts it
        at once, off the grid (services/hub/scheduling/offgrid.py)."""
        return not no_later_than(first_boundary(job.arrival, self.slot_seconds) + job.runtime, job.deadline)


@cache
def pai_rows() -> tuple[tuple[float, float, int], ...]:
    """(arrival_time, length, cpus) of every row, in file order."""
    with open(WORKLOAD, encoding="utf-8") as fh:
        return tuple(
            (float(r["arrival_time"]), float(r["length"]), int(float(r["cpus"]))) for r in csv.DictReader(fh)
        )


def week_start(seed: int, setup: str = "default") -> datetime:
    """The seed's week: a day of 2023, or of 2021-07..12 for the `dayahead` set-up (its files' span)."""
    if setup == "dayahead":
        day = random.Random(f"caspian-evaluation-dayahead-week:{seed}").randrange(
            0, DAYAHEAD_DAYS - TAIL_DAYS
        )
        return DAYAHEAD_FIRST + timedelta(days=day)
    day = random.Random(f"caspian-evaluation-week:{seed}").randrange(0, 365 - TAIL_DAYS)
    return datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=day)


def deadline_for(kind: str, arrival: float, runtime: float) -> float:
    if kind == "24h":
        return arrival + max(86400.0, 1.5 * runtime)
    if kind.startswith("slack"):
        return arrival + float(kind.removeprefix("slack")) * runtime
    raise ValueError(f"unknown deadline kind {kind!r}")


def first_boundary(t: float, slot: int) -> float:
    return math.ceil(t / slot - 1e-9) * slot


def agnostic_peak_cores(jobs: tuple[JobSpec, ...], slot: int) -> int:
    """Peak cores in any slot when every job starts at the first boundary after arrival (no waiting)."""
    use: dict[int, int] = {}
    for job in jobs:
        first = int(first_boundary(job.arrival, slot) // slot)
        for s in range(first, first + math.ceil(job.runtime / slot - 1e-9)):
            use[s] = use.get(s, 0) + job.cpus
    return max(use.values())


def build_instance(
    setting: Setting,
    seed: int,
    *,
    jobs: int | None = None,
    span_hours: float | None = None,
    max_runtime_s: float | None = None,
) -> Instance:
    """The instance of `setting` for `seed`.

    `jobs`, `span_hours` and `max_runtime_s` make smaller instances (tests, quick mode): rows no longer than
    `max_runtime_s`, `jobs` of them evenly spaced through the file, arrivals rescaled onto `span_hours`.
    """
    if setting.setup not in SETUPS:
        raise ValueError(f"unknown set-up {setting.setup!r}")
    start = week_start(seed, setting.setup)
    rows = list(pai_rows())
    if max_runtime_s is not None:
        rows = [r for r in rows if r[1] <= max_runtime_s]
    if jobs is not None and jobs < len(rows):
        step = len(rows) / jobs
        rows = [rows[int(i * step)] for i in range(jobs)]
    scale = 1.0
    if span_hours is not None:
        last = max(r[0] for r in rows) or 1.0
        scale = span_hours * 3600.0 * 0.9 / last
    t0 = start.timestamp()
    specs = []
    for i, (arrival, length, cpus) in enumerate(rows):
        at = t0 + round(arrival * scale)
        specs.append(JobSpec(f"job-{i:04d}", at, length, cpus, deadline_for(setting.deadline, at, length)))
    job_specs = mark_interruptible(tuple(specs), setting.interruptible, seed)
    peak = agnostic_peak_cores(job_specs, SLOT_SECONDS)
    zones = SETUPS[setting.setup]
    total = math.ceil(peak / setting.load)
    per_cluster = max(max(j.cpus for j in job_specs), math.ceil(total / len(zones)))
    clusters = tuple(ClusterSpec(name, zone, per_cluster) for name, zone in zones)
    return Instance(setting, seed, start, job_specs, clusters)


def mark_interruptible(jobs: tuple[JobSpec, ...], share: float, seed: int) -> tuple[JobSpec, ...]:
    """round(share x n) of the jobs, drawn by the seed alone (the same jobs for every policy), marked
    interruptible; every job when share is 1."""
    if share <= 0:
        return jobs
    count = min(len(jobs), round(share * len(jobs)))
    chosen = set(random.Random(f"caspian-evaluation-interruptible:{seed}").sample(range(len(jobs)), count))
    return tuple(replace(j, interruptible=True) if i in chosen else j for i, j in enumerate(jobs))


def with_jobs(instance: Instance, jobs: tuple[JobSpec, ...]) -> Instance:
    return replace(instance, jobs=jobs)
