"""Refuse every network connection that does not go to this machine, and remember each attempt.

Docs snippets name hosts such as ``gpu-box``; the snippet tests rewrite them to
loopback servers, and this guard proves nothing slipped past the rewrite: a
name lookup of any host but ``localhost``/``127.0.0.1``/``::1`` and a
``connect`` to any address off loopback raise ``ConnectionRefusedError``
*before* a packet leaves (no DNS query either), and are recorded so a test can
assert none happened even when a library swallows the error.

Example:
    >>> import socket
    >>> with loopback_only() as attempts:
    ...     try:
    ...         socket.getaddrinfo("example.com", 443)
    ...     except ConnectionRefusedError:
    ...         pass
    >>> attempts
    ['getaddrinfo example.com']
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

__all__ = ["loopback_only"]

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Within the block, only loopback lookups and connections are allowed; yields the refused attempts."""
    attempts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            attempts.append(f"getaddrinfo {host}")
            raise ConnectionRefusedError(f"off-loopback lookup refused in a docs snippet test: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            attempts.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"off-loopback connection refused in a docs snippet test: {address!r}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
