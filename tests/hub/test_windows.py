"""F7: a backlog above the optimizer's MAX_JOBS is solved in windows the optimizer takes, most urgent first,
each window's placements reserved for the next, all within the cycle's solve deadline."""

from __future__ import annotations

from datetime import timedelta

from caspian.v1 import common_pb2
from services.common.timeconv import timestamp_seconds, to_timestamp
from tests.hub.conftest import START

Phase = common_pb2.AppWrapperPhase
HOUR = 3600


async def test_a_backlog_above_the_limit_is_solved_in_windows_most_urgent_first(make_harness):
    harness = await make_harness(optimizer_max_jobs=3)
    fakes = harness.fakes
    await harness.register_clusters()
    # Deadlines in reverse order of the ids: the most urgent job is the last submitted.
    for i in range(8):
        await harness.submit(id=f"j{i}", runtime=HOUR, deadline_in=(20 - i) * HOUR)
    asked = len(fakes.optimizer.requests)
    summary = await harness.cycle()

    requests = fakes.optimizer.requests[asked:]
    assert [len(r.jobs) for r in requests] == [3, 3, 2]
    deadlines = [timestamp_seconds(j.deadline) for r in requests for j in r.jobs]
    assert deadlines == sorted(deadlines)
    assert [j.id for j in requests[0].jobs] == ["j7", "j6", "j5"]
    # What a window planned is capacity taken for the windows after it.
    for n, request in enumerate(requests[1:], start=1):
        reserved = {r.job_id for r in request.reservations}
        earlier = {j.id for r in requests[:n] for j in r.jobs}
        assert earlier <= reserved, (n, earlier - reserved)
    assert summary.considered == 8 and summary.planned == 8 and not summary.fallback
    assert any("3 windows" in note for note in summary.notes), summary.notes
    for i in range(8):
        assert (await harness.get(f"j{i}")).status.phase in (
            Phase.APP_WRAPPER_PHASE_SCHEDULED,
            Phase.APP_WRAPPER_PHASE_DISPATCHING,
        )


async def test_windows_beyond_the_solve_deadline_wait_for_the_next_cycle(make_harness):
    harness = await make_harness(optimizer_max_jobs=2, optimizer_timeout_seconds=0.3)
    fakes = harness.fakes
    await harness.register_clusters()
    for i in range(5):
        await harness.submit(
            id=f"j{i}",
            runtime=HOUR,
            deadline_in=(20 - i) * HOUR,
            earliest_start=to_timestamp(START + timedelta(hours=2)),
        )
    fakes.optimizer.mode = "slow"  # the first window spends the whole deadline
    asked = len(fakes.optimizer.requests)
    summary = await harness.cycle()
    fakes.optimizer.release.set()

    assert len(fakes.optimizer.requests) - asked == 1
    assert any("3 jobs wait for the next cycle" in note for note in summary.notes), summary.notes
    first = {"j4", "j3"}
    for i in range(5):
        aw = await harness.get(f"j{i}")
        if f"j{i}" in first:  # placed by the in-process fallback
            assert aw.status.phase == Phase.APP_WRAPPER_PHASE_SCHEDULED
        else:
            assert aw.status.phase == Phase.APP_WRAPPER_PHASE_PENDING
            assert "waiting for the next cycle" in aw.status.reason

    fakes.optimizer.mode = "ok"
    summary = await harness.cycle()
    assert summary.planned == 5 and not summary.fallback
