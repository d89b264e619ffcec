"""The PromQL behind the Grafana dashboards, for tests that check it against a real Prometheus.

    for query in dashboard_queries():
        result = prometheus_api.query(query.expr)      # every expression must return data
        assert result, query.where

`scrape_config(...)` writes a prometheus.yml for services running on local ports, with the same job names as
deploy/prometheus/prometheus.yml (the dashboards group by `job`).
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

# Words in PromQL that look like metric names but are not.
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Numbers and durations (0.95, 1e-9, 5m, 1h30m) outside brackets, e.g. after `offset`.
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])?)+", re.IGNORECASE)


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def dashboard_files(root: pathlib.Path = DASHBOARDS) -> list[pathlib.Path]:
    return sorted(root.glob("*.json"))


def _panels(panels: Iterable[dict]) -> Iterator[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?P<metric>[^,]+?)\s*,\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$"
)


def variables(dashboard: Mapping) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def used_variables(expr: str) -> set[str]:
    return {m.group(1) for m in _VARIABLE.finditer(expr) if not m.group(1).startswith("__")}


def expand(expr: str, dashboard: Mapping) -> str:
    """The expression as Grafana sends it with every variable on "All" (its allValue, e.g. `.*`)."""
    declared = variables(dashboard)

    def value(match: re.Match) -> str:
        variable = declared.get(match.group(1))
        return match.group(0) if variable is None else str(variable.get("allValue") or ".*")

    return _VARIABLE.sub(value, expr)


def variable_queries(dashboard: Mapping, name: str = "") -> list[PanelQuery]:
    """Each `label_values(metric, label)` template variable as the PromQL that lists the same values."""
    name = name or str(dashboard.get("title", ""))
    queries = []
    for variable in variables(dashboard).values():
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(text)
        if match is None:
            raise ValueError(
                f"{name}: variable {variable['name']}: only label_values(metric, label) is checked"
            )
        expr = f"group by ({match['label']}) ({match['metric']})"
        queries.append(PanelQuery(name, f"variable ${variable['name']}", "values", expr))
    return queries


def panel_queries(dashboard: Mapping, name: str = "", expanded: bool = True) -> list[PanelQuery]:
    """Every PromQL expression of every panel of one dashboard, in panel order, with template variables
    replaced by their "All" value (expanded=False keeps them)."""
    name = name or str(dashboard.get("title", ""))
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr and not target.get("hide"):
                text = expand(expr, dashboard) if expanded else expr
                queries.append(
                    PanelQuery(name, str(panel.get("title", "")), str(target.get("refId", "")), text)
                )
    return queries


def dashboard_queries(root: pathlib.Path = DASHBOARDS, with_variables: bool = False) -> list[PanelQuery]:
    """Every PromQL expression of every panel of every dashboard under `root`, variables on "All"; with
    `with_variables`, also the queries behind the template variables."""
    queries: list[PanelQuery] = []
    for path in dashboard_files(root):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        queries.extend(panel_queries(dashboard, path.name))
        if with_variables:
            queries.extend(variable_queries(dashboard, path.name))
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (a lexical scan, good for the dashboards' PromQL)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def scrape_config(
    targets: Mapping[str, Iterable[str]], interval: str = "1s", evaluation_interval: str = "1s"
) -> dict:
    """A prometheus.yml (as a dict) scraping `{job: ["127.0.0.1:9100", ...]}`, e.g. for a local stack."""
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": evaluation_interval,
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
            for job, addresses in targets.items()
        ],
    }
