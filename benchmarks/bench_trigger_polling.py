"""
N LumaGenerationTriggers polling the emulator at once in one event loop: do they share connections?

Submits N generations (sync hook), then runs N triggers concurrently with ``asyncio.gather`` and prints
the TCP connections the triggers opened, the wall time and the GET rate. With the hook's pooled async
client (one per base URL and event loop) the connection count stays near the pool size instead of N.

    .venv/bin/python benchmarks/bench_trigger_polling.py --triggers 200

Measured here (2 shared cores, emulator in the same process): 50 triggers polling every 1 s made 572
GETs over 5 connections; 200 triggers every 0.5 s opened 200 connections for 563 GETs, because more
requests were in flight than the pool keeps alive (20).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="luma-bench-"))


def _count_connections() -> collections.Counter[str]:
    """Count new TCP connections made by httpcore's async backend (the triggers' side only)."""
    import httpcore._backends.anyio as anyio_backend

    counter: collections.Counter[str] = collections.Counter()
    original = anyio_backend.AnyIOBackend.connect_tcp

    async def counting_connect_tcp(self, host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        counter["connections"] += 1
        return await original(self, host, port, *args, **kwargs)

    anyio_backend.AnyIOBackend.connect_tcp = counting_connect_tcp  # type: ignore[method-assign]
    return counter


async def _run_triggers(generation_ids: list[str], poll_interval: float) -> list[dict]:
    from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

    start = time.time()

    async def first_event(index: int, generation_id: str) -> dict:
        # Spread the first polls over one interval, as triggers deferred at different times are.
        first_poll_at = start + poll_interval * index / len(generation_ids)
        trigger = LumaGenerationTrigger(
            generation_id=generation_id,
            deadline=start + 120,
            first_poll_at=first_poll_at,
            poll_interval=poll_interval,
        )
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return await asyncio.gather(*(first_event(index, gid) for index, gid in enumerate(generation_ids)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--processing-seconds", type=float, default=10.0)
    args = parser.parse_args()

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest
    from airflow_provider_luma.testing import LumaEmulator

    with LumaEmulator(
        queued_seconds=0.5,
        processing_seconds=args.processing_seconds,
        long_edge=64,
        rpm_limit=1_000_000,
        concurrency_limit=1_000_000,
    ) as emulator:
        os.environ["AIRFLOW_CONN_LUMA_DEFAULT"] = emulator.connection_json()
        with LumaHook(luma_conn_id="luma_default") as hook:
            ids = [
                hook.create_generation(GenerationRequest.build(prompt=f"benchmark image {index}")).id
                for index in range(args.triggers)
            ]
        connections = _count_connections()
        gets_before = emulator.stats.requests["GET /v1/generations/{id}"]
        started = time.perf_counter()
        events = asyncio.run(_run_triggers(ids, args.poll_interval))
        wall = time.perf_counter() - started
        gets = emulator.stats.requests["GET /v1/generations/{id}"] - gets_before

    statuses = collections.Counter(event["status"] for event in events)
    print(
        f"triggers:             {args.triggers} (poll every {args.poll_interval} s, "
        f"generation takes {0.5 + args.processing_seconds} s)"
    )
    print(f"events:               {dict(statuses)}")
    print(
        f"connections opened:   {connections['connections']} (one client per trigger would open "
        f"at least {args.triggers})"
    )
    print(f"wall time:            {wall:.2f} s")
    print(f"GETs:                 {gets} ({gets / wall:.0f} per second)")


if __name__ == "__main__":
    main()
