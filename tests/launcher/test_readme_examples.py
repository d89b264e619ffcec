"""The README's grpcurl and Python examples, parsed out of README.md and run as written against a stack whose
simulated clock has been going for a while (it starts two simulated days in, past any date an example could
have hard-coded on day one)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from services.launcher.__main__ import _scheduler_env
from services.launcher.stack import ROOT, Stack, StackConfig

README = ROOT / "README.md"


def readme_block(after: str, language: str) -> str:
    """The first ```language block after the line starting with `after`."""
    text = README.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match, f"no {language} block after {after!r} in README.md"
    return match.group(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig(
        workdir=tmp_path_factory.mktemp("readme"),
        clock_start="2023-06-03T00:00:00Z",
        clock_speedup=720.0,
        env=_scheduler_env(720.0),
    )
    running = Stack(config).start()
    yield running
    running.stop()


def _local(script: str, stack: Stack) -> str:
    return script.replace("127.0.0.1:50050", stack.hub_address).replace(
        "127.0.0.1:50051", stack.services["carbon"].address
    )


def test_the_readme_grpcurl_examples_work_whenever_they_are_run(stack):
    script = _local(readme_block("**grpcurl**", "sh"), stack)
    assert "SubmitAppWrapper" in script
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert '"created": true' in result.stdout
    # GetAppWrapper answers the job just submitted, with the deadline a simulated day after the hub's now.
    assert '"id": "hello-1"' in result.stdout
    assert re.search(r'"deadline": "2023-06-04T', result.stdout), result.stdout


def test_the_readme_python_snippet_prints_the_phase_by_name(stack):
    snippet = _local(readme_block("**Python**", "python"), stack)
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("APP_WRAPPER_PHASE_"), result.stdout


def test_the_readme_caspianctl_commands_work(stack):
    block = readme_block("**caspianctl**", "sh")
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    # `watch` follows until Ctrl-C: here it stops at the end of the replay.
    commands = [line + (" --no-follow" if line.endswith(" watch") else "") for line in lines if line]
    assert any(" submit " in c for c in commands) and any(" -l " in c for c in commands)
    env = {**os.environ, "CASPIAN_HUB_ADDRESS": stack.hub_address}
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{command}: {result.stdout[-1000:]}{result.stderr[-1000:]}"
        assert "Traceback" not in result.stderr, command
        if " -l team=vision" in command:
            assert "train-resnet" in result.stdout
