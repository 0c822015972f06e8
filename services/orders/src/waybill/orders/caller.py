"""Who asks for an orders command: the shared ``Caller``."""

from waybill.common.eventstore import Caller

__all__ = ["Caller"]
