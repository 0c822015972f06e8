"""Request bodies of the notifier API: strict (no type coercion) and closed (unknown fields 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field

from waybill.common.http.models import JSON_INTEGER, StrictModel

EVENT_TYPE = r"^(\*|[a-z]+\.[a-z_]+)$"
HEADER_NAME = r"^[A-Za-z0-9-]{1,64}$"
# No whitespace or control characters anywhere (spelled out: Python's \s and ECMA-262's, which
# JSON Schema uses, disagree about U+0085), no userinfo in the authority.
_URL_CHAR = r"[^\x00-\x20\x7f-\x9f]"
_HOST_CHAR = r"[^\x00-\x20\x7f-\x9f/?#@]"
Url = Annotated[str, Field(pattern=rf"^https?://{_HOST_CHAR}+(/{_URL_CHAR}*)?$", max_length=2000)]
EventTypes = Annotated[
    list[Annotated[str, Field(pattern=EVENT_TYPE)]], Field(min_length=1, max_length=100)
]
Headers = Annotated[
    dict[Annotated[str, Field(pattern=HEADER_NAME)], Annotated[str, Field(max_length=1000)]],
    # The key pattern is the only way a name gets in: no other property is allowed (without
    # this, JSON Schema's patternProperties let any other key through with any value).
    Field(max_length=20, json_schema_extra={"additionalProperties": False}),
]
RateLimit = Annotated[int, Field(ge=1, le=1000), JSON_INTEGER]


class _Body(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EndpointIn(_Body):
    url: Url
    event_types: EventTypes = Field(description="event types to deliver; * = every type")
    description: Annotated[str, Field(max_length=500)] | None = None
    headers: Headers = Field(default_factory=dict, description="sent with every delivery")
    rate_limit_per_s: RateLimit | None = None


class EndpointPatch(_Body):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    headers: Headers | None = None
    rate_limit_per_s: RateLimit | None = None
    status: Annotated[str, Field(pattern="^(active|disabled)$")] | None = None


def _text_only(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("expected an RFC 3339 date-time string")
    return value


# RFC 3339 text with an offset. A strict model takes no string for a datetime, a lax one takes
# numbers too (seconds since 1970): lax parsing of strings only, which is what the schema says.
Moment = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_text_only)]


class RecoverIn(_Body):
    since: Moment
    until: Moment | None = None
    dry_run: bool = False
