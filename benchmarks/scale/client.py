"""
One triggerer-scale measurement: N pollers of one variant on one event loop, in a process that has
imported Airflow's triggerer (so its heap, and the GC pauses that heap causes, are a real triggerer's).

    python -m benchmarks.scale.client VARIANT N --port P [--mode steady|startup] [--tls] ...

Variants (each polls its own generation id every ``--interval`` seconds):

- ``ours``: ``LumaGenerationTrigger.run()`` exactly as the triggerer runs it (connection from the
  environment, hook, retry policy, poll plan), nothing patched;
- ``floor``: one shared ``aiohttp.ClientSession``, a bare GET and JSON parse: the cheapest Python poll;
- ``naive``: a new ``httpx.AsyncClient`` for every poll (what some providers' triggers do);
- ``httpx``, ``httpx2``, ``httpx-aiohttp``: one shared client of that library (``httpx-aiohttp``:
  httpx over the ``httpx_aiohttp`` transport), bare GET + JSON, no provider code.

Modes:

- ``steady``: first polls spread over one interval; after every poller has polled once and a warm-up,
  a window measures the achieved rate, CPU, event-loop lag and GC pauses;
- ``startup``: every poller long overdue at once (a triggerer restart re-creating N waits); reports
  how long until the rate over the last interval reaches 95% of the target and the longest loop
  block before.

The achieved rate is read from the server's own request count, so the code under test is not
instrumented. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import resource
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

#: The stand-in server checks no key: a placeholder that no one could take for a real one.
_PLACEHOLDER_KEY = "benchmark-placeholder-not-a-key"
_AUTH = {"Authorization": f"Bearer {_PLACEHOLDER_KEY}"}
_TICK = 0.05


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("n", type=int)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("steady", "startup"), default="steady")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--startup-limit", type=float, default=90.0)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after imports")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the steady window into PATH (pstats)")
    return parser.parse_args()


class Counter:
    """Reads the server's request count over a raw connection (no client library of the variants)."""

    def __init__(self, port: int, tls: bool) -> None:
        self.port = port
        self.ssl: ssl.SSLContext | None = None
        if tls:
            # The benchmark's own throw-away certificate; this connection only reads a counter.
            self.ssl = ssl.create_default_context()
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE

    async def read(self) -> tuple[int, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.ssl)
        writer.write(b"GET /_count HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        requests, distinct = data.rsplit(b"\r\n\r\n", 1)[1].split()
        return int(requests), int(distinct)


class LoopMonitor:
    """A 50 ms ticker: how late each tick ran is how long the loop was blocked."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(_TICK)
            self.lags_ms.append((time.perf_counter() - started - _TICK) * 1000)

    def take(self) -> list[float]:
        lags, self.lags_ms = self.lags_ms, []
        return sorted(lags)


class GcMonitor:
    """Durations of the collections that ran, by generation."""

    def __init__(self) -> None:
        self.pauses_ms: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((info["generation"], (time.perf_counter() - self._started) * 1000))

    def take(self) -> list[tuple[int, float]]:
        pauses, self.pauses_ms = self.pauses_ms, []
        return pauses


def _percentile(values: list[float], fraction: float) -> float:
    return round(values[min(len(values) - 1, int(len(values) * fraction))], 1) if values else 0.0


Poller = Callable[[int, str, float], Awaitable[None]]


def _bare_loop(get_json: Callable[[str], Awaitable[Any]], interval: float) -> Poller:
    async def poll(index: int, generation_id: str, first_at: float) -> None:
        await asyncio.sleep(max(0.0, first_at - time.time()))
        while True:
            await get_json(generation_id)
            await asyncio.sleep(interval)

    return poll


def _poller(variant: str, base: str, interval: float) -> Poller:
    if variant == "ours":
        from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

        async def poll(index: int, generation_id: str, first_at: float) -> None:
            trigger = LumaGenerationTrigger(
                generation_id=generation_id,
                deadline=time.time() + 3600,
                first_poll_at=first_at,
                poll_interval=interval,
            )
            async for event in trigger.run():
                print("unexpected event", event.payload, file=sys.stderr)

        return poll
    if variant == "floor":
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        )

        async def get_aiohttp(generation_id: str) -> Any:
            async with session.get(f"{base}/generations/{generation_id}", headers=_AUTH) as response:
                return await response.json()

        return _bare_loop(get_aiohttp, interval)
    if variant == "naive":
        import httpx

        async def get_naive(generation_id: str) -> Any:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                return (await client.get(f"/generations/{generation_id}", headers=_AUTH)).json()

        return _bare_loop(get_naive, interval)
    if variant in ("httpx", "httpx2", "httpx-aiohttp"):
        library: Any = __import__("httpx2" if variant == "httpx2" else "httpx")
        options: dict[str, Any] = {
            "base_url": base,
            "timeout": 60,
            "limits": library.Limits(max_connections=None, max_keepalive_connections=None),
        }
        if variant == "httpx-aiohttp":
            import httpx_aiohttp

            options["transport"] = httpx_aiohttp.AiohttpTransport()
        client = library.AsyncClient(**options)

        async def get_shared(generation_id: str) -> Any:
            return (await client.get(f"/generations/{generation_id}", headers=_AUTH)).json()

        return _bare_loop(get_shared, interval)
    raise SystemExit(f"unknown variant {variant!r}")


async def _measure(args: argparse.Namespace, base: str) -> dict[str, Any]:
    poll = _poller(args.variant, base, args.interval)
    counter = Counter(args.port, args.tls)
    target = args.n / args.interval
    loop_monitor, gc_monitor = LoopMonitor(), GcMonitor()
    loop_monitor.start()
    started = time.time()
    ids = [str(uuid.uuid4()) for _ in range(args.n)]
    if args.mode == "steady":
        first_polls = [started + args.interval * i / args.n for i in range(args.n)]
    else:
        # A triggerer restart: every wait was deferred long ago, its first GET long overdue.
        first_polls = [started - 60.0] * args.n
    # Kept referenced: the loop holds tasks weakly.
    pollers = [
        asyncio.get_running_loop().create_task(poll(i, gid, first_at))
        for i, (gid, first_at) in enumerate(zip(ids, first_polls, strict=True))
    ]
    result: dict[str, Any] = {}
    # Until every poller has polled once and the rate over the last interval is 95% of the target.
    samples: list[tuple[float, int]] = []
    full_rate_s: float | None = None
    while time.time() - started < args.startup_limit:
        await asyncio.sleep(0.25)
        requests, distinct = await counter.read()
        now = time.time()
        samples.append((now, requests))
        old = [s for s in samples if s[0] <= now - args.interval]
        if distinct >= args.n and old:
            then, before = old[-1]
            if (requests - before) / (now - then) >= 0.95 * target:
                full_rate_s = now - started
                break
    startup_lags = loop_monitor.take()
    startup_gc = gc_monitor.take()
    result["full_rate_after_s"] = round(full_rate_s, 1) if full_rate_s is not None else None
    result["startup_lag_max_ms"] = round(startup_lags[-1], 1) if startup_lags else 0.0
    result["startup_gc_max_ms"] = round(max((p for _, p in startup_gc), default=0.0), 1)
    if args.mode == "steady":
        await asyncio.sleep(args.warmup)
        loop_monitor.take()
        gc_monitor.take()
        requests_before, _ = await counter.read()
        profiler = cProfile.Profile() if args.profile else None
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(args.window)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        requests_after, _ = await counter.read()
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        polls = requests_after - requests_before
        lags = loop_monitor.take()
        pauses = gc_monitor.take()
        result.update(
            achieved_per_s=round(polls / wall, 1),
            rate_pct=round(100 * polls / wall / target, 1),
            cores=round(cpu / wall, 3),
            ms_per_poll=round(1000 * cpu / max(polls, 1), 3),
            lag_p50_ms=_percentile(lags, 0.5),
            lag_p99_ms=_percentile(lags, 0.99),
            lag_max_ms=round(lags[-1], 1) if lags else 0.0,
            gc_full_collections=sum(1 for generation, _ in pauses if generation == 2),
            gc_max_ms=round(max((p for _, p in pauses), default=0.0), 1),
        )
    result["alive"] = sum(1 for task in pollers if not task.done())
    return result


def main() -> None:
    args = _arguments()
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="luma-scale-"))
    scheme = "https" if args.tls else "http"
    base = f"{scheme}://127.0.0.1:{args.port}/v1"
    os.environ["AIRFLOW_CONN_LUMA_DEFAULT"] = json.dumps(
        {"conn_type": "luma", "host": base, "password": _PLACEHOLDER_KEY}
    )
    import airflow.jobs.triggerer_job_runner  # noqa: F401  (a real triggerer's heap)

    if args.gc_freeze:
        gc.freeze()
    result = {"variant": args.variant, "n": args.n, "mode": args.mode, "tls": args.tls}
    result.update(asyncio.run(_measure(args, base)))
    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result), flush=True)
    # Thousands of pollers never end by themselves: leave without cancelling each.
    os._exit(0)


if __name__ == "__main__":
    main()
