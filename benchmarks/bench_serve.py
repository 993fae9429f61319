"""Load test of ``postloc serve`` on 127.0.0.1 (wrk), in-process single-post latency, batch throughput.

    python benchmarks/bench_serve.py [--quick] [--run RUN] [--seconds 8] [--posts 20000]

Without ``--run`` a synthetic run with the default (paper-sized) MRLF layers is trained for one
epoch: inference cost depends on the layer sizes, not on how well the model learned.

The server is a separate process (``postloc serve``, 127.0.0.1 only, rate limit lifted). The load
generator is ``wrk`` (C, epoll, one thread; ``apt-get install wrk``), closed loop: each of N
connections sends its next POST /v1/predict (JSON, a rotating set of bodies, Lua script) when
the previous answer arrived; percentiles come from wrk's own histogram. Without wrk the old
Python client (httpx, asyncio) is used and the result says so: it is Python-bound on 2 cores.

Two server settings run side by side in one run, so their ratio is fair on a shared machine:
"before" (a fixed 5 ms batch window: the old default) and "after" (the default: greedy
batching, no window); both with torch's default thread count. The load average is recorded
at every level. Writes benchmarks/results/serve.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from _common import machine, write_results

LEVELS = (1, 8, 32)
#: (label, extra ``postloc serve`` arguments): measured side by side in one run
SETTINGS = (
    ("before: 5 ms window", ["--batch-wait-ms", "5"]),
    ("after: defaults", []),
)
WRK_SCRIPT = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"}, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""
ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """Resident set size of a process in MB (``VmHWM``: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@contextmanager
def server_process(run: Path, extra: list[str] | None = None):
    """``postloc serve`` in a child process on a free 127.0.0.1 port; stopped (by its pid) afterwards."""
    import httpx

    from serving import free_port

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
            *(extra or []),
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


def wrk_level(url: str, clients: int, seconds: float, script: Path) -> dict:
    """``wrk`` with ``clients`` connections for ``seconds``; percentiles from its histogram (us)."""
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, errors, non_2xx, p50_us, p99_us = (int(x) for x in line.split()[1:])
    return {
        "clients": clients,
        "requests": requests,
        "errors": errors + non_2xx,
        "seconds": round(duration_us / 1e6, 3),
        "requests_per_s": round(requests / (duration_us / 1e6), 1),
        "p50_ms": round(p50_us / 1000, 1),
        "p99_ms": round(p99_us / 1000, 1),
        "load_average_1": round(os.getloadavg()[0], 2),
    }


def write_wrk_script(path: Path, n: int = 64) -> Path:
    bodies = ", ".join("[==[" + json.dumps(body) + "]==]" for body in payloads(n))
    path.write_text(WRK_SCRIPT % bodies)
    return path


def in_process_latency(run: Path, posts: int = 300) -> dict:
    """Single-post ``Predictor.predict`` latency in this process (1 torch thread, as the server's model thread)."""
    import numpy as np
    import torch

    from postloc.inference.predictor import load

    torch.set_num_threads(1)
    predictor = load(run)
    bodies = [{"id": f"p{i}", "text": b["text"], "hashtags": b["hashtags"]} for i, b in enumerate(payloads(posts))]
    for post in bodies[:20]:
        predictor.predict([post], top_k=5)  # warm-up
    latencies = []
    for post in bodies:
        started = time.perf_counter()
        predictor.predict([post], top_k=5)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "posts": posts,
        "threads": 1,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "load_average_1": round(os.getloadavg()[0], 2),
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
    parser.add_argument("--quick", action="store_true", help="4 s per level, 5,000 batch posts")
    parser.add_argument("--seconds", type=float, help="seconds per concurrency level with wrk (default 8)")
    parser.add_argument("--requests", type=int, default=300, help="requests per level with the Python client")
    parser.add_argument("--posts", type=int, help="posts for the batch-predict throughput (default 20000)")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    seconds = args.seconds or (4 if args.quick else 8)
    posts = args.posts or (5000 if args.quick else 20_000)
    client = "wrk" if shutil.which("wrk") else "httpx (Python, asyncio: client-bound on 2 cores)"

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        run = args.run or make_run(base)
        script = write_wrk_script(base / "post.lua")
        settings = []
        for label, extra in SETTINGS:
            levels = []
            with server_process(run, extra) as (url, pid):
                memory_before = rss_mb(pid)
                for clients in LEVELS:
                    if client == "wrk":
                        wrk_level(url, 1, 1, script)  # warm-up
                        levels.append(wrk_level(url, clients, seconds, script))
                    else:
                        levels.append(asyncio.run(load_level(url, clients, args.requests)))
                    print(label, levels[-1], file=sys.stderr)
                memory = {
                    "model_loaded_before_load": round(memory_before, 1),
                    "after_load_test": round(rss_mb(pid), 1),
                    "peak": round(rss_mb(pid, "VmHWM"), 1),
                }
            settings.append({"label": label, "server_args": extra, "levels": levels, "server_memory_mb": memory})
        single = in_process_latency(run)
        print(single, file=sys.stderr)
        batch = batch_throughput(run, base, posts, args.batch_size)
        print(batch, file=sys.stderr)
    command = "python " + " ".join(["benchmarks/bench_serve.py"] + sys.argv[1:])
    payload = {
        "command": command,
        "client": client,
        "machine": machine(),
        "run": str(args.run or "synthetic, default MRLF layers, 1 epoch"),
        "settings": settings,
        "errors": sum(level["errors"] for s in settings for level in s["levels"]),
        "in_process_single_post": single,
        "batch_predict": batch,
    }
    lines = [
        "# postloc serve benchmark\n",
        f"`{command}`; load generator: {client}, closed loop, POST /v1/predict with JSON bodies; "
        f"run: {payload['run']}; machine {payload['machine']}. Both server settings in one run; "
        "`load 1m` is the 1-minute load average after each level (wrk itself takes part of a core).\n",
        "| server | clients | requests | errors | req/s | p50 ms | p99 ms | load 1m |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in settings:
        lines += [
            f"| {entry['label']} | {r['clients']} | {r['requests']} | {r['errors']} | {r['requests_per_s']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r.get('load_average_1', '')} |"
            for r in entry["levels"]
        ]
    before, after = settings[0]["levels"], settings[-1]["levels"]
    lines += [
        "",
        "p99 after / before: "
        + ", ".join(
            f"{a['clients']} clients {a['p99_ms'] / max(b['p99_ms'], 1e-9):.2f}x"
            for a, b in zip(after, before, strict=True)
        ),
        "",
        f"In-process single post (`Predictor.predict`, 1 torch thread, {single['posts']} posts): "
        f"p50 {single['p50_ms']} ms, p99 {single['p99_ms']} ms (load {single['load_average_1']}).",
        f"Server memory (RSS MB, after): {settings[-1]['server_memory_mb']}",
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
