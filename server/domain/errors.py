"""Domain errors. The API maps each class to one HTTP status in one place (api/errors.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class DomainError(Exception):
    """Base: a message for people, a machine-readable code and the field it is about."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detail": self.message, "code": self.code}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


class NotFound(DomainError):
    code = "not_found"


class InvalidInput(DomainError):
    """Well-formed but wrong: unknown city or capability, a date in the past."""

    code = "invalid_input"


class Conflict(DomainError):
    """The request is valid but the current state forbids it."""

    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, entity: str, current: str, new: str, allowed: Iterable[str]) -> None:
        allowed_sorted = sorted(allowed)
        shown = ", ".join(allowed_sorted) or "none"
        super().__init__(
            f"{entity} cannot go from {current!r} to {new!r}; allowed from {current!r}: {shown}",
            field="status",
            current=current,
            requested=new,
            allowed=allowed_sorted,
        )


class Forbidden(DomainError):
    code = "forbidden"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Unavailable(DomainError):
    """A backing service (database) is down; the client should retry."""

    code = "unavailable"
