"""Embedded Apache Kafka: a single KRaft node (broker + controller in one JVM).

The jars are the official ``org.apache.kafka:kafka_2.13`` artifacts, resolved by Maven
coordinates with jgo (pure-Python resolver, cached; see docs/adr/0004-embedded-kafka.md) and
checked against the lock committed beside this module, so every machine runs the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from waybill.devstack.infra.java import find_java
from waybill.devstack.infra.process import ManagedProcess

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
# "!" = raw resolution: plain Maven nearest-wins, the same set `mvn dependency:copy-dependencies`
# yields. jgo's default "managed" mode picked kafka-clients 3.8.0 for kafka_2.13 4.1.1.
ENDPOINT = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}!"
    f"+org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}!"
)
DEFAULT_JVM_OPTS = "-XX:TieredStopAtLevel=1"
LOCK_FILE = Path(__file__).with_name("kafka.lock.toml")
CLUSTER_ID_FILE = "waybill-cluster-id"

LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
"""


def jar_cache_dir() -> Path:
    base = os.environ.get("WAYBILL_JAR_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "waybill" if base else Path.home() / ".cache" / "waybill"


def resolve_classpath(progress: Callable[[str], None] = lambda _: None) -> str:
    """Resolve (first run: download) the Kafka jars and return a JVM classpath."""
    import jgo

    progress(f"resolving Apache Kafka {KAFKA_VERSION} jars (cached after the first run)")
    env = jgo.build(ENDPOINT, cache_dir=jar_cache_dir() / "jgo")
    env_dir = Path(env.path)
    _verify_lock(env_dir / "jgo.lock.toml")
    return os.pathsep.join(str(env_dir / sub / "*") for sub in ("jars", "modules"))


def _locked_artifacts(path: Path) -> set[tuple[str, str, str, str]]:
    data = tomllib.loads(path.read_text())
    return {
        (d["groupId"], d["artifactId"], d["version"], d.get("sha256", ""))
        for d in data.get("dependencies", [])
    }


def _verify_lock(resolved: Path) -> None:
    """Fail loudly if the resolution differs from the committed lock (version or checksum)."""
    if not resolved.exists():
        return
    if not LOCK_FILE.exists():  # first resolution on a dev machine: record it
        shutil.copyfile(resolved, LOCK_FILE)
        return
    expected, actual = _locked_artifacts(LOCK_FILE), _locked_artifacts(resolved)
    if expected != actual:
        diff = sorted(expected ^ actual)[:6]
        raise RuntimeError(f"Kafka jar resolution differs from {LOCK_FILE.name}: {diff}")


def server_properties(log_dir: Path, port: int, controller_port: int, partitions: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={log_dir}",
            f"num.partitions={partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "default.replication.factor=1",
            "min.insync.replicas=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.hours=168",
            "",
        ]
    )


class EmbeddedKafka:
    """A single-node KRaft Apache Kafka with its log dirs under ``root``."""

    def __init__(self, root: Path, port: int, *, partitions: int = 6, heap: str = "512m") -> None:
        self.root = root.absolute()
        self.port = port
        self.controller_port = port + 1
        self.partitions = partitions
        self.heap = heap
        self._process: ManagedProcess | None = None
        self._classpath: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _java_argv(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        assert self._classpath is not None
        return [
            str(find_java()),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            # C1 only: a dev/CI broker on a small machine spent most of its CPU in the C2 JIT
            # compiler for minutes after every start (measured: ~7 of 16 CPU-s under load).
            *os.environ.get("WAYBILL_KAFKA_JVM_OPTS", DEFAULT_JVM_OPTS).split(),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
            "-cp",
            self._classpath,
            main,
            *args,
        ]

    def start(self, progress: Callable[[str], None] = lambda _: None) -> None:
        import subprocess

        self.root.mkdir(parents=True, exist_ok=True)
        if self._classpath is None:
            self._classpath = resolve_classpath(progress)
        log_dir = self.root / "logs"
        props = self.root / "server.properties"
        props.write_text(
            server_properties(log_dir, self.port, self.controller_port, self.partitions)
        )
        (self.root / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        if not (log_dir / "meta.properties").exists():
            progress("formatting Kafka storage (KRaft)")
            cluster_id = _cluster_id(self.root / CLUSTER_ID_FILE)
            subprocess.run(
                self._java_argv(
                    "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)
                ),
                check=True,
                capture_output=True,
            )
        progress(f"starting Apache Kafka {KAFKA_VERSION} on {self.bootstrap_servers}")
        self._process = ManagedProcess(
            "kafka",
            self._java_argv("kafka.Kafka", str(props), heap=self.heap),
            log_path=self.root / "kafka.log",
            stop_signal=signal.SIGTERM,
        )
        self._process.start()
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if not self._process.is_running():
                raise RuntimeError(f"Kafka exited during start:\n{self._process.tail()}")
            if asyncio.run(broker_answers(self.bootstrap_servers)):
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"Kafka not ready after {timeout_s}s:\n{self._process.tail() if self._process else ''}"
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace_s=30)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None


def _cluster_id(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    import base64

    cluster_id = "-"
    while cluster_id.startswith("-"):  # StorageTool would parse a leading "-" as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(cluster_id)
    return cluster_id


async def broker_answers(bootstrap_servers: str) -> bool:
    """True once the broker answers a metadata request (and has a controller)."""
    import logging
    import socket

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    host, _, port = bootstrap_servers.split(",")[0].rpartition(":")
    try:  # cheap TCP probe first: keeps aiokafka from logging a connect error per attempt
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
) -> None:
    """Create the topics that do not exist yet (idempotent, safe on any Kafka-protocol cluster)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=replication_factor)
            for t in topics
            if t not in existing
        ]
        if missing:
            # Another process may create them between our listing and our request.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
