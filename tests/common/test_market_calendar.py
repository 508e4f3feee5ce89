"""The KRX market calendar, checked against answers written from public sources.

The expected values here never come from the code under test: the sessions of
2024-2026 are read from ``tests/data/krx_sessions_2024_2026.csv`` (typed by hand from
KRX notices and the holiday laws; see ``tests/data/README.md``), the known library gaps
are typed below, and the ``holidays`` package is an independent second source.
"""

from __future__ import annotations

import csv
import json
import warnings
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from services.common import market_calendar
from services.common.market_calendar import (
    OVERRIDES_PATH,
    CalendarError,
    MarketCalendar,
    Override,
    apply_overrides,
    load_calendar,
    make_session,
    open_first_sessions_late,
    parse_overrides,
)

ANSWERS = Path(__file__).parents[1] / "data" / "krx_sessions_2024_2026.csv"
KRX_TZ = "Asia/Seoul"


# --- the library's schedule -------------------------------------------------------------------


def test_the_librarys_sessions_are_read_as_its_own_schedule_gives_them() -> None:
    import pandas_market_calendars as mcal

    start, end = market_calendar.CALENDAR_START, date(2027, 12, 31)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        schedule = mcal.get_calendar(market_calendar.LIBRARY_CALENDAR).schedule(start.isoformat(), end.isoformat())
    expected = [(day.date(), opens.tz_convert(KRX_TZ).to_pydatetime(), closes.tz_convert(KRX_TZ).to_pydatetime())
                for day, opens, closes in zip(schedule.index, schedule["market_open"], schedule["market_close"])]
    sessions = market_calendar._library_sessions(start, end)  # read faster than schedule() (a cold start)
    assert [(session.date, session.open, session.close) for session in sessions] == expected
    assert len(sessions) > 3_000


# --- fixtures (the session's calendar, built once per run: the library needs ~1 s) ------


@pytest.fixture(scope="module")
def cache_dir(calendar_cache_dir: Path) -> Path:
    return calendar_cache_dir


@pytest.fixture(scope="module")
def calendar(krx_calendar: MarketCalendar) -> MarketCalendar:
    return krx_calendar


@pytest.fixture(scope="module")
def answers() -> dict[date, tuple[str, str, str]]:
    """``date -> (open, close, status)`` from the hand-written answer file."""
    with ANSWERS.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["date", "open", "close", "status"]
        return {
            date.fromisoformat(row["date"]): (row["open"], row["close"], row["status"])
            for row in reader
        }


@pytest.fixture(scope="module")
def raw_library() -> dict[date, tuple[str, str]]:
    """pandas-market-calendars' own XKRX schedule, 2017-2026, as Asia/Seoul HH:MM."""
    import pandas_market_calendars as mcal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # discontinued lunch-break columns
        schedule = mcal.get_calendar("XKRX").schedule("2017-01-01", "2026-12-31")
    opens = schedule["market_open"].dt.tz_convert(KRX_TZ)
    closes = schedule["market_close"].dt.tz_convert(KRX_TZ)
    return {
        day.date(): (o.strftime("%H:%M"), c.strftime("%H:%M"))
        for day, o, c in zip(schedule.index, opens, closes)
    }


def observed(calendar: MarketCalendar, day: date) -> tuple[str, str, str]:
    """What our calendar says about ``day``, in the answer file's terms."""
    session = calendar.session(day)
    if session is None:
        return ("", "", "closed")
    return (session.open.strftime("%H:%M"), session.close.strftime("%H:%M"), session.status)


def all_weekdays(start: date, end: date) -> list[date]:
    # Written out here rather than taken from market_calendar.weekdays (code under test).
    return [
        start + timedelta(days=n)
        for n in range((end - start).days + 1)
        if (start + timedelta(days=n)).weekday() < 5
    ]


# --- the answer file -------------------------------------------------------------------


def test_answer_file_lists_every_weekday_of_2024_to_2026_once(answers):
    assert list(answers) == all_weekdays(date(2024, 1, 1), date(2026, 12, 31))
    for day, (open_, close, status) in answers.items():
        assert status in {"regular", "special", "closed"}, day
        assert (open_ == close == "") == (status == "closed"), day
        assert (status == "regular") == ((open_, close) == ("09:00", "15:30")), day


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_every_weekday_matches_the_answer_file(calendar, answers, year):
    mismatches = [
        f"{day}: ours {observed(calendar, day)}, answer {expected}"
        for day, expected in answers.items()
        if day.year == year and observed(calendar, day) != expected
    ]
    assert not mismatches, "\n".join(mismatches)


def test_there_are_no_weekend_sessions_and_no_sessions_beyond_the_answers(calendar, answers):
    ours = [s.date for s in calendar.sessions(date(2024, 1, 1), date(2026, 12, 31))]
    assert ours == [day for day, (_, _, status) in answers.items() if status != "closed"]


def test_sessions_are_aware_datetimes_in_seoul_time(calendar):
    session = calendar.session(date(2025, 11, 13))
    assert session.open.utcoffset() == timedelta(hours=9)
    assert session.open.isoformat() == "2025-11-13T10:00:00+09:00"
    assert session.close.isoformat() == "2025-11-13T16:30:00+09:00"


# --- known library gaps: ours is right; the installed library is (still) wrong ----------

CLOSED = None
KNOWN_LIBRARY_GAPS = [
    pytest.param(date(2024, 1, 2), ("10:00", "15:30"), id="2024-01-02-first-session-opens-10:00"),
    pytest.param(date(2025, 1, 2), ("10:00", "15:30"), id="2025-01-02-first-session-opens-10:00"),
    pytest.param(date(2026, 1, 2), ("10:00", "15:30"), id="2026-01-02-first-session-opens-10:00"),
    pytest.param(date(2024, 11, 14), ("10:00", "16:30"), id="2024-11-14-exam-day-10:00-16:30"),
    pytest.param(date(2025, 11, 13), ("10:00", "16:30"), id="2025-11-13-exam-day-10:00-16:30"),
    pytest.param(date(2026, 11, 19), ("10:00", "16:30"), id="2026-11-19-exam-day-10:00-16:30"),
    pytest.param(date(2026, 6, 3), CLOSED, id="2026-06-03-local-elections-closed"),
    pytest.param(date(2026, 7, 17), CLOSED, id="2026-07-17-constitution-day-closed"),
    pytest.param(
        date(2017, 11, 16), ("09:00", "15:30"), id="2017-11-16-exam-postponed-regular-hours"
    ),
]


def _hhmm(open_: time | datetime, close: time | datetime) -> tuple[str, str]:
    return (open_.strftime("%H:%M"), close.strftime("%H:%M"))


def _hours(calendar: MarketCalendar, day: date) -> tuple[str, str] | None:
    session = calendar.session(day)
    return None if session is None else _hhmm(session.open, session.close)


@pytest.mark.parametrize(("day", "fact"), KNOWN_LIBRARY_GAPS)
def test_our_calendar_has_the_fact(calendar, day, fact):
    assert _hours(calendar, day) == fact


@pytest.mark.parametrize(("day", "fact"), KNOWN_LIBRARY_GAPS)
def test_overrides_file_records_the_fact_with_a_source(day, fact):
    overrides = parse_overrides(OVERRIDES_PATH.read_text(encoding="utf-8"))
    by_date = {entry.date: entry for entry in overrides.entries}
    assert day in by_date, f"{day} is a known library gap but has no row in {OVERRIDES_PATH.name}"
    entry = by_date[day]
    recorded = None if entry.kind == "closed" else _hhmm(entry.open, entry.close)
    assert recorded == fact
    assert entry.source


@pytest.mark.parametrize(("day", "fact"), KNOWN_LIBRARY_GAPS)
def test_installed_library_gets_it_wrong_which_is_why_the_override_exists(
    calendar, raw_library, day, fact
):
    library = raw_library.get(day)  # None: the library has no session that day
    if library == fact:
        pytest.skip(f"pandas-market-calendars now agrees on {day}; the override is a no-op")
    assert _hours(calendar, day) == fact != library


def test_exchange_calendars_underneath_lists_the_postponed_2017_exam_day_as_late_session():
    """pandas-market-calendars' mirror drops special hours, so it agrees on 2017-11-16 by
    accident; the exchange_calendars data underneath still shifts it to 10:00-16:30
    although the exam was postponed to 11-23. The override pins the regular hours."""
    xcals = pytest.importorskip("exchange_calendars")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xkrx = xcals.get_calendar("XKRX", start="2017-11-01", end="2017-11-30")
    day = "2017-11-16"
    hours = (
        xkrx.session_open(day).tz_convert(KRX_TZ).strftime("%H:%M"),
        xkrx.session_close(day).tz_convert(KRX_TZ).strftime("%H:%M"),
    )
    if hours == ("09:00", "15:30"):
        pytest.skip("exchange_calendars now has regular hours on 2017-11-16")
    assert hours == ("10:00", "16:30")


# --- cross-check with the holidays package ------------------------------------------------


@pytest.fixture(scope="module")
def holidays_closures() -> set[date]:
    holidays = pytest.importorskip("holidays")
    xkrx = holidays.financial_holidays("XKRX", years=range(2024, 2027))
    return {day for day in xkrx if day.weekday() < 5}


def _our_closures(calendar: MarketCalendar) -> set[date]:
    weekdays = all_weekdays(date(2024, 1, 1), date(2026, 12, 31))
    return {day for day in weekdays if calendar.session(day) is None}


def test_every_holidays_package_closure_is_closed_in_ours(calendar, holidays_closures):
    import holidays

    open_in_ours = sorted(holidays_closures - _our_closures(calendar))
    assert not open_in_ours, f"holidays {holidays.__version__} closes, ours trades: {open_in_ours}"


def test_every_closure_of_ours_is_a_holidays_package_closure(calendar, holidays_closures):
    import holidays

    unknown = sorted(_our_closures(calendar) - holidays_closures)
    assert not unknown, f"ours closes these, holidays {holidays.__version__} does not: {unknown}"


# --- apply_overrides (plain data, no library) ---------------------------------------------


def _t(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def small_overrides() -> list[Override]:
    return [
        Override(date(2026, 1, 2), "session", _t("10:00"), _t("15:30"), "KRX opening-day notice"),
        Override(date(2026, 7, 17), "closed", None, None, "Public Holidays Act 2026"),
        Override(date(2026, 11, 19), "session", _t("10:00"), _t("16:30"), "KRX exam-day notice"),
    ]


def test_overrides_change_the_library_sessions_they_correct():
    library = [
        make_session(date(2026, 1, 2), _t("09:00"), _t("15:30")),
        make_session(date(2026, 7, 17), _t("09:00"), _t("15:30")),
        make_session(date(2026, 11, 19), _t("09:00"), _t("15:30")),
    ]
    assert apply_overrides(library, small_overrides()) == [
        make_session(date(2026, 1, 2), _t("10:00"), _t("15:30")),
        make_session(date(2026, 11, 19), _t("10:00"), _t("16:30")),
    ]


def test_each_year_s_first_session_past_the_reviewed_data_opens_at_10():
    library = [
        make_session(date(2026, 1, 2), _t("10:00"), _t("15:30")),  # reviewed: as the overrides left it
        make_session(date(2026, 12, 30), _t("09:00"), _t("15:30")),
        make_session(date(2027, 1, 4), _t("09:00"), _t("15:30")),  # past the data: the yearly rule
        make_session(date(2027, 1, 5), _t("09:00"), _t("15:30")),
        make_session(date(2028, 1, 3), _t("09:00"), _t("15:30")),
    ]
    assert open_first_sessions_late(library, after=date(2026, 12, 31)) == [
        make_session(date(2026, 1, 2), _t("10:00"), _t("15:30")),
        make_session(date(2026, 12, 30), _t("09:00"), _t("15:30")),
        make_session(date(2027, 1, 4), _t("10:00"), _t("15:30")),
        make_session(date(2027, 1, 5), _t("09:00"), _t("15:30")),
        make_session(date(2028, 1, 3), _t("10:00"), _t("15:30")),
    ]


def test_the_calendar_opens_the_first_session_of_2027_at_10(krx_calendar):
    session = krx_calendar.session(date(2027, 1, 4))
    assert (session.open.time(), session.close.time()) == (_t("10:00"), _t("15:30"))


def test_overrides_change_nothing_when_the_library_already_agrees():
    agreeing = [
        make_session(date(2026, 1, 2), _t("10:00"), _t("15:30")),
        make_session(date(2026, 7, 16), _t("09:00"), _t("15:30")),
        # 2026-07-17 already absent: the closure must not fail or add anything
        make_session(date(2026, 11, 19), _t("10:00"), _t("16:30")),
    ]
    assert apply_overrides(agreeing, small_overrides()) == agreeing


def test_applying_overrides_twice_equals_applying_them_once():
    library = [
        make_session(date(2026, 1, 2), _t("09:00"), _t("15:30")),
        make_session(date(2026, 7, 16), _t("09:00"), _t("15:30")),
        make_session(date(2026, 7, 17), _t("09:00"), _t("15:30")),
    ]
    once = apply_overrides(library, small_overrides())
    assert apply_overrides(once, small_overrides()) == once


def test_applied_sessions_come_out_sorted_by_date():
    library = [make_session(date(2026, 7, 16), _t("09:00"), _t("15:30"))]
    result = apply_overrides(library, small_overrides())
    assert [s.date for s in result] == [date(2026, 1, 2), date(2026, 7, 16), date(2026, 11, 19)]


# --- parse_overrides: bad lines are rejected with one line naming them --------------------

HEADER = "date,kind,open,close,source"
VALID_THROUGH = "# valid_through: 2026-12-31"


def overrides_text(*rows: str, header: str = HEADER, valid_through: str = VALID_THROUGH) -> str:
    """Line 1 is a comment, line 2 valid_through, line 3 the header, data from line 4."""
    return "\n".join(["# test overrides", valid_through, header, *rows]) + "\n"


def test_a_well_formed_file_parses():
    parsed = parse_overrides(
        overrides_text(
            "2026-07-17,closed,,,Public Holidays Act",
            "2026-11-19,session,10:00,16:30,KRX notice",
        ),
        "x.csv",
    )
    assert parsed.valid_through == date(2026, 12, 31)
    assert [(e.date, e.kind, e.open, e.close) for e in parsed.entries] == [
        (date(2026, 7, 17), "closed", None, None),
        (date(2026, 11, 19), "session", _t("10:00"), _t("16:30")),
    ]


def test_the_real_overrides_file_parses_and_is_valid_through_2026_12_31():
    parsed = parse_overrides(OVERRIDES_PATH.read_text(encoding="utf-8"))
    assert parsed.valid_through == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            overrides_text("2026-02-30,closed,,,law"),
            "x.csv line 4: '2026-02-30' is not a date; expected YYYY-MM-DD",
            id="bad-date",
        ),
        pytest.param(
            overrides_text("2026-07-17,holiday,,,law"),
            "x.csv line 4: kind 'holiday'; expected 'closed' or 'session'",
            id="unknown-kind",
        ),
        pytest.param(
            overrides_text("2026-11-19,session,16:30,10:00,KRX notice"),
            "x.csv line 4: open 16:30 is not before close 10:00",
            id="open-not-before-close",
        ),
        pytest.param(
            overrides_text("2026-11-19,session,10:00,10:00,KRX notice"),
            "x.csv line 4: open 10:00 is not before close 10:00",
            id="open-equals-close",
        ),
        pytest.param(
            overrides_text("2026-11-19,session,25:00,16:30,KRX notice"),
            "x.csv line 4: open '25:00' is not a time; expected HH:MM",
            id="bad-time",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,09:00,15:30,law"),
            "x.csv line 4: a closed day has no open/close; leave both empty",
            id="closed-day-with-times",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,,,  "),
            "x.csv line 4: no source; every override names the KRX notice or law",
            id="missing-source",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,,"),
            "x.csv line 4: 4 fields; expected 5 (date,kind,open,close,source)",
            id="wrong-field-count",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,,,law", "# comment", "2026-07-17,closed,,,again"),
            "x.csv line 6: 2026-07-17 is listed twice; expected one row a date",
            id="duplicate-date",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,,,law", valid_through="# reviewed recently"),
            "x.csv: no '# valid_through: YYYY-MM-DD' line; expected one",
            id="missing-valid-through",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,,,law", valid_through="# valid_through: 2026-13-01"),
            "x.csv line 2: '2026-13-01' is not a date; expected YYYY-MM-DD",
            id="bad-valid-through",
        ),
        pytest.param(
            overrides_text("2026-07-17,closed,,,law", header="day,kind,open,close,source"),
            "x.csv: expected the header line 'date,kind,open,close,source'",
            id="wrong-header",
        ),
    ],
)
def test_parse_overrides_rejects_a_bad_line_with_a_one_line_message(text, message):
    with pytest.raises(CalendarError) as caught:
        parse_overrides(text, "x.csv")
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


# --- navigation across a long holiday and the year end ------------------------------------

CHUSEOK_2025_LAST, CHUSEOK_2025_NEXT = date(2025, 10, 2), date(2025, 10, 10)
YEAR_END_LAST, YEAR_END_NEXT = date(2025, 12, 30), date(2026, 1, 2)


def test_next_session_skips_the_chuseok_2025_holiday(calendar):
    assert calendar.next_session(CHUSEOK_2025_LAST).date == CHUSEOK_2025_NEXT
    assert calendar.next_session(date(2025, 10, 6)).date == CHUSEOK_2025_NEXT


def test_previous_session_skips_back_over_the_chuseok_2025_holiday(calendar):
    assert calendar.previous_session(CHUSEOK_2025_NEXT).date == CHUSEOK_2025_LAST
    assert calendar.previous_session(date(2025, 10, 9)).date == CHUSEOK_2025_LAST


def test_session_on_or_after_a_holiday_is_the_first_session_after_it(calendar):
    assert calendar.session_on_or_after(date(2025, 10, 3)).date == CHUSEOK_2025_NEXT
    assert calendar.session_on_or_after(CHUSEOK_2025_NEXT).date == CHUSEOK_2025_NEXT
    assert calendar.session_on_or_before(date(2025, 10, 9)).date == CHUSEOK_2025_LAST


def test_sessions_in_a_range_leave_out_the_chuseok_2025_holiday(calendar):
    days = [s.date for s in calendar.sessions(date(2025, 10, 1), date(2025, 10, 13))]
    assert days == [date(2025, 10, 1), CHUSEOK_2025_LAST, CHUSEOK_2025_NEXT, date(2025, 10, 13)]


def test_next_session_after_the_year_end_is_the_10_00_opening_session(calendar):
    following = calendar.next_session(YEAR_END_LAST)
    assert following.date == YEAR_END_NEXT
    assert following.open.strftime("%H:%M") == "10:00"
    assert calendar.session_on_or_after(date(2025, 12, 31)).date == YEAR_END_NEXT


def test_previous_session_before_the_new_year_is_the_last_session_of_the_old(calendar):
    assert calendar.previous_session(YEAR_END_NEXT).date == YEAR_END_LAST
    assert calendar.previous_session(date(2026, 1, 1)).date == YEAR_END_LAST


def test_sessions_across_the_year_end(calendar):
    days = [s.date for s in calendar.sessions(date(2025, 12, 29), date(2026, 1, 5))]
    assert days == [date(2025, 12, 29), YEAR_END_LAST, YEAR_END_NEXT, date(2026, 1, 5)]


def test_is_session_on_a_closed_weekday_is_false(calendar):
    assert calendar.is_session(date(2025, 12, 31)) is False
    assert calendar.is_session(YEAR_END_NEXT) is True


# --- bounds --------------------------------------------------------------------------------


def test_calendar_is_reviewed_through_2026_12_31(calendar):
    assert calendar.valid_through == date(2026, 12, 31)
    assert calendar.first_date <= date(2024, 1, 1) and calendar.last_date >= calendar.valid_through


def test_first_and_last_date_can_be_asked(calendar):
    calendar.session(calendar.first_date)
    calendar.session(calendar.last_date)


@pytest.mark.parametrize("side", ["before-first-date", "after-last-date"])
def test_asking_outside_the_data_raises(calendar, side):
    if side == "before-first-date":
        day = calendar.first_date - timedelta(days=1)
    else:
        day = calendar.last_date + timedelta(days=1)
    with pytest.raises(CalendarError, match=rf"^{day} is outside the KRX calendar data"):
        calendar.session(day)
    with pytest.raises(CalendarError):
        calendar.is_session(day)


# --- the disk cache ------------------------------------------------------------------------


def _library_must_not_be_called(start, end):
    raise AssertionError("the library was asked although the cache should have answered")


def test_a_second_load_with_the_same_cache_dir_reads_the_cache(calendar, cache_dir, monkeypatch):
    assert list(cache_dir.glob("krx_sessions_*.json")), "the first load wrote no cache file"
    monkeypatch.setattr(market_calendar, "_library_sessions", _library_must_not_be_called)
    again = load_calendar(cache_dir=cache_dir)
    assert again.sessions(again.first_date, again.last_date) == calendar.sessions(
        calendar.first_date, calendar.last_date
    )
    assert (again.first_date, again.last_date, again.valid_through) == (
        calendar.first_date,
        calendar.last_date,
        calendar.valid_through,
    )


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("", id="empty"),
        pytest.param("{not json", id="not-json"),
        pytest.param('[["2026-01-02", "10:00"', id="truncated"),
        pytest.param('{"2026-01-02": 1}', id="wrong-shape"),
        pytest.param('[["2026-01-02", 1, 2]]', id="wrong-types"),
    ],
)
def test_a_corrupt_cache_file_is_rebuilt_not_fatal(calendar, tmp_path, monkeypatch, garbage):
    # A stand-in library (the real sessions, already corrected) keeps this fast; the
    # overrides are idempotent, so a rebuild must give back exactly the same table.
    calls = []

    def library(start, end):
        calls.append((start, end))
        return calendar.sessions(start, end)

    monkeypatch.setattr(market_calendar, "_library_sessions", library)
    load_calendar(cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("krx_sessions_*.json")
    cache_file.write_text(garbage, encoding="utf-8")

    rebuilt = load_calendar(cache_dir=tmp_path)

    assert len(calls) == 2
    assert rebuilt.sessions(rebuilt.first_date, rebuilt.last_date) == calendar.sessions(
        calendar.first_date, calendar.last_date
    )
    assert len(json.loads(cache_file.read_text(encoding="utf-8"))) == len(
        calendar.sessions(calendar.first_date, calendar.last_date)
    )


def _stand_in_library(calendar, calls):
    """The real sessions, already corrected (the overrides are idempotent): a fast
    library whose calls are counted."""
    def library(start, end):
        calls.append((start, end))
        return calendar.sessions(start, end)

    return library


def _plant_stale_cache(calendar, directory: Path, tmp_path: Path, monkeypatch) -> Path:
    """A cache file under the very name the current code reads, made by older code (the
    first session of 2027 opening at 09:00, before the yearly 10:00 rule): well formed,
    wrong."""
    seed = tmp_path / "seed"
    with monkeypatch.context() as patch:
        patch.setattr(market_calendar, "_library_sessions", _stand_in_library(calendar, []))
        load_calendar(cache_dir=seed)
    (seed_file,) = seed.glob("krx_sessions_*.json")
    rows = json.loads(seed_file.read_text(encoding="utf-8"))
    rows = [[day, "2027-01-04T09:00:00+09:00", close] if day == "2027-01-04" else [day, opens, close]
            for day, opens, close in rows]
    directory.mkdir(parents=True, exist_ok=True)
    planted = directory / seed_file.name
    planted.write_text(json.dumps(rows), encoding="utf-8")
    return planted


def _first_open_of_2027(calendar: MarketCalendar) -> time:
    return calendar.session(date(2027, 1, 4)).open.time()


def test_the_tests_calendar_caches_are_their_own(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    for directory in (market_calendar.default_cache_dir(), market_calendar.fallback_cache_dir()):
        assert directory.is_relative_to(base), directory


def test_a_stale_cache_in_the_fallback_dir_is_not_read_when_the_cache_dir_is_writable(
        calendar, tmp_path, monkeypatch):
    planted = _plant_stale_cache(calendar, market_calendar.fallback_cache_dir(), tmp_path, monkeypatch)
    stale = planted.read_bytes()
    calls = []
    monkeypatch.setattr(market_calendar, "_library_sessions", _stand_in_library(calendar, calls))

    loaded = load_calendar(cache_dir=tmp_path / "cache")

    assert _first_open_of_2027(loaded) == time(10, 0) == _first_open_of_2027(calendar)
    assert len(calls) == 1
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [planted.name], (
        "the first load wrote no cache file")
    assert planted.read_bytes() == stale


def test_an_unwritable_cache_dir_falls_back_to_a_private_dir_of_the_temp_dir(calendar, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    unwritable = tmp_path / "a-file" / "cache"  # even root cannot make a directory under a file
    calls = []
    monkeypatch.setattr(market_calendar, "_library_sessions", _stand_in_library(calendar, calls))

    first = load_calendar(cache_dir=unwritable)
    again = load_calendar(cache_dir=unwritable)

    fallback = market_calendar.fallback_cache_dir()
    assert len(calls) == 1  # the second load read what the first wrote
    assert len(list(fallback.glob("krx_sessions_*.json"))) == 1
    assert oct(fallback.stat().st_mode & 0o777) == "0o700"
    assert again.sessions(again.first_date, again.last_date) == first.sessions(first.first_date, first.last_date)


@pytest.mark.parametrize("kind", ["others-may-write", "a-link"])
def test_a_fallback_dir_that_is_not_private_is_neither_read_nor_written(
        calendar, tmp_path, monkeypatch, kind):
    fallback = market_calendar.fallback_cache_dir()
    if kind == "a-link":
        planted = _plant_stale_cache(calendar, tmp_path / "elsewhere", tmp_path, monkeypatch)
        (tmp_path / "elsewhere").chmod(0o700)
        fallback.symlink_to(tmp_path / "elsewhere")
    else:
        planted = _plant_stale_cache(calendar, fallback, tmp_path, monkeypatch)
        fallback.chmod(0o777)
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    calls = []
    monkeypatch.setattr(market_calendar, "_library_sessions", _stand_in_library(calendar, calls))

    loaded = load_calendar(cache_dir=tmp_path / "a-file" / "cache")

    assert _first_open_of_2027(loaded) == time(10, 0)
    assert len(calls) == 1
    assert list(planted.parent.iterdir()) == [planted]


def test_a_cache_written_by_other_code_is_not_read(calendar, tmp_path, monkeypatch):
    monkeypatch.setattr(market_calendar, "_code_version", lambda: "older code")
    older = _plant_stale_cache(calendar, tmp_path / "cache", tmp_path, monkeypatch)
    monkeypatch.setattr(market_calendar, "_code_version", lambda: "this code")
    calls = []
    monkeypatch.setattr(market_calendar, "_library_sessions", _stand_in_library(calendar, calls))

    loaded = load_calendar(cache_dir=tmp_path / "cache")

    assert _first_open_of_2027(loaded) == time(10, 0)
    assert len(calls) == 1
    assert len(list((tmp_path / "cache").glob("krx_sessions_*.json"))) == 2  # its own, beside the older one
    assert older.exists()


def test_the_cache_key_covers_this_module_s_code():
    from hashlib import sha256

    assert market_calendar._code_version() == sha256(Path(market_calendar.__file__).read_bytes()).hexdigest()[:16]
