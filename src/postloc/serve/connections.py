"""Connection limits of ``postloc serve``: slow, idle and too many clients cannot starve the others.

uvicorn closes a keep-alive connection after its ``timeout_keep_alive``, but a connection that
never finishes its request is held forever: 3,000 half-open sockets stayed open, a declared
``Content-Length`` with no body held its connection 20 s and more, and with a 1,024-descriptor
limit 1,100 idle sockets made every other client time out ("Too many open files"). This
protocol (uvicorn's own h11 protocol plus three rules) closes what wastes a connection:

* **header timeout**: the request line and headers must arrive within ``header_timeout`` seconds
  of the first byte (or of the connection), however slowly they trickle in (slowloris);
* **body timeout**: while a request body is read, at most ``body_timeout`` seconds may pass
  without a byte arriving;
* **connection cap**: at most ``max_connections`` at once, kept below the descriptor limit. A new
  connection past the cap evicts the oldest one that has no request in progress, so a crowd of
  idle sockets cannot lock out a real client; when every connection is busy the new one gets
  a ``503`` and is closed.

A connection closed before its request was complete gets a ``408`` when no response has started.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from postloc.serve.limits import ConnectionLimits

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b'content-length: 35\r\n\r\n{"detail":"request read timed out"}'
)
_BUSY_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b'retry-after: 1\r\ncontent-length: 36\r\n\r\n{"detail":"too many open connections"}'
)


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``limits`` (pass it as ``uvicorn.Config(http=...)``)."""
    cap = limits.connection_cap()

    class GuardedH11Protocol(_Guarded):
        header_timeout = limits.header_timeout
        body_timeout = limits.body_timeout
        max_connections = cap

    return GuardedH11Protocol


class _Guarded(H11Protocol):
    header_timeout: float
    body_timeout: float
    max_connections: int

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened = time.monotonic()
        self._read_timer: asyncio.TimerHandle | None = None
        self._arm(self.header_timeout)
        if len(self.connections) > self.max_connections and not self._evict_idle():
            transport.write(_BUSY_503)
            transport.close()

    def data_received(self, data: bytes) -> None:
        first_byte = self.conn.their_state is h11.IDLE and self._read_timer is None
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(self.body_timeout)  # inactivity: restarted by every chunk
        elif state is h11.IDLE:
            if first_byte:  # a new request on a kept-alive connection: its own header deadline
                self._arm(self.header_timeout)
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._disarm()  # uvicorn's keep-alive timer takes over
        super().on_response_complete()

    # --- internals -----------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_408)
        self.transport.close()

    def _busy(self) -> bool:
        """Whether a request is being read or answered on this connection."""
        if self.cycle is not None and not self.cycle.response_complete:
            return True
        return self.conn.their_state is not h11.IDLE

    def _evict_idle(self) -> bool:
        """Close the oldest other connection with no request in progress; whether there was one."""
        idle: list[Any] = [
            c
            for c in self.connections
            if c is not self and isinstance(c, _Guarded) and not c._busy() and not c.transport.is_closing()
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._opened)
        oldest.transport.close()
        return True
