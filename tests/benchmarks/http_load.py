"""The serving benchmark's load generator (``bench_serving``): a lean HTTP/1.1 keep-alive client (like wrk) at a
fixed concurrency, and the CPU it, the server and other work used while it ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

from tests.benchmarks.stack import (
    Background,
    log,
    summarize,
)


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _requests(host: str, port: int, path: str, users: list[str], k: int) -> list[bytes]:
    """One pre-encoded HTTP/1.1 keep-alive POST per user (JSON body {user_id, k})."""
    out = []
    for user in users:
        body = json.dumps({"user_id": user, "k": k}).encode()
        out.append(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), host.encode(), port, len(body), body)
        )
    return out


async def _exchange(reader, writer, request: bytes) -> tuple[int | str, bool]:
    """Send one request and read its response; returns the HTTP status (or what was wrong with the answer) and
    whether the server closes the connection after it (``Connection: close``, as nginx does every
    ``keepalive_requests``)."""
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head[9:12])
    closes = b"\r\nconnection: close" in head
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return "no Content-Length", closes
    body = await reader.readexactly(int(head[at + 17 : head.index(b"\r\n", at + 2)]))
    if status == 200 and b'"items":[' not in body:
        return "200 without items", closes
    return status, closes


async def _load(url: str, users: list[str], k: int, concurrency: int, seconds: float, warmup: float) -> dict:
    """``concurrency`` keep-alive connections, each sending its next request when the last one is answered.

    A lean HTTP/1.1 client (like wrk): requests are encoded once and a response is read by its
    Content-Length, so the generator's own time per request (it shares the cores and, at concurrency 1,
    adds to every latency) stays small. A response counts as an error unless it is a 200 with items."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    requests_ = _requests(parts.hostname, parts.port, parts.path, users, k)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    record = False
    stop_at = 0.0

    async def worker(seed):
        rng = random.Random(seed)
        clock = time.perf_counter
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while clock() < stop_at:
                request = rng.choice(requests_)
                start = clock()
                try:
                    status, closes = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                    status, closes = type(error).__name__, True
                if closes:
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                if record:
                    if status == 200:
                        latencies.append(clock() - start)
                    else:
                        errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            writer.close()

    stop_at = time.perf_counter() + warmup
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    record = True
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker(1000 + i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    out = summarize(latencies) if latencies else {"calls": 0}
    out.update(
        {
            "concurrency": concurrency,
            "seconds": elapsed,
            "rps": len(latencies) / elapsed,
            "errors": sum(errors.values()),
            "errors_by_status": errors,
        }
    )
    return out


def _event_loop():
    """uvloop's event loop where installed (as the server's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def load_level(
    server: Background, url: str, users: list[str], k: int, concurrency: int, seconds: float, warmup: float
) -> dict:
    log(f"load: concurrency {concurrency}, {seconds:.0f} s (+{warmup:.0f} s warm-up)")
    import psutil

    def machine_busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    pids = server.group_pids()
    server_before, client_before, wall_before = cpu_seconds(pids), time.process_time(), time.perf_counter()
    machine_before = machine_busy()
    with asyncio.Runner(loop_factory=_event_loop) as runner:
        out = runner.run(_load(url, users, k, concurrency, seconds, warmup))
    wall = time.perf_counter() - wall_before
    out["server_processes"] = len(pids)
    out["server_cpu_cores_busy"] = (cpu_seconds(pids) - server_before) / wall
    out["load_generator_cpu_cores_busy"] = (time.process_time() - client_before) / wall
    out["machine_cpu_cores_busy"] = (machine_busy() - machine_before) / wall
    out["other_work_cpu_cores_busy"] = max(
        out["machine_cpu_cores_busy"] - out["server_cpu_cores_busy"] - out["load_generator_cpu_cores_busy"], 0.0
    )
    out["load_average_after"] = list(os.getloadavg())
    log(
        f"  p50 {out.get('p50_ms', float('nan')):.1f} ms, p99 {out.get('p99_ms', float('nan')):.1f} ms, "
        f"{out['rps']:.0f} rps, {out['errors']} errors; server {out['server_cpu_cores_busy']:.2f} cores, "
        f"load generator {out['load_generator_cpu_cores_busy']:.2f}, other work {out['other_work_cpu_cores_busy']:.2f}"
    )
    return out
