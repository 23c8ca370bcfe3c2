"""The messages a board receives, as JSON text. Events are encoded once and fanned out as is."""

from __future__ import annotations

import json
from typing import Any


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)


def event_frame(view: dict[str, Any]) -> str:
    """An event log row as the board sees it: seq, dotted type, entity payload (event_view)."""
    return dumps(view)


def snapshot_frame(snapshot: dict[str, Any]) -> str:
    return dumps({"type": "snapshot", **snapshot})


def heartbeat_frame(last_seq: int) -> str:
    # `last_seq`, not `seq`: only events carry a seq, so a client can key on it blindly.
    return dumps({"type": "heartbeat", "last_seq": last_seq})


def resync_frame(after: int, reason: str) -> str:
    return dumps({"type": "resync", "after": after, "reason": reason})
