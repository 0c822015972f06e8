"""Loopback ports for processes the dev stack and the tests start side by side."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (for tests that run side by side)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair() -> int:
    """A free port whose next port is free too (the embedded Kafka's broker and controller)."""
    while True:
        port = free_port()
        if port < 65535 and port_free(port + 1):
            return port
