"""The words of an alert: e-mail, a one-or-two-segment SMS, the webhook body, the signed ack link.

Pure: facts and a language in, text out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

# GSM 03.38 basic set: text made only of these costs 160 chars a segment (153 when split);
# anything else (Greek, Cyrillic, č ć š ž đ) goes UCS-2 at 70 (67 when split).
GSM7: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED: Final = frozenset("^{}\\[~]|€")  # two characters each
MAX_SEGMENTS: Final = 2

LABELS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "what": "What",
        "where": "Where",
        "how_many": "How many",
        "how_soon": "How soon",
        "board": "Board",
        "ack": "Acknowledge",
        "exercise": "EXERCISE",
        "priority": "Priority",
    },
    # Serbian/Croatian/Bosnian/Montenegrin, Latin script.
    "sr": {
        "what": "Šta",
        "where": "Gde",
        "how_many": "Koliko",
        "how_soon": "Kada",
        "board": "Tabla",
        "ack": "Potvrdi prijem",
        "exercise": "VEŽBA",
        "priority": "Prioritet",
    },
}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str
    sms: str


def _labels(language: str) -> Mapping[str, str]:
    return LABELS.get(language.split("-")[0].lower(), LABELS["en"])


def _where_text(facts: Mapping[str, Any]) -> str:
    where = facts.get("where") or {}
    incident = facts.get("incident") or {}
    parts = []
    if incident:
        parts.append(f"{incident.get('kind', '')} '{incident.get('title', '')}'")
    if where:
        parts.append(f"{where.get('city', '')} ({where.get('lat'):.4f}, {where.get('lon'):.4f})")
    return ", ".join(parts) or "-"


def render(
    alert_id: int, facts: Mapping[str, Any], priority: str, exercise: bool, language: str, ack: str
) -> Message:
    """One alert's e-mail subject and body, and its SMS."""
    label = _labels(language)
    tag = f"[{label['exercise']}] " if exercise else ""
    subject = f"{tag}B40 {priority.upper()}: {facts.get('title', 'alert')} (#{alert_id})"
    lines = [
        f"{tag}{facts.get('title', '')}",
        "",
        f"{label['what']}: {facts.get('what', '-')}",
        f"{label['where']}: {_where_text(facts)}",
        f"{label['how_many']}: {facts.get('how_many', '-')}",
        f"{label['how_soon']}: {facts.get('how_soon', '-')}",
        f"{label['priority']}: {priority}",
    ]
    units = facts.get("your_units") or []
    if units:
        lines.append("")
        lines += [
            f"  {u['callsign']} ({u['capability']}) for {u['wanted']}: ETA {u['eta_hours']} h"
            for u in units
        ]
    lines += ["", f"{label['board']}: {facts.get('link', '')}", f"{label['ack']}: {ack}", ""]
    return Message(subject=subject, text="\n".join(lines), sms=sms_text(alert_id, facts, tag, ack))


def sms_text(alert_id: int, facts: Mapping[str, Any], tag: str, ack: str) -> str:
    """Title, what, how soon and the ack link, shortened until it fits in two segments.

    The link is kept whole (a cut link is useless); the title gives way first.
    """
    head = gsm_fold(f"{tag}B40 #{alert_id}: ")
    tail = f" ACK {ack}"
    body = gsm_fold(
        f"{facts.get('title', '')}. {facts.get('what', '')}. {facts.get('how_soon', '')}."
    )
    text = head + body + tail
    while segments(text) > MAX_SEGMENTS and body:
        body = body[: max(0, len(body) - 8)].rstrip()
        text = head + body + ("..." if body else "") + tail
    return text


def gsm_fold(text: str) -> str:
    """Latin letters with diacritics (č ć š ž đ ...) to their GSM-7 base letters, so a Serbian
    or Croatian text costs 153 characters a segment instead of 67. Other scripts stay as
    they are (a Greek or Cyrillic text is still better in UCS-2 than transliterated)."""
    text = text.replace("đ", "dj").replace("Đ", "Dj")
    folded = "".join(
        c if c in GSM7 or c in GSM7_EXTENDED else unicodedata.normalize("NFKD", c)[0] for c in text
    )
    return folded if all(c in GSM7 or c in GSM7_EXTENDED for c in folded) else text


def segments(text: str) -> int:
    """SMS segments the text needs (GSM-7 or UCS-2, concatenated-message headers counted)."""
    if all(c in GSM7 or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi = 160, 153
    else:
        # UCS-2 counts UTF-16 code units: an emoji is two.
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


def webhook_body(alert: Mapping[str, Any], ack: str) -> dict[str, Any]:
    return {"type": "b40.alert", "alert": dict(alert), "ack_url": ack}


# ------------------------------------------------------------------------ signed ack links


def ack_signature(secret: str, alert_id: int, expires: int) -> str:
    """HMAC-SHA256 cut to 128 bits, base64url (22 characters): short enough for an SMS."""
    message = f"ack:{alert_id}:{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def ack_link(base_url: str, secret: str, alert_id: int, expires: datetime) -> str:
    stamp = int(expires.timestamp())
    signature = ack_signature(secret, alert_id, stamp)
    return f"{base_url.rstrip('/')}/api/v1/alerts/{alert_id}/ack-link?e={stamp}&s={signature}"


def ack_link_valid(secret: str, alert_id: int, expires: int, signature: str, now: datetime) -> bool:
    if now.timestamp() > expires:
        return False
    # Compare bytes: compare_digest refuses non-ASCII str, and a link can carry anything.
    expected = ack_signature(secret, alert_id, expires).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))
