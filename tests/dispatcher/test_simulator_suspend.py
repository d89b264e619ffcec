"""The spoke simulator's PATCH and suspension through the official client: the patch formats, the refusals a
real API server gives, a waiting pod suspended, and a suspended checkpointing Job carried across a restart."""

from datetime import timedelta

import pytest
from kubernetes import client as k8s

from clusters.simulator.server import SpokeSimulator
from tests.dispatcher.conftest import START
from tests.dispatcher.support import batch_api, core_api
from tests.dispatcher.test_simulator import call, job_body, spoke  # noqa: F401

NS = "caspian-jobs"
MERGE = "application/merge-patch+json"


def patch(url: str, name: str, body, content_type: str = MERGE):
    return call(batch_api(url).patch_namespaced_job, name, NS, body, _content_type=content_type)


async def pods(url: str, name: str) -> list[k8s.V1Pod]:
    listed = await call(core_api(url).list_namespaced_pod, NS, label_selector=f"job-name={name}")
    return listed.items


async def test_patch_formats_and_refusals(spoke):  # noqa: F811
    await call(batch_api(spoke.url).create_namespaced_job, NS, job_body("p1", runtime=600))
    job = await patch(
        spoke.url,
        "p1",
        [{"op": "replace", "path": "/spec/suspend", "value": True}],
        "application/json-patch+json",
    )
    assert job.spec.suspend is True
    job = await patch(spoke.url, "p1", {"spec": {"suspend": False}}, "application/strategic-merge-patch+json")
    assert job.spec.suspend is False
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"suspend": True}}
    with pytest.raises(k8s.ApiException) as err:
        await patch(spoke.url, "p1", stale)
    assert err.value.status == 409
    with pytest.raises(k8s.ApiException) as err:
        await patch(spoke.url, "p1", {"spec": {"backoffLimit": 9}})
    assert err.value.status == 422 and "spec.backoffLimit" in err.value.body
    with pytest.raises(k8s.ApiException) as err:
        await patch(spoke.url, "p1", {"spec": {"activeDeadlineSeconds": 0}})
    assert err.value.status == 422
    current = await call(batch_api(spoke.url).read_namespaced_job, "p1", NS)
    assert current.spec.suspend is False and current.spec.backoff_limit == 6


async def test_a_waiting_pod_is_suspended_and_waits_again_after_the_resume(spoke, clock):  # noqa: F811
    # More CPU than any worker has: the pod waits Pending.
    await call(batch_api(spoke.url).create_namespaced_job, NS, job_body("big", runtime=60, cpu="500"))
    assert [p.status.phase for p in await pods(spoke.url, "big")] == ["Pending"]
    job = await patch(spoke.url, "big", {"spec": {"suspend": True}})
    job = await call(batch_api(spoke.url).read_namespaced_job, "big", NS)
    assert await pods(spoke.url, "big") == []
    assert job.status.active == 0 and job.status.start_time is None
    assert [(c.type, c.status, c.reason) for c in job.status.conditions] == [
        ("Suspended", "True", "JobSuspended")
    ]
    clock.advance(3600)  # no deadline runs, nothing happens
    await patch(spoke.url, "big", {"spec": {"suspend": False}})
    assert [p.status.phase for p in await pods(spoke.url, "big")] == ["Pending"]
    job = await call(batch_api(spoke.url).read_namespaced_job, "big", NS)
    assert job.status.start_time == START + timedelta(seconds=3600)


async def test_a_suspended_checkpointing_job_survives_a_restart(tmp_path, clock):
    state = str(tmp_path / "kr.json")
    first = SpokeSimulator("carbon-kr", clock, state_file=state)
    await first.start()
    body = job_body(
        "ckpt",
        runtime=1000,
        annotations={"caspian.io/checkpoints": "true", "caspian.io/resume-overhead-seconds": "50"},
    )
    await call(batch_api(first.url).create_namespaced_job, NS, body)
    clock.advance(400)
    await patch(first.url, "ckpt", {"spec": {"suspend": True}})
    await first.stop()

    second = SpokeSimulator("carbon-kr", clock, state_file=state)
    await second.start()
    try:
        job = await call(batch_api(second.url).read_namespaced_job, "ckpt", NS)
        assert job.metadata.annotations["sim.caspian.io/progress-seconds"] == "400"
        clock.advance(100)
        await patch(second.url, "ckpt", {"spec": {"suspend": False}})
        # 50 s to restore, then the 600 s left.
        clock.advance(649)
        job = await call(batch_api(second.url).read_namespaced_job, "ckpt", NS)
        assert job.status.succeeded is None
        clock.advance(1)
        for _ in range(100):
            job = await call(batch_api(second.url).read_namespaced_job, "ckpt", NS)
            if job.status.succeeded:
                break
        assert job.status.succeeded == 1
        assert job.status.completion_time == START + timedelta(seconds=400 + 100 + 650)
    finally:
        await second.stop()
