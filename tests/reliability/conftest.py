"""The reliability report: each scenario test fills a `scenario` entry (lost, duplicated, detail); whether it
passed comes from the test's own outcome. With RELIABILITY_FULL=1 (`make reliability`) or RELIABILITY_REPORT=<path>
the entries are written at the end of the session to bench/results/reliability.json (or that path); entries of
scenarios that did not run this time are kept from the previous file."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.launcher.procs import ServiceProcess
from tests.reliability.hostile import ALLOWED_NAMESPACES, BULK_LIMIT, BULK_MESSAGES_LIMIT
from tests.reliability.support import FULL, HubProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_REPORT = ROOT / "bench" / "results" / "reliability.json"


@dataclass
class Scenario:
    scenario: str
    passed: bool = False
    lost: int | None = None
    duplicated: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "passed": self.passed,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "detail": self.detail,
        }


_ENTRIES: dict[str, Scenario] = {}
_STARTED = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.reliability_call_report = report


@pytest.fixture
def scenario(request) -> Scenario:
    """The report entry of this test; name it with @pytest.mark.scenario("...")."""
    marker = request.node.get_closest_marker("scenario")
    name = marker.args[0] if marker else request.node.name
    entry = Scenario(name)
    yield entry
    report = getattr(request.node, "reliability_call_report", None)
    entry.passed = bool(report is not None and report.passed)
    if report is not None and hasattr(report, "wasxfail"):
        entry.detail["known_bug"] = report.wasxfail
    if report is not None and report.failed and "failure" not in entry.detail:
        entry.detail["failure"] = (
            report.longreprtext.strip().splitlines()[-1][:500] if report.longreprtext else ""
        )
    _ENTRIES[name] = entry


def pytest_configure(config):
    config.addinivalue_line("markers", "scenario(name): the reliability report entry this test fills")


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("RELIABILITY_REPORT") or (str(DEFAULT_REPORT) if FULL else "")
    if not target or not _ENTRIES:
        return
    path = pathlib.Path(target)
    previous: list[dict[str, Any]] = []
    if path.exists():
        try:
            previous = json.loads(path.read_text()).get("scenarios", [])
        except (ValueError, AttributeError):
            previous = []
    merged = {entry["scenario"]: entry for entry in previous}
    merged.update({name: entry.entry() for name, entry in _ENTRIES.items()})
    document = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "full_size": FULL,
        "session_seconds": round(time.time() - _STARTED, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "scenarios": sorted(merged.values(), key=lambda e: e["scenario"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# -- processes the bad-input table and the fuzz share ------------------------------------------------------


@pytest.fixture(scope="session")
def door_hub(tmp_path_factory) -> HubProcess:
    """A hub with the three default clusters and its door limits; carbon, optimizer and dispatcher unreachable."""
    hub = HubProcess(
        tmp_path_factory.mktemp("door-hub"),
        {
            "CASPIAN_HUB_ALLOWED_NAMESPACES": ",".join(ALLOWED_NAMESPACES),
            "CASPIAN_HUB_BULK_MAX_ITEMS": str(BULK_LIMIT),
            "CASPIAN_HUB_BULK_MAX_MESSAGES": str(BULK_MESSAGES_LIMIT),
        },
    ).start()
    hub.register_clusters()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def optimizer_process() -> ServiceProcess:
    proc = ServiceProcess(
        "services.optimizer", env={"CASPIAN_OPTIMIZER_PORT": "0", "CASPIAN_OPTIMIZER_METRICS_PORT": "0"}
    ).start()
    yield proc
    proc.terminate()
