"""Users and their bearer tokens (stored as SHA-256 hashes, shown once)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from server.db.tables import UserRow
from server.db.unit_of_work import Tx
from server.domain.errors import InvalidInput, NotFound, Unauthenticated
from server.domain.model import Actor, Role
from server.domain.policy import require_role
from server.services.catalogue import get_city

ADMIN_FROM_ENV = "admin (B40_ADMIN_TOKEN)"


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain hash is enough (no password stretching).
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "b40_" + secrets.token_urlsafe(32)


def to_actor(row: UserRow) -> Actor:
    return Actor(user_id=row.id, name=row.name, role=Role(row.role), city=row.city)


def user_view(row: UserRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "city": row.city,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked": row.revoked_at is not None,
    }


_TOKEN_HOLDER = select(
    UserRow.id, UserRow.name, UserRow.role, UserRow.city, UserRow.revoked_at, UserRow.expires_at
).where(UserRow.token_hash == bindparam("token_hash"))


@dataclass(frozen=True, slots=True)
class Credential:
    """A token's holder as the users table has it: who acts, and until when."""

    actor: Actor
    expires_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def actor_at(self, now: datetime) -> Actor:
        if self.expired(now):
            raise Unauthenticated("token expired")
        return self.actor


def credential_of(connection: Connection, token_hash: str) -> Credential:
    """The holder of a live (not revoked) token, by its `hash_token`: one SELECT of the
    columns needed, built once, on a plain connection (Database.read_one)."""
    row = connection.execute(_TOKEN_HOLDER, {"token_hash": token_hash}).one_or_none()
    if row is None:
        raise Unauthenticated("unknown token")
    if row.revoked_at is not None:
        raise Unauthenticated("token revoked")
    actor = Actor(user_id=row.id, name=row.name, role=Role(row.role), city=row.city)
    return Credential(actor, row.expires_at)


def create_user(
    tx: Tx,
    *,
    name: str,
    role: Role,
    city: str | None,
    token: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """Make a user; returns its view and the token, which is not stored and not shown again."""
    if tx.actor is not None:
        require_role(tx.actor, {Role.ADMIN}, "creating users")
    if role is Role.CITY_OPERATOR and city is None:
        raise InvalidInput("a city_operator must be bound to a city", field="city")
    if role in (Role.ADMIN, Role.COORDINATOR) and city is not None:
        raise InvalidInput(f"a {role.value} is network-wide and has no city", field="city")
    if city is not None:
        get_city(tx.session, city)
    if expires_at is not None and expires_at <= tx.now:
        raise InvalidInput("expires_at is in the past", field="expires_at")
    token = token or new_token()
    row = UserRow(
        name=name,
        role=role.value,
        city=city,
        token_hash=hash_token(token),
        created_at=tx.now,
        expires_at=expires_at,
        revoked_at=None,
    )
    tx.session.add(row)
    tx.session.flush()
    view = user_view(row)
    tx.record("user.created", "user", row.id, city=city, payload=view)
    return view, token


def revoke_user(tx: Tx, user_id: int) -> dict[str, Any]:
    assert tx.actor is not None
    require_role(tx.actor, {Role.ADMIN}, "revoking tokens")
    row = tx.session.get(UserRow, user_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no user {user_id}", field="id")
    if row.revoked_at is None:
        row.revoked_at = tx.now
        tx.record("user.revoked", "user", row.id, city=row.city, payload=user_view(row))
    return user_view(row)


def ensure_admin_token(tx: Tx, token: str) -> str | None:
    """Start-up: make sure an admin holding `token` exists (automation and the demo).

    A token revoked once stays revoked across restarts (it may have leaked), so this does not
    bring it back; it returns why the token will be refused, for the operator's log."""
    holder = tx.session.scalars(
        select(UserRow).where(UserRow.token_hash == hash_token(token))
    ).first()
    if holder is None:
        create_user(tx, name=ADMIN_FROM_ENV, role=Role.ADMIN, city=None, token=token)
        return None
    remedy = "set a new B40_ADMIN_TOKEN, or make one: `b40 user add --name NAME --role admin`"
    if holder.revoked_at is not None:
        return f"B40_ADMIN_TOKEN was revoked (user {holder.id}) and stays refused: {remedy}"
    if Role(holder.role) is not Role.ADMIN:
        return f"B40_ADMIN_TOKEN belongs to user {holder.id}, a {holder.role}, not an admin"
    return None
