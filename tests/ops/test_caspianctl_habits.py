"""caspianctl as a kubectl user expects it: flags anywhere, -o wide|name, -l, several ids, delete, version,
completion, stable JSON, footers only with a table on a terminal, and never a traceback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys

import pytest
import yaml
from google.protobuf import duration_pb2

from caspian.v1 import common_pb2, hub_pb2
from caspianctl.output import Output, data_of
from caspianctl.render import preview_table
from tests.ops.fake_hub import start_fake_hub
from tests.ops.test_caspianctl import PENDING, ROOT, RUNNING, aw, ctl


@pytest.fixture
async def hub():
    server, fake = await start_fake_hub()
    yield server.address, fake
    await server.stop(0)


async def test_global_flags_are_accepted_after_the_command(hub):
    address, fake = hub
    fake.put(aw("aw-1", RUNNING))
    # No --hub before the command: ctl() puts one there, so call main directly with everything after it.
    from caspianctl.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["get", "aw-1", "-o", "yaml", "--hub", address, "--timeout", "5"]
    assert await asyncio.to_thread(main, argv, stdout=out, stderr=err, env={}) == 0, err.getvalue()
    assert yaml.safe_load(out.getvalue())["id"] == "aw-1"
    listed = await ctl(address, "list", "-o", "json")
    assert [a["id"] for a in json.loads(listed.out)["app_wrappers"]] == ["aw-1"]
    # Given before and after, the later one wins, as in kubectl.
    both = await ctl(address, "-o", "yaml", "stats", "-o", "json")
    assert json.loads(both.out)["emitted_gco2"] == 600.0


async def test_output_name_and_wide(hub):
    address, fake = hub
    running = aw("aw-1", RUNNING, namespace="batch")
    running.status.baseline_cluster = "carbon-cn"
    fake.put(running)
    fake.put(aw("aw-2", PENDING))
    names = await ctl(address, "list", "-o", "name")
    assert names.out.splitlines() == ["appwrapper/aw-1", "appwrapper/aw-2"]
    wide = await ctl(address, "list", "-o", "wide")
    header = wide.out.splitlines()[0].split()
    assert "NAMESPACE" in header and "RUNTIME" in header and "batch" in wide.out
    assert "AGNOSTIC" in header and "carbon-cn" in wide.out


async def test_label_selector_on_list(hub):
    address, fake = hub
    fake.put(aw("aw-1", labels={"team": "vision", "tier": "gold"}))
    fake.put(aw("aw-2", labels={"team": "vision"}))
    fake.put(aw("aw-3", labels={"team": "nlp"}))
    picked = await ctl(address, "list", "-l", "team=vision,tier!=gold", "-o", "name")
    assert picked.out.splitlines() == ["appwrapper/aw-2"]
    assert (await ctl(address, "list", "-l", "team in (nlp, x)", "-o", "name")).out.split() == [
        "appwrapper/aw-3"
    ]
    assert (await ctl(address, "list", "-l", "!tier", "-o", "name")).out.split() == [
        "appwrapper/aw-2",
        "appwrapper/aw-3",
    ]
    bad = await ctl(address, "list", "-l", "team=(")
    assert bad.code == 2 and "bad label selector" in bad.err


async def test_get_several_ids_and_delete_is_cancel(hub):
    address, fake = hub
    fake.put(aw("aw-1", RUNNING))
    fake.put(aw("aw-2", PENDING))
    both = await ctl(address, "get", "aw-1", "aw-2", "-o", "json")
    assert [a["id"] for a in json.loads(both.out)] == ["aw-1", "aw-2"]
    table = await ctl(address, "get", "aw-1", "aw-2")
    assert "aw-1" in table.out and "aw-2" in table.out
    deleted = await ctl(address, "delete", "aw-2")
    assert deleted.code == 0 and fake.requests("CancelAppWrapper")[0].id == "aw-2"


async def test_version_and_completion(hub):
    address, _ = hub
    version = await ctl(address, "version", "-o", "json")
    assert version.code == 0 and json.loads(version.out)["hub_time"].startswith("2023-06-01")
    flag = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "caspianctl", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert flag.returncode == 0 and flag.stdout.startswith("caspianctl ")
    script = await ctl(address, "completion", "bash")
    assert "complete" in script.out and "caspianctl" in script.out


def test_shell_completion_completes_commands_and_flags(tmp_path):
    answers = tmp_path / "answers"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": "caspianctl li",
        "COMP_POINT": "13",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(answers),
    }
    subprocess.run([sys.executable, "-m", "caspianctl"], env=env, cwd=ROOT, timeout=30, capture_output=True)
    assert "list" in answers.read_text().split()


async def test_json_is_stable_and_never_crashes_on_a_malformed_stored_duration(hub):
    address, fake = hub
    broken = aw("aw-1", RUNNING)
    # Mixed signs (F5): stored by an older hub; protobuf's own JSON printer refuses it.
    broken.template.expected_runtime.CopyFrom(duration_pb2.Duration(seconds=10, nanos=-999999999))
    fake.put(broken)
    for command in (["get", "aw-1"], ["list"]):
        result = await ctl(address, "-o", "json", *command)
        assert result.code == 0, result.err
        assert '"expected_runtime": "9.000000001s"' in result.out
    table = await ctl(address, "get", "aw-1")
    assert table.code == 0 and "Traceback" not in table.err


def test_float_noise_is_rounded_away_and_numbers_stay_numbers():
    stats = hub_pb2.GetStatsResponse(
        avoided_gco2=-2.220446049250313e-16, emitted_gco2=1 / 3, app_wrappers_total=5
    )
    data = data_of(stats)
    assert data["avoided_gco2"] == 0.0 and data["emitted_gco2"] == 0.333333
    assert data["app_wrappers_total"] == 5
    assert "e-16" not in json.dumps(data)


def test_footers_go_to_stdout_on_a_terminal_and_nowhere_when_piped():
    out, err = io.StringIO(), io.StringIO()
    terminal = Output("table", out, err, terminal=True)
    terminal.footer("3 of 9 AppWrapper(s)")
    assert "3 of 9" in out.getvalue() and err.getvalue() == ""
    piped_out = io.StringIO()
    piped = Output("table", piped_out, err)
    piped.footer("3 of 9 AppWrapper(s)")
    assert piped_out.getvalue() == ""
    from caspianctl.render import appwrapper_table

    piped.table(appwrapper_table([aw("a-much-longer-id-than-the-others"), aw("x")]))
    lines = piped_out.getvalue().splitlines()
    assert lines and all(line == line.rstrip() for line in lines)
    assert not any(ch in piped_out.getvalue() for ch in "┃━│")


def test_preview_explains_a_negative_saving():
    preview = hub_pb2.PreviewScheduleResponse(
        placeable=True, cluster="carbon-jp", planned_gco2=12.0, start_now_gco2=10.0, saving_gco2=-2.0
    )
    out = io.StringIO()
    Output("table", out).table(preview_table(preview))
    text = out.getvalue()
    assert "Why negative" in text and "preferred" in text
    assert "carbon-agnostic" in text


async def test_token_file(hub, tmp_path):
    address, fake = hub
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    result = await ctl(address, "stats", "--token-file", str(token))
    assert result.code == 0
    assert fake.calls[-1].metadata.get("authorization") == "Bearer tok-from-file"
    missing = await ctl(address, "stats", "--token-file", str(tmp_path / "absent"))
    assert missing.code == 2 and missing.err.count("\n") == 1


def test_appwrapper_phase_enum_names_in_json():
    data = data_of(common_pb2.AppWrapper(id="a", status=common_pb2.AppWrapperStatus(phase=RUNNING)))
    assert data["status"]["phase"] == "APP_WRAPPER_PHASE_RUNNING"
