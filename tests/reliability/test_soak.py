"""Soak: 30 minutes of simulated time at a steady load (a bounded number of submissions, reads and one open
watch), while the resident memory and open file descriptors of every process are sampled from /proc. After a
warm-up both stay flat; the figures per process go to the report."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from datetime import timedelta

import grpc
import pytest

from caspian.v1 import hub_pb2
from tests.reliability.stacks import hub_now, hub_stub, start_stack
from tests.reliability.support import (
    FULL,
    Phase,
    app_wrapper,
    list_all_blocking,
    open_fds,
    phase_name,
    rss_bytes,
    wait_until,
)

SIM_MINUTES = 30
SPEEDUP = 60.0 if FULL else 180.0  # 30 real seconds, or 10
SUBMIT_EVERY_SIM_S = 30  # 60 submissions in all
READS_PER_REAL_SECOND = 20
SAMPLE_EVERY_S = 0.25
MIB = 1 << 20
# Flat: after the first fifth of the run, growth of at most this much. Connection pools may still fill up to
# their size (the dispatcher keeps up to 8 HTTP connections per spoke); a leak per request or per job would
# grow with the 60 submissions and hundreds of reads and pass these bounds many times over.
RSS_GROWTH_LIMIT_MIB = 12.0
FD_GROWTH_LIMIT = 10


@pytest.fixture
def stack(tmp_path):
    running = start_stack(
        tmp_path,
        speedup=SPEEDUP,
        hub={
            "CASPIAN_HUB_SLOT_SECONDS": "300",
            "CASPIAN_HUB_HORIZON_SLOTS": "48",
            "CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS": "60",
            "CASPIAN_HUB_DEBOUNCE_SECONDS": "10",
        },
    )
    yield running
    running.stop()


class Sampler(threading.Thread):
    def __init__(self, processes: dict[str, int]):
        super().__init__(daemon=True)
        self.processes = processes
        self.samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in processes}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            now = time.monotonic()
            for name, pid in self.processes.items():
                self.samples[name].append((now, rss_bytes(pid), open_fds(pid)))
            self.halt.wait(SAMPLE_EVERY_S)


def steady(samples: list[tuple[float, int, int]]) -> dict:
    """Figures after the warm-up (the first fifth): start and end are medians of the first and last fifth of
    what remains, so one noisy sample does not decide."""
    rest = samples[len(samples) // 5 :]
    fifth = max(1, len(rest) // 5)
    head, tail = rest[:fifth], rest[-fifth:]
    rss_start, rss_end = statistics.median(s[1] for s in head), statistics.median(s[1] for s in tail)
    fd_start, fd_end = statistics.median(s[2] for s in head), statistics.median(s[2] for s in tail)
    return {
        "rss_mib_start": round(rss_start / MIB, 2),
        "rss_mib_end": round(rss_end / MIB, 2),
        "rss_mib_max": round(max(s[1] for s in rest) / MIB, 2),
        "rss_growth_mib": round((rss_end - rss_start) / MIB, 2),
        "fds_start": fd_start,
        "fds_end": fd_end,
        "fds_max": max(s[2] for s in rest),
        "samples": len(samples),
    }


@pytest.mark.scenario("soak")
def test_thirty_simulated_minutes_of_steady_load_keep_memory_and_fds_flat(stack, scenario):
    processes = {
        **{f"spoke {name}": proc.proc.pid for name, proc in stack.spokes.items()},
        **{name: proc.proc.pid for name, proc in stack.services.items()},
        **{f"optimizer {i}": proc.proc.pid for i, proc in enumerate(stack.optimizers)},
    }
    sampler = Sampler(processes)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    halt = threading.Event()

    def reader():
        with stack.hub_channel() as channel:
            stub = hub_stub(channel)
            calls = (
                lambda: stub.GetStats(hub_pb2.GetStatsRequest(), timeout=10),
                lambda: stub.ListAppWrappers(hub_pb2.ListAppWrappersRequest(page_size=50), timeout=10),
                lambda: stub.ListClusters(hub_pb2.ListClustersRequest(), timeout=10),
            )
            while not halt.is_set():
                try:
                    calls[counts["reads"] % len(calls)]()
                    counts["reads"] += 1
                except grpc.RpcError as exc:
                    errors.append(f"read: {exc.code().name}")
                halt.wait(1 / READS_PER_REAL_SECOND)

    def watcher():
        with stack.hub_channel() as channel:
            stream = hub_stub(channel).WatchAppWrappers(hub_pb2.WatchAppWrappersRequest(), timeout=600)
            try:
                for _ in stream:
                    counts["watch_events"] += 1
                    if halt.is_set():
                        break
            except grpc.RpcError as exc:
                if not halt.is_set():
                    errors.append(f"watch: {exc.code().name}")
            finally:
                stream.cancel()

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=watcher, daemon=True)]
    submitted = []
    with stack.hub_channel() as channel:
        stub = hub_stub(channel)
        began_sim, began_real = hub_now(stub), time.monotonic()
        end_sim = began_sim + timedelta(minutes=SIM_MINUTES)
        sampler.start()
        for thread in threads:
            thread.start()
        next_submit = began_sim
        while (now := hub_now(stub)) < end_sim:
            if now >= next_submit:
                message = app_wrapper(
                    id=f"soak-{len(submitted):03d}",
                    now=now,
                    tenant="soak",
                    runtime_s=180 + 60 * (len(submitted) % 5),
                    slack_s=900,
                )
                try:
                    stub.SubmitAppWrapper(hub_pb2.SubmitAppWrapperRequest(app_wrapper=message), timeout=10)
                    submitted.append(message.id)
                except grpc.RpcError as exc:
                    errors.append(f"submit: {exc.code().name}")
                next_submit += timedelta(seconds=SUBMIT_EVERY_SIM_S)
            time.sleep(0.02)
        real_seconds = time.monotonic() - began_real
        halt.set()
        sampler.halt.set()
        for thread in [*threads, sampler]:
            thread.join(15)
        found = {a.id: a for a in list_all_blocking(channel, tenant="soak")}

    figures = {name: steady(samples) for name, samples in sampler.samples.items()}
    lost = [i for i in submitted if i not in found]
    failed = [
        i
        for i in submitted
        if i in found
        and found[i].status.phase in (Phase.APP_WRAPPER_PHASE_FAILED, Phase.APP_WRAPPER_PHASE_UNSCHEDULABLE)
    ]
    grown = {n: f for n, f in figures.items() if f["rss_growth_mib"] > RSS_GROWTH_LIMIT_MIB}
    leaking_fds = {n: f for n, f in figures.items() if f["fds_end"] - f["fds_start"] > FD_GROWTH_LIMIT}
    scenario.lost, scenario.duplicated = len(lost) + len(failed), 0
    scenario.detail.update(
        simulated_minutes=SIM_MINUTES,
        real_seconds=round(real_seconds, 1),
        speedup=SPEEDUP,
        submissions=len(submitted),
        reads=counts["reads"],
        watch_events=counts["watch_events"],
        errors=errors[:10],
        phases=dict(Counter(phase_name(found[i].status.phase) for i in submitted if i in found)),
        rss_growth_limit_mib=RSS_GROWTH_LIMIT_MIB,
        fd_growth_limit=FD_GROWTH_LIMIT,
        processes=figures,
    )
    assert errors == []
    assert lost == [] and failed == []
    assert counts["reads"] >= READS_PER_REAL_SECOND * real_seconds * 0.3, "the read load did not run"
    assert grown == {}, grown
    assert leaking_fds == {}, leaking_fds
    wait_until(lambda: all(p.proc.poll() is None for p in stack.all_processes()), 1, "every process alive")
