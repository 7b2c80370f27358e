"""Security baseline for every response: safe headers and a Host check.

Every response gets ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``;
HTML pages also get a restrictive Content-Security-Policy (same-origin styles, scripts, images
and fetches only, no inline code, no framing).

A URL holding a NUL character (``%00``) is refused with 400 before any route runs.

A server bound to a loopback address answers only requests whose ``Host`` is a loopback name.
Without this, any web page the user visits could point a DNS name at 127.0.0.1 ("DNS
rebinding") and read the datasets through the user's browser.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelwise.server.errors import error_response

#: Names a loopback-bound server answers to.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

#: For HTML pages. Scripts must be same-origin ES modules under /static: no inline code.
PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HTML_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "DENY",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(bind_host: str) -> frozenset[str] | None:
    """Host names to accept when bound to ``bind_host``; None (any) for a public bind."""
    if not is_loopback(bind_host):
        return None
    return LOOPBACK_NAMES | {bind_host.strip("[]").lower()}


def host_name(host_header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets: '[::1]:8000' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def has_nul(scope: Scope) -> bool:
    """Whether the request's path or query string holds a NUL character. No stored name or
    value can (PostgreSQL refuses it), so such a URL is refused before any route runs."""
    return "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")


class SecurityMiddleware:
    """Adds the security headers; refuses Hosts outside ``allowed_hosts`` (None: any)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] | None = None) -> None:
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASE_HEADERS.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in HTML_HEADERS.items():
                        headers.setdefault(name, value)
            await send(message)

        if scope["type"] == "http" and has_nul(scope):
            response = error_response(
                400, "BadRequestError",
                "the URL contains a NUL character (%00), which no name or value can hold; "
                "remove it",
            )
            await response(scope, receive, send_with_headers)
            return

        if self.allowed_hosts is not None:
            host = host_name(Headers(scope=scope).get("host", ""))
            if host not in self.allowed_hosts and scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})  # policy violation
                return
            if host not in self.allowed_hosts:
                response = error_response(
                    400,
                    "HostNotAllowedError",
                    f"host {host!r} is not allowed: this server listens on a loopback address "
                    "and answers only to localhost, 127.0.0.1 and [::1] (a guard against DNS "
                    "rebinding); open it as http://localhost:<port>/",
                )
                await response(scope, receive, send_with_headers)
                return

        await self.app(scope, receive, send_with_headers)
