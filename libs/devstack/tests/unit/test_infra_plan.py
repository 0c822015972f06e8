"""Where the test session's servers come from (``plan_infra``): external settings win, then
``WAYBILL_TEST_INFRA`` picks embedded (the default) or containers, and containers without a
Docker engine mean "skip, and say why", never a quiet fallback."""

from __future__ import annotations

import pytest

from waybill.devstack.infra.containers import InfraPlan, Source, plan_infra

EXTERNAL_PG = {"WAYBILL_DATABASE_URL": "postgresql://u:p@db.example:5432/postgres"}
EXTERNAL_KAFKA = {"WAYBILL_KAFKA_BOOTSTRAP_SERVERS": "b-1.msk.example:9092"}


def engine_answers() -> str | None:
    return None


def no_engine() -> str | None:
    return "FileNotFoundError: /var/run/docker.sock"


def must_not_ask() -> str | None:
    raise AssertionError("Docker was asked although no container is wanted")


@pytest.mark.parametrize("value", [None, "", "embedded", " Embedded "])
def test_embedded_is_the_default_and_never_asks_docker(value: str | None):
    environ = {} if value is None else {"WAYBILL_TEST_INFRA": value}
    assert plan_infra(environ, must_not_ask) == InfraPlan(Source.EMBEDDED, Source.EMBEDDED)


def test_containers_when_asked_and_an_engine_answers():
    plan = plan_infra({"WAYBILL_TEST_INFRA": "testcontainers"}, engine_answers)
    assert plan == InfraPlan(Source.TESTCONTAINERS, Source.TESTCONTAINERS)


def test_containers_without_an_engine_skip_with_the_reason():
    plan = plan_infra({"WAYBILL_TEST_INFRA": "testcontainers"}, no_engine)
    assert plan.skip_reason is not None
    assert "WAYBILL_TEST_INFRA=testcontainers" in plan.skip_reason
    assert "docker.sock" in plan.skip_reason


def test_external_servers_win_over_either_choice():
    both = {**EXTERNAL_PG, **EXTERNAL_KAFKA, "WAYBILL_TEST_INFRA": "testcontainers"}
    assert plan_infra(both, must_not_ask) == InfraPlan(Source.EXTERNAL, Source.EXTERNAL)
    assert plan_infra({**EXTERNAL_PG}, must_not_ask) == InfraPlan(Source.EXTERNAL, Source.EMBEDDED)


def test_an_external_database_with_kafka_from_a_container():
    environ = {**EXTERNAL_PG, "WAYBILL_TEST_INFRA": "testcontainers"}
    assert plan_infra(environ, engine_answers) == InfraPlan(Source.EXTERNAL, Source.TESTCONTAINERS)
    assert plan_infra(environ, no_engine).skip_reason is not None


def test_an_unknown_choice_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match=r"'embedded' .* or 'testcontainers'"):
        plan_infra({"WAYBILL_TEST_INFRA": "docker"}, must_not_ask)
