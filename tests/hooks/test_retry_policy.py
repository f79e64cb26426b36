"""
The one retry policy, exercised through the hook's sync and async paths with respx.

Every case runs twice (``api`` is parametrised over sync and async) because both paths must obey
the same table. Sleeps are recorded, never taken.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_luma.exceptions import (
    LumaAPIError,
    LumaRateLimitError,
    LumaServerError,
    LumaSubmissionUnknownError,
    LumaTransportError,
)
from airflow_provider_luma.hooks._retry import RetryPolicy, get_may_be_retried, proves_nothing_queued
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest, GenerationState
from tests.hooks.conftest import BASE_URL, Sleeps, api_error, generation_body, proxy_page, respx_router

if TYPE_CHECKING:
    from collections.abc import Callable

    import respx

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
REQUEST = GenerationRequest.build(prompt="a lighthouse at dusk")


class Api:
    """Calls the hook the sync or the async way, and closes it."""

    def __init__(self, mode: str, sleeps: Sleeps) -> None:
        self.mode = mode
        self.sleeps = sleeps
        self.hook = LumaHook(sleep=sleeps, async_sleep=sleeps.asleep)

    async def get(self) -> Any:
        if self.mode == "sync":
            return self.hook.get_generation(GEN_ID)
        return await self.hook.aget_generation(GEN_ID)

    async def create(self) -> Any:
        if self.mode == "sync":
            return self.hook.create_generation(REQUEST)
        return await self.hook.acreate_generation(REQUEST)

    async def close(self) -> None:
        await self.hook.aclose()


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, luma_conn: Callable[..., None], sleeps: Sleeps) -> Any:
    client = Api(request.param, sleeps)
    yield client
    await client.close()


@pytest.fixture
def router() -> Any:
    with respx_router(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def ok_get() -> httpx.Response:
    return httpx.Response(200, json=generation_body(GEN_ID, state="processing"))


def created() -> httpx.Response:
    return httpx.Response(201, json=generation_body(GEN_ID))


def sent_request_ids(route: respx.Route) -> list[str]:
    return [call.request.headers["X-Request-Id"] for call in route.calls]


# ------------------------------------------------------------------------------------------- GET


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow answer"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadError("reset"),
    ],
    ids=lambda fault: type(fault).__name__,
)
async def test_get_retries_transport_faults_with_the_same_request_id(
    api: Api, router: Any, fault: Exception
) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(side_effect=[fault, ok_get()])

    generation = await api.get()

    assert generation.state is GenerationState.PROCESSING
    assert route.call_count == 2
    assert len(api.sleeps) == 1 and 0.25 <= api.sleeps[0] <= 0.5
    first, second = sent_request_ids(route)
    assert first == second and uuid.UUID(first).version == 4


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_get_retries_server_errors(api: Api, router: Any, status: int) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(
        side_effect=[httpx.Response(status, json={"detail": "boom"}), ok_get()]
    )

    await api.get()

    assert route.call_count == 2


async def test_get_429_honours_retry_after(api: Api, router: Any) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={"detail": "slow down"}),
            ok_get(),
        ]
    )

    await api.get()

    assert route.call_count == 2
    # The server's wait, plus at most 10% jitter.
    assert 7 <= api.sleeps[0] <= 7.7


async def test_get_backoff_grows_and_the_budget_ends_in_the_mapped_error(
    api: Api, router: Any, luma_conn: Callable[..., None]
) -> None:
    luma_conn(max_retries=3)
    api.hook = LumaHook(sleep=api.sleeps, async_sleep=api.sleeps.asleep)
    route = router.get(f"/generations/{GEN_ID}").mock(
        return_value=httpx.Response(503, json={"detail": "Image URL ingestion unavailable"})
    )

    with pytest.raises(LumaServerError) as caught:
        await api.get()

    assert route.call_count == 4
    assert caught.value.status_code == 503 and caught.value.detail == "Image URL ingestion unavailable"
    nominal = [0.5, 1.0, 2.0]
    assert all(n / 2 <= wait <= n for n, wait in zip(nominal, api.sleeps, strict=True))


async def test_get_transport_budget_exhausted_raises_transport_error(
    api: Api, router: Any, luma_conn: Callable[..., None]
) -> None:
    luma_conn(max_retries=2)
    api.hook = LumaHook(sleep=api.sleeps, async_sleep=api.sleeps.asleep)
    route = router.get(f"/generations/{GEN_ID}").mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(LumaTransportError) as caught:
        await api.get()

    assert route.call_count == 3
    assert caught.value.request_id == sent_request_ids(route)[0]
    assert "3 attempt(s)" in str(caught.value) and "ConnectError" in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
async def test_get_does_not_retry_client_errors(api: Api, router: Any, status: int) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(
        return_value=httpx.Response(status, json={"detail": "no"})
    )

    with pytest.raises(LumaAPIError):
        await api.get()

    assert route.call_count == 1 and api.sleeps == []


# ------------------------------------------------------------------------------------------ POST


@pytest.mark.parametrize(
    "first",
    [
        api_error(429, "Rate limit exceeded", **{"Retry-After": "2"}),
        api_error(429, "Too many requests", **{"Retry-After": "1"}),
        api_error(502, "Upstream service unavailable"),
        api_error(503, "Image URL ingestion unavailable"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.PoolTimeout("no free connection"),
    ],
    ids=["429", "429-abuse", "502", "503", "ConnectError", "ConnectTimeout", "PoolTimeout"],
)
async def test_post_is_retried_only_when_nothing_was_queued(api: Api, router: Any, first: Any) -> None:
    route = router.post("/generations").mock(side_effect=[first, created()])

    generation = await api.create()

    assert generation.id == GEN_ID
    assert route.call_count == 2
    first_id, second_id = sent_request_ids(route)
    assert first_id == second_id


@pytest.mark.parametrize(
    "answer",
    [
        proxy_page(502),
        proxy_page(503),
        # The API's JSON shape without its header, and its header on a gateway's page: neither is the
        # API's own answer.
        httpx.Response(502, json={"detail": "Upstream service unavailable"}),
        httpx.Response(503, headers={"X-API-Version": "2026-04-01"}, text="<html>503</html>"),
        httpx.Response(503, headers={"X-API-Version": "2026-04-01"}, json={"error": "unavailable"}),
        # A CDN's own rate limiter: Retry-After, but no X-API-Version.
        httpx.Response(429, headers={"Retry-After": "1"}, text="Too Many Requests"),
    ],
    ids=["proxy-502", "proxy-503", "json-no-header", "header-html", "header-no-detail", "proxy-429"],
)
async def test_post_refused_by_something_in_front_of_the_api_is_of_unknown_fate(
    api: Api, router: Any, answer: httpx.Response
) -> None:
    # A load balancer's page may come after the origin accepted the job: a second POST could pay twice.
    route = router.post("/generations").mock(side_effect=[answer, created()])

    with pytest.raises(LumaSubmissionUnknownError, match=f"HTTP {answer.status_code}") as caught:
        await api.create()

    assert route.call_count == 1 and api.sleeps == []
    assert caught.value.request_id == sent_request_ids(route)[0]


async def test_get_retries_a_proxy_page_like_any_5xx(api: Api, router: Any) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(side_effect=[proxy_page(502), ok_get()])

    await api.get()

    assert route.call_count == 2 and len(api.sleeps) == 1 and api.sleeps[0] <= 0.5


@pytest.mark.parametrize(("low", "expected"), [(0.0, 5.0), (0.999999, 10.0)])
async def test_post_waits_five_to_ten_seconds_before_repeating_an_api_502(
    api: Api, router: Any, low: float, expected: float
) -> None:
    # Luma's docs: retry a 502 "after 5-10 s"; the jitter spreads the wait over that range.
    api.hook._settings = replace(api.hook._get_settings(), policy=RetryPolicy(random=lambda: low))
    router.post("/generations").mock(side_effect=[api_error(502, "Upstream service unavailable"), created()])

    await api.create()

    assert api.sleeps == [pytest.approx(expected)]


async def test_post_502_with_retry_after_waits_what_the_server_says(api: Api, router: Any) -> None:
    answer = api_error(502, "Upstream service unavailable", **{"Retry-After": "2"})
    router.post("/generations").mock(side_effect=[answer, created()])

    await api.create()

    assert len(api.sleeps) == 1 and 2 <= api.sleeps[0] <= 2.2


async def test_post_503_keeps_the_short_backoff(api: Api, router: Any) -> None:
    router.post("/generations").mock(
        side_effect=[api_error(503, "Image URL ingestion unavailable"), created()]
    )

    await api.create()

    assert len(api.sleeps) == 1 and 0.25 <= api.sleeps[0] <= 0.5


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ReadTimeout("no answer"),
        httpx.WriteTimeout("stalled while sending"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.DecodingError("a 201 whose gzip body is corrupt"),
    ],
    ids=lambda fault: type(fault).__name__,
)
async def test_post_with_unknown_fate_is_never_sent_twice(api: Api, router: Any, fault: Exception) -> None:
    route = router.post("/generations").mock(side_effect=[fault, created()])

    with pytest.raises(LumaSubmissionUnknownError) as caught:
        await api.create()

    assert route.call_count == 1 and api.sleeps == []
    assert caught.value.request_id == sent_request_ids(route)[0]
    assert caught.value.request_id in str(caught.value) and type(fault).__name__ in str(caught.value)


@pytest.mark.parametrize("status", [500, 504])
async def test_post_server_error_of_unknown_effect_is_not_retried(api: Api, router: Any, status: int) -> None:
    route = router.post("/generations").mock(
        side_effect=[api_error(status, "oops", **{"X-Request-Id": "srv-1"}), created()]
    )

    # The generation may exist: a task retry must not submit again, so the fate is "unknown".
    with pytest.raises(LumaSubmissionUnknownError, match=f"HTTP {status}: oops") as caught:
        await api.create()

    assert route.call_count == 1
    server_error = caught.value.__cause__
    assert isinstance(server_error, LumaServerError)
    assert (server_error.status_code, server_error.request_id, server_error.detail) == (
        status,
        "srv-1",
        "oops",
    )


def concurrency_429() -> httpx.Response:
    return api_error(429, "Too many concurrent jobs", **{"Retry-After": "60"})


async def test_concurrency_429_waits_within_the_maximum(api: Api, router: Any) -> None:
    route = router.post("/generations").mock(side_effect=[concurrency_429(), concurrency_429(), created()])

    await api.create()

    assert route.call_count == 3
    assert len(api.sleeps) == 2 and all(60 <= wait <= 61 for wait in api.sleeps)


async def test_concurrency_429_beyond_the_maximum_raises_rate_limit_error(api: Api, router: Any) -> None:
    # The default maximum is 120 s: two waits of 60 s fit, a third does not.
    route = router.post("/generations").mock(return_value=concurrency_429())

    with pytest.raises(LumaRateLimitError) as caught:
        await api.create()

    assert route.call_count == 3 and len(api.sleeps) == 2
    assert caught.value.retry_after == 60 and caught.value.detail == "Too many concurrent jobs"


async def test_rate_limit_wait_longer_than_the_maximum_is_not_started(
    api: Api, router: Any, luma_conn: Callable[..., None]
) -> None:
    luma_conn(max_rate_limit_wait=30)
    api.hook = LumaHook(sleep=api.sleeps, async_sleep=api.sleeps.asleep)
    route = router.post("/generations").mock(return_value=concurrency_429())

    with pytest.raises(LumaRateLimitError):
        await api.create()

    assert route.call_count == 1 and api.sleeps == []


async def test_rpm_429_without_retry_after_uses_x_ratelimit_reset(api: Api, router: Any) -> None:
    import time

    reset = str(int(time.time()) + 5)
    route = router.post("/generations").mock(
        side_effect=[
            api_error(429, "Rate limit exceeded", **{"X-RateLimit-Reset": reset}),
            created(),
        ]
    )

    await api.create()

    assert route.call_count == 2
    assert 3 <= api.sleeps[0] <= 6


# --------------------------------------------------------------------------------- policy itself


def _api_error(status: int) -> httpx.Response:
    return httpx.Response(status, headers={"X-API-Version": "2026-04-01"}, json={"detail": "d"})


def test_retry_table() -> None:
    for status in (429, 502, 503):
        assert proves_nothing_queued(_api_error(status)) and get_may_be_retried(status)
    for status in (408, 500, 504):
        assert get_may_be_retried(status) and not proves_nothing_queued(_api_error(status))
    for status in (400, 401, 402, 403, 404, 413, 422):
        assert not get_may_be_retried(status) and not proves_nothing_queued(_api_error(status))


def test_backoff_is_capped_and_jittered_within_bounds() -> None:
    low = RetryPolicy(random=lambda: 0.0)
    high = RetryPolicy(random=lambda: 0.999999)
    assert [low.backoff(n) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert high.backoff(10) == pytest.approx(8.0)


async def test_retries_are_logged_without_the_key(
    api: Api, router: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(
        side_effect=[httpx.Response(502, json={"detail": "x"}), ok_get()]
    )

    await api.get()

    # The hook logs through Airflow's (structlog) task logger, which writes to stdout here.
    lines = [line for line in capsys.readouterr().out.splitlines() if "retry 1/5" in line]
    assert len(lines) == 1
    (line,) = lines
    assert "warning" in line and f"GET /generations/{GEN_ID}" in line and "after HTTP 502" in line
    assert f"request id {sent_request_ids(route)[0]}" in line
    assert "luma-api-" not in line
