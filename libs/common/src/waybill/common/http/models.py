"""Base models for HTTP request bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A request body that rejects unknown fields (422), so a typo in a field name is an
    error the client sees instead of a value silently ignored."""

    model_config = ConfigDict(extra="forbid")
