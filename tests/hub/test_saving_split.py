"""Where and when the carbon-agnostic baseline would have run a job, and the saving split into its spatial
and temporal parts (CarbonAccount in common.proto), over real gRPC against the fake carbon history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from caspian.v1 import common_pb2, dispatcher_pb2
from services.common.stable import stable_index
from services.common.timeconv import from_timestamp
from tests.hub.conftest import START, phase_is
from tests.support.polling import wait_for

Phase = common_pb2.AppWrapperPhase
HOUR = 3600


async def test_the_saving_splits_into_a_spatial_and_a_temporal_part_that_add_up(harness):
    fakes = harness.fakes
    await harness.register_clusters()
    await harness.submit(id="start-job")
    await harness.cycle()
    # The baseline: the least-loaded cluster (all equal: by the stable hash, carbon-cn) at the earliest start.
    assert stable_index("start-job", 3) == 0
    placed = await harness.get("start-job")
    assert placed.status.baseline_cluster == "carbon-cn"
    assert from_timestamp(placed.status.baseline_start) == START
    assert placed.status.target_cluster == "carbon-kr"
    assert not placed.status.carbon.HasField("spatial_saving_gco2")

    # It really starts 30 min late and runs an hour; CN gets cleaner (600 -> 300) from 01:00.
    fakes.carbon.profile["CN"] = lambda t: 600.0 if t < (START + timedelta(hours=1)).timestamp() else 300.0
    late = START + timedelta(minutes=30)
    fakes.dispatcher.set_job("start-job", "carbon-kr", dispatcher_pb2.JOB_PHASE_RUNNING, at=late)
    await wait_for(lambda: phase_is(harness, "start-job", Phase.APP_WRAPPER_PHASE_RUNNING), what="Running")
    harness.clock.set(late + timedelta(hours=1))
    fakes.dispatcher.set_job(
        "start-job", "carbon-kr", dispatcher_pb2.JOB_PHASE_SUCCEEDED, at=harness.clock.now()
    )
    await wait_for(
        lambda: phase_is(harness, "start-job", Phase.APP_WRAPPER_PHASE_SUCCEEDED), what="Succeeded"
    )
    await harness.cycle()
    carbon = (await harness.get("start-job")).status.carbon
    # 10 Wh each way. Baseline: CN 00:00-01:00 at 600 -> 6.0 g. Actual: KR 00:30-01:30 at 400 -> 4.0 g.
    # The same run on CN at the actual start: half at 600, half at 300 -> 4.5 g.
    assert carbon.counterfactual_gco2 == pytest.approx(6.0)
    assert carbon.actual_gco2 == pytest.approx(4.0)
    assert carbon.temporal_saving_gco2 == pytest.approx(1.5)  # 6.0 - 4.5
    assert carbon.spatial_saving_gco2 == pytest.approx(0.5)  # 4.5 - 4.0
    assert carbon.spatial_saving_gco2 + carbon.temporal_saving_gco2 == pytest.approx(
        carbon.counterfactual_gco2 - carbon.actual_gco2
    )
