"""Bounded load test of ``postloc serve`` on 127.0.0.1, plus batch-prediction throughput.

    python benchmarks/bench_serve.py [--run RUN] [--requests 300] [--posts 20000]

Without ``--run`` a synthetic run with the default (paper-sized) MRLF layers is trained for one
epoch: inference cost depends on the layer sizes, not on how well the model learned. The server
runs in-process (uvicorn in a thread, 127.0.0.1 only, rate limit lifted); every concurrency level
sends a fixed number of requests and stops by itself. Writes benchmarks/results/serve.{json,md}.

The server is a separate process (``postloc serve``, 127.0.0.1 only, rate limit lifted), so the
load generator does not share its interpreter; memory is the server's RSS from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import machine, write_results

LEVELS = (1, 8, 32)
ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """Resident set size of a process in MB (``VmHWM``: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@contextmanager
def server_process(run: Path):
    """``postloc serve`` in a child process on a free 127.0.0.1 port; stopped (by its pid) afterwards."""
    import httpx

    from test_serve_http import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "postloc",
            "serve",
            str(run),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--rate",
            "1e9",
            "--burst",
            "1000000000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def make_run(base: Path) -> Path:
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
    from postloc.training import RunConfig, TrainerConfig, train

    prepared = write_synthetic_prepared(
        base / "prepared", SyntheticFeaturesConfig(n_pois=10, n_posts=800, n_users=100, image_dim=32, seed=3)
    )
    train(prepared, base / "run", RunConfig("mrlf", {}, TrainerConfig(epochs=1, batch_size=64, progress=False)))
    return base / "run"


def payloads(n: int) -> list[dict]:
    words = [
        "sunset",
        "bridge",
        "river",
        "old",
        "town",
        "coffee",
        "friends",
        "walk",
        "evening",
        "market",
        "church",
        "square",
    ]
    return [
        {
            "text": " ".join(words[(i + j) % len(words)] for j in range(3 + i % 8)),
            "hashtags": [words[i % len(words)], words[(i * 7) % len(words)]],
            "top_k": 5,
        }
        for i in range(n)
    ]


async def load_level(url: str, clients: int, total: int) -> dict:
    import httpx

    bodies = payloads(total)
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client(http) -> None:
        nonlocal errors
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/predict", json=body)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await http.get(f"{url}/healthz")
        started = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(clients)])
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": total,
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_s": round(total / seconds, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
    }


def batch_throughput(run: Path, base: Path, posts: int, batch_size: int) -> dict:
    from postloc.inference import batch

    source = base / "bench-posts.jsonl"
    with open(source, "w") as handle:
        for i, body in enumerate(payloads(posts)):
            handle.write(json.dumps({"id": f"b{i}", "text": body["text"], "hashtags": body["hashtags"]}) + "\n")
    out = base / "bench-out.jsonl"
    start = time.perf_counter()
    counts = batch.predict_file(run, source, out, top_k=5, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - start
    return {
        "posts": counts["posts"],
        "batch_size": batch_size,
        "seconds": round(seconds, 2),
        "posts_per_s": round(counts["posts"] / seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run (default: train a small synthetic one)")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--posts", type=int, default=20_000, help="posts for the batch-predict throughput")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        run = args.run or make_run(base)
        levels = []
        with server_process(run) as (url, pid):
            memory_before = rss_mb(pid)
            for clients in LEVELS:
                levels.append(asyncio.run(load_level(url, clients, args.requests)))
                print(levels[-1], file=sys.stderr)
            memory_after, memory_peak = rss_mb(pid), rss_mb(pid, "VmHWM")
        batch = batch_throughput(run, base, args.posts, args.batch_size)
        print(batch, file=sys.stderr)
    command = "python " + " ".join(["benchmarks/bench_serve.py"] + sys.argv[1:])
    payload = {
        "command": command,
        "machine": machine(),
        "run": str(args.run or "synthetic, default MRLF layers, 1 epoch"),
        "levels": levels,
        "errors": sum(level["errors"] for level in levels),
        "server_memory_mb": {
            "model_loaded_before_load": round(memory_before, 1),
            "after_load_test": round(memory_after, 1),
            "peak": round(memory_peak, 1),
        },
        "batch_predict": batch,
    }
    lines = [
        "# postloc serve benchmark\n",
        f"`{command}` on {payload['machine']}\n",
        "| clients | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} |"
        for r in levels
    ]
    lines += [
        "",
        f"Server memory (RSS MB): {payload['server_memory_mb']}",
        f"Batch predict: {batch['posts']} posts in {batch['seconds']} s = {batch['posts_per_s']} posts/s "
        f"(batch size {batch['batch_size']}, JSONL in and out)",
        "",
    ]
    json_path, md_path = write_results("serve", payload, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")
    return 1 if payload["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
