"""What a dead letter says about its exception: type name, truncated stack, stable fingerprint."""

from __future__ import annotations

import pydantic

from waybill.common.failures.fingerprint import (
    MAX_STACK_CHARS,
    consumer_fingerprint,
    delivery_fingerprint,
    exception_type_name,
    own_frame,
    stack_of,
)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_the_exception_type_is_named_without_private_modules() -> None:
    class _M(pydantic.BaseModel):
        n: int

    try:
        _M.model_validate({"n": "x"})
    except pydantic.ValidationError as exc:
        assert exception_type_name(exc) == "pydantic_core.ValidationError"
    assert exception_type_name(ValueError()) == "ValueError"


def test_the_fingerprint_ignores_the_message_but_not_the_topic_or_group() -> None:
    one, other = _raised(ValueError("order 1")), _raised(ValueError("order 2"))
    same = {consumer_fingerprint(e, topic="t", group="g") for e in (one, other)}
    assert len(same) == 1 and len(same.pop()) == 16
    assert consumer_fingerprint(one, topic="t", group="g") != consumer_fingerprint(
        one, topic="t", group="h"
    )
    assert consumer_fingerprint(one, topic="t", group="g") != consumer_fingerprint(
        _raised(KeyError("x")), topic="t", group="g"
    )


def test_the_own_frame_is_the_innermost_one_in_waybill_code() -> None:
    from waybill.common.failures.taxonomy import failure_type

    try:
        failure_type("no_such_type")
    except ValueError as exc:
        assert own_frame(exc) == "waybill.common.failures.taxonomy:failure_type"
    assert own_frame(_raised(ValueError())) == ""  # a test module is not our code


def test_a_long_stack_keeps_its_end_within_the_limit() -> None:
    try:
        try:
            raise KeyError("the first cause " + "k" * 5000)
        except KeyError as cause:
            raise RuntimeError("the bottom") from cause
    except RuntimeError as exc:
        stack = stack_of(exc)
    assert len(stack) == MAX_STACK_CHARS
    assert stack.startswith("...") and stack.endswith("RuntimeError: the bottom")
    assert "Traceback" in stack  # the raising frame's traceback is kept


def test_a_delivery_fingerprint_is_its_error_class_and_endpoint() -> None:
    a = delivery_fingerprint(error_class="http_5xx", endpoint_id="we_1")
    assert a == delivery_fingerprint(error_class="http_5xx", endpoint_id="we_1")
    assert a != delivery_fingerprint(error_class="timeout", endpoint_id="we_1")
