"""The state machines, as tables."""

from __future__ import annotations

import pytest

from server.domain.errors import InvalidTransition
from server.domain.status import (
    DEPLOYMENT_NEXT,
    OFFER_NEXT,
    UNIT_FOR_DEPLOYMENT,
    UNIT_MANUAL,
    UNIT_NEXT,
    DeploymentStatus,
    OfferStatus,
    UnitStatus,
    check_transition,
)

U, D, OS = UnitStatus, DeploymentStatus, OfferStatus


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (U.AVAILABLE, U.OFFERED),
        (U.OFFERED, U.MOBILISING),
        (U.MOBILISING, U.EN_ROUTE),
        (U.EN_ROUTE, U.ON_SCENE),
        (U.ON_SCENE, U.RETURNING),
        (U.RETURNING, U.AVAILABLE),
        (U.AVAILABLE, U.OUT_OF_SERVICE),
        (U.OUT_OF_SERVICE, U.AVAILABLE),
        (U.OFFERED, U.AVAILABLE),
    ],
)
def test_unit_lifecycle_allows(current: UnitStatus, new: UnitStatus) -> None:
    assert check_transition("resource", UNIT_NEXT, current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (U.AVAILABLE, U.ON_SCENE),
        (U.OFFERED, U.OFFERED),
        (U.OUT_OF_SERVICE, U.OFFERED),
        (U.ON_SCENE, U.AVAILABLE),
        (U.RETURNING, U.OUT_OF_SERVICE),
    ],
)
def test_unit_lifecycle_refuses_and_lists_allowed(current: UnitStatus, new: UnitStatus) -> None:
    with pytest.raises(InvalidTransition) as caught:
        check_transition("resource", UNIT_NEXT, current, new)
    assert caught.value.extra["allowed"] == sorted(s.value for s in UNIT_NEXT[current])
    for allowed in caught.value.extra["allowed"]:
        assert allowed in caught.value.message


def test_manual_transitions_are_only_out_of_service_and_back() -> None:
    assert {(a, b) for a, targets in UNIT_MANUAL.items() for b in targets} == {
        (U.AVAILABLE, U.OUT_OF_SERVICE),
        (U.OUT_OF_SERVICE, U.AVAILABLE),
    }
    for current, targets in UNIT_MANUAL.items():
        assert targets <= UNIT_NEXT[current]


def test_every_status_has_a_row() -> None:
    assert set(UNIT_NEXT) == set(U)
    assert set(OFFER_NEXT) == set(OS)
    assert set(DEPLOYMENT_NEXT) == set(D)


def test_offer_decisions_are_final() -> None:
    assert OFFER_NEXT[OS.PENDING] == {OS.ACCEPTED, OS.DECLINED, OS.WITHDRAWN}
    for final in (OS.ACCEPTED, OS.DECLINED, OS.WITHDRAWN):
        assert OFFER_NEXT[final] == frozenset()


def test_deployment_drives_a_unit_along_its_own_lifecycle() -> None:
    # Every deployment transition maps to a unit transition the unit table allows.
    for current, targets in DEPLOYMENT_NEXT.items():
        for new in targets:
            unit_from, unit_to = UNIT_FOR_DEPLOYMENT[current], UNIT_FOR_DEPLOYMENT[new]
            assert unit_to in UNIT_NEXT[unit_from], (current, new)
