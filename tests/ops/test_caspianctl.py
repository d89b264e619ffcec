"""caspianctl against a fake HubService over real gRPC: what it sends, what it prints, how it exits."""

from __future__ import annotations

import asyncio
import io
import json
import pathlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
import yaml

from caspian.v1 import common_pb2, hub_pb2, hub_pb2_grpc
from caspianctl.__main__ import main
from caspianctl.render import cycle_text
from services.common.server import GrpcServer, ServerSettings
from services.common.timeconv import duration_seconds, from_timestamp, to_duration, to_timestamp
from tests.ops.fake_hub import HUB_NOW, SERVICE_NAME, FakeHub, start_fake_hub

ROOT = pathlib.Path(__file__).resolve().parents[2]
PENDING, RUNNING, SUCCEEDED = (
    common_pb2.APP_WRAPPER_PHASE_PENDING,
    common_pb2.APP_WRAPPER_PHASE_RUNNING,
    common_pb2.APP_WRAPPER_PHASE_SUCCEEDED,
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


async def ctl(address: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run caspianctl in a worker thread (it uses the blocking gRPC API) while the fake serves here."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["--hub", address, "--timeout", "5", *args]
    code = await asyncio.to_thread(main, argv, stdout=out, stderr=err, env=env or {})
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
async def hub():
    server, fake = await start_fake_hub()
    yield server.address, fake
    await server.stop(0)


def aw(id_: str, phase: int = PENDING, **kw) -> common_pb2.AppWrapper:
    return common_pb2.AppWrapper(
        id=id_, name=f"job-{id_}", status=common_pb2.AppWrapperStatus(phase=phase), **kw
    )


async def until(predicate, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def write(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


JOB = """
name: train
tenant: vision
image: python:3.11-slim
command: ["python", "-c", "print(1)"]
cpu: 500m
memory: 1Gi
runtime: 30m
deadline: 6h
labels: {team: vision}
"""


async def test_submit_maps_the_file_and_sends_token_and_hub_clock(hub, tmp_path):
    address, fake = hub
    result = await ctl(address, "submit", write(tmp_path, "job.yaml", JOB), env={"CASPIAN_TOKEN": "s3cret"})
    assert result.code == 0, result.err
    assert result.out.strip() == "aw-1 created (Pending)"
    [request] = fake.requests("SubmitAppWrapper")
    sent = request.app_wrapper
    assert sent.template.resources == common_pb2.Resources(cpu_millis=500, memory_bytes=2**30)
    assert duration_seconds(sent.template.expected_runtime) == 1800
    # "6h" counts from the hub's clock (GetStats.now), not this machine's.
    assert from_timestamp(sent.deadline) == HUB_NOW + timedelta(hours=6)
    assert request.request_id
    assert {c.method for c in fake.calls} == {"GetStats", "SubmitAppWrapper"}
    assert all(c.metadata.get("authorization") == "Bearer s3cret" for c in fake.calls)


async def test_submit_without_token_sends_no_authorization(hub, tmp_path):
    address, fake = hub
    result = await ctl(address, "submit", "--request-id", "key-1", write(tmp_path, "job.yaml", JOB))
    assert result.code == 0
    assert all("authorization" not in c.metadata for c in fake.calls)
    assert fake.requests("SubmitAppWrapper")[0].request_id == "key-1"


async def test_submit_many_streams_batches_and_reports_refused_items(hub, tmp_path):
    address, fake = hub
    many = write(
        tmp_path, "many.yaml", JOB + "---\n" + JOB.replace("train", "eval") + "---\nname: broken\nimage: x\n"
    )
    extra = write(tmp_path, "extra.json", json.dumps([{"name": "j", "image": "i", "runtime": 60}]))
    result = await ctl(address, "submit", "--batch-size", "2", "--request-id", "run7", many, extra)
    assert result.code == 1, "a refused item makes the exit status 1"
    batches = fake.requests("SubmitAppWrappers")
    assert [len(b.items) for b in batches] == [2, 2]
    items = [item for b in batches for item in b.items]
    assert [i.app_wrapper.name for i in items] == ["train", "eval", "broken", "j"]
    assert [i.request_id for i in items] == ["run7-0", "run7-1", "run7-2", "run7-3"]
    assert "accepted 3, rejected 1" in result.out
    assert "item 2 (broken)" in result.out and "INVALID_ARGUMENT" in result.out
    assert "app_wrapper.template.expected_runtime" in result.out


async def test_dry_run_sends_nothing_and_prints_the_protobuf_json(hub, tmp_path):
    address, fake = hub
    path = write(tmp_path, "job.yaml", JOB.replace("deadline: 6h", "deadline: '2023-06-02T00:00:00Z'"))
    result = await ctl(address, "-o", "json", "submit", "--dry-run", path)
    assert result.code == 0
    [sent] = result.json()
    assert sent["template"]["resources"] == {"cpu_millis": 500, "memory_bytes": 1073741824}
    assert sent["template"]["expected_runtime"] == "1800s"
    assert sent["deadline"] == "2023-06-02T00:00:00Z"
    assert fake.calls == [], "absolute times need no call at all"


async def test_submit_refused_by_the_hub_exits_with_status_and_one_line(hub, tmp_path):
    address, _ = hub
    result = await ctl(address, "submit", write(tmp_path, "job.yaml", "name: x\nruntime: 5m\n"))
    assert result.code == 64 + 3  # INVALID_ARGUMENT
    assert result.err.strip() == (
        "error: INVALID_ARGUMENT: app_wrapper.template.image: required (key image at "
        + str(tmp_path / "job.yaml")
        + ")"
    )
    assert result.out == ""


async def test_bad_file_exits_2_without_calling_the_hub(hub, tmp_path):
    address, fake = hub
    result = await ctl(address, "submit", write(tmp_path, "job.yaml", "name: x\ncpu: two\nruntime: 5m\n"))
    assert result.code == 2
    assert result.err.count("\n") == 1 and "cpu: expected a CPU amount" in result.err
    assert fake.calls == []


async def test_submit_wait_follows_the_watch_until_done(hub, tmp_path):
    address, fake = hub
    task = asyncio.create_task(
        ctl(address, "submit", "--wait", "--wait-timeout", "20", write(tmp_path, "j.yaml", JOB))
    )
    await until(lambda: fake.requests("WatchAppWrappers"))
    running = aw("aw-1", RUNNING)
    fake.publish(running)
    done = aw("aw-1", SUCCEEDED)
    done.status.target_cluster = "carbon-jp"
    fake.publish(done)
    result = await asyncio.wait_for(task, 30)
    assert result.code == 0, result.err
    assert "aw-1" in result.out and "Succeeded" in result.out and "carbon-jp" in result.out


async def test_get_shows_detail_and_not_found_exits_69(hub):
    address, fake = hub
    job = aw("aw-9", RUNNING, tenant="vision")
    job.status.baseline_cluster = "carbon-cn"
    job.status.baseline_start.CopyFrom(to_timestamp(HUB_NOW - timedelta(hours=1)))
    job.status.carbon.spatial_saving_gco2 = 12.5
    job.status.carbon.temporal_saving_gco2 = 3.0
    fake.put(job)
    result = await ctl(address, "get", "aw-9")
    assert result.code == 0
    assert "job-aw-9" in result.out and "Running" in result.out and "vision" in result.out
    baseline_at = (HUB_NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%SZ")
    assert f"carbon-cn at {baseline_at}" in result.out
    assert "spatial 12.5 g, temporal 3.0 g" in result.out
    as_yaml = yaml.safe_load((await ctl(address, "-o", "yaml", "get", "aw-9")).out)
    assert as_yaml["id"] == "aw-9" and as_yaml["status"]["phase"] == "APP_WRAPPER_PHASE_RUNNING"
    missing = await ctl(address, "get", "nope")
    assert missing.code == 64 + 5
    assert missing.err.strip() == "error: NOT_FOUND: appwrapper 'nope' not found"


async def test_list_filters_and_follows_pages(hub):
    address, fake = hub
    for i, phase in enumerate([PENDING, RUNNING, SUCCEEDED, RUNNING, PENDING, RUNNING]):
        fake.put(aw(f"aw-{i}", phase, tenant="a" if i % 2 else "b"))
    result = await ctl(
        address, "-o", "json", "list", "--phase", "running,pending", "--page-size", "2", "--all"
    )
    assert result.code == 0
    assert [a["id"] for a in result.json()["app_wrappers"]] == ["aw-0", "aw-1", "aw-3", "aw-4", "aw-5"]
    requests = fake.requests("ListAppWrappers")
    assert [r.page_token for r in requests] == ["", "2", "4"]
    assert list(requests[0].phases) == [RUNNING, PENDING] and requests[0].page_size == 2

    page = await ctl(address, "list", "--tenant", "a", "--phase", "running", "--page-size", "2")
    assert page.code == 0
    assert "aw-1" in page.out and "aw-3" in page.out and "aw-5" not in page.out
    # Piped: no footer at all (a terminal gets "2 of 3 AppWrapper(s)" and the next page under the table).
    assert page.err == "" and "AppWrapper(s)" not in page.out and "--page-token" not in page.out
    assert fake.requests("ListAppWrappers")[-1].tenant == "a"


async def test_list_rejects_unknown_phase(hub):
    address, fake = hub
    result = await ctl(address, "list", "--phase", "sleeping")
    assert result.code == 2 and "unknown phase 'sleeping'" in result.err
    assert fake.calls == []


async def test_watch_resumes_after_the_last_revision_when_the_stream_breaks(hub):
    address, fake = hub
    for i in range(3):
        fake.put(aw(f"aw-{i}"))
    fake.broken_watches, fake.break_after = 1, 2
    task = asyncio.create_task(ctl(address, "-o", "json", "watch", "--count", "4", "--retry-backoff", "0.01"))
    await until(lambda: len(fake.requests("WatchAppWrappers")) == 2)
    fake.publish(aw("aw-0", RUNNING))
    result = await asyncio.wait_for(task, 30)
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.out.splitlines()]
    assert [e["revision"] for e in events] == [1, 2, 3, 4]
    assert events[-1]["type"] == "WATCH_EVENT_TYPE_MODIFIED"
    assert [r.since_revision for r in fake.requests("WatchAppWrappers")] == [0, 2]
    assert "resuming after revision 2" in result.err


async def test_watch_no_follow_prints_the_replay_as_lines(hub):
    address, fake = hub
    fake.put(aw("aw-a", RUNNING))
    fake.put(aw("aw-b"))
    result = await ctl(address, "watch", "--no-follow", "--since", "1", "--phase", "pending")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["REVISION", "EVENT", "ID", "PHASE", "CLUSTER", "PLANNED", "START"]
    assert [line.split()[:4] for line in lines[1:]] == [["2", "ADDED", "aw-b", "Pending"]]
    request = fake.requests("WatchAppWrappers")[0]
    assert request.since_revision == 1 and list(request.phases) == [PENDING]


async def test_watch_gives_up_after_the_retries(hub):
    address, fake = hub
    fake.put(aw("aw-0"))
    fake.put(aw("aw-1"))
    fake.broken_watches, fake.break_after = 10, 0
    result = await ctl(address, "watch", "--retries", "2", "--retry-backoff", "0.01")
    assert result.code == 64 + 14
    assert len(fake.requests("WatchAppWrappers")) == 3
    assert result.err.strip().splitlines()[-1] == "error: UNAVAILABLE: cannot reach the hub at " + address + (
        ": hub restarting"
    )


async def test_cancel(hub):
    address, fake = hub
    fake.put(aw("aw-1", RUNNING))
    result = await ctl(address, "cancel", "aw-1", "--reason", "wrong input")
    assert result.code == 0 and result.out.strip() == "aw-1 cancelled"
    assert fake.requests("CancelAppWrapper")[0].reason == "wrong input"
    missing = await ctl(address, "cancel", "aw-404")
    assert missing.code == 69 and "aw-404" in missing.err


async def test_clusters_register_list_upsert_deregister(hub):
    address, fake = hub
    example = str(ROOT / "deploy/examples/clusters.yaml")
    registered = await ctl(address, "clusters", "register", example)
    assert registered.code == 0, registered.err
    assert registered.out.splitlines() == [
        "carbon-kr registered (zone KR)",
        "carbon-jp registered (zone JP-TK)",
        "carbon-cn registered (zone CN)",
    ]
    sent = fake.requests("RegisterCluster")[0].cluster
    assert (
        sent.capacity.cpu_millis == 31600
        and sent.power.watts_per_gpu == 300
        and sent.kube_context == "carbon-kr"
    )

    again = await ctl(address, "clusters", "register", example)
    assert again.code == 64 + 6 and "ALREADY_EXISTS" in again.err
    upsert = await ctl(address, "clusters", "register", "--upsert", example)
    assert upsert.code == 0 and len(fake.requests("UpdateCluster")) == 3

    fake.clusters["carbon-kr"].ready = True
    listing = await ctl(address, "clusters")
    assert listing.code == 0
    rows = [line for line in listing.out.splitlines() if "carbon-" in line]
    assert len(rows) == 3 and "KR" in rows[0] and "yes" in rows[0] and "no" in rows[1]
    assert (await ctl(address, "-o", "json", "clusters", "list")).json()["clusters"][2]["zone"] == "CN"

    gone = await ctl(address, "clusters", "deregister", "carbon-cn")
    assert gone.code == 0 and set(fake.clusters) == {"carbon-kr", "carbon-jp"}


async def test_clusters_register_shows_a_cluster_the_hub_flags_not_ready(hub, tmp_path):
    address, fake = hub
    fake.unknown_contexts = {"carbon-us"}
    spec = "name: east\nzone: CN\nkube_context: carbon-us\ncapacity: {cpu: 8, memory: 32Gi}\n"
    result = await ctl(address, "clusters", "register", write(tmp_path, "east.yaml", spec))
    assert result.code == 0, result.err
    assert (
        result.out.strip() == "east registered (zone CN; NOT READY: probe refused: unknown spoke 'carbon-us')"
    )


async def test_stats(hub):
    address, fake = hub
    fake.put(aw("aw-1", RUNNING))
    fake.put(aw("aw-2", SUCCEEDED))
    result = await ctl(address, "stats")
    assert result.code == 0
    assert "2 total: Running 1, Succeeded 1" in result.out
    assert "400.0 g (40.0 % of the carbon-agnostic counterfactual)" in result.out
    assert "#7" in result.out and "2023-06-01 12:00:00Z" in result.out
    assert (await ctl(address, "-o", "json", "stats")).json()["avoided_gco2"] == 400.0


async def test_preview(hub, tmp_path):
    address, fake = hub
    fake.preview = hub_pb2.PreviewScheduleResponse(
        placeable=True,
        cluster="carbon-jp",
        planned_start=to_timestamp(HUB_NOW + timedelta(hours=2)),
        planned_gco2=30.0,
        start_now_gco2=120.0,
        start_now_cluster="carbon-cn",
        saving_gco2=90.0,
        delay=to_duration(7200),
    )
    result = await ctl(address, "preview", str(ROOT / "deploy/examples/appwrapper.yaml"))
    assert result.code == 0, result.err
    assert "120.0 g (carbon-agnostic: earliest start, on carbon-cn)" in result.out
    assert "carbon-jp" in result.out and "2h" in result.out and "90.0 g (75.0 %)" in result.out
    sent = fake.requests("PreviewSchedule")[0].app_wrapper
    assert sent.name == "train-resnet" and from_timestamp(sent.deadline) == HUB_NOW + timedelta(hours=6)
    many = await ctl(address, "preview", str(ROOT / "deploy/examples/appwrappers.yaml"))
    assert many.code == 2 and "preview takes one AppWrapper" in many.err


async def test_unreachable_hub_exits_78_with_one_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await ctl(f"127.0.0.1:{port}", "stats")
    assert result.code == 64 + 14
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"error: UNAVAILABLE: cannot reach the hub at 127.0.0.1:{port}")


async def test_console_entry_point_exit_status(hub):
    address, _ = hub
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "caspianctl", "--hub", address, "get", "missing",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 69
    assert out == b"" and b"NOT_FOUND" in err


@pytest.fixture
async def secured_hub(tmp_path, certs):
    """A fake hub that wants mTLS and a bearer token, as the shared runtime enforces them."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("- {token: tok-a, tenant: team-a}\n")
    settings = ServerSettings(
        port=0,
        metrics_port=-1,
        tls_cert_file=certs.path("server.crt"),
        tls_key_file=certs.path("server.key"),
        tls_client_ca_file=certs.path("ca.crt"),
        auth_tokens_file=str(tokens),
    )
    server = GrpcServer("fake-hub", settings)
    server.add_service(hub_pb2_grpc.add_HubServiceServicer_to_server, FakeHub(), SERVICE_NAME)
    await server.start()
    yield f"localhost:{server.port}", certs
    await server.stop(0)


async def test_mtls_and_bearer_token(secured_hub):
    address, certs = secured_hub
    tls = ["--tls-ca", certs.path("ca.crt"), "--tls-cert", certs.path("client.crt")]
    tls += ["--tls-key", certs.path("client.key")]
    ok = await ctl(address, *tls, "--token", "tok-a", "clusters")
    assert ok.code == 0, ok.err
    via_env = await ctl(
        address,
        "stats",
        env={
            "CASPIAN_TLS_CA_FILE": certs.path("ca.crt"),
            "CASPIAN_TLS_CERT_FILE": certs.path("client.crt"),
            "CASPIAN_TLS_KEY_FILE": certs.path("client.key"),
            "CASPIAN_TOKEN": "tok-a",
        },
    )
    assert via_env.code == 0, via_env.err
    no_token = await ctl(address, *tls, "clusters")
    assert no_token.code == 64 + 16 and no_token.err.startswith("error: UNAUTHENTICATED")
    no_client_cert = await ctl(address, "--tls-ca", certs.path("ca.crt"), "--token", "tok-a", "clusters")
    assert no_client_cert.code == 64 + 14
    plaintext = await ctl(address, "--token", "tok-a", "clusters")
    assert plaintext.code == 64 + 14


async def test_ctrl_c_ends_a_watch_quietly_with_130(hub):
    address, fake = hub
    fake.put(aw("aw-1"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "caspianctl", "--hub", address, "watch",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    header = await asyncio.wait_for(proc.stdout.readline(), 30)
    event = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert header.split()[0] == b"REVISION" and event.split()[:3] == [b"1", b"ADDED", b"aw-1"]
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert b"error" not in err


def test_a_cycle_without_a_solve_shows_its_outcome_never_unspecified():
    idle = hub_pb2.CycleSummary(cycle=3, outcome="idle", started_at=to_timestamp(HUB_NOW))
    text = cycle_text(idle)
    assert "#3" in text and "idle, no solve" in text and "UNSPECIFIED" not in text
    failed = hub_pb2.CycleSummary(cycle=4, outcome="error", notes=["cycle failed: StoreUnavailable: down"])
    assert "error, no solve" in cycle_text(failed)
