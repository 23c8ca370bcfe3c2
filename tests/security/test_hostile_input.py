"""Hostile input outside the JSON schemas: XML bombs, malformed websocket frames."""

from __future__ import annotations

import ast
import base64
import os
import socket
import struct
from pathlib import Path

from tests.board.conftest import (
    ServerStarter,
    add_unit,
    api,
    board,
    events_until,
    last_seq,
    receive,
)
from tests.board.conftest import embedded as embedded  # noqa: F401  (fixture)
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_api

ROOT = Path(__file__).resolve().parents[2]
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert><identifier>&lol3;</identifier></alert>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><alert>&xxe;</alert>"""
UNSAFE_PARSERS = {"fromstring", "parse", "iterparse", "XMLParser", "XML", "parseString"}


def test_xml_bodies_are_refused_and_never_parsed(sqlite_url: str) -> None:
    api_, client = make_api(sqlite_url)
    with client:
        before = api_.ok(api_.get("admin", "/api/v1/events"))["last_seq"]
        for body in (BILLION_LAUGHS, EXTERNAL_ENTITY):
            for content_type in ("application/xml", "application/cap+xml", "text/xml"):
                response = api_.call(
                    "admin",
                    "POST",
                    "/api/v1/incidents",
                    content=body,
                    headers={"Content-Type": content_type},
                )
                assert 400 <= response.status_code < 500, response.text
                assert "root:" not in response.text
        assert api_.ok(api_.get("admin", "/api/v1/events"))["last_seq"] == before


def test_no_code_parses_xml_without_defusedxml() -> None:
    """XML only leaves the system (CAP is built, never parsed); any parser must be defusedxml."""
    offenders = []
    for package in ("server", "alerts", "workers", "config"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            xml_names = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("xml", "lxml")
                ):
                    xml_names |= {a.asname or a.name for a in node.names}
                if isinstance(node, ast.Import):
                    xml_names |= {
                        a.asname or a.name for a in node.names if a.name.startswith(("xml", "lxml"))
                    }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in UNSAFE_PARSERS
                    and isinstance(node.value, ast.Name)
                    and node.value.id in xml_names
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.Name) and node.id in UNSAFE_PARSERS & xml_names:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"XML parsed without defusedxml at {offenders}"


def raw_board(port: int) -> socket.socket:
    """A board connection done by hand, so it can then send bytes no client library would."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/board?token={ADMIN_TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes the TCP connection (a hang guard, not a timing check)."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, TimeoutError):
        return True
    return True


MALFORMED = {
    # opcode 0x3 is reserved
    "reserved opcode": bytes([0x83, 0x80]) + os.urandom(4),
    # client frames must be masked (RFC 6455 5.1)
    "unmasked": bytes([0x81, 0x05]) + b"hello",
    # RSV1 set without a negotiated extension
    "reserved bit": bytes([0xC1, 0x80]) + os.urandom(4),
    # a text frame that is not UTF-8
    "invalid utf-8": bytes([0x81, 0x82]) + b"\x00\x00\x00\x00" + b"\xff\xfe",
    # a length far beyond any limit
    "huge length": bytes([0x82, 0xFF]) + struct.pack("!Q", 2**62) + os.urandom(4),
}


def test_malformed_frames_close_only_that_socket(embedded: ServerStarter) -> None:  # noqa: F811
    server = embedded()
    client = api(server)
    with board(server) as good:
        assert receive(good)["type"] == "snapshot"
        for name, frame in MALFORMED.items():
            bad = raw_board(server.port)
            bad.sendall(frame)
            assert closed_by_server(bad), name
            bad.close()
            # The other board still gets every event, and the server still answers.
            unit = add_unit(client, f"WS-{len(name)}-{name[:3].upper()}")
            seen = events_until(good, last_seq(client))
            assert any(e.get("entity_id") == str(unit["id"]) for e in seen), (name, seen)
        assert client.get("/healthz").status_code == 200
