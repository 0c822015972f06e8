"""What a dead letter says about its exception: type name, stack, and a fingerprint for grouping.

The fingerprint groups dead letters that share a cause (the monitor's failure groups): the
sha256 of the exception type, the innermost frame in ``waybill.*`` code (``module:function``,
where our code last had control), the original topic and the consumer group, cut to 16 hex
characters. Line numbers and messages stay out of it on purpose: an edit elsewhere in the
module or an id in the message must not split a group. A delivery's dead letter is
fingerprinted by ``delivery``, its error class and its endpoint.

Standard library only, like the rest of the light ``failures`` package.
"""

from __future__ import annotations

import hashlib
import traceback
from typing import Final

OWN_CODE: Final = "waybill."
MAX_STACK_CHARS: Final = 4000
_TRUNCATED: Final = "...\n"


def fingerprint(*parts: str) -> str:
    """16 hex characters of the sha256 of ``parts`` (unit-separated, so no two part lists
    collide by concatenation)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def exception_type_name(exc: BaseException) -> str:
    """``module.QualName`` without private module parts (``pydantic_core.ValidationError``,
    not ``pydantic_core._pydantic_core.ValidationError``); builtins by their name alone."""
    kind = type(exc)
    module = ".".join(part for part in kind.__module__.split(".") if not part.startswith("_"))
    if module in ("", "builtins"):
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def own_frame(exc: BaseException) -> str:
    """``module:function`` of the innermost traceback frame in ``waybill.*`` code, else ``""``."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(OWN_CODE):
            found = f"{module}:{tb.tb_frame.f_code.co_name}"
        tb = tb.tb_next
    return found


def stack_of(exc: BaseException, limit: int = MAX_STACK_CHARS) -> str:
    """The formatted traceback (with its causes), at most ``limit`` characters: the end is kept,
    since that is where it was raised."""
    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    if len(text) <= limit:
        return text
    return _TRUNCATED + text[-(limit - len(_TRUNCATED)) :]


def consumer_fingerprint(exc: BaseException, *, topic: str, group: str) -> str:
    """The fingerprint of a consumer's dead letter."""
    return fingerprint(exception_type_name(exc), own_frame(exc), topic, group)


def delivery_fingerprint(*, error_class: str, endpoint_id: str) -> str:
    """The fingerprint of a webhook delivery's dead letter."""
    return fingerprint("delivery", error_class, endpoint_id)
