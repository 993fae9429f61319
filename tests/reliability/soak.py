"""Soak test of ``postloc serve`` on 127.0.0.1: N concurrent clients for a fixed time, memory sampled.

    python tests/reliability/soak.py [--run RUN] [--clients 16] [--seconds 600] [--out-name soak]

Not part of CI (it runs for minutes). Without ``--run`` it prepares the embedded Dresden sample
and trains a small MRLF on it for one epoch (inference cost, not accuracy, is what matters here).
The server is a separate process (``postloc serve``, rate limit lifted so the 16 clients from one
address are not throttled); each client loops over a mixed request stream: JSON predict, explain,
multipart with a photo, and invalid requests that must be answered 4xx. The server's RSS is read
from /proc every few seconds; the slope of a least-squares line through the samples after the
first minute (MB per minute) says whether memory is flat. Writes tests/reliability/results/<out-name>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
# _common (the machine, the results files) and bench_serve (the server process, its RSS) from benchmarks/;
# bench_serve imports test_serve_http (a free port) from tests/
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
sys.path.insert(0, str(HERE.parent / "support"))

from _common import machine, write_results  # noqa: E402
from bench_serve import rss_mb, server_process  # noqa: E402

SMALL = {"filters": 32, "heads": 2, "char_dim": 16, "word_dim": 16, "hidden": 32}
WORDS = [
    "zwinger",
    "frauenkirche",
    "elbe",
    "sunset",
    "bridge",
    "old",
    "town",
    "museum",
    "palace",
    "river",
    "opera",
    "semperoper",
    "garden",
    "church",
    "view",
    "night",
    "festival",
    "square",
    "market",
    "art",
]


def make_dresden_run(base: Path) -> Path:
    """The embedded Dresden sample, prepared, and a small MRLF trained on it for one epoch."""
    prepared, run = base / "prepared", base / "run"
    if not (prepared / "manifest.json").exists():
        subprocess.run(
            [sys.executable, "-m", "postloc", "prepare", "dresden", "--out", str(prepared), "--quiet"], check=True
        )
    if not (run / "best").exists():
        sets = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "postloc",
                "train",
                "--model",
                "mrlf",
                "--data",
                str(prepared),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--quiet",
                *sets,
            ],
            check=True,
        )
    return run


def photo(rng: random.Random) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    size = (rng.randint(16, 320), rng.randint(16, 240))
    Image.new("RGB", size, tuple(rng.randint(0, 255) for _ in range(3))).save(
        buffer, format=rng.choice(["PNG", "JPEG"])
    )
    return buffer.getvalue()


def request_for(rng: random.Random) -> tuple[str, str, dict, bool]:
    """(kind, path, httpx keyword arguments, expect_ok) of one request of the mix."""
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
    tags = [f"#{rng.choice(WORDS)}" for _ in range(rng.randint(0, 5))]
    roll = rng.random()
    if roll < 0.45:
        return (
            "predict-json",
            "/v1/predict",
            {"json": {"text": text, "hashtags": tags, "top_k": rng.randint(1, 5)}},
            True,
        )
    if roll < 0.60:
        return "explain-json", "/v1/explain", {"json": {"text": text, "hashtags": tags}}, True
    if roll < 0.80:
        return (
            "predict-photo",
            "/v1/predict",
            {
                "data": {"text": text, "hashtags": " ".join(tags)},
                "files": {"photo": ("p.jpg", photo(rng), "image/jpeg")},
            },
            True,
        )
    bad = rng.choice(
        [
            ("bad-json", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
            ("unknown-field", {"json": {"text": "x", "image_path": "../../etc/passwd"}}),
            ("text-too-long", {"json": {"text": "x" * 5000}}),
            ("not-an-image", {"files": {"photo": ("a.png", b"<html>no</html>", "image/png")}}),
            ("wrong-type", {"content": b"hello", "headers": {"content-type": "text/plain"}}),
        ]
    )
    return bad[0], "/v1/predict", bad[1], False


async def client_loop(url: str, seed: int, deadline: float, log: list) -> None:
    import httpx

    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            kind, path, kwargs, expect_ok = request_for(rng)
            started = time.perf_counter()
            try:
                response = await client.post(path, **kwargs)
                status = response.status_code
                body_ok = (
                    response.headers.get("content-type", "").startswith("application/json")
                    and "Traceback" not in response.text
                )
            except httpx.HTTPError as error:
                status, body_ok = f"connection:{type(error).__name__}", False
            seconds = time.perf_counter() - started
            good = (
                isinstance(status, int) and body_ok and ((200 <= status < 300) if expect_ok else (400 <= status < 500))
            )
            log.append((kind, status, seconds, good))


async def sample_rss(pid: int, deadline: float, every: float, started: float, samples: list) -> None:
    while time.monotonic() < deadline:
        samples.append((round(time.monotonic() - started, 2), round(rss_mb(pid), 2)))
        await asyncio.sleep(every)
    samples.append((round(time.monotonic() - started, 2), round(rss_mb(pid), 2)))


def slope_mb_per_min(samples: list[tuple[float, float]], skip_s: float) -> float | None:
    points = [(t / 60.0, m) for t, m in samples if t >= skip_s]
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_m = statistics.fmean(m for _, m in points)
    den = sum((t - mean_t) ** 2 for t, _ in points)
    return round(sum((t - mean_t) * (m - mean_m) for t, m in points) / den, 3) if den else None


async def soak(url: str, pid: int, clients: int, seconds: float, every: float) -> tuple[list, list]:
    started = time.monotonic()
    deadline = started + seconds
    log: list = []
    samples: list = []
    await asyncio.gather(
        sample_rss(pid, deadline, every, started, samples),
        *(client_loop(url, seed, deadline, log) for seed in range(clients)),
    )
    return log, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run folder (default: small Dresden run, trained here)")
    parser.add_argument("--work", type=Path, help="where to keep the Dresden run between invocations")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--out-name", default="soak")
    args = parser.parse_args()

    work = args.work or Path(tempfile.gettempdir()) / "postloc-bench-soak"
    run = args.run or make_dresden_run(work)
    load_before = machine()["load_average_1_5_15"]
    with server_process(run) as (url, pid):
        wall = time.perf_counter()
        log, samples = asyncio.run(soak(url, pid, args.clients, args.seconds, args.sample_every))
        wall = time.perf_counter() - wall
        peak = rss_mb(pid, "VmHWM")
    latencies = sorted(s for _, _, s, _ in log)
    by_status = Counter(str(status) for _, status, _, _ in log)
    by_kind = Counter(kind for kind, _, _, _ in log)
    errors = [(kind, status) for kind, status, _, good in log if not good]
    rss = [m for _, m in samples]
    skip = min(60.0, args.seconds / 4)

    def pct(q: float) -> float:
        return (
            round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else float("nan")
        )

    result = {
        "data": "embedded Dresden Flickr sample (real posts), small MRLF trained 1 epoch"
        if args.run is None
        else f"run {args.run.name}",
        "clients": args.clients,
        "seconds": round(wall, 1),
        "requests": len(log),
        "requests_per_second": round(len(log) / wall, 1) if wall else None,
        "errors": len(errors),
        "errors_by_kind_status": Counter(f"{k}:{s}" for k, s in errors),
        "responses_by_status": by_status,
        "requests_by_kind": by_kind,
        "latency_ms": {
            "p50": pct(0.50),
            "p99": pct(0.99),
            "max": round(1000 * latencies[-1], 1) if latencies else None,
        },
        "rss_mb": {
            "first": rss[0] if rss else None,
            "last": rss[-1] if rss else None,
            "max": max(rss) if rss else None,
            "peak_vmhwm": round(peak, 1),
            "slope_mb_per_min_after_warmup": slope_mb_per_min(samples, skip),
            "warmup_skipped_s": skip,
            "samples": samples,
        },
        "machine": {**machine(), "load_average_before": load_before},
        "command": "python tests/reliability/soak.py " + " ".join(sys.argv[1:]),
    }
    r = result
    markdown = "\n".join(
        [
            f"# Soak test of `postloc serve` ({r['clients']} clients, {r['seconds']:.0f} s)",
            "",
            f"Command: `{r['command'].strip()}`. Data: {r['data']}. Server: `postloc serve` on 127.0.0.1 "
            f"(separate process, rate limit lifted). Machine: {r['machine']['cores']}-core shared CPU, load average "
            f"before {r['machine']['load_average_before']}, after {r['machine']['load_average_1_5_15']} (1/5/15 min).",
            "",
            "Mix per client: 45% JSON predict, 15% explain, 20% multipart with a PNG/JPEG photo, 20% invalid "
            "(bad JSON, unknown field, text over the limit, not an image, wrong content type) that must get a 4xx.",
            "",
            "| requests | req/s | errors | p50 ms | p99 ms | max ms | RSS first MB | RSS last MB | RSS max MB | "
            "slope MB/min (after warm-up) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {r['requests']} | {r['requests_per_second']} | {r['errors']} | {r['latency_ms']['p50']} | "
            f"{r['latency_ms']['p99']} | {r['latency_ms']['max']} | {r['rss_mb']['first']} | {r['rss_mb']['last']} | "
            f"{r['rss_mb']['max']} | {r['rss_mb']['slope_mb_per_min_after_warmup']} |",
            "",
            "Responses by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())) + ".",
            "An error is a connection failure, a 5xx, a non-JSON or traceback-bearing body, a non-2xx answer to a "
            "valid request or a non-4xx answer to an invalid one.",
            "",
        ]
    )
    write_results(args.out_name, result, markdown, folder=HERE / "results")
    print(markdown)


if __name__ == "__main__":
    main()
