"""Request and line status: derived from the counts, never set by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from server.domain.model import Line, LineStatus

L = LineStatus


def line_status(line: Line, *, cancelled: bool, now: datetime) -> LineStatus:
    """The status of one line at `now`.

    closed: everything it asked for came and went home. unable_to_fill: its needed-by time
    passed before enough units were accepted.
    """
    if cancelled:
        return L.CANCELLED
    if line.accepted >= line.quantity:
        if line.returned >= line.accepted:
            return L.CLOSED
        return L.FILLED
    if line.needed_by is not None and now > line.needed_by:
        return L.UNABLE_TO_FILL
    if line.accepted > 0:
        return L.PARTIALLY_FILLED
    return L.OPEN


def request_status(statuses: Iterable[LineStatus], *, cancelled: bool) -> LineStatus:
    """The request's status from its lines' statuses."""
    found = list(statuses)
    if cancelled:
        return L.CANCELLED
    if not found:
        return L.OPEN
    if all(s is L.CLOSED for s in found):
        return L.CLOSED
    if all(s in (L.FILLED, L.CLOSED) for s in found):
        return L.FILLED
    if any(s is L.UNABLE_TO_FILL for s in found):
        return L.UNABLE_TO_FILL
    if all(s is L.OPEN for s in found):
        return L.OPEN
    return L.PARTIALLY_FILLED


def remaining(line: Line) -> int:
    """Units still to be accepted for the line."""
    return max(0, line.quantity - line.accepted)


OPEN_LINE_STATUSES = frozenset({L.OPEN, L.PARTIALLY_FILLED})
