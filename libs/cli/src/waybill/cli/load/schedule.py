"""The offered load: payment-method mix, open-loop arrival schedule, the command's options.

Open loop: arrival ``i`` is due at ``i / rate`` s, whatever the latency, so a slow stack cannot
slow the offered rate down and hide its own queueing (coordinated omission).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

# The four payment-method tokens of the sandbox's provider (docs/sandbox.md), by mix name.
TOKENS: dict[str, str] = {
    "ok": "pm_card_ok",
    "declined": "pm_card_declined",
    "async": "pm_card_async",
    "async_silent": "pm_card_async_silent",
}


DEFAULT_MIX = "ok=0.7,declined=0.1,async=0.15,async_silent=0.05"


DROPPED = "dropped"


@dataclass(frozen=True)
class LoadOptions:
    rate_per_s: float
    duration_s: float
    mix: dict[str, float]
    concurrency: int
    drain_s: float
    sku_count: int
    agents: int = 0  # delivery agents taking each paid order on to delivered (load/agents.py)


def parse_mix(text: str) -> dict[str, float]:
    """``"ok=0.7,declined=0.3"`` -> weights normalised to sum 1; ValueError names the problem."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in TOKENS:
            raise ValueError(f"{part!r}: expected NAME=WEIGHT with NAME one of {', '.join(TOKENS)}")
        if name in weights:
            raise ValueError(f"{name!r} appears twice")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{part!r}: the weight is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{part!r}: the weight must be a finite number >= 0")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return {name: w / total for name, w in weights.items() if w > 0}


def arrival_offsets(rate_per_s: float, duration_s: float) -> list[float]:
    """Due times (s from the start) of an evenly spaced open-loop schedule."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    count = math.floor(rate_per_s * duration_s + 1e-9)
    return [i / rate_per_s for i in range(count)]


def assign_kinds(mix: Mapping[str, float], count: int, rng: random.Random) -> list[str]:
    """A payment kind per arrival, drawn at the mix's weights."""
    names = list(mix)
    return rng.choices(names, weights=[mix[n] for n in names], k=count)
