"""``postloc serve``: the HTTP API and web page for a trained run (the app is :mod:`postloc.serve.app`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from postloc.cli._args import add_flags, add_name_flags, check_name_flags, from_args
from postloc.errors import PostlocError
from postloc.settings import setting


@dataclass(frozen=True)
class Listen:
    """Where ``postloc serve`` listens and the model's torch threads: the command's own settings (uvicorn's
    and torch's), beside the app's :class:`~postloc.serve.settings.ServeSettings`."""

    host: str = setting("127.0.0.1", help="address to listen on; default 127.0.0.1 (local only)")
    port: int = setting(8000)
    threads: int | None = setting(None, help="torch threads for the model (default: torch's)")

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise PostlocError(f"--port must be between 1 and 65535, got {self.port}")
        if self.threads is not None and self.threads < 1:
            raise PostlocError(f"--threads must be at least 1, got {self.threads}")


#: the flags of each settings class, in the order ``--help`` lists them
LIMITS = ("max_body_bytes", "max_image_pixels", "max_text_chars", "rate_per_second", "burst")
CONNECTIONS = ("header_timeout", "body_timeout", "keep_alive", "max_connections")
APP = ("batch_rows", "batch_wait_ms")
PAGE = ("tile_url", "tile_attribution")


def add_parser(sub) -> None:
    from postloc.serve.limits import ConnectionLimits, Limits
    from postloc.serve.settings import ServeSettings

    p = sub.add_parser(
        "serve",
        help="HTTP API and web page for a trained run",
        description="Serve RUN: POST /v1/predict, /v1/explain, GET /v1/pois, /healthz, /openapi.json, page at /.",
    )
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder")
    add_flags(p, Listen, "host", "port", "threads")
    add_flags(p, ServeSettings, *APP)
    add_name_flags(
        p,
        "POIs known by name (CSV poi,lat,lon,name or an OpenStreetMap GeoJSON of named points): "
        "also answer with POIs that have no training posts, from the names a post writes; answers say "
        "their source (docs/cold-start.md)",
    )
    add_flags(p.add_argument_group("limits"), Limits, *LIMITS)
    add_flags(p.add_argument_group("connections (slow and idle clients)"), ConnectionLimits, *CONNECTIONS)
    g = p.add_argument_group("page")
    add_flags(g, ServeSettings, *PAGE)
    g.add_argument(
        "--basemap",
        type=Path,
        metavar="FILE",
        help="streets and shores drawn under the map, offline: a GeoJSON of lines and areas (e.g. exported from "
        "OpenStreetMap with osmium; an .osm.pbf is refused: convert it first). Served at GET /v1/basemap, "
        "geometry only (default: none)",
    )
    # a list while parsing (repeatable), a comma-separated text whose default depends on --host: set from them
    add_flags(
        g,
        ServeSettings,
        "cors_origins",
        "allowed_hosts",
        "docs",
        cors_origins={"action": "append", "default": []},
        allowed_hosts={"default": None, "type": str},
    )
    p.set_defaults(run=run_serve)


def settings_from_args(args):
    """The server's settings from the flags, every value checked by the settings themselves (a one-line
    PostlocError, exit 2) before the run is loaded or a port is bound."""
    from postloc.serve.hosts import LOOPBACK_HOSTS, normalise_host
    from postloc.serve.limits import Limits
    from postloc.serve.settings import ServeSettings

    from_args(Listen, args, "host", "port", "threads")
    check_name_flags(args)
    if args.allowed_hosts is not None:
        hosts = tuple(h for h in (part.strip() for part in args.allowed_hosts.split(",")) if h)
    else:  # the names this machine's own clients use, and the address it was told to bind
        bound = normalise_host(args.host)
        wildcard = bound in ("0.0.0.0", "[::]", None)
        hosts = LOOPBACK_HOSTS + (() if wildcard else (args.host,))
    return from_args(
        ServeSettings,
        args,
        *APP,
        *PAGE,
        "docs",
        limits=from_args(Limits, args, *LIMITS),
        cors_origins=tuple(args.cors_origin),
        allowed_hosts=hosts,
    )


def run_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise PostlocError("postloc serve needs the serve extra: pip install 'postloc[serve]'") from None
    from postloc.serve.app import build_app
    from postloc.serve.connections import guarded_protocol
    from postloc.serve.limits import ConnectionLimits

    connections = from_args(ConnectionLimits, args, *CONNECTIONS)
    settings = settings_from_args(args)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    app = build_app(args.run_dir, settings, names=args.pois, name_weight=args.name_weight, basemap=args.basemap)
    hosts = "any host name" if "*" in settings.allowed_hosts else ", ".join(settings.allowed_hosts)
    print(
        f"serving {args.run_dir} on http://{args.host}:{args.port}/ (answering to {hosts}; --allowed-hosts to "
        f"change){' (API docs at /docs)' if settings.docs else ''}",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        server_header=False,
        http=guarded_protocol(connections),
        # fractional seconds on purpose: uvicorn hands the value to loop.call_later, though it annotates an int
        timeout_keep_alive=connections.keep_alive,  # type: ignore[arg-type]  # a float, see above
    )
    return 0
