"""A child process we started and must stop: by its PID, SIGTERM first, SIGKILL after a grace."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO


class ManagedProcess:
    """Wraps ``subprocess.Popen`` with a log file and a clean, PID-targeted stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        group: int | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.user = user
        self.group = group
        self.stop_signal = stop_signal
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        # A new session: Ctrl-C in the terminal reaches only the supervisor, which then stops
        # children in order (services before the broker and database).
        self._popen = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            user=self.user,
            group=self.group,
            extra_groups=[] if self.group is not None else None,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        """None while running, else the exit code."""
        if self._popen is None:
            return -1
        return self._popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def kill(self) -> None:
        """SIGKILL now (fault injection: a crash, not a shutdown)."""
        if self._popen is not None and self._popen.poll() is None:
            os.kill(self._popen.pid, signal.SIGKILL)
            self._popen.wait()

    def stop(self, grace_s: float = 15.0) -> int | None:
        """Signal the process, wait up to ``grace_s``, then SIGKILL. Returns the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            try:
                os.kill(self._popen.pid, self.stop_signal)
                self._popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.kill(self._popen.pid, signal.SIGKILL)
                self._popen.wait()
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        return self._popen.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
