"""The savings page: emitted, counterfactual and avoided carbon, in total (the hub's own figures, as
`caspianctl stats` shows them), per tenant and over time (sums of the finished AppWrappers the caller may list),
and the notes of the last cycles the console has seen."""

from __future__ import annotations

from collections import deque
from html import escape

from caspian.v1 import common_pb2, hub_pb2
from services.console import charts
from services.console.layout import grams, table, when
from services.console.views import cycle_flags, seconds


class CycleLog:
    """The last cycles' summaries, as seen in GetStats answers (the hub reports only its latest)."""

    def __init__(self, size: int = 20):
        self.cycles: deque[hub_pb2.CycleSummary] = deque(maxlen=size)

    def observe(self, stats: hub_pb2.GetStatsResponse) -> None:
        if not stats.HasField("last_cycle"):
            return
        cycle = stats.last_cycle
        if self.cycles and self.cycles[-1].cycle == cycle.cycle:
            return
        copy = hub_pb2.CycleSummary()
        copy.CopyFrom(cycle)
        self.cycles.append(copy)


def _share(avoided: float, counterfactual: float) -> str:
    return f"{100 * avoided / counterfactual:.1f} %" if counterfactual > 0 else "–"


def per_tenant(app_wrappers: list[common_pb2.AppWrapper]) -> dict[str, tuple[float, float, int]]:
    totals: dict[str, list] = {}
    for aw in app_wrappers:
        if not aw.status.HasField("finished_at"):
            continue
        row = totals.setdefault(aw.tenant, [0.0, 0.0, 0])
        row[0] += aw.status.carbon.actual_gco2
        row[1] += aw.status.carbon.counterfactual_gco2
        row[2] += 1
    return {tenant: (e, c, n) for tenant, (e, c, n) in totals.items()}


def over_time(app_wrappers: list[common_pb2.AppWrapper]) -> charts.Chart:
    finished: list[tuple[float, common_pb2.CarbonAccount]] = []
    for aw in app_wrappers:
        finished_at = seconds(aw.status, "finished_at")
        if finished_at is not None:
            finished.append((finished_at, aw.status.carbon))
    finished.sort(key=lambda pair: pair[0])
    emitted, counterfactual = [], []
    e = c = 0.0
    for t, carbon in finished:
        e += carbon.actual_gco2
        c += carbon.counterfactual_gco2
        emitted.append((t, e))
        counterfactual.append((t, c))
    return charts.Chart(
        title="Cumulative carbon of finished AppWrappers, by finish time",
        unit="gCO2",
        series=[
            charts.Series("counterfactual", counterfactual, "counterfactual", dashed=True),
            charts.Series("emitted", emitted, "emitted"),
        ],
    )


def render_savings(stats: hub_pb2.GetStatsResponse | None, app_wrappers, cycles: CycleLog) -> str:
    parts = ["<h1>Savings</h1>"]
    if stats is not None:
        parts.append(
            '<table class="pairs" id="totals">'
            f"<tr><th>Emitted</th><td>{grams(stats.emitted_gco2)}</td></tr>"
            f"<tr><th>Counterfactual</th><td>{grams(stats.counterfactual_gco2)}</td></tr>"
            f"<tr><th>Avoided</th><td>{grams(stats.avoided_gco2)} "
            f"({_share(stats.avoided_gco2, stats.counterfactual_gco2)})</td></tr>"
            f"<tr><th>Planned</th><td>{grams(stats.planned_gco2)}</td></tr></table>"
            '<p class="muted">Totals of every tenant, as the hub reports them (the same figures as '
            "<code>caspianctl stats</code>).</p>"
        )
    tenants = per_tenant(app_wrappers)
    rows = [
        (escape(t) or "–", str(n), grams(e), grams(c), grams(c - e), _share(c - e, c))
        for t, (e, c, n) in sorted(tenants.items())
    ]
    parts.append(
        "<h2>Per tenant</h2>"
        + table(
            ("tenant", "finished", "emitted", "counterfactual", "avoided", "share"),
            rows,
            table_id="tenants",
            empty="no finished AppWrappers visible to you",
        )
        + '<p class="muted">Sums over the finished AppWrappers the hub lists for you; AppWrappers the hub has '
        "already garbage-collected count in its totals only.</p>"
    )
    parts.append(charts.render(over_time(app_wrappers)))
    cycle_rows = []
    for cycle in reversed(cycles.cycles):
        flags = cycle_flags(cycle)
        cycle_rows.append(
            (
                f"#{cycle.cycle}",
                when(seconds(cycle, "started_at")),
                f"{cycle.planned}",
                f"{cycle.unplaced}",
                f"{cycle.gap:.4f}" if cycle.HasField("gap") else "none",
                escape(", ".join(flags)) or "–",
                escape("; ".join(cycle.notes)) or "–",
            )
        )
    parts.append(
        "<h2>Last cycles</h2>"
        + table(
            ("cycle", "started", "planned", "unplaced", "gap", "flags", "notes"),
            cycle_rows,
            table_id="cycles",
            empty="no cycle seen yet",
        )
        + '<p class="muted">The hub reports its latest cycle; the console lists the ones it has seen since it '
        "started.</p>"
    )
    return "".join(parts)
