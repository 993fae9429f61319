"""``postloc serve``: the HTTP API and web page for a trained run (the app is :mod:`postloc.serve.app`)."""

from __future__ import annotations

import sys
from pathlib import Path

from postloc.cli._args import fraction
from postloc.errors import PostlocError


def add_parser(sub) -> None:
    from postloc.serve.limits import ConnectionLimits, Limits

    d = Limits()
    c = ConnectionLimits()
    p = sub.add_parser(
        "serve",
        help="HTTP API and web page for a trained run",
        description="Serve RUN: POST /v1/predict, /v1/explain, GET /v1/pois, /healthz, /openapi.json, page at /.",
    )
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; default 127.0.0.1 (local only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: torch's)")
    p.add_argument("--batch-rows", type=int, default=64, help="most rows in one model call (default %(default)s)")
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        help="extra wait for more requests before a model call (default %(default)s: batch what "
        "queued while the previous call ran)",
    )
    p.add_argument(
        "--pois",
        type=Path,
        metavar="FILE",
        help="POIs known by name (CSV poi,lat,lon,name or an OpenStreetMap GeoJSON of named points): "
        "also answer with POIs that have no training posts, from the names a post writes; answers say "
        "their source (docs/cold-start.md)",
    )
    p.add_argument(
        "--name-weight",
        type=fraction,
        metavar="W",
        help="with --pois: the names' share of the probability at a full name match (0..1, default 0.5)",
    )
    g = p.add_argument_group("limits")
    g.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="(default %(default)s)")
    g.add_argument("--max-image-pixels", type=int, default=d.max_image_pixels, help="(default %(default)s)")
    g.add_argument("--max-text-chars", type=int, default=d.max_text_chars, help="(default %(default)s)")
    g.add_argument(
        "--rate", type=float, default=d.rate_per_second, help="requests/s per client IP (default %(default)s)"
    )
    g.add_argument("--burst", type=int, default=d.burst, help="token bucket size per client (default %(default)s)")
    g = p.add_argument_group("connections (slow and idle clients)")
    g.add_argument(
        "--header-timeout",
        type=float,
        default=c.header_timeout,
        help="seconds a client has to send the request line and headers (default %(default)s)",
    )
    g.add_argument(
        "--body-timeout",
        type=float,
        default=c.body_timeout,
        help="seconds without a byte while a request body is read (default %(default)s)",
    )
    g.add_argument(
        "--keep-alive",
        type=float,
        default=c.keep_alive,
        help="seconds an idle keep-alive connection stays open (default %(default)s)",
    )
    g.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="connections at once; past it the oldest idle one is closed (default: 1000, "
        "or less when the open-file limit is lower)",
    )
    g = p.add_argument_group("page")
    g.add_argument(
        "--tiles",
        default=None,
        help="tile URL template for the map, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none)",
    )
    g.add_argument("--tile-attribution", default="")
    g.add_argument(
        "--basemap",
        type=Path,
        metavar="FILE",
        help="streets and shores drawn under the map, offline: a GeoJSON of lines and areas (e.g. exported from "
        "OpenStreetMap with osmium; an .osm.pbf is refused: convert it first). Served at GET /v1/basemap, "
        "geometry only (default: none)",
    )
    g.add_argument(
        "--cors-origin", action="append", default=[], help="allow this origin (repeatable; default: CORS off)"
    )
    g.add_argument(
        "--allowed-hosts",
        metavar="NAMES",
        help="comma-separated host names clients may use to reach the server (the Host header); '*' for any "
        "(default: localhost, 127.0.0.1, [::1] and the --host address; a guard against DNS rebinding)",
    )
    g.add_argument(
        "--docs",
        action="store_true",
        help="also serve /docs and /redoc (their Swagger UI and ReDoc scripts come from a CDN; default: off, "
        "/openapi.json is always served)",
    )
    p.set_defaults(run=run_serve)


def settings_from_args(args):
    """The server's settings from the flags, every value checked (a one-line PostlocError, exit 2)
    before the run is loaded or a port is bound."""
    from postloc.serve.app import ServeSettings
    from postloc.serve.hosts import LOOPBACK_HOSTS, normalise_host
    from postloc.serve.limits import Limits

    if not 1 <= args.port <= 65535:
        raise PostlocError(f"--port must be between 1 and 65535, got {args.port}")
    if args.threads is not None and args.threads < 1:
        raise PostlocError(f"--threads must be at least 1, got {args.threads}")
    if args.name_weight is not None and args.pois is None:
        raise PostlocError("--name-weight needs --pois (the table of POI names to match)")
    if args.allowed_hosts is not None:
        hosts = tuple(h for h in (part.strip() for part in args.allowed_hosts.split(",")) if h)
    else:  # the names this machine's own clients use, and the address it was told to bind
        bound = normalise_host(args.host)
        wildcard = bound in ("0.0.0.0", "[::]", None)
        hosts = LOOPBACK_HOSTS + (() if wildcard else (args.host,))
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_image_pixels=args.max_image_pixels,
        max_text_chars=args.max_text_chars,
        rate_per_second=args.rate,
        burst=args.burst,
    )
    return ServeSettings(
        limits=limits,
        tile_url=args.tiles,
        tile_attribution=args.tile_attribution,
        cors_origins=tuple(args.cors_origin),
        batch_rows=args.batch_rows,
        batch_wait_ms=args.batch_wait_ms,
        allowed_hosts=hosts,
        docs=args.docs,
    )


def run_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise PostlocError("postloc serve needs the serve extra: pip install 'postloc[serve]'") from None
    from postloc.serve.app import build_app
    from postloc.serve.connections import guarded_protocol
    from postloc.serve.limits import ConnectionLimits

    connections = ConnectionLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive=args.keep_alive,
        max_connections=args.max_connections,
    )
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
