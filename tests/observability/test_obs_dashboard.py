"""The Grafana dashboard, the alert rules and docs/metrics.md against what a running daemon
actually exports: every metric named in a query exists, and every exported family is
documented."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from gateway_harness import Daemon, wait_subscribers
from obs_support import REPO_ROOT, exported_names, gateway_config, promql_metric_names
from util.ports import free_udp_port

DASHBOARD = REPO_ROOT / "deploy/grafana/dashboards/spead2-gateway.json"
RULES = REPO_ROOT / "deploy/prometheus/spead2-gateway.rules.yaml"
METRICS_DOC = REPO_ROOT / "docs/metrics.md"
PREFIXES = ("spead2_gateway_", "grpc_server_")
# Added by Prometheus itself for every target.
SYNTHETIC = {"up"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Sample names of a daemon with a receive stream (and memory pool), a send stream, a
    live subscriber and a finished gRPC call, so every family is present."""
    config = gateway_config(free_udp_port(), free_udp_port())
    with Daemon(tmp_path_factory.mktemp("gateway"), config) as daemon:
        daemon.wait_ready()
        with daemon.client() as client, client.subscribe("beam"):
            wait_subscribers(client, "beam", 1)
            yield exported_names(daemon.scrape())
        assert daemon.terminate() == 0, daemon.log()


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def _rule_exprs() -> list[str]:
    """The ``expr`` of every rule: inline, or a ``|`` block of deeper-indented lines (the
    two forms the rules file uses; no YAML library is a dependency of the tests)."""
    lines = RULES.read_text(encoding="utf-8").splitlines()
    exprs: list[str] = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if match is None:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value != "|":
            exprs.append(value)
            continue
        block = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        exprs.append(" ".join(block).strip())
    alerts = sum(1 for line in lines if re.match(r"^\s*- (alert|record):", line))
    assert len(exprs) == alerts, "every rule has exactly one expr"
    return exprs


def test_dashboard_has_stream_variable_and_queries() -> None:
    """A ``stream`` template variable exists and every panel filters by it or is gRPC."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert "stream" in [v["name"] for v in dashboard["templating"]["list"]]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            assert "$stream" in expr or "grpc_server_" in expr, (panel["title"], expr)


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_queries_name_only_exported_metrics(exported: set[str], source: str) -> None:
    """Each metric a dashboard panel or alert rule queries is exported by the daemon."""
    exprs = _dashboard_exprs() if source == "dashboard" else _rule_exprs()
    assert exprs
    named: set[str] = set()
    for expr in exprs:
        found = promql_metric_names(expr, PREFIXES)
        assert found or "up{" in expr, f"no metric in {expr!r}"
        named |= found
    missing = named - exported - SYNTHETIC
    assert not missing, f"{source} queries metrics the daemon does not export: {sorted(missing)}"


def test_every_exported_family_is_documented(exported: set[str]) -> None:
    """docs/metrics.md names every exported metric (histogram and ``_created`` samples are
    covered by their family)."""
    doc = METRICS_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_:][a-z0-9_:]*)`", doc))
    missing = []
    for name in sorted(exported):
        family = re.sub(r"_(bucket|sum|count|created)$", "", name)
        family_total = re.sub(r"_created$", "_total", name)
        if not {name, family, family_total} & documented:
            missing.append(name)
    assert not missing, f"undocumented metrics: {missing}"


def test_promql_name_extraction() -> None:
    """Label names, label values and range selectors are not taken for metric names."""
    expr = (
        'sum by (grpc_method) (rate(grpc_server_handled_total{grpc_code="spead2_gateway_x"}'
        "[5m])) / spead2_gateway_ring_heaps"
    )
    assert promql_metric_names(expr, PREFIXES) == {
        "grpc_server_handled_total",
        "spead2_gateway_ring_heaps",
    }
