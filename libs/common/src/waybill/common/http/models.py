"""Base models and field types for HTTP request bodies.

The types here make a body's JSON Schema (and so the OpenAPI document) say exactly what the
handler accepts, so a schema-driven client or fuzzer finds no value the schema allows that the
API then refuses (CONTRACT.md § every service):

* :data:`JSON_INTEGER`: JSON Schema's ``integer`` is any number with a zero fractional part,
  so ``4444.0`` is one; strict pydantic models would refuse it. With this marker it is
  accepted (as ``4444``); ``4444.5``, strings and booleans still are not. Put it *after* the
  field's constraints, ``Annotated[int, Field(ge=0), JSON_INTEGER]``: placed before them,
  pydantic renders ``ge``/``le`` as unknown keys instead of ``minimum``/``maximum``.

A service whose fields have such a gap closes it the same way (e.g. orders' ``CountryCode``:
the ISO codes as the schema's ``enum``, not ``pydantic_extra_types``' ``^\\w{2}$``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class StrictModel(BaseModel):
    """A request body that rejects unknown fields (422), so a typo in a field name is an
    error the client sees instead of a value silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _integral_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JSON_INTEGER = BeforeValidator(_integral_number)
