"""Errors the event store raises."""

from __future__ import annotations


class ConcurrencyError(Exception):
    """Another writer appended to the stream since the caller read it.

    ``actual_version`` is the stream's version when it is known; ``None`` when a concurrent
    transaction won the race on the unique ``(stream_id, version)`` index (this transaction is
    then aborted and cannot look).
    """

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        actual = "unknown (a concurrent append won)" if actual_version is None else actual_version
        super().__init__(
            f"stream {stream_id!r}: expected version {expected_version}, actual {actual}"
        )
