"""caspianctl's parsing of quantities, durations, times and job/cluster files (no network)."""

import math
import pathlib
from datetime import UTC, date, datetime, timedelta

import pytest
from kubernetes.utils.quantity import parse_quantity

from caspian.v1 import common_pb2
from caspianctl.quantities import (
    QuantityError,
    format_cpu,
    format_duration,
    format_memory,
    parse_cpu_millis,
    parse_duration,
    parse_memory_bytes,
    parse_when,
)
from caspianctl.specs import (
    SpecError,
    appwrapper_from_document,
    cluster_from_document,
    file_key_for,
    load_documents,
    needs_now,
)
from services.common.timeconv import duration_seconds, from_timestamp

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOW = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("500m", 500),
        ("2", 2000),
        (2, 2000),
        (0.25, 250),
        ("1.5", 1500),
        ("0.1m", 1),
        ("100m", 100),
        (".5", 500),
    ],
)
def test_cpu(text, millis):
    assert parse_cpu_millis(text) == millis


@pytest.mark.parametrize("text", ["1k", "1Gi", "2.5", "1e3m", "250m"])
def test_quantities_mean_what_they_mean_on_a_spoke(text):
    """caspianctl reads a quantity as the Kubernetes client (the dispatcher, the simulator) reads a node's:
    "1k" CPU is a thousand cores there, so it is here (the old parser of its own refused it)."""
    assert parse_cpu_millis(text) == math.ceil(parse_quantity(text) * 1000)
    assert parse_memory_bytes(text) == math.ceil(parse_quantity(text))


@pytest.mark.parametrize("text", ["abc", "2x", -1, True, None, "", "-500m", float("nan"), "inf"])
def test_cpu_rejects(text):
    with pytest.raises(QuantityError):
        parse_cpu_millis(text)


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("1Gi", 2**30),
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("1e9", 10**9),
        ("1.5Gi", 3 * 2**29),
        (1048576, 2**20),
        ("129M", 129 * 10**6),
        ("64k", 64_000),
        ("2Ti", 2 * 2**40),
    ],
)
def test_memory(text, num_bytes):
    assert parse_memory_bytes(text) == num_bytes


@pytest.mark.parametrize("text", ["1GB", "-1Gi", "Gi", "1 Gi x", "lots", [1]])
def test_memory_rejects(text):
    with pytest.raises(QuantityError):
        parse_memory_bytes(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h30m", 5400),
        ("90s", 90),
        ("1.5h", 5400),
        ("2d", 172800),
        ("250ms", 0.25),
        (45, 45),
        ("45", 45),
        ("1d2h3m4s", 93784),
    ],
)
def test_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1x", "h", "1h 30m", "30m1", "soon", None, True])
def test_duration_rejects(text):
    with pytest.raises(QuantityError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6h", NOW + timedelta(hours=6)),
        ("+90m", NOW + timedelta(minutes=90)),
        ("now", NOW),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00+09:00", datetime(2024, 5, 1, 3, tzinfo=UTC)),
        (datetime(2024, 5, 1, 12), datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (date(2024, 5, 1), datetime(2024, 5, 1, tzinfo=UTC)),
        (3600, NOW + timedelta(hours=1)),
    ],
)
def test_when(value, expected):
    assert parse_when(value, NOW) == expected


@pytest.mark.parametrize("value", ["tomorrow", "2024-13-45T99:00:00Z", [], "6 hours"])
def test_when_rejects(value):
    with pytest.raises(QuantityError):
        parse_when(value, NOW)


def test_formatting_inverts_parsing():
    assert format_cpu(500) == "500m" and parse_cpu_millis(format_cpu(500)) == 500
    assert format_cpu(32000) == "32"
    assert format_memory(2**30) == "1Gi" and parse_memory_bytes(format_memory(2**30)) == 2**30
    assert format_memory(3 * 2**29) == "1536Mi" and format_memory(2**30 + 1) == "1.0Gi"
    assert format_duration(5400) == "1h30m" and parse_duration(format_duration(5400)).total_seconds() == 5400
    assert format_duration(0.25) == "250ms"


def _write(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_friendly_shape_maps_onto_the_appwrapper(tmp_path):
    path = _write(
        tmp_path,
        "job.yaml",
        """
name: train
tenant: vision
namespace: batch
image: python:3.11-slim
command: python -c "print('hi there')"
args: ["--epochs", 3]
env: {SEED: 7}
cpu: 500m
memory: 1Gi
gpus: 1
runtime: 30m
earliest_start: 1h
deadline: 2023-06-01T18:00:00Z
required_clusters: [carbon-kr, carbon-jp]
preferred_clusters: carbon-jp
excluded_clusters: [carbon-cn]
priority: 5
labels: {team: vision, tier: 2}
""",
    )
    [doc] = load_documents(path)
    aw = appwrapper_from_document(doc, NOW)
    assert (aw.name, aw.tenant, aw.namespace) == ("train", "vision", "batch")
    assert aw.template.image == "python:3.11-slim"
    assert list(aw.template.command) == ["python", "-c", "print('hi there')"]
    assert list(aw.template.args) == ["--epochs", "3"]
    assert [(e.name, e.value) for e in aw.template.env] == [("SEED", "7")]
    assert aw.template.resources == common_pb2.Resources(cpu_millis=500, memory_bytes=2**30, gpus=1)
    assert duration_seconds(aw.template.expected_runtime) == 1800
    assert from_timestamp(aw.earliest_start) == NOW + timedelta(hours=1)
    # YAML reads an unquoted RFC 3339 time as a datetime; it must stay absolute.
    assert from_timestamp(aw.deadline) == datetime(2023, 6, 1, 18, tzinfo=UTC)
    assert list(aw.required_clusters) == ["carbon-kr", "carbon-jp"]
    assert list(aw.preferred_clusters) == ["carbon-jp"]
    assert list(aw.excluded_clusters) == ["carbon-cn"]
    assert aw.priority == 5
    assert dict(aw.labels) == {"team": "vision", "tier": "2"}
    assert needs_now([doc])


def test_absolute_times_do_not_need_the_hub_clock(tmp_path):
    path = _write(
        tmp_path, "j.yaml", "name: a\ndeadline: '2023-06-01T18:00:00Z'\nearliest_start: 2023-06-01\n"
    )
    assert not needs_now(load_documents(path))
    assert needs_now(load_documents(_write(tmp_path, "k.yaml", "name: a\ndeadline: 6h\n")))
    assert needs_now(load_documents(_write(tmp_path, "l.yaml", "name: a\nearliest_start: now\n")))


def test_protobuf_json_shape_is_accepted(tmp_path):
    path = _write(
        tmp_path,
        "job.json",
        '{"name": "raw", "template": {"image": "busybox", "expected_runtime": "60s",'
        ' "resources": {"cpu_millis": 250}}, "deadline": "2023-06-01T13:00:00Z"}',
    )
    [doc] = load_documents(path)
    aw = appwrapper_from_document(doc, NOW)
    assert aw.template.resources.cpu_millis == 250
    assert duration_seconds(aw.template.expected_runtime) == 60
    assert not needs_now([doc])


def test_files_with_many_documents(tmp_path):
    multi = _write(tmp_path, "multi.yaml", "name: a\n---\nname: b\n---\n")
    listed = _write(tmp_path, "list.json", '[{"name": "c"}, {"name": "d"}]')
    items = _write(tmp_path, "items.yaml", "items:\n  - name: e\n  - name: f\n  - name: g\n")
    names = [d.body["name"] for p in (multi, listed, items) for d in load_documents(p)]
    assert names == ["a", "b", "c", "d", "e", "f", "g"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: a\ncpus: 2\n", ":2 (a): cpus: unknown key"),
        ("name: a\ncpu: lots\n", ":2 (a): cpu: expected a CPU amount"),
        ("name: a\nruntime: 0s\n", ":2 (a): runtime: must be above zero"),
        ("name: a\nmemory: 1GB\n", ":2 (a): memory: expected a memory amount like 512Mi or 1Gi (suffixes"),
        ("name: a\ndeadline: someday\n", ":2 (a): deadline: expected an RFC 3339 time"),
        ("name: a\n---\nname: b\ngpus: -1\n", ":4: item 1 (b): gpus: must be at least 0"),
        ("- just a string\n", ": expected a mapping"),
        ("name: [unclosed\n", ":2:1: not valid YAML"),
        ('{"name": "x",\n "template": {"imagee": "y"}}', " (x): Failed to parse template field"),
        ('{"name": "x",\n "template": }', ":2:14: not valid JSON"),
    ],
)
def test_bad_files_name_the_file_line_item_and_key(tmp_path, text, message):
    path = _write(tmp_path, "jobs.yaml", text)
    with pytest.raises(SpecError) as err:
        for doc in load_documents(path):
            appwrapper_from_document(doc, NOW)
    assert str(err.value).startswith(path + message), str(err.value)


def test_every_bad_key_is_reported_with_its_line_and_the_file_key_name(tmp_path):
    text = "name: a\ncpus: 2\ncpu: lots\nmemory: 1GB\nruntime: -5m\nimage: busybox\n"
    path = _write(tmp_path, "job.yaml", text)
    [doc] = load_documents(path)
    with pytest.raises(SpecError) as err:
        appwrapper_from_document(doc, NOW)
    lines = str(err.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:{n} (a)" for n in (2, 3, 4, 5)], lines
    assert [line.split(": ")[1] for line in lines] == ["cpus", "cpu", "memory", "runtime"]


def test_a_hub_error_on_a_proto_field_names_the_key_the_user_wrote(tmp_path):
    path = _write(tmp_path, "job.yaml", "name: a\nimage: busybox\nruntime: 30m\n")
    [doc] = load_documents(path)
    message = "app_wrapper.template.expected_runtime: must be above zero"
    assert file_key_for(message, doc) == f"key runtime at {path}:3"
    assert (
        file_key_for("app_wrapper.template.resources.cpu_millis: fits nowhere", doc) == f"key cpu at {path}"
    )
    assert file_key_for("app_wrapper.deadline: in the past", doc) == f"key deadline at {path}"
    assert file_key_for("something else went wrong", doc) == ""


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="No such file"):
        load_documents(str(tmp_path / "absent.yaml"))


def test_example_files_parse():
    [doc] = load_documents(str(ROOT / "deploy/examples/appwrapper.yaml"))
    aw = appwrapper_from_document(doc, NOW)
    assert aw.name == "train-resnet" and from_timestamp(aw.deadline) == NOW + timedelta(hours=6)
    many = [
        appwrapper_from_document(d, NOW)
        for d in load_documents(str(ROOT / "deploy/examples/appwrappers.yaml"))
    ]
    assert [a.name for a in many] == ["etl-nightly", "render-frames", "report-kr"]
    assert all(a.template.expected_runtime.seconds > 0 and a.template.image for a in many)


def test_example_clusters_are_the_three_default_spokes():
    docs = load_documents(str(ROOT / "deploy/examples/clusters.yaml"), ("items", "clusters"))
    clusters = [cluster_from_document(d) for d in docs]
    assert [(c.name, c.zone, c.kube_context) for c in clusters] == [
        ("carbon-kr", "KR", "carbon-kr"),
        ("carbon-jp", "JP-TK", "carbon-jp"),
        ("carbon-cn", "CN", "carbon-cn"),
    ]
    assert [(c.capacity.cpu_millis, c.capacity.memory_bytes, c.capacity.gpus) for c in clusters] == [
        (31600, 124 * 2**30, 4),
        (31600, 124 * 2**30, 0),
        (63600, 252 * 2**30, 0),
    ]
    assert all(c.power.watts_per_core == 12 and c.power.pue == 1.2 for c in clusters)


def test_cluster_errors(tmp_path):
    with pytest.raises(SpecError, match="name: required"):
        cluster_from_document(load_documents(_write(tmp_path, "c.yaml", "zone: KR\n"))[0])
    with pytest.raises(SpecError, match=r"power.pue: expected a number"):
        cluster_from_document(load_documents(_write(tmp_path, "d.yaml", "name: a\npower: {pue: high}\n"))[0])
    with pytest.raises(SpecError, match="capacity: expected a mapping"):
        cluster_from_document(
            load_documents(_write(tmp_path, "e.yaml", "name: a\ncapacity: {cores: 2}\n"))[0]
        )
