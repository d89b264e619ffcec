"""The protobuf contracts: committed stubs are fresh, and the conventions hold for every message and RPC."""

import filecmp
import pathlib

import pytest

from caspian.v1 import carbon_pb2, common_pb2, dispatcher_pb2, hub_pb2, optimizer_pb2
from tools.gen_protos import PROTO_ROOT, generate

FILES = [common_pb2, carbon_pb2, optimizer_pb2, hub_pb2, dispatcher_pb2]
SERVICES = {
    carbon_pb2: "CarbonService",
    optimizer_pb2: "OptimizerService",
    hub_pb2: "HubService",
    dispatcher_pb2: "DispatcherService",
}


def test_committed_stubs_match_fresh_generation(tmp_path: pathlib.Path):
    fresh = generate(tmp_path)
    assert fresh, "generation produced no files"
    committed_dir = PROTO_ROOT / "caspian" / "v1"
    committed = sorted(p.name for p in committed_dir.glob("*_pb2*.py*"))
    assert committed == sorted(p.name for p in fresh)
    stale = [p.name for p in fresh if not filecmp.cmp(p, committed_dir / p.name, shallow=False)]
    assert stale == [], f"stubs differ from the .proto files; run `make proto`: {stale}"


def test_package_and_services():
    for module, service in SERVICES.items():
        assert module.DESCRIPTOR.package == "caspian.v1"
        assert service in module.DESCRIPTOR.services_by_name


@pytest.mark.parametrize("module", list(SERVICES), ids=lambda m: m.__name__)
def test_every_rpc_has_its_own_request_and_response(module):
    service = module.DESCRIPTOR.services_by_name[SERVICES[module]]
    for method in service.methods:
        assert method.input_type.name == f"{method.name}Request", method.full_name
        assert method.output_type.name == f"{method.name}Response", method.full_name


def _all_enums():
    for module in FILES:
        yield from module.DESCRIPTOR.enum_types_by_name.values()
        for message in module.DESCRIPTOR.message_types_by_name.values():
            yield from message.enum_types


def test_enums_start_unspecified_and_are_prefixed():
    enums = list(_all_enums())
    assert enums
    for enum in enums:
        prefix = "".join("_" + c if c.isupper() else c.upper() for c in enum.name).lstrip("_")
        assert enum.values_by_number[0].name == f"{prefix}_UNSPECIFIED", enum.full_name
        for value in enum.values:
            assert value.name.startswith(prefix + "_"), value.name


def test_times_are_well_known_types():
    for module in FILES:
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for field in message.fields:
                if field.name.endswith(("_at", "_time", "deadline", "earliest_start", "planned_start")):
                    assert field.message_type is not None, f"{message.name}.{field.name} must be a Timestamp"
                    assert field.message_type.full_name in (
                        "google.protobuf.Timestamp",
                        "google.protobuf.Duration",
                    ), f"{message.name}.{field.name}"


def test_resource_quantities_carry_units():
    fields = {f.name for f in common_pb2.Resources.DESCRIPTOR.fields}
    assert fields == {"cpu_millis", "memory_bytes", "gpus"}
    assert "gco2_per_kwh" in {f.name for f in common_pb2.IntensityPoint.DESCRIPTOR.fields}
    assert "energy_wh" in {f.name for f in common_pb2.CarbonAccount.DESCRIPTOR.fields}
