"""``GET /api/dlq/export.csv``: a filter's dead letters as CSV, streamed.

A generator over keyset pages of the list (newest first, ``PAGE`` rows a query): memory stays
one page whatever the export's size, and each page is sent as soon as it is read. The columns
are the list's (``DeadLetterView``). A text cell that a spreadsheet would run as a formula
(``=``, ``+``, ``-``, ``@``, tab, CR first) is prefixed with ``'`` (OWASP CSV injection):
error texts and event types come from records anyone could have produced.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from waybill.monitor.dead_letters import DeadLetters
from waybill.monitor.views import DeadLetterView

PAGE = 500
COLUMNS = list(DeadLetterView.model_fields)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


async def csv_rows(
    letters: DeadLetters, tenant_id: str, filters: dict[str, str | None]
) -> AsyncIterator[str]:
    """The header, then one chunk of rows per page."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield flush()
    after = None
    while True:
        rows, after = await letters.page(tenant_id, filters, limit=PAGE, after=after)
        for row in rows:
            view = DeadLetterView.from_row(row)
            writer.writerow([cell(getattr(view, name)) for name in COLUMNS])
        if rows:
            yield flush()
        if after is None:
            return
