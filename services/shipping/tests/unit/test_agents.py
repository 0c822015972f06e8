"""Shifts, eligibility and who gets the next wave: the dispatcher's pure choices."""

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from waybill.shipping.domain import shipment as s
from waybill.shipping.domain.agents import Candidate, Shift, eligible, next_wave, on_shift

MONDAY, TUESDAY, WEDNESDAY, THURSDAY, SUNDAY = 0, 1, 2, 3, 6
# 2026-01-05 is a Monday.
WEEK = datetime(2026, 1, 5, tzinfo=UTC)


def at(weekday: int, hour: int, minute: int = 0) -> datetime:
    return WEEK + timedelta(days=weekday, hours=hour, minutes=minute)


def test_the_calendar_of_these_tests_starts_on_a_monday():
    assert WEEK.weekday() == MONDAY and at(SUNDAY, 0).weekday() == SUNDAY


# --- shifts ---------------------------------------------------------------------------------

DAY_SHIFT = Shift(MONDAY, time(9), time(17))


@pytest.mark.parametrize("now", [at(MONDAY, 9), at(MONDAY, 12), at(MONDAY, 16, 59)])
def test_a_shift_covers_its_weekday_from_its_start_until_before_its_end(now):
    assert DAY_SHIFT.covers(now)


@pytest.mark.parametrize(
    "now",
    [at(MONDAY, 8, 59), at(MONDAY, 17), at(MONDAY, 23), at(TUESDAY, 12), at(SUNDAY, 12)],
)
def test_a_shift_does_not_cover_other_hours_or_other_weekdays(now):
    assert not DAY_SHIFT.covers(now)


NIGHT_SHIFT = Shift(SUNDAY, time(22), time(2))


@pytest.mark.parametrize(
    "now", [at(SUNDAY, 22), at(SUNDAY, 23, 59), at(MONDAY, 0), at(MONDAY, 1, 59)]
)
def test_a_shift_ending_before_its_start_runs_past_midnight_into_the_next_weekday(now):
    # Sunday 22:00 to Monday 02:00: the week wraps from weekday 6 to weekday 0 (the Monday
    # of WEEK follows the Sunday before it).
    assert NIGHT_SHIFT.covers(now)


@pytest.mark.parametrize("now", [at(SUNDAY, 21, 59), at(MONDAY, 2), at(MONDAY, 23), at(SUNDAY, 1)])
def test_a_shift_past_midnight_ends_at_its_end_and_covers_nothing_else(now):
    assert not NIGHT_SHIFT.covers(now)


def test_the_early_hours_belong_to_the_shift_of_the_day_before():
    monday_night = Shift(MONDAY, time(22), time(2))
    assert not monday_night.covers(at(MONDAY, 1))
    assert monday_night.covers(at(TUESDAY, 1))


FULL_DAY = Shift(WEDNESDAY, time(8), time(8))


@pytest.mark.parametrize("now", [at(WEDNESDAY, 8), at(WEDNESDAY, 20), at(THURSDAY, 7, 59)])
def test_a_shift_ending_at_its_start_lasts_24_hours(now):
    assert FULL_DAY.covers(now)


@pytest.mark.parametrize("now", [at(WEDNESDAY, 7, 59), at(THURSDAY, 8)])
def test_a_24_hour_shift_covers_nothing_outside_its_day(now):
    assert not FULL_DAY.covers(now)


def test_a_shift_is_judged_in_utc_whatever_zone_the_time_is_given_in():
    # Monday 08:00 UTC, before the shift, is 10:00 in UTC+2 and 03:00 in UTC-5 (still Monday).
    for zone in (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))):
        assert not DAY_SHIFT.covers(at(MONDAY, 8).astimezone(zone))
        assert DAY_SHIFT.covers(at(MONDAY, 9).astimezone(zone))
    # Monday 23:00 UTC is Tuesday 01:00 in UTC+2, yet still before a Tuesday shift.
    tuesday_morning = Shift(TUESDAY, time(0), time(6))
    assert not tuesday_morning.covers(at(MONDAY, 23).astimezone(timezone(timedelta(hours=2))))
    assert tuesday_morning.covers(at(TUESDAY, 1).astimezone(timezone(timedelta(hours=2))))


def test_an_agent_without_shifts_is_always_on_shift():
    for hours in range(0, 7 * 24, 5):
        assert on_shift((), WEEK + timedelta(hours=hours))


def test_an_agent_with_shifts_is_on_shift_inside_any_of_them_and_off_outside_all():
    shifts = (DAY_SHIFT, Shift(TUESDAY, time(9), time(17)))
    assert on_shift(shifts, at(MONDAY, 10)) and on_shift(shifts, at(TUESDAY, 10))
    assert not on_shift(shifts, at(WEDNESDAY, 10))
    assert not on_shift(shifts, at(MONDAY, 18))


# --- eligible -------------------------------------------------------------------------------

NOW = at(MONDAY, 12)


def agent(agent_id, active=True, capacity=10, load=0, shifts=()) -> Candidate:
    return Candidate(
        agent_id=agent_id,
        active=active,
        capacity=capacity,
        active_shipments=load,
        shifts=tuple(shifts),
    )


def test_inactive_agents_are_not_eligible():
    assert eligible([agent("a1", active=False), agent("a2")], NOW) == ["a2"]


@pytest.mark.parametrize(("capacity", "load"), [(3, 3), (3, 4), (0, 0)])
def test_agents_at_capacity_are_not_eligible(capacity, load):
    assert eligible([agent("a1", capacity=capacity, load=load), agent("a2")], NOW) == ["a2"]


def test_an_agent_one_below_capacity_is_eligible():
    assert eligible([agent("a1", capacity=3, load=2)], NOW) == ["a1"]


def test_agents_off_shift_are_not_eligible():
    candidates = [agent("a1", shifts=[Shift(TUESDAY, time(9), time(17))]), agent("a2")]
    assert eligible(candidates, NOW) == ["a2"]
    assert eligible([agent("a1", shifts=[DAY_SHIFT])], NOW) == ["a1"]


def test_the_least_loaded_come_first_by_share_of_capacity():
    candidates = [
        agent("a1", capacity=10, load=2),  # 20 %
        agent("a2", capacity=2, load=1),  # 50 %, fewer shipments but fuller
        agent("a3", capacity=3, load=0),  # idle
    ]
    assert eligible(candidates, NOW) == ["a3", "a1", "a2"]


def test_equally_loaded_agents_come_in_order_of_id_whatever_order_they_were_found_in():
    candidates = [agent("a3", load=1), agent("a1", capacity=20, load=2), agent("a2", load=1)]
    assert eligible(candidates, NOW) == ["a1", "a2", "a3"]
    assert eligible(list(reversed(candidates)), NOW) == ["a1", "a2", "a3"]


def test_nobody_is_eligible_among_no_candidates():
    assert eligible([], NOW) == []


# --- next_wave ------------------------------------------------------------------------------

ELIGIBLE = ("a1", "a2", "a3", "a4", "a5")


def created() -> s.Shipment:
    state = s.Shipment("shp_1")
    command = s.CreateShipment("shp_1", "ord_1", "10001", NOW + timedelta(hours=48))
    return s.evolve_all(state, s.decide(state, command))


def offered(state: s.Shipment, wave: tuple[str, ...], declines: tuple[str, ...] = ()) -> s.Shipment:
    """Offer ``wave``, let ``declines`` decline, and let the rest run out."""
    assignment_id = f"as_{state.waves + 1}"
    state = s.evolve_all(state, s.decide(state, s.OfferWave(assignment_id, wave, NOW)))
    for agent_id in declines:
        state = s.evolve_all(state, s.decide(state, s.DeclineOffer(assignment_id, agent_id)))
    return s.evolve_all(state, s.decide(state, s.ExpireOffer(now=NOW)))


def test_a_wave_size_of_zero_offers_to_every_eligible_agent_at_once():
    assert next_wave(created(), ELIGIBLE, 0) == ELIGIBLE


def test_waves_of_size_k_take_the_eligible_in_order_k_at_a_time():
    state = created()
    assert next_wave(state, ELIGIBLE, 2) == ("a1", "a2")
    state = offered(state, ("a1", "a2"))
    assert next_wave(state, ELIGIBLE, 2) == ("a3", "a4")
    state = offered(state, ("a3", "a4"))
    assert next_wave(state, ELIGIBLE, 2) == ("a5",)


def test_after_the_last_wave_a_new_round_goes_to_everyone_who_did_not_decline():
    state = created()
    state = offered(state, ("a1", "a2"), declines=("a2",))
    state = offered(state, ("a3", "a4"))
    state = offered(state, ("a5",), declines=("a5",))
    wave = next_wave(state, ELIGIBLE, 2)
    assert wave == ("a1", "a3", "a4")
    state = offered(state, wave)
    assert next_wave(state, ELIGIBLE, 2) == ("a1", "a3", "a4")  # and again, while they stay


def test_an_agent_who_becomes_eligible_during_a_round_is_offered_before_the_round_repeats():
    state = offered(created(), ("a1", "a2"))
    assert next_wave(state, ("a1", "a2", "a6"), 2) == ("a6",)


def test_an_agent_who_declined_is_never_offered_the_shipment_again():
    state = offered(created(), ("a1", "a2"), declines=("a1",))
    assert "a1" not in next_wave(state, ELIGIBLE, 0)
    assert "a1" not in next_wave(state, ("a1",), 1)


def test_when_everyone_declined_nobody_gets_a_wave():
    state = offered(created(), ELIGIBLE, declines=ELIGIBLE)
    assert state.offer is None and state.awaiting_offer
    assert next_wave(state, ELIGIBLE, 0) == ()
    assert next_wave(state, ELIGIBLE, 2) == ()


def test_with_nobody_eligible_the_shipment_waits():
    assert next_wave(created(), (), 0) == ()


def test_every_wave_next_wave_picks_is_one_the_decider_accepts_until_all_declined():
    state, waves = created(), []
    while wave := next_wave(state, ELIGIBLE, 2):
        assert len(waves) < 10, waves
        [event] = s.decide(state, s.OfferWave(f"as_{state.waves + 1}", wave, NOW))
        assert (event.agent_ids, event.wave) == (wave, len(waves) + 1)
        waves.append(wave)
        state = offered(state, wave, declines=wave[:1])  # the first of each wave declines
    assert waves == [("a1", "a2"), ("a3", "a4"), ("a5",), ("a2", "a4"), ("a4",)]
    assert state.declined == set(ELIGIBLE)
