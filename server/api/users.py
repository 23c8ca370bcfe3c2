"""Users and tokens (admins only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.deps import CurrentActor, Db
from server.api.schemas import Id, UserIn
from server.services import users

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=201)
def create_user(body: UserIn, actor: CurrentActor, database: Db) -> dict[str, Any]:
    """Returns the token once; only its hash is stored."""

    def use_case(tx: Any) -> dict[str, Any]:
        view, token = users.create_user(
            tx, name=body.name, role=body.role, city=body.city, expires_at=body.expires_at
        )
        return {**view, "token": token}

    return database.run(use_case, actor=actor)


@router.get("/me")
def whoami(actor: CurrentActor) -> dict[str, Any]:
    return {"id": actor.user_id, "name": actor.name, "role": actor.role.value, "city": actor.city}


@router.post("/{user_id}/revoke")
def revoke(user_id: Id, actor: CurrentActor, database: Db) -> dict[str, Any]:
    return database.run(lambda tx: users.revoke_user(tx, user_id), actor=actor)
