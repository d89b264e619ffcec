"""Build the compact forecast-error profile from the DACF day-ahead forecast CSVs.

    python -m services.carbon.tools.build_error_profile --source-dir <dir with *_carbon_from_src_prod_forecasts_direct.csv>

Each CSV row is one hour of 2021-07-01..2021-12-31 (UTC) with the actual direct carbon intensity
(`carbon_intensity`) and the day-ahead forecast computed from source-production forecasts
(`carbon_from_src_forecasts`). DACF issues a forecast for a whole UTC day at that day's 00:00 UTC, so the
lead time of an hour is taken as its UTC hour (0-23 h). The relative error is forecast / actual - 1.

Output: per region and for both pooled, per 6-hour lead bucket, the error's quantiles, bias, spread and
MAPE, and the lag-1 autocorrelation of the error's normal scores (for the AR(1) draw in
services/carbon/forecast_error.py).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from statistics import NormalDist, fmean, median, pstdev
from typing import Any

from services.carbon.settings import DEFAULT_ERROR_PROFILE
from services.carbon.zones import REPO_ROOT, display_path

QUANTILE_LEVELS = (
    0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99,
)  # fmt: skip
BUCKETS = ((0, 6), (6, 12), (12, 18), (18, 24))
SUFFIX = "_carbon_from_src_prod_forecasts_direct.csv"


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def read_region(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        for record in csv.DictReader(fh):
            when = datetime.fromisoformat(record["UTC time"].replace("+00:00", ""))
            actual = float(record["carbon_intensity"])
            forecast = float(record["carbon_from_src_forecasts"])
            if actual <= 0:
                continue
            rows.append(
                {"time": when, "actual": actual, "forecast": forecast, "error": forecast / actual - 1}
            )
    rows.sort(key=lambda r: r["time"])
    return rows


def bucket_of(hour: int) -> int:
    return next(i for i, (lo, hi) in enumerate(BUCKETS) if lo <= hour < hi)


def add_normal_scores(rows: list[dict]) -> None:
    """Each error's normal score within its lead bucket (mid-ranks), for the autocorrelation."""
    normal = NormalDist()
    for b in range(len(BUCKETS)):
        members = sorted((r for r in rows if bucket_of(r["time"].hour) == b), key=lambda r: r["error"])
        for rank, r in enumerate(members):
            r["score"] = normal.inv_cdf((rank + 0.5) / len(members))


def lag1_pairs(rows: list[dict]) -> list[tuple[float, float]]:
    return [
        (a["score"], b["score"])
        for a, b in zip(rows, rows[1:], strict=False)
        if b["time"] - a["time"] == timedelta(hours=1)
    ]


def correlation(pairs: list[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    mx, my = fmean(xs), fmean(ys)
    cov = fmean((x - mx) * (y - my) for x, y in pairs)
    return cov / (pstdev(xs) * pstdev(ys))


def summarize(rows: list[dict]) -> dict:
    errors = sorted(r["error"] for r in rows)
    return {
        "n": len(rows),
        "bias": round(fmean(errors), 5),
        "std": round(pstdev(errors), 5),
        "mape_pct": round(100 * fmean(abs(e) for e in errors), 3),
        "median_ape_pct": round(100 * median(abs(e) for e in errors), 3),
        "rmse_gco2_per_kwh": round(math.sqrt(fmean((r["forecast"] - r["actual"]) ** 2 for r in rows)), 3),
        "quantiles": [round(quantile(errors, q), 5) for q in QUANTILE_LEVELS],
    }


def profile_for(rows: list[dict], pairs: list[tuple[float, float]]) -> dict:
    days: dict = {}
    for r in rows:
        days.setdefault(r["time"].date(), []).append(abs(r["error"]))
    # DACF reports the MAPE of each day's forecast; this is the median over days.
    daily = [fmean(v) for v in days.values()]
    return {
        "lag1_autocorrelation": round(correlation(pairs), 5),
        "overall": {
            **summarize(rows),
            "daily_mape_median_pct": round(100 * median(daily), 3),
        },
        "buckets": [
            {"from_hours": lo, "to_hours": hi, **summarize([r for r in rows if lo <= r["time"].hour < hi])}
            for lo, hi in BUCKETS
        ],
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(source_dir: Path) -> dict:
    files = sorted(source_dir.glob(f"*{SUFFIX}"))
    if not files:
        raise SystemExit(f"no *{SUFFIX} files in {source_dir}")
    regions, sources, all_rows, all_pairs = {}, [], [], []
    for path in files:
        region = path.name[: -len(SUFFIX)]
        rows = read_region(path)
        add_normal_scores(rows)
        pairs = lag1_pairs(rows)
        regions[region] = profile_for(rows, pairs)
        all_rows += rows
        all_pairs += pairs
        sources.append(
            {
                "file": path.name,
                "sha256": sha256(path),
                "rows": len(rows),
                "first": rows[0]["time"].isoformat() + "Z",
                "last": rows[-1]["time"].isoformat() + "Z",
            }
        )
    regions["pooled"] = profile_for(all_rows, all_pairs)
    return {
        "name": "dacf-empirical",
        "description": "Relative error of day-ahead carbon-intensity forecasts (forecast / actual - 1), direct "
        "emission factors, by lead-time bucket.",
        "lead_time": "DACF issues one forecast per UTC day at 00:00 UTC; the lead time of an hour is its UTC "
        "hour, so bucket [a, b) holds the hours a..b-1 of each day.",
        "origin": "carbonfirst/DACF (Apache-2.0): Maji, Sitaraman, Shenoy, 'DACF: Day-ahead Carbon Intensity "
        "Forecasting of Power Grids using Machine Learning', ACM e-Energy 2022. License: LICENSE.DACF.md.",
        "sources": sources,
        "quantile_levels": list(QUANTILE_LEVELS),
        "regions": regions,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, required=True, help="directory of the DACF CSVs")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / DEFAULT_ERROR_PROFILE)
    args = parser.parse_args(argv)
    profile = build(args.source_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    pooled = profile["regions"]["pooled"]["overall"]
    print(f"wrote {display_path(args.out)}: pooled MAPE {pooled['mape_pct']}% over {pooled['n']} hours")


if __name__ == "__main__":
    main()
