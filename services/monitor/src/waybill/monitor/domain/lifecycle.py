"""The dead-letter lifecycle: which action may move a dead letter from which status.

``pending`` -> ``retrying`` (retry) or ``abandoned`` (abandon); ``retrying`` -> ``resolved``
(its outcome or the replayed message's success) or back to ``pending`` (it failed again).
"""

from __future__ import annotations

from typing import Final, Literal

from waybill.monitor.domain.errors import DeadLetterNotPending

Status = Literal["pending", "retrying", "resolved", "abandoned"]
STATUSES: Final = ("pending", "retrying", "resolved", "abandoned")
Priority = Literal["normal", "high", "critical"]
ACTIONS: Final[dict[str, Status]] = {"retry": "retrying", "abandon": "abandoned"}


def act(status: str, action: str, dead_letter_id: str) -> Status:
    """The status ``action`` moves a dead letter in ``status`` to."""
    if status != "pending":
        raise DeadLetterNotPending(
            f"dead letter {dead_letter_id} is {status}; only a pending one can be retried or "
            "abandoned",
            extra={"status": status},
        )
    return ACTIONS[action]
