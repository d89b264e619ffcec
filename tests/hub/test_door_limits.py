"""The API layer's bounds and scoping, over real gRPC: page tokens, long ids, Watch limits and phases, bulk
streams, tenant-scoped GetStats and PreviewSchedule, store failures."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3

import grpc
import pytest
from google.protobuf.message import DecodeError

from caspian.v1 import hub_pb2
from services.hub.pagetoken import PageTokens
from services.hub.storagefaults import storage_error
from tests.hub.conftest import app_wrapper
from tests.hub.test_auth import ADMIN, TEAM_A, TEAM_B, authed  # noqa: F401 - the fixture
from tests.hub.test_watch import Watcher


async def _error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED_TOKENS = {
    "infinity": _b64(b'{"a": Infinity, "f": "x"}'),
    "deep nesting": _b64(b"[" * 50_000 + b"]" * 50_000),
    "offset 2^63": _b64(json.dumps({"a": 2**63, "f": "0" * 12}).encode()),
    "negative offset": _b64(json.dumps({"a": -1, "f": "0" * 12}).encode()),
    "not base64": "%%%",
    "right length, wrong mac": _b64(bytes(32)),
    "another key's token": PageTokens(b"k" * 32).encode(3, [], "", ""),
}


@pytest.mark.parametrize("name", FORGED_TOKENS)
async def test_every_forged_page_token_is_invalid_argument(harness, name):
    error = await _error(
        harness.stub.ListAppWrappers(
            hub_pb2.ListAppWrappersRequest(page_token=FORGED_TOKENS[name]), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith("page_token:")
    assert len(error.details()) < 300


def test_a_page_token_past_2_63_is_refused_even_when_signed():
    tokens = PageTokens(b"s" * 32)
    with pytest.raises(Exception, match="page_token"):
        tokens.decode(tokens.encode(2**63, [], "", ""), [], "", "")
    assert tokens.decode(tokens.encode(2**63 - 1, [1], "c", "t"), [1], "c", "t") == 2**63 - 1


@pytest.mark.parametrize("method", ["GetAppWrapper", "CancelAppWrapper"])
async def test_a_20000_character_id_gets_a_short_not_found(harness, method):
    request = getattr(hub_pb2, f"{method}Request")(id="x" * 20_000)
    error = await _error(getattr(harness.stub, method)(request, timeout=10))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details().startswith("id: AppWrapper 'xxx") and len(error.details()) < 200


async def test_watch_refuses_unknown_phases_like_list(harness):
    watcher = Watcher(harness.stub, hub_pb2.WatchAppWrappersRequest(phases=[99]))
    try:
        error = await _error(watcher.next())
    finally:
        watcher.close()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("phases[0]:")


async def test_watch_streams_are_limited_in_all_and_per_tenant(make_harness, tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "- {token: tok-ops, tenant: ops, roles: [admin]}\n- {token: tok-a, tenant: team-a}\n"
        "- {token: tok-b, tenant: team-b}\n"
    )
    harness = await make_harness(
        auth_tokens_file=str(tokens), watch_max_streams=3, watch_max_streams_per_tenant=2
    )
    open_: list[Watcher] = []

    def watch(metadata):
        watcher = Watcher.__new__(Watcher)
        watcher.queue = asyncio.Queue()
        watcher.call = harness.stub.WatchAppWrappers(
            hub_pb2.WatchAppWrappersRequest(), metadata=metadata, timeout=60
        )
        watcher.task = asyncio.ensure_future(watcher._pump())
        open_.append(watcher)
        return watcher

    try:
        for _ in range(2):
            await watch(TEAM_A).until_bookmark()
        per_tenant = await _error(watch(TEAM_A).next())
        assert per_tenant.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "WATCH_MAX_STREAMS_PER_TENANT" in per_tenant.details()
        await watch(TEAM_B).until_bookmark()
        in_all = await _error(watch(TEAM_B).next())
        assert in_all.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "CASPIAN_HUB_WATCH_MAX_STREAMS" in in_all.details()
        open_[0].close()
        await asyncio.wait_for(asyncio.gather(open_[0].task, return_exceptions=True), 10)

        async def freed() -> bool:
            return harness.hub.broadcaster.watchers == 2

        for _ in range(100):
            if await freed():
                break
            await asyncio.sleep(0.05)
        await watch(TEAM_A).until_bookmark()
    finally:
        for watcher in open_:
            watcher.close()


async def test_a_stream_of_empty_messages_is_bounded(make_harness):
    harness = await make_harness(bulk_max_messages=50)
    await harness.register_clusters()

    def messages():
        for _ in range(51):
            yield hub_pb2.SubmitAppWrappersRequest()

    error = await _error(harness.stub.SubmitAppWrappers(messages(), timeout=30))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 50 messages" in error.details()


async def test_a_stream_is_bounded_in_bytes(make_harness):
    harness = await make_harness(bulk_max_bytes=20_000)
    await harness.register_clusters()
    item = hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(harness.clock))
    item.app_wrapper.template.args.append("y" * 5000)

    def messages():
        for i in range(5):
            one = hub_pb2.SubmitAppWrapperRequest()
            one.CopyFrom(item)
            one.app_wrapper.id = f"big-{i}"
            yield hub_pb2.SubmitAppWrappersRequest(items=[one])

    error = await _error(harness.stub.SubmitAppWrappers(messages(), timeout=30))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "BULK_MAX_BYTES" in error.details()


async def test_get_stats_is_scoped_to_the_tenant(authed):  # noqa: F811
    stub = authed.stub
    for i in range(3):
        await stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(authed.clock, id=f"a-{i}", tenant="")),
            metadata=TEAM_A,
            timeout=10,
        )
    await stub.SubmitAppWrapper(
        hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(authed.clock, id="b-0", tenant="")),
        metadata=TEAM_B,
        timeout=10,
    )
    await stub.TriggerSchedule(hub_pb2.TriggerScheduleRequest(), metadata=ADMIN, timeout=30)
    admin = await stub.GetStats(hub_pb2.GetStatsRequest(), metadata=ADMIN, timeout=10)
    team_a = await stub.GetStats(hub_pb2.GetStatsRequest(), metadata=TEAM_A, timeout=10)
    team_b = await stub.GetStats(hub_pb2.GetStatsRequest(), metadata=TEAM_B, timeout=10)
    assert (admin.app_wrappers_total, team_a.app_wrappers_total, team_b.app_wrappers_total) == (4, 3, 1)
    assert admin.last_cycle.considered == 4
    assert team_b.last_cycle.cycle == admin.last_cycle.cycle and team_b.last_cycle.considered == 0
    assert team_b.planned_gco2 < admin.planned_gco2


async def test_preview_is_scoped_to_the_tenant(authed):  # noqa: F811
    error = await _error(
        authed.stub.PreviewSchedule(
            hub_pb2.PreviewScheduleRequest(app_wrapper=app_wrapper(authed.clock, tenant="team-a")),
            metadata=TEAM_B,
            timeout=10,
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and error.details().startswith(
        "app_wrapper.tenant"
    )


async def test_another_tenants_id_answers_exactly_as_ones_own_taken_id(authed):  # noqa: F811
    """Ids are global (docs/hub.md): B learns only that an id is taken, never whose, nor its spec or state."""
    stub = authed.stub
    for tenant_metadata, job_id in ((TEAM_A, "shared-name"), (TEAM_B, "b-own")):
        await stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(authed.clock, id=job_id, tenant="")),
            metadata=tenant_metadata,
            timeout=10,
        )
    answers = []
    for job_id in ("shared-name", "b-own"):
        other = app_wrapper(authed.clock, id=job_id, tenant="")
        other.template.image = "python:3.12-slim"
        error = await _error(
            stub.SubmitAppWrapper(
                hub_pb2.SubmitAppWrapperRequest(app_wrapper=other), metadata=TEAM_B, timeout=10
            )
        )
        answers.append((error.code(), error.details().replace(job_id, "<id>")))
    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.ALREADY_EXISTS
    assert "team-a" not in answers[0][1]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (sqlite3.OperationalError("database is locked"), "UNAVAILABLE"),
        (sqlite3.OperationalError("database or disk is full"), "RESOURCE_EXHAUSTED"),
        (sqlite3.OperationalError("disk I/O error"), "UNAVAILABLE"),
        (sqlite3.DatabaseError("database disk image is malformed"), "UNAVAILABLE"),
        (OSError(28, "No space left on device"), "RESOURCE_EXHAUSTED"),
        (DecodeError("Error parsing message"), "DATA_LOSS"),
        (ValueError("a bug"), None),
    ],
)
def test_store_failures_map_to_what_a_caller_can_act_on(error, code):
    mapped = storage_error(error)
    assert (mapped.code if mapped is not None else None) == code


async def test_a_damaged_stored_record_answers_data_loss_and_the_others_are_served(harness):
    await harness.register_clusters()
    for job_id in ("sound", "damaged"):
        await harness.stub.SubmitAppWrapper(
            hub_pb2.SubmitAppWrapperRequest(app_wrapper=app_wrapper(harness.clock, id=job_id)), timeout=10
        )
    with sqlite3.connect(harness.hub.settings.db_path, timeout=10) as conn:
        conn.execute("UPDATE appwrappers SET body = ? WHERE id = 'damaged'", (b"\xff\xff\xff\xff",))
    error = await _error(harness.stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="damaged"), timeout=10))
    assert error.code() == grpc.StatusCode.DATA_LOSS, error.details()
    assert "damaged" in error.details()
    sound = await harness.stub.GetAppWrapper(hub_pb2.GetAppWrapperRequest(id="sound"), timeout=10)
    assert sound.app_wrapper.id == "sound"
