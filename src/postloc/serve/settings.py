"""The server's settings (:class:`ServeSettings`: limits, page, batching, the allowed host names), apart from
the app so that ``postloc --help`` can derive ``serve``'s flags from them without importing FastAPI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from postloc.serve.hosts import LOOPBACK_HOSTS, normalise_host
from postloc.serve.limits import Limits, require_at_least, setting_error
from postloc.settings import setting


@dataclass
class ServeSettings:
    """What a server answers and how (its limits, page, batching and host names); each field that is a
    ``postloc serve`` flag says so (:func:`postloc.settings.setting`), and a bad value is refused here,
    before a run is loaded or a port bound."""

    limits: Limits = field(default_factory=Limits)
    #: e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; off: no network needed
    tile_url: str | None = setting(
        None,
        flag="--tiles",
        help="tile URL template for the map, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none)",
    )
    tile_attribution: str = setting("")
    cors_origins: tuple[str, ...] = setting(
        (), flag="--cors-origin", help="allow this origin (repeatable; default: CORS off)"
    )
    batch_rows: int = setting(64, help="most rows in one model call (default %(default)s)")
    #: 0: batch what queued meanwhile (see batcher)
    batch_wait_ms: float = setting(
        0.0,
        help="extra wait for more requests before a model call (default %(default)s: batch what "
        "queued while the previous call ran)",
    )
    #: the names clients may reach the server by (the ``Host`` header, port aside); ``("*",)``: any.
    #: The loopback names by default: a server on 127.0.0.1 must not answer a rebound ``evil.example``.
    allowed_hosts: tuple[str, ...] = setting(
        LOOPBACK_HOSTS,
        metavar="NAMES",
        help="comma-separated host names clients may use to reach the server (the Host header); '*' for any "
        "(default: localhost, 127.0.0.1, [::1] and the --host address; a guard against DNS rebinding)",
    )
    #: Swagger UI and ReDoc load their scripts from a CDN
    docs: bool = setting(
        False,
        help="also serve /docs and /redoc (their Swagger UI and ReDoc scripts come from a CDN; default: off, "
        "/openapi.json is always served)",
    )

    def __post_init__(self) -> None:
        require_at_least(self, ("batch_rows",), 1)
        if not (math.isfinite(self.batch_wait_ms) and 0 <= self.batch_wait_ms <= 60_000):
            raise setting_error(
                self, "batch_wait_ms", "must be a number of milliseconds in [0, 60000]", self.batch_wait_ms
            )
        given = (self.allowed_hosts,) if isinstance(self.allowed_hosts, str) else tuple(self.allowed_hosts)
        hosts = tuple(normalise_host(h) if isinstance(h, str) else None for h in given)
        if isinstance(self.allowed_hosts, str) or not hosts or None in hosts:
            raise setting_error(
                self, "allowed_hosts", "must be a tuple of host names or addresses (or * for any)", self.allowed_hosts
            )
        self.allowed_hosts = tuple(dict.fromkeys(h for h in hosts if h))
