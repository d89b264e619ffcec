"""Prometheus config and rules, Grafana provisioning and dashboards: schemas, metric names and layout."""

from __future__ import annotations

import copy
import json
import pathlib
import re

import pytest
import yaml

from tests.ops.promql import (
    dashboard_files,
    dashboard_queries,
    expand,
    metric_names,
    panel_queries,
    scrape_config,
    used_variables,
    variable_queries,
    variables,
)
from tests.ops.schemas import errors

ROOT = pathlib.Path(__file__).resolve().parents[2]
METRICS_PORTS = {"hub": 9100, "carbon": 9101, "optimizer": 9102, "dispatcher": 9103}

# The project's fixed metric names (what each service exports; dashboards may use no other).
COUNTERS = {
    "api_requests_total",
    "carbon_provider_errors_total",
    "caspian_solves_total",
    "caspian_carbon_emitted_grams_total",
    "caspian_carbon_avoided_grams_total",
    "caspian_carbon_counterfactual_grams_total",
    "caspian_schedule_cycles_total",
    "caspian_optimizer_fallbacks_total",
    "caspian_jobs_created_total",
    "caspian_spoke_requests_total",
    "caspian_job_events_total",
    "caspian_job_suspend_patches_total",
}
GAUGES = {
    "grid_carbon_intensity_gco2_per_kwh",
    "carbon_data_age_seconds",
    "carbon_stale",
    "carbon_watch_subscribers",
    "caspian_optimality_gap",
    "appwrappers_total",
    "appwrappers_pending",
    "appwrappers_running",
    "appwrappers_completed",
    "clusters_total",
    "clusters_ready",
    "caspian_carbon_stale",
    "caspian_carbon_blind",
    "caspian_spoke_ready",
    "caspian_circuit_open",
}
HISTOGRAMS = {
    "api_request_duration_seconds",
    "carbon_fetch_seconds",
    "caspian_solve_seconds",
    "caspian_solve_jobs",
    "caspian_schedule_cycle_seconds",
    "caspian_dispatch_latency_seconds",
}
KNOWN = COUNTERS | GAUGES | {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")} | {"up"}


@pytest.fixture(scope="module")
def prometheus() -> dict:
    return yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in dashboard_files()}


def test_prometheus_config_validates(prometheus):
    assert errors("prometheus.json", prometheus) == []
    broken = copy.deepcopy(prometheus)
    broken["scrape_configs"][0]["scrape_intervall"] = "5s"
    assert errors("prometheus.json", broken) != [], "the schema must reject unknown keys"


def test_prometheus_scrapes_every_service_on_its_metrics_port(prometheus):
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for service, port in METRICS_PORTS.items():
        [sd] = jobs[service]["dns_sd_configs"]
        assert sd == {**sd, "names": [service], "type": "A", "port": port}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service, port in METRICS_PORTS.items():
        env = compose["services"][service]["environment"]
        assert env[f"CASPIAN_{service.upper()}_METRICS_PORT"] == str(port)
    assert prometheus["rule_files"] == ["/etc/prometheus/rules.yml"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts


def test_alert_rules_validate_and_use_known_metrics():
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    assert errors("prometheus.rules.json", rules) == []
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert metric_names(rule["expr"]) <= KNOWN, rule["alert"]


def test_dashboards_validate_as_grafana_dashboards(dashboards):
    assert list(dashboards) == ["caspian.json"]
    for name, dashboard in dashboards.items():
        # The schema describes the HTTP API's envelope; provisioning files hold the inner dashboard.
        assert errors("grafana-dashboard-5.x.json", {"dashboard": dashboard, "overwrite": True}) == [], name
        broken = copy.deepcopy(dashboard)
        broken["uid"] = "short"
        assert errors("grafana-dashboard-5.x.json", {"dashboard": broken}) != []


def test_panels_are_laid_out_on_the_grid(dashboards):
    for dashboard in dashboards.values():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] >= 1, panel["title"]


def test_every_query_uses_the_provisioned_datasource_and_known_metrics(dashboards):
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    [source] = datasource["datasources"]
    for dashboard in dashboards.values():
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["targets"], panel["title"]
            for target in [panel, *panel["targets"]]:
                assert target["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
    queries = dashboard_queries(with_variables=True)
    assert len(queries) >= 40
    for dashboard in dashboards.values():
        declared = set(variables(dashboard))
        for query in panel_queries(dashboard, expanded=False):
            assert used_variables(query.expr) <= declared, f"undeclared variable: {query.where}"
    for query in queries:
        assert "$" not in query.expr, f"a variable left after expansion: {query.where}"
        names = metric_names(query.expr)
        assert names, query.where
        assert names <= KNOWN, f"{query.where}: unknown {names - KNOWN}"


def _panel(dashboard: dict, title: str) -> dict:
    [panel] = [p for p in dashboard["panels"] if p["title"] == title]
    return panel


def test_the_seed_panels_and_the_operations_panels_are_there(dashboards):
    dashboard = dashboards["caspian.json"]
    # Zones and clusters are template variables read from the metrics, never hard-coded.
    assert set(variables(dashboard)) == {"zone", "cluster"}
    for query in panel_queries(dashboard, expanded=False):
        assert not re.search(r'zone="|cluster="', query.expr), query.where
    gauge = _panel(dashboard, "Grid intensity $zone")
    assert gauge["type"] == "gauge" and gauge["repeat"] == "zone"
    assert gauge["targets"][0]["expr"] == 'grid_carbon_intensity_gco2_per_kwh{zone=~"$zone"}'
    stats = {
        "AppWrappers total": {"appwrappers_total"},
        "Pending": {"appwrappers_pending"},
        "Running": {"appwrappers_running"},
        "Completed": {"appwrappers_completed"},
        "Clusters total": {"clusters_total"},
        "Clusters ready": {"clusters_ready", "clusters_total"},
    }
    for title, metrics in stats.items():
        panel = _panel(dashboard, title)
        assert panel["type"] == "stat" and metric_names(panel["targets"][0]["expr"]) == metrics
    assert "Failed" in _panel(dashboard, "Completed")["description"]
    # Ready of total: 1 of 3 ready is not green.
    ready = _panel(dashboard, "Clusters ready")["fieldConfig"]["defaults"]
    steps = ready["thresholds"]["steps"]
    assert ready["unit"] == "percentunit" and steps[-1] == {"color": "green", "value": 1}
    assert [s["color"] for s in steps if s["value"] is None or s["value"] <= 1 / 3] == ["red"]
    over_time = _panel(dashboard, "Grid intensity over time")
    assert over_time["type"] == "timeseries" and over_time["targets"][0]["legendFormat"] == "{{zone}}"

    def uses(title: str) -> set[str]:
        return set().union(*(metric_names(t["expr"]) for t in _panel(dashboard, title)["targets"]))

    assert uses("Carbon emitted vs avoided") == {
        "caspian_carbon_emitted_grams_total",
        "caspian_carbon_avoided_grams_total",
    }
    assert uses("Solve time") == {"caspian_solve_seconds_bucket"}
    assert uses("Optimality gap") == {"caspian_optimality_gap"}
    assert uses("Dispatch latency") == {"caspian_dispatch_latency_seconds_bucket"}
    assert uses("Cycle duration") == {"caspian_schedule_cycle_seconds_bucket"}
    # What an operator needs beyond the seed.
    assert uses("Carbon-blind") == {"caspian_carbon_blind"}
    assert uses("Forecasts stale") == {"caspian_carbon_stale"}
    assert uses("Stale carbon data by zone") == {"carbon_stale"}
    assert uses("Optimizer fallbacks (1 h)") == {"caspian_optimizer_fallbacks_total"}
    assert uses("Open circuits") == {"caspian_circuit_open"}
    assert uses("Failed Jobs on spokes") == {"caspian_job_events_total"}
    assert uses("Emitted vs carbon-agnostic counterfactual") == {
        "caspian_carbon_emitted_grams_total",
        "caspian_carbon_counterfactual_grams_total",
    }
    assert uses("API error ratio by service") == {"api_requests_total"}
    assert uses("Cycles by outcome") == {"caspian_schedule_cycles_total"}


def test_variables_expand_to_their_all_value():
    dashboard = {
        "templating": {"list": [{"name": "zone", "allValue": ".*", "query": "label_values(m, zone)"}]}
    }
    assert expand('m{zone=~"$zone"} + n{zone=~"${zone}"}', dashboard) == 'm{zone=~".*"} + n{zone=~".*"}'
    [query] = variable_queries(dashboard)
    assert query.expr == "group by (zone) (m)"


def test_grafana_provisioning_points_at_the_mounted_dashboards():
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/caspian.yaml").read_text())
    [entry] = provider["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{entry['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert pathlib.PurePosixPath(home).name in {p.name for p in dashboard_files()}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('grid_carbon_intensity_gco2_per_kwh{zone="KR"}', {"grid_carbon_intensity_gco2_per_kwh"}),
        (
            "histogram_quantile(0.95, sum by (le, job) (rate(caspian_dispatch_latency_seconds_bucket[5m])))",
            {"caspian_dispatch_latency_seconds_bucket"},
        ),
        ("sum(a_total) / clamp_min(sum(a_total) + sum(b_total), 1)", {"a_total", "b_total"}),
        ('up{job=~"hub|carbon"} == 0 and on (job) x offset 5m', {"up", "x"}),
        ("rate(m[1m]) > bool 1e-9", {"m"}),
    ],
)
def test_metric_names(expr, names):
    assert metric_names(expr) == names


def test_panel_queries_walks_collapsed_rows_and_skips_hidden_targets():
    dashboard = {
        "title": "t",
        "panels": [
            {
                "type": "row",
                "title": "r",
                "panels": [{"title": "inner", "targets": [{"refId": "A", "expr": "x"}]}],
            },
            {
                "title": "outer",
                "targets": [{"refId": "A", "expr": "y"}, {"refId": "B", "expr": "z", "hide": True}],
            },
        ],
    }
    assert [(q.panel, q.expr) for q in panel_queries(dashboard)] == [("inner", "x"), ("outer", "y")]


def test_scrape_config_for_a_local_stack_validates():
    config = scrape_config({"hub": ["127.0.0.1:9100"], "carbon": ["127.0.0.1:9101"]})
    assert errors("prometheus.json", config) == []
    assert [j["job_name"] for j in config["scrape_configs"]] == ["hub", "carbon"]
