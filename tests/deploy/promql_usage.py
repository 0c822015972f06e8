"""What the observability-as-code files ask Prometheus for: every PromQL query of the Grafana
dashboards (panels and template variables) and of the alert rules, with Grafana's variables
replaced by concrete values, and, per query, the series it selects and the labels it groups or
matches on (read from the ``promql-parser`` AST, not from the text).

``test_observability_as_code`` compares these with what the running services export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import promql_parser as pp
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
RULES = ROOT / "deploy" / "prometheus" / "rules"

# Grafana's variables as a rendered query would have them: built-ins by their usual values, the
# dashboards' own by a value they can take.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "service": "orders",
    "instance": "orders:8001",
    "step": "paid",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
# Grafana's Prometheus variable functions; the query inside is PromQL (or a bare selector).
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<query>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<query>.+)\)\s*$")


def substitute(text: str) -> str:
    """``text`` with every Grafana variable replaced (an unknown one fails loudly)."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"no test value for the Grafana variable ${name}: add one")
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(value, text)


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from (for failure messages)."""

    where: str
    expr: str
    # A template variable's label_values(..., label): the label it lists.
    lists_label: str | None = None


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(path: Path) -> Iterator[Query]:
    board = json.loads(path.read_text())
    name = f"dashboard {path.name} ({board['title']})"
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield Query(
                f"{name}, panel {panel['id']} {panel['title']!r}", substitute(target["expr"])
            )
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        yield variable_query(f"{name}, variable ${variable['name']}", substitute(text))


def variable_query(where: str, text: str) -> Query:
    """A template variable's query as PromQL (what ``label_values``/``query_result`` wrap)."""
    if match := _LABEL_VALUES.match(text):
        selector = match["query"] or '{__name__=~".+"}'
        return Query(where, selector, lists_label=match["label"])
    if match := _QUERY_RESULT.match(text):
        return Query(where, match["query"])
    raise AssertionError(f"{where}: not a query this test reads: {text!r}")


def rule_queries(path: Path) -> Iterator[Query]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            yield Query(f"rules {path.name}, {group['name']}/{name}", rule["expr"])


def all_queries() -> list[Query]:
    queries = [q for path in dashboard_files() for q in dashboard_queries(path)]
    queries += [q for path in rule_files() for q in rule_queries(path)]
    return queries


@dataclass(frozen=True)
class Selector:
    """A vector selector: its metric, the label names it matches on, and the service it is
    pinned to (``service="x"``), if any."""

    metric: str
    labels: frozenset[str]
    service: str | None


@dataclass
class Usage:
    selectors: list[Selector] = field(default_factory=list)
    # (label, the selectors under the aggregation or binary operation that names it)
    grouping: list[tuple[str, list[Selector]]] = field(default_factory=list)


def usage(expr: pp.Expr) -> Usage:
    found = Usage()
    _visit(expr, found)
    return found


def _visit(node: Any, found: Usage) -> list[Selector]:
    """Record ``node``'s selectors and groupings; returns the selectors under it."""
    if isinstance(node, pp.VectorSelector):
        selector = _selector(node)
        found.selectors.append(selector)
        return [selector]
    if isinstance(node, pp.MatrixSelector):
        return _visit(node.vector_selector, found)
    if isinstance(node, pp.AggregateExpr):
        under = _visit(node.expr, found)
        if node.param is not None:
            under += _visit(node.param, found)
        if node.modifier is not None:
            found.grouping += [(label, under) for label in node.modifier.labels]
        return under
    if isinstance(node, pp.BinaryExpr):
        left, right = _visit(node.lhs, found), _visit(node.rhs, found)
        matching = node.modifier.matching if node.modifier is not None else None
        if matching is not None:
            found.grouping += [(label, left + right) for label in matching.labels]
        return left + right
    if isinstance(node, pp.Call):
        return [s for arg in node.args for s in _visit(arg, found)]
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return _visit(node.expr, found)
    return []  # number and string literals


def _selector(node: pp.VectorSelector) -> Selector:
    matchers = list(node.matchers.matchers)
    name = node.name or next(
        (m.value for m in matchers if m.name == "__name__" and m.op == pp.MatchOp.Equal), None
    )
    assert name, f"a selector without a metric name: {node}"
    service = next(
        (m.value for m in matchers if m.name == "service" and m.op == pp.MatchOp.Equal), None
    )
    labels = frozenset(m.name for m in matchers if m.name != "__name__")
    return Selector(name, labels, service)
