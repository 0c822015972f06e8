"""Request bodies of the orders API: strict (no type coercion) and closed (unknown fields 422)."""

from __future__ import annotations

from typing import Annotated

import email_validator
import pycountry
from pydantic import ConfigDict, EmailStr, Field, WithJsonSchema
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217

from waybill.common.http.models import JSON_INTEGER, StrictModel

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Text = Annotated[str, Field(min_length=1, max_length=200)]
# The codes CountryAlpha2 accepts, as the schema's enum (its own schema, ^\w{2}$, allows "00").
CountryCode = Annotated[
    CountryAlpha2,
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(c.alpha_2 for c in pycountry.countries),
            "description": "ISO 3166-1 alpha-2 country code",
        }
    ),
]


def _any_case(word: str) -> str:  # JSON Schema patterns (ECMA-262) have no inline flags
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# EmailStr refuses the special-use domains of RFC 6761 (``a@b.test``, ``a@localhost``, ...),
# which ``format: email`` alone allows: the schema says so with a pattern.
_SPECIAL_USE = "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
Email = Annotated[
    EmailStr,
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "pattern": rf"^(?!.*@(?:.*\.)?(?:{_SPECIAL_USE})\.?$)",
        }
    ),
]


class _Body(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CustomerIn(_Body):
    id: Text
    email: Email
    phone: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None


class ItemIn(_Body):
    sku: Annotated[str, Field(pattern=SKU_PATTERN)]
    quantity: Annotated[int, Field(gt=0, le=10_000), JSON_INTEGER]
    unit_price_cents: Annotated[int, Field(ge=0, le=100_000_000), JSON_INTEGER]


class AddressIn(_Body):
    line1: Text
    city: Text
    postal_code: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9 -]+$")]
    country: CountryCode


class PlaceOrderIn(_Body):
    customer: CustomerIn
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=100)]
    currency: ISO4217
    shipping_address: AddressIn
    payment_method: Annotated[str, Field(pattern=r"^pm_[A-Za-z0-9_]{1,64}$")]


class SetStockIn(_Body):
    available: Annotated[int, Field(ge=0, le=1_000_000_000), JSON_INTEGER]
