"""Observability as code tells the truth (issue 12): the Grafana dashboards are valid,
provisionable JSON; every query of theirs and of the alert rules parses as PromQL; and every
metric they use is one the running services export, with the labels they select and group by.

The exports are read from the session's real stack (``waybill up``: tests/up_stack.py) after
one order has gone through the saga, so that most families have samples and their label names
can be checked; prometheus-client prints ``# TYPE`` even for a labelled family without samples,
so names are checked for every family, labels where samples exist. A selector pinned to one
service (``service="payments"``) must be exported by that service; others by any. Prometheus'
own series (``up``, ``ALERTS``, ``scrape_*``) and the labels it adds at scrape time (``job``,
``instance``, and ``service`` from deploy/prometheus/prometheus.yml) are excepted.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import httpx
import promql_parser as pp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.deploy.promql_usage import (
    ROOT,
    Query,
    Selector,
    all_queries,
    dashboard_files,
    panels,
    usage,
)
from tests.saga_stack import order_body
from tests.up_stack import WaybillUp

from waybill.devstack.testing import eventually

DATASOURCE_UID = "prometheus"  # deploy/grafana/provisioning/datasources/prometheus.yaml
SCRAPED_SERVICES = ("orders", "payments", "shipping", "notifier", "monitor")
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
PROMETHEUS_PREFIXES = ("scrape_",)
TARGET_LABELS = {"job", "instance", "service"}
# The series a family of each type shows at /metrics (the parser drops a counter's "_total").
SERIES_OF_TYPE = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}

# --- static: the files themselves ----------------------------------------------------------


def test_dashboards_are_valid_json_with_unique_ids_on_the_provisioned_datasource():
    files = dashboard_files()
    assert {p.stem for p in files} >= {"overview", *SCRAPED_SERVICES}, files
    uids: Counter[str] = Counter()
    problems = []
    for path in files:
        board = json.loads(path.read_text())  # raises on invalid JSON, naming the position
        uids[board["uid"]] += 1
        assert board["schemaVersion"] >= 39, f"{path.name}: not a Grafana 11 schema"
        ids = Counter(panel["id"] for panel in panels(board))
        problems += [f"{path.name}: panel id {i} used {n} times" for i, n in ids.items() if n > 1]
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            sources = [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]
            problems += [
                f"{path.name}: panel {panel['id']} {panel['title']!r} uses datasource {s}"
                for s in sources
                if not s or s.get("uid") != DATASOURCE_UID
            ]
        for variable in board["templating"]["list"]:
            if variable.get("type") == "query" and variable["datasource"]["uid"] != DATASOURCE_UID:
                problems.append(f"{path.name}: variable ${variable['name']} on another datasource")
    problems += [f"uid {uid} used by {n} dashboards" for uid, n in uids.items() if n > 1]
    assert not problems, "\n".join(problems)


def test_compose_mounts_the_dashboards_where_the_provider_reads_them():
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/waybill.yaml").read_text()
    )["providers"][0]["options"]["path"]
    volumes = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"][
        "volumes"
    ]
    assert any(v.split(":")[:2] == ["./deploy/grafana/dashboards", provider] for v in volumes), (
        volumes
    )


def test_every_panel_variable_and_rule_query_parses_as_promql():
    queries = all_queries()
    assert len(queries) > 50, "fewer queries than the dashboards hold: is the walk broken?"
    problems = []
    for query in queries:
        try:
            pp.parse(query.expr)
        except (ValueError, RuntimeError) as exc:
            problems.append(f"{query.where}: {query.expr!r}: {exc}")
    assert not problems, "\n".join(problems)


# --- against the running services -----------------------------------------------------------

Exports = dict[str, dict[str, set[str]]]  # service -> series name -> label names on its samples


def exported_series(text: str) -> dict[str, set[str]]:
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SERIES_OF_TYPE[family.type]:
            series.setdefault(family.name + suffix, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def scrape(stack: WaybillUp) -> Exports:
    exports = {}
    for service in SCRAPED_SERVICES:
        answer = httpx.get(f"{stack.url(service)}/metrics", timeout=10)
        assert answer.status_code == 200, f"{service} /metrics: {answer.status_code}"
        exports[service] = exported_series(answer.text)
    return exports


async def one_order_through_the_saga(stack: WaybillUp) -> None:
    """A paid order, so the families along the saga have samples (labels to check): HTTP,
    appends, outbox, every consumer group's records and lag, the charge queue."""
    tenant = f"t_{uuid.uuid4().hex[:12]}"
    admin, service = await stack.new_key(tenant, "admin"), await stack.new_key(tenant, "service")
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.url("orders"), timeout=15) as orders:
        stocked = await orders.put(
            f"/inventory/{sku}", json={"available": 5}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert stocked.status_code == 200, stocked.text
        auth = {"Authorization": f"Bearer {service}"}
        placed = await orders.post("/orders", json=order_body(sku), headers=auth)
        assert placed.status_code == 201, placed.text

        async def status() -> str:
            return str(
                (await orders.get(f"/orders/{placed.json()['id']}", headers=auth)).json()["status"]
            )

        await eventually(status, until=lambda s: s == "paid", timeout_s=60, what="the order paid")

    def every_group_applied() -> bool:
        return all(
            "waybill_consumer_records_total" in series
            and series["waybill_consumer_records_total"]  # samples, not the TYPE line alone
            for series in scrape(stack).values()
        )

    await eventually(every_group_applied, timeout_s=60, what="every consumer group applied records")


def _pinned_exports(selector: Selector, exports: Exports) -> list[dict[str, set[str]]]:
    if selector.service is not None:
        return [exports.get(selector.service, {})]
    return list(exports.values())


def _is_prometheus_own(metric: str) -> bool:
    return metric in PROMETHEUS_SERIES or metric.startswith(PROMETHEUS_PREFIXES)


def missing_metrics(query: Query, exports: Exports) -> list[str]:
    problems = []
    for selector in usage(pp.parse(query.expr)).selectors:
        if _is_prometheus_own(selector.metric):
            continue
        if not any(selector.metric in series for series in _pinned_exports(selector, exports)):
            where = selector.service or "any service"
            problems.append(f"{query.where}: metric {selector.metric} not exported by {where}")
    return problems


def _sampled_labels(selector: Selector, exports: Exports) -> list[set[str]]:
    """The label names of the metric's samples, per service exporting it with samples."""
    series = _pinned_exports(selector, exports)
    return [s[selector.metric] for s in series if s.get(selector.metric)]


def _label_known(label: str, selector: Selector, exports: Exports) -> bool | None:
    """True/False where the metric has samples to tell; None where it has none (yet)."""
    if label in TARGET_LABELS or _is_prometheus_own(selector.metric):
        return True
    seen = _sampled_labels(selector, exports)
    return any(label in labels for labels in seen) if seen else None


def unknown_labels(query: Query, exports: Exports) -> list[str]:
    found = usage(pp.parse(query.expr))
    uses = [(label, s, "selects") for s in found.selectors for label in s.labels]
    uses += [(label, s, "groups by") for label, under in found.grouping for s in under]
    if query.lists_label is not None:
        uses += [(query.lists_label, s, "lists") for s in found.selectors]
    return [
        f"{query.where}: {how} label {label!r}, which {selector.metric} does not carry"
        for label, selector, how in uses
        if _label_known(label, selector, exports) is False
    ]


@pytest.mark.infra
async def test_every_metric_and_label_the_queries_use_is_exported_by_the_running_services(
    stack: WaybillUp,
):
    await one_order_through_the_saga(stack)
    exports = scrape(stack)
    queries = all_queries()

    problems = [p for q in queries for p in missing_metrics(q, exports)]
    problems += [p for q in queries for p in unknown_labels(q, exports)]

    assert not problems, "\n".join(problems)
    # The label check had samples to look at for most of what the queries use.
    selectors = {s for q in queries for s in usage(pp.parse(q.expr)).selectors}
    checked = [s for s in selectors if _is_prometheus_own(s.metric) or _sampled_labels(s, exports)]
    assert len(checked) >= len(selectors) // 2, (
        f"labels checked for {len(checked)} of {len(selectors)}"
    )
