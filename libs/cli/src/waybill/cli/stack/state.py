"""The state dir of a local stack: PostgreSQL data, Kafka log dirs, child logs and ``up.json``.

``up.json`` is the running stack's self-description (PIDs, URLs, servers). ``waybill keys
create`` reads it to find the stack, and tests read it to find the processes to check.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

UP_FILE = "up.json"

StackStatus = Literal["starting", "running", "stopping", "stopped"]


class ProcessRecord(BaseModel):
    """One child process ``waybill up`` started."""

    kind: Literal["infrastructure", "service"]
    pid: int | None
    url: str | None = None
    log: str
    restarts: int = 0


class UpRecord(BaseModel):
    """What ``waybill up`` has running, rewritten on every change (start, restart, stop)."""

    status: StackStatus
    pid: int = Field(description="PID of the `waybill up` supervisor itself")
    state_dir: str
    server_url: str | None = None
    bootstrap_servers: str | None = None
    monitor_url: str | None = None
    processes: dict[str, ProcessRecord] = Field(default_factory=dict)
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def all_pids(self) -> list[int]:
        return [self.pid, *(p.pid for p in self.processes.values() if p.pid is not None)]


class StateDir:
    """Paths inside one state dir (default ``./.waybill``)."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def up_file(self) -> Path:
        return self.root / UP_FILE

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def create(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        # The embedded PostgreSQL may run as an unprivileged user (when we are root): it must be
        # able to traverse into its data dir below this one.
        self.root.chmod(self.root.stat().st_mode | 0o005)

    def wipe(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def link_log(self, name: str, target: Path) -> Path:
        """Make ``logs/<name>.log`` point at a log the infrastructure module writes elsewhere."""
        link = self.log_path(name)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(target)
        return link

    def read_up(self) -> UpRecord | None:
        try:
            return UpRecord.model_validate_json(self.up_file.read_text())
        except (OSError, ValueError):
            return None

    def write_up(self, record: UpRecord) -> None:
        # Write-then-rename so a reader never sees half a file.
        record.updated_at = datetime.now(UTC)
        tmp = self.up_file.with_suffix(".json.tmp")
        tmp.write_text(record.model_dump_json(indent=2))
        os.replace(tmp, self.up_file)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack(state: StateDir) -> UpRecord | None:
    """The stack recorded in ``state`` if its supervisor is still alive, else None."""
    record = state.read_up()
    if record is None or record.status == "stopped" or not pid_alive(record.pid):
        return None
    return record
