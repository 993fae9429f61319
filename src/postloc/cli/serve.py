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
        description="Serve RUN: POST /v1/predict, /v1/explain, GET /v1/pois, /healthz, /docs, page at /.",
    )
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (local only)")
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
        "--cors-origin", action="append", default=[], help="allow this origin (repeatable; default: CORS off)"
    )
    p.set_defaults(run=run_serve)


def run_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise PostlocError("postloc serve needs the serve extra: pip install 'postloc[serve]'") from None
    from postloc.serve.app import ServeSettings, build_app
    from postloc.serve.connections import guarded_protocol
    from postloc.serve.limits import ConnectionLimits, Limits

    connections = ConnectionLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive=args.keep_alive,
        max_connections=args.max_connections,
    )
    if min(connections.header_timeout, connections.body_timeout, connections.keep_alive) <= 0:
        raise PostlocError("--header-timeout, --body-timeout and --keep-alive must be positive")
    if args.max_connections is not None and args.max_connections < 1:
        raise PostlocError("--max-connections must be at least 1")
    if args.name_weight is not None and args.pois is None:
        raise PostlocError("--name-weight needs --pois (the table of POI names to match)")
    if args.batch_rows < 1 or args.batch_wait_ms < 0:
        raise PostlocError("--batch-rows must be at least 1 and --batch-wait-ms not negative")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_image_pixels=args.max_image_pixels,
        max_text_chars=args.max_text_chars,
        rate_per_second=args.rate,
        burst=args.burst,
    )
    settings = ServeSettings(
        limits=limits,
        tile_url=args.tiles,
        tile_attribution=args.tile_attribution,
        cors_origins=tuple(args.cors_origin),
        batch_rows=args.batch_rows,
        batch_wait_ms=args.batch_wait_ms,
    )
    app = build_app(args.run_dir, settings, names=args.pois, name_weight=args.name_weight)
    print(f"serving {args.run_dir} on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr)
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
