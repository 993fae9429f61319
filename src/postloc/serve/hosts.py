"""Which ``Host`` a request may name, and which ``Origin`` may POST: the guard against DNS rebinding and blind
cross-site form posts.

A server on 127.0.0.1 is reachable from any web page the user opens: a page of ``evil.example`` whose name
is re-pointed at 127.0.0.1 (DNS rebinding) talks to it as its own origin, and any page may send it a
multipart POST (the answer is unreadable, but the work is done). So the ``Host`` header must be one of the
names the server is meant to be reached by (the loopback names and the bound host by default), and a POST
that carries an ``Origin`` must come from the server's own origin or a configured CORS origin.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: the names of this machine's loopback interface, allowed by default
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
ANY = "*"
_PORT = re.compile(r":[0-9]{1,5}")
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?|\[[0-9a-f:.]+\]")


def normalise_host(name: str) -> str | None:
    """``Example.ORG`` -> ``example.org``; ``::1`` -> ``[::1]``; ``None`` for what is not a host name or address."""
    name = name.strip().lower()
    if name == ANY:
        return name
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return name if _NAME.fullmatch(name) else None


def host_of(header: str) -> str:
    """The name in a ``Host`` header, without its port: ``[::1]:8000`` -> ``[::1]``, ``a.b:80`` -> ``a.b``.

    A "port" that is not digits is no port: ``127.0.0.1:80@evil.example`` is returned whole (and so is
    refused), not cut to ``127.0.0.1``.
    """
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]") + 1
        name, port = (header[:end], header[end:]) if end else (header, "")
    else:
        name, colon, digits = header.partition(":")
        port = colon + digits
    return name if not port or _PORT.fullmatch(port) else header


class HostGuard:
    """Raw ASGI: refuse a request whose ``Host`` is not allowed (400) and a cross-origin POST (403).

    Runs before everything else, so a refused request costs no rate-limit token and no body read.
    """

    def __init__(self, app, allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...]):
        self.app = app
        self.any_host = ANY in allowed_hosts
        self.allowed = frozenset(allowed_hosts)
        self.any_origin = ANY in cors_origins
        self.origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    async def __call__(self, scope, receive, send):
        from postloc.serve.errors import error_response  # FastAPI: not needed to read the settings (postloc --help)

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.any_host and host_of(host) not in self.allowed:
            shown = repr(host[:80]) if host else "(none)"
            message = (
                f"Host {shown} is not one this server answers to; start it with --allowed-hosts naming it "
                "(a guard against DNS rebinding)"
            )
            return await error_response(400, message)(scope, receive, send)
        origin = headers.get(b"origin")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and origin is not None:
            text = origin.decode("latin-1")
            if not self._same_or_allowed(text, host):
                message = f"cross-origin {scope['method']} from {text[:80]!r} refused; see --cors-origin"
                return await error_response(403, message)(scope, receive, send)
        return await self.app(scope, receive, send)

    def _same_or_allowed(self, origin: str, host: str) -> bool:
        """The page's own origin (scheme aside: behind a TLS proxy the server sees http), or a CORS origin."""
        if self.any_origin or origin.rstrip("/").lower() in self.origins:
            return True
        parts = urlsplit(origin)
        return bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()
