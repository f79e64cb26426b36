"""
GETs per completed generation under the provider's default timing, against Luma's "~15-30 GETs" advice.

Luma's quickstart (``/work/shared/luma-api.md`` §4.4) recommends waiting ~20 s, then polling every 2 s,
and says that is "only about 15-30 GETs per job", so no backoff is needed. The provider follows that
advice (``polling.DEFAULT_INITIAL_WAIT`` and ``DEFAULT_POLL_INTERVAL``, read here from the module), and
this script counts what it really costs over a spread of completion times: Luma's p50 (~30 s), a grid
from 10 to 120 s, and a log-normal distribution around that p50. GETs are not rate limited, but each
is a request the triggerer (or worker) makes and Luma's abuse ceiling counts.

The model drives the real ``polling.await_generation`` loop and ``PollPlan`` with a fake clock
(``polling.now`` and ``polling.asleep`` patched, as the test-suite does): no real waiting. A GET may
take some time on the fake clock too (``--get-latency``), since the loop sleeps a full interval
*after* each answer. A column shows the same loop with no initial wait (polling every 2 s from the
submission) for comparison.

Then a short real check: generations on the emulator (over HTTP on 127.0.0.1) complete at some of
those times scaled down (``--scale``, with the initial wait and the interval scaled alike), and the
real ``await_generation`` with ``LumaHook.aget_generation`` waits on them at once. The emulator's own
GET counter is compared with the model run on the measured timing (each cycle's time beyond the
interval: the GET's round trip and the event loop's lateness, and the half of the POST that passed
before the plan's clock started); the plain model's count is shown beside it. Completion times are
half an interval off a poll, so only a drift of that much can move a poll across the completion.

    .venv/bin/python benchmarks/bench_gets_per_generation.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import emit, table

# Neither imports Airflow: the real check sets AIRFLOW_HOME before the hook does.
from airflow_provider_luma import polling
from airflow_provider_luma.models import Generation, GenerationState

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

#: Luma's stated p50 for uni-1 (luma-api.md §4.4).
P50_SECONDS = 30.0
#: Luma's claim for its own recommended polling (20 s, then every 2 s).
DOCS_GETS = (15, 30)
#: Completion times (seconds after the POST) of the grid; each is half an interval off a poll.
GRID = (11.0, 25.0, 31.0, 41.0, 47.0, 61.0, 75.0, 91.0, 119.0)
GENERATION_ID = "00000000-0000-4000-8000-000000000000"


class FakeClock:
    """Epoch seconds that move only when the loop sleeps or a GET takes time."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    async def asleep(self, seconds: float) -> None:
        self.t += seconds


def _generation(state: GenerationState) -> Generation:
    return Generation(id=GENERATION_ID, state=state, model="uni-1", type="image", created_at="")


async def _modelled_gets(completes_after: float, initial_wait: float, interval: float, latency: float) -> int:
    """GETs the real wait loop makes, on a fake clock, for a generation done ``completes_after`` s in."""
    clock = FakeClock()
    gets = 0

    async def get(generation_id: str, *, deadline: float | None = None) -> Generation:
        nonlocal gets
        gets += 1
        clock.t += latency / 2  # the server reads the state half-way through the round trip
        done = clock.t - submitted >= completes_after
        clock.t += latency / 2
        return _generation(GenerationState.COMPLETED if done else GenerationState.PROCESSING)

    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(polling, "now", clock.now))
        patches.enter_context(mock.patch.object(polling, "asleep", clock.asleep))
        submitted = clock.now()
        plan = polling.PollPlan.starting_now(GENERATION_ID, initial_wait=initial_wait, poll_interval=interval)
        outcome = await polling.await_generation(get, plan)
    assert outcome.status == polling.SUCCESS, outcome
    return gets


def _percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)])


@dataclass
class Distribution:
    name: str
    samples: list[float]


def _distributions(count: int) -> list[Distribution]:
    rng = random.Random(20260401)
    # Median at Luma's p50; sigma 0.5 puts p95 near 68 s ("typically 30-60 s", "a minute or two" for some).
    lognormal = [min(120.0, max(10.0, rng.lognormvariate(math.log(P50_SECONDS), 0.5))) for _ in range(count)]
    uniform = [rng.uniform(10.0, 120.0) for _ in range(count)]
    return [
        Distribution("log-normal, median 30 s, clipped 10-120 s", lognormal),
        Distribution("uniform 10-120 s", uniform),
    ]


async def _model(samples: int, latency: float) -> list[dict[str, Any]]:
    wait, interval = polling.DEFAULT_INITIAL_WAIT, polling.DEFAULT_POLL_INTERVAL
    rows: list[dict[str, Any]] = []
    for seconds in sorted({P50_SECONDS, *GRID}):
        rows.append(
            {
                "kind": "model",
                "completes_after_s": seconds,
                "gets": await _modelled_gets(seconds, wait, interval, 0.0),
                "gets_with_latency": await _modelled_gets(seconds, wait, interval, latency),
                "gets_no_initial_wait": await _modelled_gets(seconds, 0.0, interval, 0.0),
            }
        )
    for distribution in _distributions(samples):
        counts = [await _modelled_gets(s, wait, interval, 0.0) for s in distribution.samples]
        slow = [await _modelled_gets(s, wait, interval, latency) for s in distribution.samples]
        eager = [await _modelled_gets(s, 0.0, interval, 0.0) for s in distribution.samples]
        within = sum(DOCS_GETS[0] <= c <= DOCS_GETS[1] for c in counts) / len(counts)
        rows.append(
            {
                "kind": "distribution",
                "distribution": distribution.name,
                "samples": len(counts),
                "mean_gets": statistics.fmean(counts),
                "p50_gets": _percentile(counts, 0.5),
                "p95_gets": _percentile(counts, 0.95),
                "max_gets": max(counts),
                "mean_gets_with_latency": statistics.fmean(slow),
                "mean_gets_no_initial_wait": statistics.fmean(eager),
                "share_within_docs_range": within,
            }
        )
    return rows


async def _real_check(emulator: LumaEmulator, scale: float, times: tuple[float, ...]) -> list[dict[str, Any]]:
    """Submit one generation per completion time (scaled), wait on all at once, count the emulator's GETs."""
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest

    wait, interval = polling.DEFAULT_INITIAL_WAIT * scale, polling.DEFAULT_POLL_INTERVAL * scale
    submitted: list[tuple[float, float, polling.PollPlan]] = []
    with LumaHook() as hook:
        for seconds in times:
            # Settings are read when a generation is created: each gets its own latency.
            emulator.configure(queued_seconds=0.1 * seconds * scale, processing_seconds=0.9 * seconds * scale)
            started = time.monotonic()
            generation = hook.create_generation(
                GenerationRequest.build(prompt=f"completes after {seconds} s")
            )
            post_seconds = time.monotonic() - started
            plan = polling.PollPlan.starting_now(generation.id, initial_wait=wait, poll_interval=interval)
            submitted.append((seconds, post_seconds, plan))
    gets_before = emulator.stats.requests["GET /v1/generations/{id}"]
    calls: dict[str, list[tuple[float, float]]] = {plan.generation_id: [] for _, _, plan in submitted}
    async with LumaHook() as hook:

        async def timed_get(generation_id: str, *, deadline: float | None = None) -> Generation:
            started = time.monotonic()
            try:
                return await hook.aget_generation(generation_id, deadline=deadline)
            finally:
                calls[generation_id].append((started, time.monotonic()))

        started = time.monotonic()
        waits = (polling.await_generation(timed_get, plan) for _, _, plan in submitted)
        outcomes = await asyncio.gather(*waits)
        elapsed = time.monotonic() - started
    emulator_gets = emulator.stats.requests["GET /v1/generations/{id}"] - gets_before
    rows: list[dict[str, Any]] = []
    for (seconds, post_seconds, plan), outcome in zip(submitted, outcomes, strict=True):
        assert outcome.status == polling.SUCCESS, outcome
        made = calls[plan.generation_id]
        round_trip = statistics.fmean(end - start for start, end in made)
        # What a cycle really took beyond the interval: the GET itself, plus the event loop's lateness.
        cycles = [later[0] - earlier[0] for earlier, later in itertools.pairwise(made)]
        per_get = statistics.fmean(cycles) - interval if cycles else round_trip
        # The generation was created about half-way through its POST, before the plan's clock started.
        after_plan_start = seconds * scale - post_seconds / 2
        rows.append(
            {
                "kind": "emulator",
                "completes_after_s": seconds,
                "scaled_completes_after_s": seconds * scale,
                "modelled_gets": await _modelled_gets(seconds * scale, wait, interval, 0.0),
                "measured_get_round_trip_s": round_trip,
                "measured_cycle_overhead_s": per_get,
                "modelled_gets_measured_timing": await _modelled_gets(
                    after_plan_start, wait, interval, max(0.0, per_get)
                ),
                "client_gets": len(made),
            }
        )
    emulator_rows = list(rows)
    rows.append(
        {
            "kind": "emulator_total",
            "scale": scale,
            "modelled_gets": sum(row["modelled_gets"] for row in emulator_rows),
            "modelled_gets_measured_timing": sum(
                row["modelled_gets_measured_timing"] for row in emulator_rows
            ),
            "client_gets": sum(row["client_gets"] for row in emulator_rows),
            "emulator_gets": emulator_gets,
            "wall_seconds": elapsed,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, a 10 s real check")
    parser.add_argument("--samples", type=int, help="completion times drawn per distribution")
    parser.add_argument("--scale", type=float, help="real check: emulator time per Luma second")
    parser.add_argument("--get-latency", type=float, default=0.25, help="seconds per GET in the model column")
    args = parser.parse_args()
    samples = args.samples or (2_000 if args.quick else 20_000)
    scale = args.scale or (0.2 if args.quick else 0.5)
    real_times = (11.0, 31.0, 47.0) if args.quick else (11.0, 25.0, 31.0, 47.0, 61.0, 75.0, 119.0)

    from airflow_provider_luma.testing import LumaEmulator

    rows = asyncio.run(_model(samples, args.get_latency))
    with (
        tempfile.TemporaryDirectory(prefix="luma-bench-gets-") as airflow_home,
        LumaEmulator(long_edge=64, rpm_limit=1000, concurrency_limit=100) as emulator,
    ):
        os.environ.update(
            {
                "AIRFLOW_HOME": airflow_home,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_LUMA_DEFAULT": emulator.connection_json(),
            }
        )
        rows += asyncio.run(_real_check(emulator, scale, real_times))

    print(
        f"Default timing: first GET {polling.DEFAULT_INITIAL_WAIT:g} s after the submission, then every "
        f"{polling.DEFAULT_POLL_INTERVAL:g} s. Luma's docs: 'about {DOCS_GETS[0]}-{DOCS_GETS[1]} GETs per "
        f"job'; uni-1 p50 ~{P50_SECONDS:g} s.\n"
    )
    print("Model (the real wait loop on a fake clock):")
    print(
        table(
            [
                "completes after",
                "GETs",
                f"GETs, {args.get_latency:g} s per GET",
                "GETs, no initial wait",
                "in docs' 15-30?",
            ],
            [
                [
                    f"{row['completes_after_s']:g} s"
                    + ("  (p50)" if row["completes_after_s"] == P50_SECONDS else ""),
                    row["gets"],
                    row["gets_with_latency"],
                    row["gets_no_initial_wait"],
                    "yes" if DOCS_GETS[0] <= row["gets"] <= DOCS_GETS[1] else "no",
                ]
                for row in rows
                if row["kind"] == "model"
            ],
        )
    )
    wait, interval = polling.DEFAULT_INITIAL_WAIT, polling.DEFAULT_POLL_INTERVAL
    p50_gets = next(row["gets"] for row in rows if row.get("completes_after_s") == P50_SECONDS)
    # n GETs (no GET time) are made when the generation completes in (W + (n-2)I, W + (n-1)I].
    print(
        f"At the p50 the default timing makes {p50_gets} GETs; the docs' {DOCS_GETS[0]}-{DOCS_GETS[1]} is "
        f"what a generation completing between {wait + (DOCS_GETS[0] - 2) * interval:g} and "
        f"{wait + (DOCS_GETS[1] - 1) * interval:g} s costs.\n"
    )
    print(
        table(
            [
                "distribution",
                "samples",
                "mean",
                "p50",
                "p95",
                "max",
                f"mean, {args.get_latency:g} s/GET",
                "mean, no initial wait",
                "share in 15-30",
            ],
            [
                [
                    row["distribution"],
                    row["samples"],
                    f"{row['mean_gets']:.1f}",
                    f"{row['p50_gets']:g}",
                    f"{row['p95_gets']:g}",
                    row["max_gets"],
                    f"{row['mean_gets_with_latency']:.1f}",
                    f"{row['mean_gets_no_initial_wait']:.1f}",
                    f"{row['share_within_docs_range']:.0%}",
                ]
                for row in rows
                if row["kind"] == "distribution"
            ],
        )
    )
    total = next(row for row in rows if row["kind"] == "emulator_total")
    print(
        f"\nReal check on the emulator, time scaled x{scale:g} (first GET after "
        f"{polling.DEFAULT_INITIAL_WAIT * scale:g} s, then every "
        f"{polling.DEFAULT_POLL_INTERVAL * scale:g} s), {len(real_times)} generations waited on at once "
        f"({total['wall_seconds']:.1f} s):"
    )
    print(
        table(
            [
                "completes after (Luma s)",
                "scaled",
                "model GETs",
                "GET round trip",
                "cycle beyond interval",
                "model GETs, measured timing",
                "GETs made",
            ],
            [
                [
                    f"{row['completes_after_s']:g} s",
                    f"{row['scaled_completes_after_s']:.2f} s",
                    row["modelled_gets"],
                    f"{row['measured_get_round_trip_s'] * 1000:.1f} ms",
                    f"{row['measured_cycle_overhead_s'] * 1000:.1f} ms",
                    row["modelled_gets_measured_timing"],
                    row["client_gets"],
                ]
                for row in rows
                if row["kind"] == "emulator"
            ],
        )
    )
    matches = total["modelled_gets_measured_timing"] == total["emulator_gets"] == total["client_gets"]
    print(
        f"total: model {total['modelled_gets']} (no GET time), {total['modelled_gets_measured_timing']} "
        f"(the measured GET time); the client made {total['client_gets']}, the emulator counted "
        f"{total['emulator_gets']}: {'the model matches' if matches else 'MISMATCH'}"
    )
    print(
        "(At this scale a cycle's few milliseconds beyond the interval are a larger share of the "
        f"{polling.DEFAULT_POLL_INTERVAL * scale:g} s interval than of the real 2 s one: "
        "hence the measured-timing column.)"
    )
    emit(
        "gets_per_generation",
        rows,
        mode="quick" if args.quick else "full",
        initial_wait_s=polling.DEFAULT_INITIAL_WAIT,
        poll_interval_s=polling.DEFAULT_POLL_INTERVAL,
        docs_gets=list(DOCS_GETS),
        model_matches_emulator=matches,
    )


if __name__ == "__main__":
    main()
