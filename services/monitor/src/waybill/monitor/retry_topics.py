"""The topics of retries to one consumer group (the issue-11 spec).

Local until ``waybill.common.topics`` has ``retry_topic`` and ``RETRY_OUTCOMES`` (brief M1);
then these two names are imported from there instead and this module goes.
"""

from __future__ import annotations

from typing import Final

from waybill.common.topics import PREFIX

RETRY_OUTCOMES: Final = f"{PREFIX}.retry.outcomes"


def retry_topic(group: str) -> str:
    """Where consumer group ``group`` (and no other) reads the records retried to it."""
    return f"{PREFIX}.retry.{group}"
