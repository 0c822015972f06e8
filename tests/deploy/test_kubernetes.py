"""deploy/k8s, checked offline: every overlay renders with kustomize, every object is valid
against a strict schema (unknown fields rejected), and the rendered output keeps our own rules
(ADR 0019). No cluster, no network: nothing here is applied or admitted (see the ADR)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from tests.deploy import k8s_support as k

from waybill.common import topics
from waybill.common.http.health import health_router

ROLES = ("api", "consumer", "relay", "workers")
APP_OVERLAYS = pytest.mark.parametrize("overlay", k.APP_OVERLAYS)
SECRET_DEFAULTS_SAMPLE = ("sk_test_waybill", "whsec_sandbox_dev", "waybill-dev-delivery-code-key")

# What each Deployment must take from a Secret: the settings whose defaults are dev values or
# the embedded infrastructure. (service, component) -> env names.
REQUIRED_SECRETS: dict[tuple[str, str], set[str]] = {
    **{(s, "api"): {"WAYBILL_DATABASE_URL", "WAYBILL_AUTH_DATABASE_URL"} for s in k.SERVICES},
    **{(s, "consumer"): {"WAYBILL_DATABASE_URL"} for s in k.SERVICES},
    **{(s, "relay"): {"WAYBILL_DATABASE_URL"} for s in k.SERVICES},
    # The migration Job also creates the shared auth schema (waybill-service migrate).
    **{(s, "migration"): {"WAYBILL_DATABASE_URL", "WAYBILL_AUTH_DATABASE_URL"} for s in k.SERVICES},
}
for _component in ("api", "consumer"):
    REQUIRED_SECRETS[("shipping", _component)] |= {"WAYBILL_DELIVERY_CODE_KEYS"}
    REQUIRED_SECRETS[("notifier", _component)] |= {"WAYBILL_DELIVERY_CODE_KEYS"}
REQUIRED_SECRETS[("payments", "api")] |= {
    "WAYBILL_PROVIDER_API_KEY",
    "WAYBILL_PROVIDER_WEBHOOK_SECRET",
}
REQUIRED_SECRETS[("notifier", "api")] |= {"WAYBILL_NOTIFIER_SMS_API_KEY"}
REQUIRED_SECRETS[("monitor", "api")] |= {"WAYBILL_MONITOR_SESSION_SECRET"}
REQUIRED_SECRETS[("sandbox", "api")] = {
    "WAYBILL_DATABASE_URL",
    "WAYBILL_PROVIDER_API_KEY",
    "WAYBILL_PROVIDER_WEBHOOK_SECRET",
}


def deployments(overlay: str) -> list[dict[str, Any]]:
    return k.of_kind(k.render(overlay), "Deployment")


def component(obj: dict[str, Any]) -> str:
    return k.labels(obj)["app.kubernetes.io/component"]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    only: dict[str, Any]
    (only,) = k.pod_spec(workload)["containers"]
    return only


def roles(deployment: dict[str, Any]) -> set[str]:
    """What WAYBILL_ROLES makes the Deployment run (unset: every role)."""
    values = [v["value"] for v in container(deployment)["env"] if v["name"] == "WAYBILL_ROLES"]
    return set(values[0].split(",")) if values else set(ROLES)


# --- schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", k.OVERLAYS)
def test_every_rendered_object_is_valid_against_a_strict_schema(overlay: str) -> None:
    objects = k.render(overlay)
    assert objects, f"{overlay} renders nothing"
    errors = {f"{o['kind']}/{o['metadata']['name']}": k.schema_errors(o) for o in objects}
    assert {name: e for name, e in errors.items() if e} == {}


def _broken(overlay: str, kind: str, break_it: Any) -> dict[str, Any]:
    obj = copy.deepcopy(k.of_kind(k.render(overlay), kind)[0])
    break_it(obj)
    return obj


@pytest.mark.parametrize(
    ("overlay", "kind", "break_it", "where"),
    [
        (
            "prod",
            "Deployment",
            lambda o: k.pod_spec(o)["containers"][0].update(imagePullPolicyy="Always"),
            "containers.0",
        ),
        ("prod", "Deployment", lambda o: o["spec"].update(replica=3), "spec"),
        ("prod", "NetworkPolicy", lambda o: o["spec"].update(podSelectors={}), "spec"),
        (
            "prod",
            "ScaledObject",
            lambda o: o["spec"]["triggers"][0]["metadata"].update(lagTreshold="5"),
            "metadata",
        ),
        (
            "prod",
            "ScaledObject",
            lambda o: o["spec"]["scaleTargetRef"].update(nmae="x"),
            "scaleTargetRef",
        ),
        (
            "strimzi",
            "Kafka",
            lambda o: o["spec"]["kafka"]["listeners"][0].update(tsl=True),
            "listeners.0",
        ),
        (
            "strimzi",
            "KafkaNodePool",
            lambda o: o["spec"]["storage"]["volumes"][0].update(sise="1Gi"),
            "volumes.0",
        ),
        ("strimzi", "KafkaTopic", lambda o: o["spec"].update(partition=6), "spec"),
    ],
)
def test_strict_validation_rejects_an_unknown_field(
    overlay: str, kind: str, break_it: Any, where: str
) -> None:
    errors = k.schema_errors(_broken(overlay, kind, break_it))
    assert any(e.startswith(where) or where in e.split(":")[0] for e in errors), errors


def test_the_cached_kubernetes_validator_agrees_with_kubernetes_validate() -> None:
    import kubernetes_validate

    good = k.of_kind(k.render("prod"), "Deployment")[0]
    k.kubernetes_validate_agrees(good)
    bad = _broken("prod", "Deployment", lambda o: k.pod_spec(o)["containers"][0].update(x=1))
    with pytest.raises(kubernetes_validate.ValidationError):
        k.kubernetes_validate_agrees(bad)
    assert k.schema_errors(bad)


def test_a_kind_with_no_schema_is_an_error() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(k.NoSchema):
        k.schema_errors(unknown)


# --- our rules on the rendered output ------------------------------------------------------


@APP_OVERLAYS
def test_every_deployment_probes_the_health_endpoints_on_its_http_port(overlay: str) -> None:
    real = {route.path for route in health_router({}).routes}  # type: ignore[attr-defined]
    expected = {
        "startupProbe": "/health/live",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    assert set(expected.values()) <= real
    for deployment in deployments(overlay):
        box = container(deployment)
        named = {p["name"] for p in box["ports"]}
        for probe, path in expected.items():
            get = box[probe]["httpGet"]
            assert (get["path"], get["port"]) == (path, "http"), (
                deployment["metadata"]["name"],
                probe,
            )
            assert get["port"] in named


@APP_OVERLAYS
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for workload in k.workloads(k.render(overlay)):
        resources = container(workload)["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), (workload["metadata"]["name"], bound)


@APP_OVERLAYS
def test_every_pod_runs_non_root_read_only_without_privileges(overlay: str) -> None:
    for workload in k.workloads(k.render(overlay)):
        name, pod = workload["metadata"]["name"], k.pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        box = container(workload)["securityContext"]
        assert box["runAsNonRoot"] is True and box["runAsUser"] == 10001, name
        assert box["readOnlyRootFilesystem"] is True, name
        assert box["allowPrivilegeEscalation"] is False, name
        assert box["capabilities"] == {"drop": ["ALL"]}, name
        assert box["seccompProfile"] == {"type": "RuntimeDefault"}, name
        mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name  # noqa: S108 - the mount checked


def test_the_secret_name_pattern_catches_every_secret_setting() -> None:
    assert {
        "WAYBILL_DATABASE_URL",
        "WAYBILL_AUTH_DATABASE_URL",
        "WAYBILL_PROVIDER_API_KEY",
        "WAYBILL_PROVIDER_WEBHOOK_SECRET",
        "WAYBILL_DELIVERY_CODE_KEYS",
        "WAYBILL_NOTIFIER_SMS_API_KEY",
        "WAYBILL_MONITOR_SESSION_SECRET",
    } <= k.secret_settings()


@pytest.mark.parametrize("overlay", k.OVERLAYS)
def test_no_secret_object_and_no_secret_value_is_rendered(overlay: str) -> None:
    objects = k.render(overlay)
    assert k.of_kind(objects, "Secret") == []
    secrets = k.secret_settings()
    for var in k.environment(objects):
        if var.name in secrets:
            assert var.secret is not None and var.value is None, (var.workload, var.name)
    text = k.render_text(overlay)
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "credentials in a URL"
    for default in SECRET_DEFAULTS_SAMPLE:
        assert default not in text


@APP_OVERLAYS
def test_every_workload_takes_its_secrets_from_secret_refs(overlay: str) -> None:
    objects = k.render(overlay)
    by_workload: dict[str, set[str]] = {}
    for var in k.environment(objects):
        if var.secret is not None:
            by_workload.setdefault(var.workload, set()).add(var.name)
    for workload in k.workloads(objects):
        key = (k.service_of(workload), component(workload))
        name = workload["metadata"]["name"]
        assert REQUIRED_SECRETS[key] <= by_workload.get(name, set()), name


@APP_OVERLAYS
def test_every_waybill_variable_is_a_real_setting_of_its_process(overlay: str) -> None:
    unknown = {
        (var.workload, var.name)
        for var in k.environment(k.render(overlay))
        if var.name not in k.setting_names(var.service)
    }
    assert unknown == set()


def test_a_misspelt_setting_is_caught() -> None:
    assert "WAYBILL_KAFKA_BOOTSTRAP_SERVERS" in k.setting_names(None)
    assert "WAYBILL_KAFKA_BOOTSTRAP_SERVER" not in k.setting_names("orders")
    assert "WAYBILL_ORDERS_PORT" not in k.setting_names("payments")


@APP_OVERLAYS
def test_every_port_is_the_services_own(overlay: str) -> None:
    objects = k.render(overlay)
    port_vars = {
        (var.workload, var.service): var.value
        for var in k.environment(objects)
        if var.name == f"WAYBILL_{var.service.upper()}_PORT"
    }
    for workload in k.workloads(objects):
        service, name = k.service_of(workload), workload["metadata"]["name"]
        assert port_vars[(name, service)] == str(k.PORTS[service]), name
        if workload["kind"] == "Deployment":
            http = [p for p in container(workload)["ports"] if p["name"] == "http"]
            assert [p["containerPort"] for p in http] == [k.PORTS[service]], name
    for svc in k.of_kind(objects, "Service"):
        (http,) = [p for p in svc["spec"]["ports"] if p["name"] == "http"]
        assert (http["port"], http["targetPort"]) == (k.PORTS[k.service_of(svc)], "http")


@APP_OVERLAYS
def test_services_route_only_to_the_http_deployment(overlay: str) -> None:
    objects = k.render(overlay)
    for svc in k.of_kind(objects, "Service"):
        selected = [
            d
            for d in deployments(overlay)
            if svc["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [component(d) for d in selected] == ["api"], svc["metadata"]["name"]
        assert "api" in roles(selected[0])


@APP_OVERLAYS
def test_each_service_has_a_migration_job_on_its_image_and_database(overlay: str) -> None:
    objects = k.render(overlay)
    jobs = {k.service_of(j): j for j in k.of_kind(objects, "Job")}
    assert set(jobs) == set(k.SERVICES)
    for service, job in jobs.items():
        api = next(d for d in deployments(overlay) if d["metadata"]["name"] == service)
        assert container(job)["args"] == ["migrate"]
        assert container(job)["image"] == container(api)["image"]
        assert component(job) == "migration"
        assert k.pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")
        database = {
            (v.name, v.secret) for v in k.environment([job, *k.of_kind(objects, "ConfigMap")])
        }
        assert ("WAYBILL_DATABASE_URL", (f"waybill-{service}-database", "url")) in database


@APP_OVERLAYS
def test_every_deployment_has_a_disruption_budget(overlay: str) -> None:
    budgets = k.of_kind(k.render(overlay), "PodDisruptionBudget")
    for deployment in deployments(overlay):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]


def test_dev_migrates_on_start_and_prod_leaves_it_to_the_jobs() -> None:
    assert k.config_value(k.render("dev"), "WAYBILL_MIGRATE_ON_START") == "true"
    assert k.config_value(k.render("prod"), "WAYBILL_MIGRATE_ON_START") == "false"


def test_prod_runs_every_role_of_every_service_in_split_deployments() -> None:
    by_service: dict[str, dict[str, set[str]]] = {}
    for deployment in deployments("prod"):
        by_service.setdefault(k.service_of(deployment), {})[component(deployment)] = roles(
            deployment
        )
    for service in k.SERVICES:
        expected = {"api": {"api", "workers"}, "consumer": {"consumer"}, "relay": {"relay"}}
        if service == "monitor":  # it appends no events: an outbox relay would have nothing to send
            del expected["relay"]
        assert by_service[service] == expected, service


def test_the_relay_runs_as_a_standby_pair() -> None:
    relays = [d for d in deployments("prod") if component(d) == "relay"]
    assert relays and all(d["spec"]["replicas"] == 2 for d in relays)


def test_no_deployment_is_targeted_by_both_an_hpa_and_a_scaled_object() -> None:
    objects = k.render("prod")
    names = {d["metadata"]["name"] for d in deployments("prod")}
    hpa = {
        h["spec"]["scaleTargetRef"]["name"] for h in k.of_kind(objects, "HorizontalPodAutoscaler")
    }
    keda = {s["spec"]["scaleTargetRef"]["name"] for s in k.of_kind(objects, "ScaledObject")}
    assert hpa and keda
    assert hpa <= names and keda <= names
    assert hpa & keda == set()
    by_name = {d["metadata"]["name"]: d for d in deployments("prod")}
    assert all(component(by_name[n]) == "api" for n in hpa)
    assert all(roles(by_name[n]) == {"consumer"} for n in keda)


def test_every_scaled_object_reads_the_lag_its_consumer_group_really_has() -> None:
    objects = k.render("prod")
    consumed = k.consumed_topics()
    partitions = int(k.config_value(objects, "WAYBILL_KAFKA_PARTITIONS"))
    bootstrap = k.config_value(objects, "WAYBILL_KAFKA_BOOTSTRAP_SERVERS")
    scaled = k.of_kind(objects, "ScaledObject")
    assert {k.service_of(s) for s in scaled} == set(topics.CONSUMER_GROUPS)
    for obj in scaled:
        service, spec = k.service_of(obj), obj["spec"]
        triggers = [t["metadata"] for t in spec["triggers"] if t["type"] == "kafka"]
        assert {t["consumerGroup"] for t in triggers} == {service}
        assert service in topics.CONSUMER_GROUPS
        read = [t["topic"] for t in triggers]
        assert set(read) <= set(topics.ALL_TOPICS)
        assert sorted(read) == sorted(consumed[service]), service
        assert {t["bootstrapServers"] for t in triggers} == {bootstrap}
        assert {t["offsetResetPolicy"] for t in triggers} == {"earliest"}
        if any(t.get("allowIdleConsumers") == "true" for t in triggers):
            continue
        assert spec["maxReplicaCount"] <= partitions, service


def test_prod_images_are_pinned_by_digest_and_dev_uses_dev_tags() -> None:
    for workload in k.workloads(k.render("prod")):
        assert re.fullmatch(r"[\w./-]+@sha256:[0-9a-f]{64}", container(workload)["image"])
    for workload in k.workloads(k.render("dev")):
        assert container(workload)["image"] == f"waybill-{k.service_of(workload)}:dev"


def test_the_sandbox_is_deployed_in_dev_only() -> None:
    def mentions_sandbox(overlay: str) -> bool:
        return any(
            k.service_of(o) == "sandbox"
            for o in k.render(overlay)
            if k.labels(o).get("app.kubernetes.io/name")
        )

    assert mentions_sandbox("dev")
    assert not mentions_sandbox("prod")
    assert "sandbox" not in k.render_text("prod")


# --- network policy ------------------------------------------------------------------------


def _selects(policy: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return bool(wanted.items() <= pod_labels.items())


@APP_OVERLAYS
def test_the_namespace_denies_by_default_and_every_service_has_its_policy(overlay: str) -> None:
    policies = k.of_kind(k.render(overlay), "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    named = {p["metadata"]["name"]: p for p in policies}
    for service in k.SERVICES:
        own = named[service]
        assert own["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": service}
        databases = {
            peer["podSelector"]["matchLabels"]["waybill.io/database"]
            for rule in own["spec"]["egress"]
            for peer in rule["to"]
        }
        assert databases == {service, "auth"}
    for deployment in deployments(overlay):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        applying = [p for p in policies if _selects(p, pod_labels)]
        egress = [
            p for p in applying if "Egress" in p["spec"]["policyTypes"] and p["spec"].get("egress")
        ]
        assert {p["metadata"]["name"] for p in egress} >= {"allow-dns", "allow-kafka"}
        if component(deployment) == "api":
            ingress = [p for p in applying if p["spec"].get("ingress")]
            assert any(
                p["metadata"]["name"].endswith("-http") or p["metadata"]["name"] == "sandbox"
                for p in ingress
            )


@APP_OVERLAYS
def test_the_monitor_may_reach_every_service_it_polls(overlay: str) -> None:
    policies = k.of_kind(k.render(overlay), "NetworkPolicy")
    reachable = {
        (peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], port["port"])
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": "monitor"}
        for rule in p["spec"].get("egress", [])
        for peer in rule["to"]
        if "podSelector" in peer
        and "app.kubernetes.io/name" in peer["podSelector"].get("matchLabels", {})
        for port in rule["ports"]
    }
    assert {(name, k.PORTS[name]) for name in k.MONITOR_POLLS} <= reachable
    urls = {v.name: v.value for v in k.environment(k.render(overlay)) if v.service == "monitor"}
    for name, setting in k.MONITOR_POLLS.items():
        assert urls[setting] == f"http://{name}:{k.PORTS[name]}"


# --- strimzi -------------------------------------------------------------------------------


def test_strimzi_declares_every_topic_with_the_expected_partitions_and_replication() -> None:
    objects = k.render("strimzi")
    partitions = int(k.config_value(k.render("prod"), "WAYBILL_KAFKA_PARTITIONS"))
    declared = {t["spec"]["topicName"]: t["spec"] for t in k.of_kind(objects, "KafkaTopic")}
    assert sorted(declared) == sorted(topics.ALL_TOPICS)
    assert {(s["partitions"], s["replicas"]) for s in declared.values()} == {(partitions, 3)}


def test_strimzi_runs_kraft_and_is_where_the_base_points() -> None:
    objects = k.render("strimzi")
    (kafka,) = k.of_kind(objects, "Kafka")
    pools = k.of_kind(objects, "KafkaNodePool")
    cluster = kafka["metadata"]["name"]
    assert all(k.labels(p)["strimzi.io/cluster"] == cluster for p in pools)
    assert {"controller", "broker"} <= {r for p in pools for r in p["spec"]["roles"]}
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) >= 3
    assert all(
        k.labels(t)["strimzi.io/cluster"] == cluster for t in k.of_kind(objects, "KafkaTopic")
    )
    (plain,) = [listener for listener in kafka["spec"]["kafka"]["listeners"] if not listener["tls"]]
    namespace = kafka["metadata"]["namespace"]
    expected = f"{cluster}-kafka-bootstrap.{namespace}.svc:{plain['port']}"
    for overlay in k.APP_OVERLAYS:
        assert k.config_value(k.render(overlay), "WAYBILL_KAFKA_BOOTSTRAP_SERVERS") == expected
