"""Delivery agents as the dispatcher sees them: shifts, eligibility and who gets the next wave.

Pure functions over plain values; the repository finds the agents serving a postal code (GIN
index on ``service_zip_codes``) and counts their active shipments, then these decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from waybill.shipping.domain.shipment import Shipment


@dataclass(frozen=True)
class Shift:
    """A weekly shift in UTC; weekday 0 = Monday. An end before the start runs past midnight
    (into the next weekday); an end equal to the start is a 24-hour shift."""

    weekday: int
    start: time
    end: time

    def covers(self, now: datetime) -> bool:
        if now.tzinfo is not None:
            now = now.astimezone(UTC)  # the weekday and hours of a shift are UTC's
        day_start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        # The shift that began today, and the one that began yesterday (it may run past midnight).
        for back in (0, 1):
            start_day = day_start - timedelta(days=back)
            if start_day.weekday() != self.weekday:
                continue
            begins = datetime.combine(start_day.date(), self.start, tzinfo=now.tzinfo)
            length = _minutes(self.end) - _minutes(self.start)
            if length <= 0:
                length += 24 * 60
            if begins <= now < begins + timedelta(minutes=length):
                return True
        return False


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def on_shift(shifts: Sequence[Shift], now: datetime) -> bool:
    """No shifts: always on; else inside one of them."""
    return not shifts or any(shift.covers(now) for shift in shifts)


@dataclass(frozen=True)
class Candidate:
    """An agent serving the postal code, with its load counted under the dispatcher's read."""

    agent_id: str
    active: bool
    capacity: int
    active_shipments: int
    shifts: tuple[Shift, ...] = ()

    @property
    def utilisation(self) -> float:
        return self.active_shipments / self.capacity if self.capacity else 1.0


def eligible(candidates: Sequence[Candidate], now: datetime) -> list[str]:
    """Active, on shift and under capacity, least loaded first (ties: by id, so it is stable)."""
    ok = [
        c
        for c in candidates
        if c.active and c.active_shipments < c.capacity and on_shift(c.shifts, now)
    ]
    return [c.agent_id for c in sorted(ok, key=lambda c: (c.utilisation, c.agent_id))]


def next_wave(state: Shipment, eligible_ids: Sequence[str], wave_size: int) -> tuple[str, ...]:
    """Who the next offer goes to: the next ``wave_size`` eligible agents not offered in this
    round (0 = all of them); after the last wave, every eligible agent who did not decline (a
    new round); nobody (empty) when no eligible agent is left: the shipment waits."""
    candidates = [a for a in eligible_ids if a not in state.declined]
    fresh = [a for a in candidates if a not in state.offered_round]
    if fresh:
        return tuple(fresh if wave_size <= 0 else fresh[:wave_size])
    return tuple(candidates)


def waits_for_a_shift(candidates: Sequence[Candidate], state: Shipment, now: datetime) -> bool:
    """Whether time alone may make someone eligible: an agent serving the postal code who is
    active, under capacity and did not decline, but is off shift now. Otherwise only an event
    can (a new or changed agent, freed capacity), and each of those wakes the shipment."""
    return any(
        c.active
        and c.active_shipments < c.capacity
        and c.agent_id not in state.declined
        and not on_shift(c.shifts, now)
        for c in candidates
    )
