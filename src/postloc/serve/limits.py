"""Request limits: body size, image pixels, text length and a per-client token bucket.

The API faces untrusted clients, so every resource a request can consume has a configurable
cap, enforced as early as possible: the body size before the body is read (Content-Length, then
a counting ``receive`` for chunked uploads), the pixel count before the image is decoded.
"""

from __future__ import annotations

import resource
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from postloc.inference.photos import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 10 * 1024 * 1024  # whole request, photo included
    max_image_pixels: int = DEFAULT_MAX_PIXELS  # width * height of the uploaded photo
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES  # memory of the decoded photo (non-JPEG, from the header)
    max_text_chars: int = 2_000
    max_hashtags: int = 64
    max_top_k: int = 50
    rate_per_second: float = 5.0  # token refill per client IP
    burst: int = 20  # bucket size: requests a client may make at once
    max_clients: int = 10_000  # buckets kept (least recently seen evicted): bounded memory


#: descriptors kept free for the model, files, logs and the listening socket
RESERVED_DESCRIPTORS = 64


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0  # seconds from the first byte to the end of the headers
    body_timeout: float = 10.0  # seconds without a byte while the body is read
    keep_alive: float = 5.0  # seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive)
    max_connections: int | None = None  # None: 1,000, or less where the descriptor limit is lower

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
