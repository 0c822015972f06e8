"""Request bodies of the orders API: strict (no type coercion) and closed (unknown fields 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, EmailStr, Field
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217

from waybill.common.http.models import StrictModel

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Body(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CustomerIn(_Body):
    id: Text
    email: EmailStr
    phone: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None


class ItemIn(_Body):
    sku: Annotated[str, Field(pattern=SKU_PATTERN)]
    quantity: Annotated[int, Field(gt=0, le=10_000)]
    unit_price_cents: Annotated[int, Field(ge=0, le=100_000_000)]


class AddressIn(_Body):
    line1: Text
    city: Text
    postal_code: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9 -]+$")]
    country: CountryAlpha2


class PlaceOrderIn(_Body):
    customer: CustomerIn
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=100)]
    currency: ISO4217
    shipping_address: AddressIn
    payment_method: Annotated[str, Field(pattern=r"^pm_[A-Za-z0-9_]{1,64}$")]


class SetStockIn(_Body):
    available: Annotated[int, Field(ge=0, le=1_000_000_000)]
