"""Pure rules: on-duty windows in the officer's time zone, quiet off duty unless critical,
escalation order, SMS length."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time

import pytest

from alerts.messages import render, segments
from alerts.rules import DutyWindow, Officer, RuleBook, escalation_tier, on_duty, reachable

with open("config/alert_rules.toml", "rb") as rules_file:
    BOOK = RuleBook.from_mapping(tomllib.load(rules_file))
DAY = DutyWindow(frozenset(range(5)), time(8), time(20))  # weekdays 08-20 local
NIGHT = DutyWindow(frozenset({4}), time(22), time(6))  # Friday night into Saturday


def officer(
    id: int, city: str | None, level: int = 1, zone: str = "Europe/Athens", *windows: DutyWindow
) -> Officer:
    return Officer(id, city, f"o{id}", level, email=f"o{id}@x.org", timezone=zone, windows=windows)


@pytest.mark.parametrize(
    ("at", "zone", "window", "expected"),
    [
        (datetime(2026, 6, 10, 5, 30, tzinfo=UTC), "Europe/Athens", DAY, True),  # 08:30 EEST
        (datetime(2026, 6, 10, 5, 30, tzinfo=UTC), "Europe/Belgrade", DAY, False),  # 07:30 CEST
        (datetime(2026, 1, 14, 6, 30, tzinfo=UTC), "Europe/Athens", DAY, True),  # 08:30 EET
        (datetime(2026, 1, 14, 6, 30, tzinfo=UTC), "Europe/Istanbul", DAY, True),  # 09:30 TRT
        (datetime(2026, 6, 13, 9, 0, tzinfo=UTC), "Europe/Athens", DAY, False),  # Saturday
        (datetime(2026, 6, 13, 1, 0, tzinfo=UTC), "Europe/Athens", NIGHT, True),  # Sat 04:00
        (datetime(2026, 6, 14, 1, 0, tzinfo=UTC), "Europe/Athens", NIGHT, False),  # Sun 04:00
    ],
)
def test_on_duty_is_read_in_the_officers_time_zone(
    at: datetime, zone: str, window: DutyWindow, expected: bool
) -> None:
    assert on_duty(officer(1, "athens", 1, zone, window), at) is expected


NIGHT_UTC = datetime(2026, 6, 10, 23, 0, tzinfo=UTC)  # 02:00 in Athens


@pytest.mark.parametrize(("priority", "reached"), [("normal", []), ("high", []), ("critical", [1])])
def test_quiet_off_duty_unless_critical(priority: str, reached: list[int]) -> None:
    roster = [officer(1, "athens", 1, "Europe/Athens", DAY)]
    _, officers = reachable(roster, "athens", priority, NIGHT_UTC, BOOK.for_city("athens"))
    assert [o.id for o in officers] == reached


def test_off_duty_first_level_gives_way_to_an_on_duty_second_level() -> None:
    roster = [officer(1, "athens", 1, "Europe/Athens", DAY), officer(2, "athens", 2)]
    level, officers = reachable(roster, "athens", "normal", NIGHT_UTC, BOOK.for_city("athens"))
    assert (level, [o.id for o in officers]) == (2, [2])


def test_escalation_goes_up_the_city_then_the_network() -> None:
    roster = [
        officer(1, "athens"),
        officer(2, "athens", 2),
        officer(3, None),
        officer(4, None, 2),
        officer(5, "sofia", 2),
    ]
    rules = BOOK.for_city("athens")
    now = NIGHT_UTC
    steps = []
    scope, level = "city", 1
    while scope:
        scope, level, people = escalation_tier(
            roster,
            city="athens",
            scope=scope,
            level=level,
            priority="critical",
            now=now,
            rules=rules,
        )
        steps.append((scope, level, [o.id for o in people]))
    assert steps == [("city", 2, [2]), ("network", 1, [3]), ("network", 2, [4]), ("", 0, [])]


def test_per_city_overrides_apply_to_that_city_only() -> None:
    assert BOOK.for_city("athens").max_eta_hours == 6.0
    assert BOOK.for_city("athens").ack_minutes["critical"] == 5
    assert BOOK.for_city("sofia").max_eta_hours == 12.0
    assert BOOK.for_city("sofia").ack_minutes["critical"] == 10


@pytest.mark.parametrize("language", ["en", "sr"])
@pytest.mark.parametrize(
    "title", ["short", "a very long title " * 40, "Пожар код Скопља " * 10, "Πυρκαγιά " * 30]
)
def test_sms_fits_two_segments_and_keeps_the_whole_link(language: str, title: str) -> None:
    link = "https://b40.example.org/api/v1/alerts/123/ack-link?e=1781234567&s=" + "f" * 64
    facts = {"title": title, "what": "2 x FF_HELICOPTER", "how_soon": "ETA 5.7 h"}
    message = render(123, facts, "critical", True, language, link)
    assert segments(message.sms) <= 2
    assert message.sms.endswith(link)
    assert "EXERCISE" in message.sms or "VEZBA" in message.sms


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("€" * 80, 1),
        ("€" * 81, 2),
    ],
)
def test_segment_count(text: str, count: int) -> None:
    assert segments(text) == count
