"""A test-only switch that makes one consumer group fail on purpose: a poison event.

An event whose data has ``"__poison__": "<group>"`` makes that group's handler raise
``PoisonEvent`` (a business-rule violation: dead-lettered at once, never retried); every other
group applies the event as usual. The monitor's tests use it to dead-letter a record in one
group and prove a retry reaches that group only; "fixing the cause" is an edited retry
without the key.

Off unless ``WAYBILL_TEST_POISON=1`` (``WaybillSettings.test_poison``, handed to the consumer
by ``ServiceKit.consume``): with the switch off the key is ordinary data, ignored by the
event's model like any unknown field. Never turn it on in production: anyone who can publish
an event could then dead-letter it on purpose.
"""

from __future__ import annotations

from typing import ClassVar, Final

from waybill.common.envelope import EventEnvelope
from waybill.common.failures import DomainError, FailureType

POISON_KEY: Final = "__poison__"


class PoisonEvent(DomainError):
    """The test poison switch's failure (the module docstring)."""

    code: ClassVar[str] = "TEST_POISON_EVENT"
    failure_type: ClassVar[FailureType] = FailureType.BUSINESS_LOGIC_VIOLATION


def raise_if_poisoned(envelope: EventEnvelope, group: str) -> None:
    """Raise ``PoisonEvent`` if ``envelope`` is poisoned for ``group``."""
    if envelope.data.get(POISON_KEY) == group:
        raise PoisonEvent(f"event {envelope.id} is poisoned for consumer group {group!r}")
