"""Request limits: body size, image pixels, text length and a per-client token bucket.

The API faces untrusted clients, so every resource a request can consume has a configurable
cap, enforced as early as possible: the body size before the body is read (Content-Length, then
a counting ``receive`` for chunked uploads), the pixel count before the image is decoded.
"""

from __future__ import annotations

import math
import resource
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, fields

from postloc.inference.photos import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS
from postloc.settings import setting, setting_error

#: longest hashtag a request may send (characters)
MAX_HASHTAG_CHARS = 200
# ``setting_error`` (``--burst (Limits.burst) must be ..., got 0``) names the ``postloc serve`` flag declared on
# the field (:func:`postloc.settings.setting`), so that a CLI user knows what to change.


def require_at_least(owner: object, names: tuple[str, ...], low: int) -> None:
    """Integer settings below ``low`` (a negative body limit, a zero burst) refuse every request: refuse them first."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise setting_error(owner, name, f"must be an integer of at least {low}", value)


def require_finite(owner: object, names: tuple[str, ...], *, positive: bool) -> None:
    """NaN compares false with everything, so a ``--rate nan`` used to switch the rate limit off silently."""
    for name in names:
        value = getattr(owner, name)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < 0 or (positive and value == 0):
            rule = "must be a finite number above 0" if positive else "must be a finite number of at least 0"
            raise setting_error(owner, name, rule, value)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = setting(10 * 1024 * 1024, help="(default %(default)s)")  # whole request, photo included
    max_image_pixels: int = setting(DEFAULT_MAX_PIXELS, help="(default %(default)s)")  # width * height of the photo
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES  # memory of the decoded photo (non-JPEG, from the header)
    max_text_chars: int = setting(2_000, help="(default %(default)s)")
    max_hashtags: int = 64
    max_top_k: int = 50
    #: token refill per client IP
    rate_per_second: float = setting(5.0, flag="--rate", help="requests/s per client IP (default %(default)s)")
    #: bucket size: requests a client may make at once
    burst: int = setting(20, help="token bucket size per client (default %(default)s)")
    max_clients: int = 10_000  # buckets kept (least recently seen evicted): bounded memory

    def __post_init__(self) -> None:
        ints = tuple(f.name for f in fields(self) if f.type in ("int", int))
        require_at_least(self, tuple(n for n in ints if n != "max_hashtags"), 1)
        require_at_least(self, ("max_hashtags",), 0)
        require_finite(self, ("rate_per_second",), positive=True)

    def max_post_bytes(self) -> int:
        """The largest body a post without a photo can need: every allowed character written as a 12-byte
        JSON escape (a surrogate pair), plus 64 KiB for keys, numbers, separators and whitespace.

        A JSON body (or a multipart text field) over it is refused before it is parsed: 6 MB of ``{},``
        is a valid-size body by ``max_body_bytes``, but parsing and validating it cost seconds and gigabytes.
        """
        chars = self.max_text_chars + self.max_hashtags * (MAX_HASHTAG_CHARS + 3)  # '", "' between tags
        return min(self.max_body_bytes, 12 * chars + 64 * 1024)


#: descriptors kept free for the model, files, logs and the listening socket
RESERVED_DESCRIPTORS = 64


@dataclass(frozen=True)
class ConnectionLimits:
    #: seconds from the first byte to the end of the headers
    header_timeout: float = setting(
        10.0, help="seconds a client has to send the request line and headers (default %(default)s)"
    )
    #: seconds without a byte while the body is read
    body_timeout: float = setting(
        10.0, help="seconds without a byte while a request body is read (default %(default)s)"
    )
    #: seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive)
    keep_alive: float = setting(5.0, help="seconds an idle keep-alive connection stays open (default %(default)s)")
    #: None: 1,000, or less where the descriptor limit is lower
    max_connections: int | None = setting(
        None,
        help="connections at once; past it the oldest idle one is closed (default: 1000, "
        "or less when the open-file limit is lower)",
    )

    def __post_init__(self) -> None:
        require_finite(self, ("header_timeout", "body_timeout", "keep_alive"), positive=True)
        if self.max_connections is not None:
            require_at_least(self, ("max_connections",), 1)

    def connection_cap(self) -> int:
        """The cap actually used: the configured one, never above the descriptor limit less a reserve."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        ceiling = max(16, soft - RESERVED_DESCRIPTORS) if soft != resource.RLIM_INFINITY else 1_000_000
        return max(1, min(self.max_connections or 1_000, ceiling))


class TokenBucket:
    """Per-key token buckets; ``allow(key)`` spends one token or says how long to wait.

    Keyed by client IP. Behind a reverse proxy every client shares the proxy's IP: put the rate
    limit in the proxy then, or raise ``burst``.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000, clock=time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = float(rate), int(burst), int(max_keys), clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, float]:
        """``(allowed, retry_after_seconds)``."""
        if self.rate <= 0 and self.burst <= 0:
            return True, 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        wait = 0.0 if allowed else ((1.0 - tokens) / self.rate if self.rate > 0 else 60.0)
        return allowed, wait
