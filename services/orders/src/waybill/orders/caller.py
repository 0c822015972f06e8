"""Who asks for an orders command (the shared ``Caller``), and its events as appended."""

from waybill.common.eventstore import Caller, new_events

__all__ = ["Caller", "new_events"]
