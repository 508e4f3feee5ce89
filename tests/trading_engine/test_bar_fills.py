"""The daily-bar fill model (pure): a held position's price exit on the path
open -> low -> high -> close, at the level crossed, and when the path's points happen.

Rules in every example: stop loss 5%, take profit 15%, trailing stop 8%. Prices
between 5,000 and 20,000 KRW trade in 10-KRW ticks (the KRX table since 2023-01-25).
Every expected value is worked out in the comments."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from services.common.krx_market import round_to_tick
from services.common.market_calendar import KRX_TZ, MarketCalendar
from services.trading_engine.bar_fills import Bar, BarExit, bar_exit, path_moments
from services.trading_engine.signals import SignalRules

RULES = SignalRules((), stop_loss_pct=5.0, take_profit_pct=15.0, trailing_stop_pct=8.0)


def exit_of(average: float, high_water: int, bar: Bar) -> BarExit | None:
    return bar_exit(average, high_water, bar, RULES, round_to_tick)


def test_a_quiet_bar_takes_no_exit():
    # stop 9,500, take profit 11,500, trailing 10,000 * 0.92 = 9,200: the bar stays between
    assert exit_of(10_000, 10_000, Bar(open=10_000, high=10_400, low=9_600, close=10_200)) is None


def test_a_stop_crossed_on_the_way_to_the_low_exits_at_the_stop_level():
    # open 10,100 > 9,500; the leg down to 9,400 crosses 9,500: sold at 9,500, not at the low
    assert exit_of(10_000, 10_000, Bar(open=10_100, high=10_300, low=9_400, close=9_800)) == \
        BarExit(1, 9_500, "stop loss")


def test_a_session_that_opens_through_the_stop_exits_at_the_open():
    assert exit_of(10_000, 10_000, Bar(open=9_300, high=9_700, low=9_100, close=9_600)) == \
        BarExit(0, 9_300, "stop loss")


def test_the_adverse_extreme_comes_first_so_a_bar_reaching_both_levels_stops_out():
    # low 9,400 (stop 9,500) and high 11,800 (take profit 11,500): the low comes first
    assert exit_of(10_000, 10_000, Bar(open=10_000, high=11_800, low=9_400, close=11_000)) == \
        BarExit(1, 9_500, "stop loss")


def test_take_profit_is_taken_on_the_rising_leg_at_its_level():
    # low 10,000 stays above the stops; the leg up to 11,800 crosses 11,500
    assert exit_of(10_000, 10_000, Bar(open=10_200, high=11_800, low=10_000, close=11_000)) == \
        BarExit(2, 11_500, "take profit")


def test_a_take_profit_level_off_the_tick_grid_is_rounded_up():
    # average 10,004: take profit 11,504.6 -> 11,510 (10-KRW ticks), still inside the bar
    assert exit_of(10_004, 10_004, Bar(open=10_200, high=11_800, low=10_000, close=11_000)) == \
        BarExit(2, 11_510, "take profit")


def test_the_trailing_stop_follows_the_high_before_the_last_leg():
    # average 11,000: stop 10,450, take profit 12,650. The high 12,500 raises the mark
    # from 12,000 to 12,500; its trailing level 12,500 * 0.92 = 11,500 is crossed on the
    # leg down to the close 11,300
    assert exit_of(11_000, 12_000, Bar(open=11_500, high=12_500, low=11_200, close=11_300)) == \
        BarExit(3, 11_500, "trailing stop")


def test_a_falling_leg_through_both_stops_exits_at_the_higher_level_first_met():
    # stop 9,500; trailing 10,600 * 0.92 = 9,752 -> 9,750 on the grid: met first
    assert exit_of(10_000, 10_600, Bar(open=10_000, high=10_100, low=9_000, close=9_200)) == \
        BarExit(1, 9_750, "trailing stop")


@pytest.mark.parametrize(("day", "expected"), [
    (date(2025, 10, 2), ["09:00", "11:10", "13:20", "15:30"]),  # a regular session, 390 minutes
    (date(2025, 11, 13), ["10:00", "12:10", "14:20", "16:30"]),  # exam day: an hour later
    (date(2026, 1, 2), ["10:00", "11:50", "13:40", "15:30"]),  # the year's first session opens at 10:00
])
def test_the_path_points_split_the_actual_session_in_thirds(krx_calendar: MarketCalendar, day, expected):
    session = krx_calendar.session(day)
    assert session is not None
    moments: tuple[datetime, ...] = path_moments(session)
    assert [moment.astimezone(KRX_TZ).strftime("%H:%M") for moment in moments] == expected
