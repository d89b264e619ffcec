"""A previous plan warm-starts the search (SolveJob.previous): it is a hint, never a constraint."""

from datetime import timedelta

from caspian.v1 import optimizer_pb2
from services.common.timeconv import to_timestamp
from tests.optimizer import builders as b


def _request(previous: dict | None = None):
    jobs = []
    for i in range(8):
        job = b.job(f"j{i}", cpu=1000, deadline_s=6 * b.HOUR)
        if previous and job.id in previous:
            cluster, start = previous[job.id]
            job.previous.CopyFrom(optimizer_pb2.PreviousPlacement(cluster=cluster, start=start))
        jobs.append(job)
    forecasts = {
        "a": [300.0, 100.0, 200.0, 250.0, 400.0, 500.0],
        "b": [350.0, 150.0, 120.0, 300.0, 420.0, 80.0],
    }
    return b.request(jobs, [b.cluster("a", cpu=2000), b.cluster("b", cpu=2000)], forecasts, time_limit_s=10.0)


async def test_a_previous_plan_starts_the_search_and_the_answer_is_as_good(optimizer):
    stub, _, _ = optimizer
    cold = await stub.Solve(_request())
    previous = {p.job_id: (p.cluster, p.start) for p in cold.placements if p.placed}
    warm = await stub.Solve(_request(previous))
    assert "warm_start=8" in warm.message
    assert warm.placed_weight == cold.placed_weight == 8
    assert warm.objective_gco2 <= cold.objective_gco2 + 1e-9
    assert warm.status == optimizer_pb2.SOLVE_STATUS_OPTIMAL


async def test_a_previous_plan_that_no_longer_holds_is_ignored(optimizer):
    stub, _, _ = optimizer
    cold = await stub.Solve(_request())
    off_grid = to_timestamp(b.START + timedelta(minutes=7))
    stale = {f"j{i}": ("nowhere" if i % 2 else "a", off_grid) for i in range(8)}
    answer = await stub.Solve(_request(stale))
    assert "warm_start" not in answer.message
    assert answer.placed_weight == 8
    assert answer.objective_gco2 == cold.objective_gco2
