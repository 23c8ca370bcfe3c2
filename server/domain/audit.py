"""The audit chain: each event's hash covers its content and the previous event's hash.

Pure computation (hashlib, json): the unit of work calls `event_hash` when it appends events,
`b40 audit verify` and the export's readers call `verify_chain`. Changing, removing or
reordering any stored event changes every hash after it, so the first mismatch names the seq
where the log was touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

GENESIS: Final = "0" * 64  # prev_hash of seq 1
# The fields a hash covers, in the order they are exported. Hashes themselves are not covered.
FIELDS: Final = (
    "seq",
    "type",
    "entity",
    "entity_id",
    "city",
    "actor_id",
    "actor_name",
    "exercise",
    "payload",
    "created_at",
)


def canonical(record: Mapping[str, Any]) -> bytes:
    """One byte string per event, the same however the database returned it.

    Sorted keys, no whitespace, UTF-8: JSONB reorders object keys and SQLite keeps the text as
    given, so only a canonical form compares equal across back-ends and export files.
    `created_at` is an ISO 8601 string in UTC (the caller formats it).
    """
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise ValueError(f"event record lacks {', '.join(missing)}")
    subset = {f: _normal(record[f]) for f in FIELDS}
    return json.dumps(
        subset, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _normal(value: Any) -> Any:
    """Numbers as the stores give them back: PostgreSQL's JSONB keeps no -0.0 and prints 1e20
    as an integer, so an integral float hashes as that integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def event_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical(record))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of a verification: how many events held, and where it broke (if it did)."""

    checked: int
    last_seq: int
    head: str
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def verify_chain(
    records: Iterable[Mapping[str, Any]],
    *,
    start_seq: int = 1,
    start_hash: str = GENESIS,
    expected_last_seq: int | None = None,
    expected_head: str | None = None,
) -> ChainReport:
    """Recompute the chain over records in seq order; stop at the first one that does not hold.

    A record breaks the chain when its seq is not the next one (a deleted or inserted row), its
    prev_hash is not the previous hash, or its hash is not what its content gives.
    """
    previous, expected_seq, checked = start_hash, start_seq, 0
    for record in records:
        seq = int(record["seq"])
        if seq != expected_seq:
            reason = f"expected seq {expected_seq}"
            return ChainReport(checked, expected_seq - 1, previous, expected_seq, reason)
        if record.get("prev_hash") != previous:
            return ChainReport(checked, seq - 1, previous, seq, "prev_hash does not match")
        if record.get("hash") != event_hash(previous, record):
            return ChainReport(checked, seq - 1, previous, seq, "content does not match its hash")
        previous, expected_seq, checked = str(record["hash"]), seq + 1, checked + 1
    last = expected_seq - 1
    if expected_last_seq is not None and expected_last_seq != last:
        reason = f"the log ends at seq {last} but {expected_last_seq} events were committed"
        return ChainReport(checked, last, previous, last + 1, reason)
    if expected_head is not None and expected_head != previous:
        return ChainReport(checked, last, previous, last, "chain head does not match")
    return ChainReport(checked, last, previous)
