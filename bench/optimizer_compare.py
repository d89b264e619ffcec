"""CASPIAN on the standard families, this code against a base commit, alternating, several times each.

    BENCH_BASE=/tmp/opt-base python -m bench.optimizer_compare [--repeats 3] [--json bench/results/optimizer.json]

Adds `compare` rows (one per family and code, every wall time and their median) to the benchmark's JSON and
redraws its Markdown: one run of each on a shared machine is too noisy to say "never slower".
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from bench.instances import make_instance
from bench.optimizer import FULL_LIMITS, RESULTS, _json_safe, _write_markdown, run_one
from bench.optimizer_hard import base_commit, run_base
from services.optimizer.problem import Options


def compare(families: list[str], repeats: int, log=print) -> list[dict]:
    rows = []
    for family in families:
        problem = make_instance(family, 0)
        limit = FULL_LIMITS[family]
        walls: dict[str, list[float]] = {"new": [], "base": []}
        last: dict[str, dict] = {}
        for _ in range(repeats):
            new = run_one(problem, Options(time_limit_s=limit, mip_gap=0.01), limit + 120)
            old = run_base(family, 0, limit)
            for key, row in (("new", new), ("base", old)):
                walls[key].append(row.get("wall_s", math.nan))
                last[key] = row
        for key in ("new", "base"):
            row = last[key]
            rows.append(
                {
                    "suite": "compare",
                    "instance": f"{family}-0",
                    "code": key,
                    "base_commit": base_commit(),
                    "walls_s": walls[key],
                    "median_wall_s": statistics.median(walls[key]),
                    "gap": row.get("gap"),
                    "placed": row.get("placed"),
                    "objective_g": row.get("objective_g"),
                }
            )
            log(f"{family}-0 {key:5s} walls {walls[key]} gap {row.get('gap')}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default="S,M,L,XL")
    parser.add_argument("--json", default=str(RESULTS / "optimizer.json"))
    args = parser.parse_args(argv)
    path = Path(args.json)
    rows = [r for r in json.loads(path.read_text()) if r.get("suite") != "compare"]
    rows += compare([f for f in args.families.split(",") if f], args.repeats)
    path.write_text(json.dumps([_json_safe(r) for r in rows], indent=2) + "\n")
    rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in rows]
    _write_markdown(rows, path, quick=path.name.endswith(".quick.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
