"""An interruptible job's segments and progress are kept by the store on both backends: planned segments,
run segments, progress and pauses survive a reopen, and a Suspended job is active (the scheduler reads it)."""

from __future__ import annotations

from datetime import timedelta

from caspian.v1 import common_pb2
from services.common.timeconv import to_duration, to_timestamp
from services.hub.phases import SUSPENDED
from services.hub.store import Update
from tests.hub.test_store import NOW, close, make_store, new  # noqa: F401 - make_store is a fixture


async def test_segments_progress_and_the_suspended_phase_survive_a_reopen(make_store):  # noqa: F811
    s = await make_store()
    aw = new("seg")
    aw.message.interruptible.resume_overhead.CopyFrom(to_duration(300))
    await s.insert_app_wrappers([aw])

    def suspend_between_segments(record):
        status = record.message.status
        status.phase = SUSPENDED
        status.target_cluster = "east"
        status.run_segments.add(
            cluster="east", start=to_timestamp(NOW), end=to_timestamp(NOW + timedelta(hours=2))
        )
        status.planned_segments.add(
            cluster="east",
            start=to_timestamp(NOW + timedelta(hours=4)),
            end=to_timestamp(NOW + timedelta(hours=6)),
        )
        status.progress.CopyFrom(to_duration(7200))
        status.pauses = 1
        return True

    [written] = await s.update_app_wrappers([Update("seg", suspend_between_segments)])
    assert written is not None
    await close(s)

    s = await make_store()
    [active] = await s.active_app_wrappers()
    status = active.message.status
    assert active.id == "seg" and active.phase == SUSPENDED
    assert [(r.cluster, r.start, r.end) for r in status.run_segments] == [
        ("east", to_timestamp(NOW), to_timestamp(NOW + timedelta(hours=2)))
    ]
    assert [(p.start, p.end) for p in status.planned_segments] == [
        (to_timestamp(NOW + timedelta(hours=4)), to_timestamp(NOW + timedelta(hours=6)))
    ]
    assert status.progress == to_duration(7200) and status.pauses == 1
    assert active.message.interruptible.resume_overhead == to_duration(300)
    assert (await s.phase_counts()) == {SUSPENDED: 1}
    assert isinstance(active.message, common_pb2.AppWrapper)
