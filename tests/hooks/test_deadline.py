"""
A GET's ``deadline`` bounds the call, retries and waits included, sync and async.

The respx cases run on a fake clock that only the recorded sleeps move, so they take no real time;
the emulator cases hang a real GET on 127.0.0.1 and measure (with ``time.monotonic``) that the call
still returns by its deadline.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_luma.exceptions import LumaTransportError
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationState
from airflow_provider_luma.testing import Fault
from tests.hooks.conftest import BASE_URL, FakeClock, Sleeps, api_error, generation_body, respx_router

if TYPE_CHECKING:
    from collections.abc import Callable

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
GET = "GET /v1/generations/{id}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def router() -> Any:
    with respx_router(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def get(hook: LumaHook, mode: str, deadline: float | None) -> Any:
    if mode == "sync":
        return hook.get_generation(GEN_ID, deadline=deadline)
    return await hook.aget_generation(GEN_ID, deadline=deadline)


def recording(clock: FakeClock, answer: Callable[[], httpx.Response]) -> tuple[list[tuple[float, Any]], Any]:
    """A side effect that notes (time of the call, the request's timeouts) before answering."""
    seen: list[tuple[float, Any]] = []

    def side_effect(request: httpx.Request) -> httpx.Response:
        seen.append((clock(), request.extensions["timeout"]))
        return answer()

    return seen, side_effect


async def test_no_attempt_and_no_wait_runs_past_the_deadline(
    luma_conn: Callable[..., None], router: Any, clock: FakeClock, clocked_sleeps: Sleeps, mode: str
) -> None:
    luma_conn(max_retries=20)
    deadline = clock() + 2.0
    seen, side_effect = recording(clock, lambda: api_error(503, "Image URL ingestion unavailable"))
    router.get(f"/generations/{GEN_ID}").mock(side_effect=side_effect)

    async with LumaHook(sleep=clocked_sleeps, async_sleep=clocked_sleeps.asleep, clock=clock) as hook:
        with pytest.raises(LumaTransportError) as caught:
            await get(hook, mode, deadline)

    # The waits were cut so that the last one ends on the deadline, and nothing was tried after it.
    assert clock() == pytest.approx(deadline) and sum(clocked_sleeps) == pytest.approx(2.0)
    assert all(at < deadline for at, _ in seen)
    for at, timeouts in seen:
        assert timeouts["read"] == pytest.approx(deadline - at) and timeouts["connect"] <= 5.0
    assert caught.value.retryable and caught.value.request_id
    assert f"deadline passed after {len(seen)} attempt(s)" in str(caught.value)
    assert "last cause: HTTP 503" in str(caught.value)


async def test_a_retry_after_beyond_the_deadline_is_cut_to_it(
    luma_conn: Callable[..., None], router: Any, clock: FakeClock, clocked_sleeps: Sleeps, mode: str
) -> None:
    deadline = clock() + 5.0
    route = router.get(f"/generations/{GEN_ID}").mock(
        return_value=api_error(429, "Too many requests", **{"Retry-After": "30"})
    )

    async with LumaHook(sleep=clocked_sleeps, async_sleep=clocked_sleeps.asleep, clock=clock) as hook:
        with pytest.raises(LumaTransportError, match=r"after 1 attempt\(s\); last cause: HTTP 429"):
            await get(hook, mode, deadline)

    assert clocked_sleeps == [pytest.approx(5.0)] and route.call_count == 1


async def test_a_transport_fault_at_the_deadline_ends_the_call(
    luma_conn: Callable[..., None], router: Any, clock: FakeClock, clocked_sleeps: Sleeps, mode: str
) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        # A read timeout as httpx reports it, after the whole time the attempt was given.
        clock.now += request.extensions["timeout"]["read"]
        raise httpx.ReadTimeout("timed out", request=request)

    deadline = clock() + 3.0
    route = router.get(f"/generations/{GEN_ID}").mock(side_effect=hang)

    async with LumaHook(sleep=clocked_sleeps, async_sleep=clocked_sleeps.asleep, clock=clock) as hook:
        with pytest.raises(LumaTransportError, match=r"after 1 attempt\(s\); last cause: ReadTimeout"):
            await get(hook, mode, deadline)

    assert route.call_count == 1 and clocked_sleeps == [] and clock() == pytest.approx(deadline)


async def test_a_call_at_the_deadline_still_takes_one_short_look(
    luma_conn: Callable[..., None], router: Any, clock: FakeClock, clocked_sleeps: Sleeps, mode: str
) -> None:
    # The waiter's last look happens at the deadline itself: it gets one attempt of at most a second.
    seen, side_effect = recording(
        clock, lambda: httpx.Response(200, json=generation_body(GEN_ID, state="completed"))
    )
    router.get(f"/generations/{GEN_ID}").mock(side_effect=side_effect)

    async with LumaHook(sleep=clocked_sleeps, async_sleep=clocked_sleeps.asleep, clock=clock) as hook:
        generation = await get(hook, mode, clock() - 10)

    assert generation.state is GenerationState.COMPLETED
    ((_, timeouts),) = seen
    assert timeouts["read"] == pytest.approx(1.0) and timeouts["connect"] == pytest.approx(1.0)


async def test_without_a_deadline_the_configured_timeouts_apply(
    luma_conn: Callable[..., None], router: Any, clock: FakeClock, clocked_sleeps: Sleeps, mode: str
) -> None:
    luma_conn(timeout=12, connect_timeout=3)
    seen, side_effect = recording(clock, lambda: httpx.Response(200, json=generation_body(GEN_ID)))
    router.get(f"/generations/{GEN_ID}").mock(side_effect=side_effect)

    async with LumaHook(sleep=clocked_sleeps, async_sleep=clocked_sleeps.asleep, clock=clock) as hook:
        await get(hook, mode, None)
        await get(hook, mode, clock() + 600)

    assert [(t["read"], t["connect"]) for _, t in seen] == [(12.0, 3.0), (12.0, 3.0)]


async def test_an_async_attempt_is_bounded_as_a_whole(luma_conn: Callable[..., None], router: Any) -> None:
    # httpx times each read; a server trickling bytes (here: a mock that never answers, which no
    # httpx timeout covers) is cut by the bound on the whole attempt.
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=generation_body(GEN_ID))

    router.get(f"/generations/{GEN_ID}").mock(side_effect=never)
    started = time.monotonic()

    async with LumaHook() as hook:
        with pytest.raises(LumaTransportError, match="deadline passed"):
            await hook.aget_generation(GEN_ID, deadline=time.time() + 1.0)

    assert time.monotonic() - started < 2.0


# --------------------------------------------------------------------------- over real HTTP


def wait_until_abandoned(luma_emulator: Any) -> None:
    """Bounded: the server lets a hung request go once it sees the hang-up (no leftover for others)."""
    limit = time.monotonic() + 5
    while not luma_emulator.stats.requests["GET abandoned"]:
        assert time.monotonic() < limit, "the emulator never saw the client hang up"
        time.sleep(0.01)


def test_a_hung_get_returns_by_its_deadline_sync(luma_connection: str, luma_emulator: Any) -> None:
    luma_emulator.add_fault(Fault(method="GET", kind="slow", delay=30))
    deadline = time.time() + 1.5
    started = time.monotonic()

    with LumaHook(luma_connection) as hook, pytest.raises(LumaTransportError) as caught:
        hook.get_generation(GEN_ID, deadline=deadline)

    assert time.monotonic() - started < 1.5 + 1.0
    assert caught.value.retryable and "deadline passed after 1 attempt(s)" in str(caught.value)
    wait_until_abandoned(luma_emulator)
    assert luma_emulator.stats.requests[GET] == 1


async def test_a_hung_get_returns_by_its_deadline_async(luma_connection: str, luma_emulator: Any) -> None:
    luma_emulator.add_fault(Fault(method="GET", kind="slow", delay=30))
    deadline = time.time() + 1.5
    started = time.monotonic()

    async with LumaHook(luma_connection) as hook:
        with pytest.raises(LumaTransportError) as caught:
            await hook.aget_generation(GEN_ID, deadline=deadline)

    assert time.monotonic() - started < 1.5 + 1.0
    assert caught.value.retryable and "deadline passed after 1 attempt(s)" in str(caught.value)
    await asyncio.to_thread(wait_until_abandoned, luma_emulator)
    assert luma_emulator.stats.requests[GET] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_answer_trickled_a_byte_at_a_time_cannot_hold_a_get_past_its_deadline(
    luma_connection: str, luma_emulator: Any, mode: str
) -> None:
    """Every read arrives within its timeout; only a bound on the whole answer ends the call."""
    luma_emulator.add_fault(Fault(method="GET", kind="trickle", delay=0.2, times=50))
    deadline = time.time() + 1.0
    started = time.monotonic()

    async with LumaHook(luma_connection) as hook:
        with pytest.raises(LumaTransportError) as caught:
            if mode == "sync":
                await asyncio.to_thread(hook.get_generation, GEN_ID, deadline=deadline)
            else:
                await hook.aget_generation(GEN_ID, deadline=deadline)

    # The one attempt a call at its deadline still gets (a last look) is at least 1 s.
    assert time.monotonic() - started < 1.0 + 1.0 + 0.5
    assert caught.value.retryable and "deadline" in str(caught.value)
