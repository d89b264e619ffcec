"""Bad requests answer INVALID_ARGUMENT naming the field, over real gRPC."""

import grpc
import pytest

from caspian.v1 import optimizer_pb2
from services.common.timeconv import to_duration, to_timestamp
from tests.optimizer.builders import HOUR, START, cluster, job, request
from tests.optimizer.conftest import MAX_JOBS


def good():
    return request([job("a", earliest_slot=0, deadline_s=4 * HOUR)], [cluster("x")], {"x": [100.0] * 4})


def slot_zero(req):
    req.grid.slot.CopyFrom(to_duration(0))


def negative_cpu(req):
    req.jobs[0].resources.cpu_millis = -500


def deadline_before_earliest(req):
    req.jobs[0].earliest_start.CopyFrom(to_timestamp(START.replace(hour=3)))
    req.jobs[0].deadline.CopyFrom(to_timestamp(START.replace(hour=1)))


def short_forecast(req):
    del req.forecasts[0].gco2_per_kwh[2:]


def unknown_affinity(req):
    req.jobs[0].required_clusters.append("nowhere")


def too_many_jobs(req):
    req.jobs.extend(job(f"extra{i}") for i in range(MAX_JOBS))


def negative_reservation(req):
    req.reservations.add(cluster="x", resources={"gpus": -1}, start_slot=0, end_slot=1)


def duplicate_job(req):
    req.jobs.append(job("a"))


def zero_runtime(req):
    req.jobs[0].runtime.CopyFrom(to_duration(0))


def missing_forecast(req):
    req.clusters.append(cluster("y"))


def unknown_preferred(req):
    req.jobs[0].preferred_clusters.append("elsewhere")


def bad_gap(req):
    req.options.mip_gap = 2.0


def short_spread(req):
    req.forecasts[0].relative_spread.extend([0.1, 0.1])


def negative_spread(req):
    req.forecasts[0].relative_spread.extend([0.1, 0.1, -0.2, 0.1])


def bad_risk_aversion(req):
    req.options.risk_aversion = float("nan")


def nanosecond_runtime(req):
    req.jobs[0].runtime.CopyFrom(to_duration(0).__class__(seconds=0, nanos=1))


def mixed_sign_runtime(req):
    req.jobs[0].runtime.CopyFrom(to_duration(0).__class__(seconds=10, nanos=-999_999_999))


CASES = [
    (slot_zero, "grid.slot"),
    (short_forecast, "forecasts[0].gco2_per_kwh"),
    (too_many_jobs, "jobs"),
    (negative_reservation, "reservations[0].resources.gpus"),
    (duplicate_job, "jobs[1].id"),
    (missing_forecast, "forecasts"),
    (bad_gap, "options.mip_gap"),
    (short_spread, "forecasts[0].relative_spread"),
    (negative_spread, "forecasts[0].relative_spread[2]"),
    (bad_risk_aversion, "options.risk_aversion"),
]


# A job breaking the job rule (services/common/jobrules.py) is refused alone: the Solve answers, the other jobs
# are planned, and the refused one comes back unplaced with UNPLACED_REASON_INVALID naming its field.
JOB_CASES = [
    (negative_cpu, "jobs[0].resources.cpu_millis"),
    (deadline_before_earliest, "jobs[0].deadline"),
    (unknown_affinity, "jobs[0].required_clusters[0]"),
    (zero_runtime, "jobs[0].runtime"),
    (nanosecond_runtime, "jobs[0].runtime"),
    (unknown_preferred, "jobs[0].preferred_clusters[0]"),
]


@pytest.mark.parametrize("spoil, field", JOB_CASES, ids=[c[0].__name__ for c in JOB_CASES])
async def test_one_bad_job_is_refused_alone(optimizer, spoil, field):
    stub, _, _ = optimizer
    req = good()
    req.jobs.append(job("b", earliest_slot=0, deadline_s=4 * HOUR))
    spoil(req)
    response = await stub.Solve(req, timeout=10)
    outcome = {p.job_id: p for p in response.placements}
    assert outcome["b"].placed
    assert not outcome["a"].placed
    assert outcome["a"].unplaced_reason == optimizer_pb2.UNPLACED_REASON_INVALID
    assert outcome["a"].reason.startswith(f"{field}:"), outcome["a"].reason
    assert (response.placed_count, response.unplaced_count) == (1, 1)


async def test_a_mixed_sign_runtime_is_refused_at_the_door(optimizer):
    """A Duration protobuf forbids never reaches the servicer: the shared interceptor refuses it by field."""
    stub, _, _ = optimizer
    req = good()
    mixed_sign_runtime(req)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Solve(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("jobs[0].runtime.nanos:"), err.value.details()


@pytest.mark.parametrize("spoil, field", CASES, ids=[c[0].__name__ for c in CASES])
async def test_bad_request_names_the_field(optimizer, spoil, field):
    stub, _, _ = optimizer
    req = good()
    spoil(req)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Solve(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:"), err.value.details()


async def test_the_good_request_is_accepted(optimizer):
    stub, _, _ = optimizer
    response = await stub.Solve(good(), timeout=10)
    assert response.status == optimizer_pb2.SOLVE_STATUS_OPTIMAL


async def test_too_long_a_time_limit_is_refused(optimizer):
    stub, _, _ = optimizer
    req = good()
    req.options.time_limit.CopyFrom(to_duration(10_000))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Solve(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("options.time_limit:")


async def test_a_problem_too_large_for_memory_is_refused():
    """jobs x clusters x slots is capped, so one request cannot ask for gigabytes of option arrays."""
    from prometheus_client import CollectorRegistry

    from caspian.v1 import optimizer_pb2_grpc
    from services.optimizer.server import build_server
    from services.optimizer.settings import OptimizerSettings

    server = await build_server(
        OptimizerSettings(port=0, metrics_port=-1, max_option_cells=100), CollectorRegistry()
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
            req = request([job(f"j{i}") for i in range(30)], [cluster("x")], {"x": [100.0] * 4})
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Solve(req, timeout=10)
    finally:
        await server.stop(0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("jobs:")


async def test_a_solve_whose_every_job_is_refused_still_answers(optimizer):
    stub, _, _ = optimizer
    req = good()
    zero_runtime(req)
    response = await stub.Solve(req, timeout=10)
    assert [(p.job_id, p.placed, p.unplaced_reason) for p in response.placements] == [
        ("a", False, optimizer_pb2.UNPLACED_REASON_INVALID)
    ]
