"""Slow and idle clients (docs/reliability.md, "slow clients"): they cannot starve ``postloc serve``.

Regression tests of issue 17, item 5: half-open connections were never closed, a declared
Content-Length with no body held its connection 20 s and more, and enough idle sockets to reach
the descriptor limit made every other client time out. The server runs uvicorn with
:func:`postloc.serve.connections.guarded_protocol`, on 127.0.0.1, in a thread.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from postloc.serve.connections import guarded_protocol
from postloc.serve.limits import ConnectionLimits


async def tiny_app(scope, receive, send):
    """/healthz answers at once; /echo reads the whole body first (as the predict endpoint does)."""
    if scope["type"] != "http":
        return
    body = b""
    if scope["path"] == "/echo":
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok" + body[:10]})


@contextmanager
def serving(limits: ConnectionLimits):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        tiny_app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _read_chunked_response(sock: socket.socket) -> bytes:
    """One whole response (the tiny app's are chunked: they end with the zero-length chunk)."""
    sock.settimeout(5)
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(seconds)
    received = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, received
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        return True, received


def test_many_idle_sockets_do_not_lock_out_a_real_client():
    limits = ConnectionLimits(header_timeout=30, max_connections=50)
    with serving(limits) as port:
        idle = [_connect(port) for _ in range(200)]
        try:
            started = time.perf_counter()
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and elapsed < 1.0, elapsed
            time.sleep(0.5)
            still_open = sum(not _closed_within(s, 0.01)[0] for s in idle)
            assert still_open <= 50, f"{still_open} idle sockets held past the cap of 50"
        finally:
            for s in idle:
                s.close()


def test_half_open_request_is_closed_after_the_header_timeout():
    with serving(ConnectionLimits(header_timeout=0.5)) as port:
        sock = _connect(port)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never end
        started = time.perf_counter()
        closed, received = _closed_within(sock, 5)
        assert closed and time.perf_counter() - started < 3
        assert received.startswith(b"HTTP/1.1 408")
        silent = _connect(port)  # connects and never sends a byte
        assert _closed_within(silent, 5)[0]


def test_trickled_headers_do_not_extend_the_deadline():
    with serving(ConnectionLimits(header_timeout=1.0)) as port:
        sock = _connect(port)
        started = time.perf_counter()
        closed = False
        for _ in range(40):  # one header byte every 0.1 s: 4 s if it were allowed
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        closed = closed or _closed_within(sock, 3)[0]
        assert closed and time.perf_counter() - started < 3.5


def test_declared_body_that_never_comes_is_cut_off():
    with serving(ConnectionLimits(body_timeout=0.5)) as port:
        sock = _connect(port)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        started = time.perf_counter()
        closed, received = _closed_within(sock, 5)
        assert closed and time.perf_counter() - started < 3
        assert received.startswith(b"HTTP/1.1 408")


def test_slow_but_steady_body_is_read_and_keep_alive_works():
    with serving(ConnectionLimits(body_timeout=0.5)) as port:
        sock = _connect(port)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":
            time.sleep(0.2)  # each gap is under the body timeout
            sock.sendall(bytes([byte]))
        first = _read_chunked_response(sock)
        assert first.startswith(b"HTTP/1.1 200") and b"okabcdef" in first
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection, kept alive
        assert _read_chunked_response(sock).startswith(b"HTTP/1.1 200")
        sock.close()


def test_every_connection_busy_gives_503():
    with serving(ConnectionLimits(body_timeout=30, max_connections=2)) as port:
        busy = [_connect(port) for _ in range(2)]
        for sock in busy:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.3)
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        for sock in busy:
            sock.close()


def test_cap_stays_below_the_descriptor_limit(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 4096))
    assert ConnectionLimits(max_connections=5000).connection_cap() == 1024 - 64
    assert ConnectionLimits().connection_cap() == 960
    assert ConnectionLimits(max_connections=10).connection_cap() == 10


@pytest.mark.parametrize("flag", ["--header-timeout=0", "--max-connections=0"])
def test_bad_connection_flags_are_errors(flag, capsys, tmp_path):
    from postloc.cli import main

    assert main(["serve", str(tmp_path), flag]) == 2
    assert "must be" in capsys.readouterr().err
