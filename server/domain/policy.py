"""Who may do what: pure checks over the acting user, the city from the token."""

from __future__ import annotations

from collections.abc import Iterable

from server.domain.errors import Forbidden
from server.domain.model import Actor, Role

WRITERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.CITY_OPERATOR})


def require_role(actor: Actor, roles: Iterable[Role], action: str) -> None:
    allowed = frozenset(roles)
    if actor.role not in allowed:
        names = ", ".join(sorted(r.value for r in allowed))
        raise Forbidden(f"{action} needs one of the roles: {names}; you are {actor.role.value}")


def require_city(actor: Actor, city: str, action: str) -> None:
    """Network-wide roles act for any city; a city operator only for its own."""
    require_role(actor, WRITERS, action)
    if actor.is_network_wide:
        return
    if actor.city != city:
        raise Forbidden(f"{action}: {city!r} is not your city ({actor.city!r})", field="city")


def require_any_city(actor: Actor, cities: Iterable[str], action: str) -> None:
    """For acts either side may take (e.g. moving a deployment: donor or requester)."""
    require_role(actor, WRITERS, action)
    wanted = set(cities)
    if actor.is_network_wide or actor.city in wanted:
        return
    raise Forbidden(f"{action}: only {', '.join(sorted(wanted))} or a coordinator may do this")


def resolve_city(actor: Actor, city: str | None, action: str) -> str:
    """The city a write is for: a city operator's own when omitted; must be named otherwise."""
    if city is None:
        if actor.city is None or actor.is_network_wide:
            from server.domain.errors import InvalidInput

            raise InvalidInput("city is required for network-wide roles", field="city")
        city = actor.city
    require_city(actor, city, action)
    return city
