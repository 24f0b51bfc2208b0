"""Serving benchmark for the demo model: in-process single-row latency through inference.py, and
HTTP latency against `ml-expert serve` on 127.0.0.1 at a fixed arrival rate; then both servers
(`ml-expert serve` and the package's own server.py) under load and hostile clients.

    python -m benchmarks.serving [--requests 10000] [--rate 200] [--dnn]
                                 [--clients 20] [--per-client 50] [--slow 50] [--batches 10]

Trains the demo model (breast_cancer) with `ml-expert run`, then:
  1. in-process: 10,000 single-row `ModelInference.predict` calls (targets: p99 <= 1 ms);
  2. HTTP: an open-loop client sends --requests single-row POST /predict at --rate per second
     (each request's latency counts from its scheduled send time, so a stall is not hidden by
     the client waiting for it); targets p99 <= 10 ms and 0 errors.
  3. both servers: --clients concurrent keep-alive clients (closed loop), --slow clients that
     send each request in ten pieces over about a second, 1,000-row batches from three clients
     while /health is probed (target: /health p99 < 50 ms), and 50 half-sent requests that the
     read deadlines must close.
Writes benchmarks/results/serving.md with the machine and its load before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "serving.md"
IN_PROCESS_CALLS = 10_000
POOL_IDLE_SECONDS = 4.0
"""Client pool drops connections idle this long: uvicorn closes them after 5 s (its default)."""


def machine() -> dict[str, str]:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu": cpu,
        "python": platform.python_version(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def train_demo(ws: Path, dnn: bool) -> Path:
    cmd = [sys.executable, "-m", "ml_expert", "run", "--json", "--workspace", str(ws), "--memory", "embedded"]
    cmd += [] if dnn else ["--no-dnn"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"demo run failed:\n{proc.stderr[-3000:]}")
    return ws / "registry" / "versions" / "v1"


def percentiles(ms: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {"max": float(ms.max())}


def in_process(package: Path, rows: list[dict]) -> dict[str, float]:
    from ml_expert.runtime.inference import ModelInference

    model = ModelInference(package)
    for row in rows[:50]:
        model.predict(row)
    timings = np.empty(IN_PROCESS_CALLS)
    for i in range(IN_PROCESS_CALLS):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        model.predict(row)
        timings[i] = time.perf_counter() - start
    return percentiles(timings * 1000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def open_loop(port: int, rows: list[dict], requests: int, rate: float) -> dict[str, float]:
    """Send `requests` POST /predict at `rate` per second over keep-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: the generator shares the server's two cores,
    so it must cost far less per request than the server (an httpx.AsyncClient costs about as
    much as the server itself here)."""
    import json

    bodies = [json.dumps(row).encode() for row in rows]
    requests_bytes = [
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    opened: list[asyncio.StreamWriter] = []
    latencies = np.full(requests, np.nan)
    errors: list[str] = []

    async def post(payload: bytes) -> int:
        conn = None
        while idle and conn is None:
            reader, writer, last_used = idle.pop()
            if time.perf_counter() - last_used < POOL_IDLE_SECONDS:
                conn = (reader, writer)
            else:  # the server closes keep-alive connections idle for 5 s; so does any client pool
                writer.close()
        if conn is None:
            conn = await asyncio.open_connection("127.0.0.1", port)
            opened.append(conn[1])
        reader, writer = conn
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        idle.append((reader, writer, time.perf_counter()))
        return status

    for i in range(50):  # warm-up, not counted
        await post(requests_bytes[i % len(requests_bytes)])
    start = time.perf_counter()

    async def one(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            status = await post(requests_bytes[i % len(requests_bytes)])
            if status != 200:
                errors.append(f"HTTP {status}")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:120])
        latencies[i] = (time.perf_counter() - scheduled) * 1000

    await asyncio.gather(*(one(i) for i in range(requests)))
    elapsed = time.perf_counter() - start
    for writer in opened:
        writer.close()
    return {
        **percentiles(latencies),
        "errors": len(errors),
        "error_kinds": dict(Counter(errors).most_common(5)),
        "achieved_rate": requests / elapsed,
        "connections": len(opened),
    }


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    payload: bytes,
    pieces: int = 1,
    gap: float = 0.0,
) -> int:
    """Send one request (optionally in `pieces` with `gap` seconds between) and read the answer."""
    step = max(1, -(-len(payload) // pieces))
    for i in range(0, len(payload), step):
        writer.write(payload[i : i + step])
        await writer.drain()
        if gap and i + step < len(payload):
            await asyncio.sleep(gap)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


def _post(body: bytes, path: str = "/predict") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def under_load(
    port: int, rows: list[dict], clients: int, per_client: int, slow: int, batches: int
) -> dict:
    """Concurrent clients, slow clients, batch load with /health probes, half-sent requests."""
    import json

    singles = [_post(json.dumps(row).encode()) for row in rows]
    out: dict = {}

    async def client(k: int) -> tuple[list[float], list[str]]:
        times, errors = [], []
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            return [], [f"connect: {exc}"[:80]] * per_client
        for i in range(per_client):
            start = time.perf_counter()
            try:
                status = await asyncio.wait_for(
                    _exchange(reader, writer, singles[(k + i) % len(singles)]), 30
                )
                if status != 200:
                    errors.append(f"HTTP {status}")
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            times.append((time.perf_counter() - start) * 1000)
        writer.close()
        return times, errors

    results = await asyncio.gather(*(client(k) for k in range(clients)))
    times = np.array([t for r in results for t in r[0]])
    errors = [e for r in results for e in r[1]]
    out["concurrent"] = {**percentiles(times), "errors": len(errors), "requests": clients * per_client}

    async def slow_client(k: int) -> tuple[float, str | None]:
        start = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            status = await asyncio.wait_for(_exchange(reader, writer, singles[k % len(singles)], 10, 0.1), 30)
            writer.close()
            return (time.perf_counter() - start) * 1000, None if status == 200 else f"HTTP {status}"
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            return (time.perf_counter() - start) * 1000, type(exc).__name__

    slow_results = await asyncio.gather(*(slow_client(k) for k in range(slow)))
    slow_ms = np.array([r[0] for r in slow_results])
    out["slow"] = {
        **percentiles(slow_ms),
        "errors": sum(1 for r in slow_results if r[1]),
        "requests": slow,
    }

    batch = _post(json.dumps({"rows": [rows[i % len(rows)] for i in range(1000)]}).encode())
    stop = asyncio.Event()
    batch_times: list[float] = []
    batch_errors: list[str] = []

    async def batcher() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop.is_set():
            start = time.perf_counter()
            try:
                status = await asyncio.wait_for(_exchange(reader, writer, batch), 60)
                if status != 200:
                    batch_errors.append(f"HTTP {status}")
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                batch_errors.append(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            batch_times.append((time.perf_counter() - start) * 1000)
        writer.close()

    async def prober() -> tuple[list[float], int]:
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        probes, failed = [], 0
        while len(batch_times) < batches or len(probes) < 20:
            start = time.perf_counter()
            try:
                if await asyncio.wait_for(_exchange(reader, writer, HEALTH), 30) != 200:
                    failed += 1
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                failed += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            probes.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.05)
        stop.set()
        writer.close()
        return probes, failed

    gathered = await asyncio.gather(prober(), *(batcher() for _ in range(3)))
    probes, failed = gathered[0]
    out["batch"] = {
        **percentiles(np.array(batch_times)),
        "errors": len(batch_errors),
        "requests": len(batch_times),
    }
    out["health_during_batches"] = {
        **percentiles(np.array(probes)),
        "errors": failed,
        "requests": len(probes),
    }

    async def half_sent() -> tuple[float, str]:
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        try:
            await asyncio.wait_for(reader.read(), 120)  # until the server closes it
        except TimeoutError:
            return math.inf, "still open after 120 s"
        except OSError as exc:  # a reset is the server closing it too
            return time.perf_counter() - start, type(exc).__name__
        return time.perf_counter() - start, "closed"

    closed = await asyncio.gather(*(half_sent() for _ in range(50)))
    out["half_sent"] = {
        "connections": 50,
        "closed": sum(1 for c in closed if c[0] != math.inf),
        "max_s": max(c[0] for c in closed),
        "outcomes": dict(Counter(c[1] for c in closed)),
    }
    return out


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if a graceful shutdown takes longer than 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def start_server(cmd: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    """The server, once /health answers. Its stderr goes to a file, not a pipe: a pipe nobody reads
    fills (64 KiB of log lines) and then blocks the server on its next log write, which stalled
    `ml-expert serve` in the half-sent stage of earlier runs of this benchmark."""
    import httpx

    with tempfile.NamedTemporaryFile("w", prefix="ml-expert-server-", suffix=".log", delete=False) as log:
        server = subprocess.Popen(cmd, stderr=log, text=True, env=env)
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    server.wait()
    raise SystemExit(f"server did not start: {Path(log.name).read_text()[-2000:]}")


def load_rows(name: str, ms: dict) -> list[str]:
    def row(what: str, r: dict) -> str:
        return (
            f"| {name} | {what} | {r['requests']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
            f"{r['errors']} |"
        )

    return [
        row("single-row POST /predict, closed loop", ms["concurrent"]),
        row("slow clients (request in 10 pieces, 0.1 s apart)", ms["slow"]),
        row("1,000-row batches, 3 clients", ms["batch"]),
        row("GET /health during the batches (target p99 < 50 ms)", ms["health_during_batches"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--dnn", action="store_true", help="also train the Keras DNN in the demo run")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients in the load stage")
    parser.add_argument("--per-client", type=int, default=50, help="requests per concurrent client")
    parser.add_argument("--slow", type=int, default=50, help="slow clients in the load stage")
    parser.add_argument("--batches", type=int, default=10, help="1,000-row batches at least")
    args = parser.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        t0 = time.perf_counter()
        package = train_demo(ws, args.dnn)
        train_s = time.perf_counter() - t0
        import json

        import pandas as pd

        schema = json.loads((package / "schema.json").read_text())
        names = [c["name"] for c in schema["columns"]]
        frame = pd.read_csv(
            Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "breast_cancer.csv"
        )
        rows = frame[names].head(200).to_dict(orient="records")
        manifest = json.loads((package / "manifest.json").read_text())
        local = in_process(package, rows)
        port = free_port()
        serve = [sys.executable, "-m", "ml_expert", "serve", "production", "--port", str(port), "-w", str(ws)]
        server = start_server(serve, port)
        try:
            remote = asyncio.run(open_loop(port, rows, args.requests, args.rate))
            load = {
                "ml-expert serve": asyncio.run(
                    under_load(port, rows, args.clients, args.per_client, args.slow, args.batches)
                )
            }
        finally:
            stop_server(server)
        print(json.dumps(load, default=str), file=sys.stderr, flush=True)
        port = free_port()
        package_server = start_server(
            [sys.executable, str(package / "server.py"), "--port", str(port)], port, env=dict(os.environ)
        )
        try:
            load["package server.py"] = asyncio.run(
                under_load(port, rows, args.clients, args.per_client, args.slow, args.batches)
            )
        finally:
            stop_server(package_server)
        print(json.dumps(load, default=str), file=sys.stderr, flush=True)
    after = machine()
    ok_local = local["p99"] <= 1.0
    ok_remote = remote["p99"] <= 10.0 and remote["errors"] == 0
    lines = [
        "# Serving benchmark (demo model)",
        "",
        "Produced by `python -m benchmarks.serving` on "
        + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        + ".",
        "",
        f"- Machine: {before['nproc']} CPU cores ({before['cpu']}), Python {before['python']}, no GPU.",
        f"- Load before: `{before['uptime']}`",
        f"- Load after: `{after['uptime']}`",
        "- The machine is shared with other engineers running test suites at the same time, and the",
        "  HTTP load generator runs on the same cores as the server: figures are upper bounds for an",
        "  idle machine.",
        f"- Model: `{manifest.get('model')}` on `breast_cancer` "
        f"({'with' if args.dnn else 'without'} the Keras DNN candidate), trained by `ml-expert run` "
        f"in {train_s:.0f} s; served from the registry's `production` by `ml-expert serve` (uvicorn, h11).",
        "",
        "| measurement | p50 ms | p95 ms | p99 ms | max ms | errors | target | met |",
        "|---|---|---|---|---|---|---|---|",
        f"| in-process `ModelInference.predict`, 1 row, {IN_PROCESS_CALLS} calls | {local['p50']:.3f} | "
        f"{local['p95']:.3f} | {local['p99']:.3f} | {local['max']:.3f} | 0 | p99 <= 1 ms | "
        f"{'yes' if ok_local else 'NO'} |",
        f"| HTTP `POST /predict`, 1 row, {args.requests} requests at {args.rate:.0f}/s "
        f"(achieved {remote['achieved_rate']:.0f}/s, {remote['connections']} connections) | "
        f"{remote['p50']:.3f} | {remote['p95']:.3f} | "
        f"{remote['p99']:.3f} | {remote['max']:.3f} | {remote['errors']} | p99 <= 10 ms, 0 errors | "
        f"{'yes' if ok_remote else 'NO'} |",
        "",
        *([f"Errors by kind: {remote['error_kinds']}", ""] if remote["errors"] else []),
        "HTTP latency counts from each request's scheduled send time (open loop), so a server stall",
        "delays the requests behind it and is counted, not hidden.",
        "",
        "## Both servers under load and hostile clients",
        "",
        f"{args.clients} concurrent keep-alive clients x {args.per_client} requests; "
        f"{args.slow} slow clients; "
        f"three clients posting 1,000-row batches while /health is probed every 50 ms; then 50 half-sent "
        "requests (headers and one byte of a 100-byte body) that the read deadlines must close.",
        "",
        "| server | load | requests | p50 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|",
        *[line for name, ms in load.items() for line in load_rows(name, ms)],
        "",
        *[
            f"- {name}: {ms['half_sent']['closed']} of {ms['half_sent']['connections']} half-sent requests "
            f"closed by the server, the last after {ms['half_sent']['max_s']:.1f} s "
            f"({ms['half_sent']['outcomes']}); /health p99 during "
            f"1,000-row batches {ms['health_during_batches']['p99']:.1f} ms "
            f"({'met' if ms['health_during_batches']['p99'] < 50 else 'NOT met'}: target < 50 ms)."
            for name, ms in load.items()
        ],
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
