"""caspianctl and interruptible jobs: the `interruptible:` block of a job file, and segments in get and preview,
against a real hub (in-process, over real gRPC, on fakes of the other three services)."""

from __future__ import annotations

import pathlib
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from caspian.v1 import common_pb2, hub_pb2
from caspianctl import render
from caspianctl.specs import SpecError, appwrapper_from_document, load_documents
from services.common.clock import ManualClock
from services.common.timeconv import duration_seconds, to_duration, to_timestamp
from services.hub.server import HubDeps, create_hub
from tests.hub.conftest import CLUSTERS, START, cluster_info, hub_settings
from tests.hub.fakes import Fakes
from tests.ops.test_caspianctl import ctl, write

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy/examples/interruptible.yaml"


def _rich_text(renderable) -> str:
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    Console(file=buffer, width=250, color_system=None).print(renderable)
    return buffer.getvalue()


def test_the_example_maps_onto_the_contract():
    (doc,) = load_documents(str(EXAMPLE))
    aw = appwrapper_from_document(doc, START)
    rule = aw.interruptible
    assert aw.HasField("interruptible")
    assert duration_seconds(rule.resume_overhead) == 300
    assert duration_seconds(rule.min_segment) == 3600
    assert rule.HasField("max_pauses") and rule.max_pauses == 6


def test_interruptible_true_and_absent(tmp_path):
    marked = load_documents(write(tmp_path, "a.yaml", "name: a\nruntime: 2h\ninterruptible: true\n"))[0]
    aw = appwrapper_from_document(marked, START)
    assert aw.HasField("interruptible") and not aw.interruptible.HasField("max_pauses")
    plain = load_documents(write(tmp_path, "b.yaml", "name: b\nruntime: 2h\n"))[0]
    assert not appwrapper_from_document(plain, START).HasField("interruptible")
    zero = load_documents(
        write(tmp_path, "c.yaml", "name: c\ninterruptible:\n  resume_overhead: 0\n  max_pauses: 0\n")
    )[0]
    rule = appwrapper_from_document(zero, START).interruptible
    assert rule.HasField("max_pauses") and rule.max_pauses == 0


def test_every_bad_key_is_reported_with_its_line(tmp_path):
    text = (
        "name: bad\n"  # 1
        "runtime: 2h\n"  # 2
        "interruptible:\n"  # 3
        "  resume_overhead: -5m\n"  # 4
        "  min_segment: soon\n"  # 5
        "  max_pauses: many\n"  # 6
        "  resumeOverhead: 5m\n"  # 7
        "cpu: lots\n"  # 8
    )
    (doc,) = load_documents(write(tmp_path, "bad.yaml", text))
    with pytest.raises(SpecError) as caught:
        appwrapper_from_document(doc, START)
    lines = str(caught.value).splitlines()
    path = str(tmp_path / "bad.yaml")
    assert any(line.startswith(f"{path}:4 (bad): interruptible.resume_overhead: ") for line in lines), lines
    assert any(line.startswith(f"{path}:5 (bad): interruptible.min_segment: ") for line in lines), lines
    assert any(
        line.startswith(f"{path}:6 (bad): interruptible.max_pauses: expected a whole") for line in lines
    )
    assert any(
        line.startswith(f"{path}:7 (bad): interruptible.resumeOverhead: unknown key; known: max_pauses")
        for line in lines
    ), lines
    assert any(line.startswith(f"{path}:8 (bad): cpu: ") for line in lines), lines
    assert len(lines) == 5


def test_a_scalar_interruptible_is_refused(tmp_path):
    (doc,) = load_documents(write(tmp_path, "s.yaml", "name: s\ninterruptible: 5m\n"))
    with pytest.raises(SpecError, match=r"s.yaml:2 \(s\): interruptible: expected a mapping"):
        appwrapper_from_document(doc, START)


def _segment(cluster: str, start_h: float, end_h: float | None) -> common_pb2.RunSegment:
    segment = common_pb2.RunSegment(cluster=cluster, start=to_timestamp(START + timedelta(hours=start_h)))
    if end_h is not None:
        segment.end.CopyFrom(to_timestamp(START + timedelta(hours=end_h)))
    return segment


def test_detail_and_wide_table_show_segments_progress_and_pauses():
    aw = common_pb2.AppWrapper(id="aw-1", name="train")
    aw.template.expected_runtime.CopyFrom(to_duration(4 * 3600))
    aw.interruptible.resume_overhead.CopyFrom(to_duration(300))
    aw.interruptible.min_segment.CopyFrom(to_duration(3600))
    aw.status.phase = common_pb2.APP_WRAPPER_PHASE_SUSPENDED
    aw.status.run_segments.extend([_segment("carbon-kr", 1, 3)])
    aw.status.planned_segments.extend([_segment("carbon-kr", 6, 8.25)])
    aw.status.progress.CopyFrom(to_duration(2 * 3600))
    aw.status.pauses = 1
    detail = _rich_text(render.appwrapper_detail(aw))
    assert "Suspended" in detail
    assert "resume overhead 5m, min segment 1h, no pause limit" in detail
    assert "carbon-kr 06-01 01:00–06-01 03:00" in detail
    assert "carbon-kr 06-01 06:00–06-01 08:15" in detail
    assert "2h of 4h (50.0 %), 1 pause" in detail
    wide = _rich_text(render.appwrapper_table([aw], wide=True))
    assert "1/1" in wide and "2h of 4h" in wide
    running = common_pb2.AppWrapper(id="aw-2")
    running.interruptible.SetInParent()
    running.status.run_segments.extend([_segment("carbon-jp", 1, 2), _segment("carbon-jp", 3, None)])
    assert "carbon-jp 06-01 01:00–06-01 02:00, 06-01 03:00–…" in _rich_text(render.appwrapper_detail(running))
    plain = _rich_text(render.appwrapper_detail(common_pb2.AppWrapper(id="aw-3")))
    assert "Interruptible" not in plain and "Run segments" not in plain


def test_preview_shows_segments_and_the_saving_over_one_piece():
    preview = hub_pb2.PreviewScheduleResponse(
        placeable=True,
        cluster="carbon-kr",
        planned_start=to_timestamp(START + timedelta(hours=1)),
        planned_gco2=40.0,
        start_now_gco2=100.0,
        saving_gco2=60.0,
        one_piece_start=to_timestamp(START + timedelta(hours=2)),
        one_piece_gco2=55.0,
        interruptible_saving_gco2=15.0,
        segments=[_segment("carbon-kr", 1, 3), _segment("carbon-kr", 6, 8.25)],
    )
    text = _rich_text(render.preview_table(preview))
    assert "carbon-kr 06-01 01:00–06-01 03:00, 06-01 06:00–06-01 08:15" in text
    assert "55.0 g from 2023-06-01 02:00:00Z" in text
    assert "15.0 g (pausing vs one piece)" in text


@pytest.fixture
async def real_hub(tmp_path):
    """The real hub over gRPC on a ManualClock, with the three clusters registered."""
    fakes = await Fakes.start()
    settings = hub_settings(tmp_path, fakes)
    server, hub = await create_hub(settings, CollectorRegistry(), HubDeps(clock=ManualClock(START)))
    await server.start()
    for name, zone in CLUSTERS:
        await hub.register_cluster(cluster_info(name, zone))
    yield server.address, hub
    await server.stop(0)
    await fakes.stop()


async def test_submit_get_and_preview_through_a_real_hub(real_hub):
    address, hub = real_hub
    submitted = await ctl(address, "-o", "json", "submit", str(EXAMPLE), "--request-id", "seg-1")
    assert submitted.code == 0, submitted.err
    app_wrapper_id = submitted.json()["app_wrapper"]["id"]
    got = await ctl(address, "-o", "json", "get", app_wrapper_id)
    assert got.code == 0, got.err
    stored = got.json()["interruptible"]
    assert stored["resume_overhead"] == "300s" and stored["min_segment"] == "3600s"
    assert stored["max_pauses"] == 6
    detail = await ctl(address, "get", app_wrapper_id)
    assert "resume overhead 5m, min segment 1h, at most 6 pauses" in detail.out
    assert "0s of 20h (0.0 %), 0 pauses" in detail.out, detail.out
    wide = await ctl(address, "get", app_wrapper_id, "-o", "wide")
    assert "0/0" in wide.out and "0s of 20h" in wide.out, wide.out
    await hub.scheduler.tick()
    planned = (await hub.get(app_wrapper_id)).status
    detail = await ctl(address, "get", app_wrapper_id)
    # Whatever segments the hub planned (none until it plans in segments), get shows every one of them.
    for segment in planned.planned_segments:
        assert segment.cluster in detail.out
    preview = await ctl(address, "-o", "json", "preview", str(EXAMPLE))
    assert preview.code == 0, preview.err
    shown = await ctl(address, "preview", str(EXAMPLE))
    body = preview.json()
    if body.get("segments"):
        assert "Segments" in shown.out and "Interruptible saving" in shown.out
    else:
        assert "Interruptible saving" not in shown.out
