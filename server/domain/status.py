"""Every state machine of the core: one table each, one function applies them all."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, TypeVar

from server.domain.errors import InvalidTransition


class UnitStatus(StrEnum):
    AVAILABLE = "available"
    OFFERED = "offered"
    MOBILISING = "mobilising"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RETURNING = "returning"
    OUT_OF_SERVICE = "out_of_service"


class OfferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class DeploymentStatus(StrEnum):
    MOBILISING = "mobilising"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RELEASED = "released"
    RETURNED = "returned"


U = UnitStatus
D = DeploymentStatus

UNIT_NEXT: Final[Mapping[UnitStatus, frozenset[UnitStatus]]] = {
    U.AVAILABLE: frozenset({U.OFFERED, U.MOBILISING, U.OUT_OF_SERVICE}),
    U.OFFERED: frozenset({U.AVAILABLE, U.MOBILISING}),
    # A deployment may be released (recalled) before it reaches the scene.
    U.MOBILISING: frozenset({U.EN_ROUTE, U.RETURNING}),
    U.EN_ROUTE: frozenset({U.ON_SCENE, U.RETURNING}),
    U.ON_SCENE: frozenset({U.RETURNING}),
    U.RETURNING: frozenset({U.AVAILABLE}),
    U.OUT_OF_SERVICE: frozenset({U.AVAILABLE}),
}

# The transitions an operator makes by hand on a unit; the rest follow offers and deployments.
UNIT_MANUAL: Final[Mapping[UnitStatus, frozenset[UnitStatus]]] = {
    U.AVAILABLE: frozenset({U.OUT_OF_SERVICE}),
    U.OUT_OF_SERVICE: frozenset({U.AVAILABLE}),
}

OFFER_NEXT: Final[Mapping[OfferStatus, frozenset[OfferStatus]]] = {
    OfferStatus.PENDING: frozenset(
        {OfferStatus.ACCEPTED, OfferStatus.DECLINED, OfferStatus.WITHDRAWN}
    ),
    OfferStatus.ACCEPTED: frozenset(),
    OfferStatus.DECLINED: frozenset(),
    OfferStatus.WITHDRAWN: frozenset(),
}

DEPLOYMENT_NEXT: Final[Mapping[DeploymentStatus, frozenset[DeploymentStatus]]] = {
    D.MOBILISING: frozenset({D.EN_ROUTE, D.RELEASED}),
    D.EN_ROUTE: frozenset({D.ON_SCENE, D.RELEASED}),
    D.ON_SCENE: frozenset({D.RELEASED}),
    D.RELEASED: frozenset({D.RETURNED}),
    D.RETURNED: frozenset(),
}

# What a deployment's status means for its unit.
UNIT_FOR_DEPLOYMENT: Final[Mapping[DeploymentStatus, UnitStatus]] = {
    D.MOBILISING: U.MOBILISING,
    D.EN_ROUTE: U.EN_ROUTE,
    D.ON_SCENE: U.ON_SCENE,
    D.RELEASED: U.RETURNING,
    D.RETURNED: U.AVAILABLE,
}

ACTIVE_DEPLOYMENT: Final = frozenset({D.MOBILISING, D.EN_ROUTE, D.ON_SCENE, D.RELEASED})

S = TypeVar("S", bound=StrEnum)


def check_transition(entity: str, table: Mapping[S, frozenset[S]], current: S, new: S) -> S:
    """Return `new` when the table allows current -> new, else raise InvalidTransition."""
    allowed = table.get(current, frozenset())
    if new not in allowed:
        raise InvalidTransition(entity, current.value, new.value, (s.value for s in allowed))
    return new
