"""GetStats as one tenant sees it: its own AppWrappers' phases and carbon, nothing of other tenants.

An admin (or an unauthenticated hub) sees the global figures from the store's totals. A tenant's figures are
summed from its AppWrappers still held: finished ones are collected after CASPIAN_HUB_FINISHED_TTL_SECONDS,
and their carbon then counts only in the global totals. The last cycle is shared by every tenant, so a tenant
sees its time, outcome and notes (carbon-blind, stale, fallback) but not its job counts or gCO2, which are
everyone's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from caspian.v1 import common_pb2, hub_pb2
from services.hub.phases import CANCELLED, UNSCHEDULABLE
from services.hub.store import CarbonTotals, ListQuery, Store

_PAGE = 1000
# Counts and gCO2 of a cycle cover every tenant's jobs.
_GLOBAL_CYCLE_FIELDS = (
    "considered",
    "planned",
    "unplaced",
    "dispatched",
    "unschedulable",
    "planned_gco2",
    "agnostic_gco2",
)


@dataclass(frozen=True)
class TenantFigures:
    phases: dict[int, int]
    carbon: CarbonTotals


async def tenant_figures(store: Store, tenant: str) -> TenantFigures:
    phases: Counter[int] = Counter()
    planned = emitted = counterfactual = 0.0
    accounted = 0
    after = 0
    while True:
        page = await store.list_app_wrappers(ListQuery(tenant=tenant, after_seq=after, limit=_PAGE))
        for message in page.items:
            status = message.status
            phases[status.phase] += 1
            carbon: common_pb2.CarbonAccount = status.carbon
            if status.phase not in (CANCELLED, UNSCHEDULABLE):
                planned += carbon.planned_gco2
            if carbon.actual_gco2 or carbon.counterfactual_gco2:
                emitted += carbon.actual_gco2
                counterfactual += carbon.counterfactual_gco2
                accounted += 1
        if page.next_after_seq is None:
            break
        after = page.next_after_seq
    return TenantFigures(dict(phases), CarbonTotals(planned, emitted, counterfactual, accounted))


def tenant_cycle(summary: hub_pb2.CycleSummary) -> hub_pb2.CycleSummary:
    """The last cycle without the figures that count other tenants' jobs."""
    shown = hub_pb2.CycleSummary()
    shown.CopyFrom(summary)
    for name in _GLOBAL_CYCLE_FIELDS:
        shown.ClearField(name)
    return shown
