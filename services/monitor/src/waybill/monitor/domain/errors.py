"""Every error the monitor raises to a caller: a stable code and a failure type.

No HTTP status here: ``waybill.monitor.api.ERROR_STATUS`` maps each code once, at the edge.
"""

from __future__ import annotations

from waybill.common.failures import DomainError, FailureType


class MonitorError(DomainError):
    code = "MONITOR_ERROR"


class DeadLetterNotFound(MonitorError):
    code = "DEAD_LETTER_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class DeadLetterNotPending(MonitorError):
    """Retry and abandon act on a ``pending`` dead letter only."""

    code = "DEAD_LETTER_NOT_PENDING"


class InvalidEventData(MonitorError):
    """Edited ``data`` that the event type's schema refuses (``extra.errors`` says where)."""

    code = "INVALID_EVENT_DATA"
    failure_type = FailureType.PERMANENT_INVALID_INPUT


class DataNotEditable(MonitorError):
    """Edited ``data`` for a dead letter whose record has no schema to check it against (a
    webhook message, or an event type nobody declares)."""

    code = "DEAD_LETTER_DATA_NOT_EDITABLE"
    failure_type = FailureType.PERMANENT_INVALID_INPUT


class RetryUnavailable(MonitorError):
    """The retry could not be handed over (the broker or the notifier did not take it); the
    dead letter stays ``pending``."""

    code = "RETRY_UNAVAILABLE"
    failure_type = FailureType.EXTERNAL_SERVICE_UNAVAILABLE


class JobNotFound(MonitorError):
    code = "JOB_NOT_FOUND"
    failure_type = FailureType.PERMANENT_NOT_FOUND


class JobFinished(MonitorError):
    """A bulk job that already succeeded or failed cannot be cancelled."""

    code = "JOB_ALREADY_FINISHED"
