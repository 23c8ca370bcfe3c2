"""Derived line and request status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.domain.model import Line, LineStatus
from server.domain.requests import line_status, remaining, request_status

NOW = datetime(2026, 8, 3, 12, 0, tzinfo=UTC)
L = LineStatus


def make_line(**overrides: object) -> Line:
    values: dict[str, object] = {"id": 1, "capability": "FF_HELICOPTER", "quantity": 2}
    values.update(overrides)
    return Line(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "cancelled", "expected"),
    [
        ({}, False, L.OPEN),
        ({"offered": 2}, False, L.OPEN),
        ({"accepted": 1}, False, L.PARTIALLY_FILLED),
        ({"accepted": 2}, False, L.FILLED),
        ({"accepted": 2, "arrived": 2, "released": 2, "returned": 1}, False, L.FILLED),
        ({"accepted": 2, "arrived": 2, "released": 2, "returned": 2}, False, L.CLOSED),
        ({"needed_by": NOW - timedelta(minutes=1)}, False, L.UNABLE_TO_FILL),
        ({"needed_by": NOW - timedelta(minutes=1), "accepted": 2}, False, L.FILLED),
        ({"needed_by": NOW + timedelta(minutes=1), "accepted": 1}, False, L.PARTIALLY_FILLED),
        ({"accepted": 1}, True, L.CANCELLED),
    ],
)
def test_line_status(overrides: dict[str, object], cancelled: bool, expected: LineStatus) -> None:
    assert line_status(make_line(**overrides), cancelled=cancelled, now=NOW) is expected


@pytest.mark.parametrize(
    ("lines", "cancelled", "expected"),
    [
        ([L.OPEN, L.OPEN], False, L.OPEN),
        ([L.OPEN, L.FILLED], False, L.PARTIALLY_FILLED),
        ([L.PARTIALLY_FILLED], False, L.PARTIALLY_FILLED),
        ([L.FILLED, L.CLOSED], False, L.FILLED),
        ([L.CLOSED, L.CLOSED], False, L.CLOSED),
        ([L.UNABLE_TO_FILL, L.FILLED], False, L.UNABLE_TO_FILL),
        ([L.OPEN], True, L.CANCELLED),
    ],
)
def test_request_status(lines: list[LineStatus], cancelled: bool, expected: LineStatus) -> None:
    assert request_status(lines, cancelled=cancelled) is expected


def test_remaining_never_negative() -> None:
    assert remaining(make_line(accepted=1)) == 1
    assert remaining(make_line(accepted=3)) == 0
