"""caspian.v1 stays wire- and JSON-compatible with its committed snapshot; the checker catches what breaks."""

import copy
import json

import pytest

from tests.ops.proto_compat import SNAPSHOT, breaking_changes, describe


def test_caspian_v1_has_no_breaking_change_against_the_snapshot():
    old = json.loads(SNAPSHOT.read_text())
    problems = breaking_changes(old, describe())
    assert problems == [], (
        "caspian.v1 changed incompatibly (see docs/operations.md); breaking changes go in caspian.v2:\n"
        + "\n".join(problems)
    )


def _first_field(api: dict, message: str) -> tuple[str, dict]:
    number = sorted(api["messages"][message], key=int)[0]
    return number, api["messages"][message][number]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: _first_field(a, "caspian.v1.AppWrapper")[1].update(name="ident"), "name 'id' -> 'ident'"),
        (lambda a: _first_field(a, "caspian.v1.Resources")[1].update(type=5), "type 3 -> 5"),
        (lambda a: a["messages"]["caspian.v1.Resources"].pop("2"), "field 2 (memory_bytes) removed"),
        (
            lambda a: a["enums"]["caspian.v1.AppWrapperPhase"].update({"4": "APP_WRAPPER_PHASE_RUN"}),
            "value 4",
        ),
        (lambda a: a["services"]["caspian.v1.HubService"].pop("GetStats"), "HubService/GetStats removed"),
        (
            lambda a: a["services"]["caspian.v1.HubService"]["WatchAppWrappers"].update(
                server_streaming=False
            ),
            "WatchAppWrappers changed",
        ),
    ],
    ids=["rename", "retype", "remove-field", "rename-enum-value", "remove-rpc", "unstream"],
)
def test_breaking_changes_are_reported(change, expected):
    old = describe()
    new = copy.deepcopy(old)
    change(new)
    problems = breaking_changes(old, new)
    assert len(problems) == 1 and expected in problems[0], problems


def test_additions_are_compatible():
    old = describe()
    new = copy.deepcopy(old)
    new["messages"]["caspian.v1.Resources"]["4"] = {
        "name": "ephemeral_bytes",
        "type": 3,
        "type_name": "",
        "repeated": False,
    }
    new["messages"]["caspian.v1.NewThing"] = {}
    new["enums"]["caspian.v1.AppWrapperPhase"]["99"] = "APP_WRAPPER_PHASE_PAUSED"
    new["services"]["caspian.v1.HubService"]["PauseAppWrapper"] = {
        "input": "caspian.v1.PauseAppWrapperRequest",
        "output": "caspian.v1.PauseAppWrapperResponse",
        "client_streaming": False,
        "server_streaming": False,
    }
    assert breaking_changes(old, new) == []
