"""One AppWrapper: where and when it ran, its carbon against the carbon-agnostic counterfactual, its phase
history with reasons (from the hub's change log, replayed by WatchAppWrappers) and the cycle that placed it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from html import escape

import grpc

from caspian.v1 import common_pb2, hub_pb2
from services.console.gateway import Gateway
from services.console.layout import duration, grams, table, when
from services.console.views import job_view, phase_name, seconds

HISTORY_SECONDS = 5.0
HISTORY_MAX_EVENTS = 200_000


@dataclass
class History:
    # (revision, phase, reason, cluster, planned start, dispatch attempts, updated at) per change of this job.
    rows: list[tuple] = field(default_factory=list)
    note: str = ""


async def phase_history(gateway: Gateway, token: str, app_wrapper_id: str) -> History:
    """Replay the change log from its start and keep this job's changes; bounded in time and events."""
    history = History()
    seen = 0
    stream = gateway.watch(token, since_revision=1)

    async def read() -> None:
        nonlocal seen
        async for event in stream:
            if event.type == hub_pb2.WATCH_EVENT_TYPE_BOOKMARK:
                return
            seen += 1
            aw = event.app_wrapper
            if aw.id == app_wrapper_id:
                s = aw.status
                row = (
                    event.revision,
                    phase_name(s.phase),
                    s.reason,
                    s.target_cluster,
                    seconds(s, "planned_start"),
                    s.dispatch_attempts,
                    seconds(aw, "updated_at"),
                )
                if not history.rows or history.rows[-1][1:6] != row[1:6]:
                    history.rows.append(row)
            if seen >= HISTORY_MAX_EVENTS:
                history.note = f"history cut at {HISTORY_MAX_EVENTS:,} changes"
                return

    try:
        await asyncio.wait_for(read(), HISTORY_SECONDS)
    except TimeoutError:
        history.note = f"history cut after {HISTORY_SECONDS:g} s of replay"
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            history.note = "the hub has compacted the start of its change log; older changes are gone"
        else:
            history.note = f"history unavailable: {exc.code().name}"
    finally:
        stream.cancel()
    return history


def render_job(aw: common_pb2.AppWrapper, history: History, zone: str, last_cycle) -> str:
    v = job_view(aw)
    carbon = aw.status.carbon
    finished = v["finished"] is not None
    runtime = duration(v["runtime"]) if v["runtime"] else "–"
    where = [
        ("Phase", f'<span class="phase {v["phase"]}">{v["phase"]}</span>'),
        ("Reason", escape(v["reason"]) or "–"),
        ("Tenant", escape(aw.tenant) or "–"),
        ("Cluster", escape(v["cluster"]) or "–"),
        ("Zone", escape(zone) or "–"),
        ("Earliest start", when(v["earliest"])),
        ("Deadline", when(v["deadline"])),
        ("Planned start", when(v["planned"])),
        ("Expected runtime", runtime),
        ("Started", when(v["started"])),
        ("Finished", when(v["finished"])),
        ("Job", escape(aw.status.job_name) or "–"),
        ("Dispatch attempts", str(aw.status.dispatch_attempts)),
        ("Labels", escape(", ".join(f"{k}={val}" for k, val in sorted(aw.labels.items()))) or "–"),
    ]
    figures = [
        ("Planned", grams(carbon.planned_gco2) if v["planned"] is not None else "– (no plan yet)"),
        ("Actual", grams(carbon.actual_gco2) if finished else "– (not finished)"),
        ("Counterfactual (carbon-agnostic)", grams(carbon.counterfactual_gco2)),
        ("Energy", f"{carbon.energy_wh:,.1f} Wh"),
    ]
    if finished and carbon.counterfactual_gco2 > 0:
        avoided = carbon.counterfactual_gco2 - carbon.actual_gco2
        share = 100 * avoided / carbon.counterfactual_gco2
        figures.append(("Avoided", f"{grams(avoided)} ({share:.1f} %)"))
    cycle = f"#{aw.status.cycle}" if aw.status.cycle else "–"
    if last_cycle is not None and aw.status.cycle and last_cycle.cycle == aw.status.cycle:
        cycle += (
            f", gap {last_cycle.gap:.4f}" if last_cycle.HasField("gap") else ", no gap (no plan or no bound)"
        )
    elif aw.status.cycle:
        cycle += ' <span class="muted">(the hub reports the gap of its last cycle only)</span>'
    figures.append(("Cycle that last changed the plan", cycle))
    rows = [
        (
            str(r[0]),
            f'<span class="phase {r[1]}">{r[1]}</span>',
            escape(r[2]) or "–",
            escape(r[3]) or "–",
            when(r[4]),
            str(r[5]),
            when(r[6]),
        )
        for r in history.rows
    ]
    history_html = table(
        ("revision", "phase", "reason", "cluster", "planned start", "attempts", "at"),
        rows,
        table_id="history",
        empty="no changes in the hub's change log",
    )
    note = f'<p class="muted">{escape(history.note)}</p>' if history.note else ""
    return (
        f'<h1>AppWrapper <code id="job-id">{escape(aw.id)}</code></h1>'
        f'<p class="muted">{escape(aw.name)}</p>'
        f'<div class="two"><section><h2>Where and when</h2>{_pairs(where, "where")}</section>'
        f'<section><h2>Carbon</h2>{_pairs(figures, "carbon")}<p class="muted">The API gives the carbon-agnostic '
        "baseline's emissions, not its cluster or start time, nor a split of the saving into spatial and "
        "temporal parts; the console shows none of those.</p></section></div>"
        f"<h2>Phase history</h2>{history_html}{note}"
    )


def _pairs(rows, ident: str) -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="pairs" id="{ident}">{body}</table>'
