"""
The fault matrix, POST rows at the hook: ``create_generation`` against the emulator over real HTTP.

Every row asserts the outcome (the generation, or the exception's class) AND the emulator's counters:
POSTs received and generations created. The contract: a POST is sent again only when the answer
proves nothing was queued (the API's own 429/502/503) or the connection never opened; anything else
after sending is of unknown fate, never repeated. Each row runs the sync and the async path; waits
are recorded, never slept.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_luma.exceptions import (
    LumaAPIError,
    LumaAuthenticationError,
    LumaInsufficientFundsError,
    LumaInvalidRequestError,
    LumaPayloadTooLargeError,
    LumaPermissionDeniedError,
    LumaRateLimitError,
    LumaSubmissionUnknownError,
    LumaTransportError,
)
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import Generation, GenerationRequest, GenerationState
from airflow_provider_luma.testing import Fault
from tests.hooks.conftest import Sleeps

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_luma.testing import LumaEmulator

pytestmark = pytest.mark.timeout(120)

POST = "POST /v1/generations"
REQUEST = GenerationRequest.build(prompt="a lighthouse at dusk", aspect_ratio="16:9")
REQUEST_ID = "airflow-luma_hero-manual__2026-04-08-hero--1-1"


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def connect(luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point ``luma_default`` at the emulator, with connection extras (or another host or key)."""

    def _set(**fields: Any) -> None:
        connection = json.loads(luma_emulator.connection_json())
        extra = fields.pop("extra", {})
        monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", json.dumps({**connection, **fields, "extra": extra}))

    _set()
    return _set


@pytest.fixture(params=["sync", "async"])
def create(request: pytest.FixtureRequest, connect: Callable[..., None], sleeps: Sleeps) -> Any:
    """``create_generation`` the sync or the async way, on a fresh hook (the connection as set now)."""

    async def _create(**kwargs: Any) -> Generation:
        async with LumaHook(sleep=sleeps, async_sleep=sleeps.asleep) as hook:
            if request.param == "sync":
                return hook.create_generation(REQUEST, **kwargs)
            return await hook.acreate_generation(REQUEST, **kwargs)

    return _create


def counters(emulator: LumaEmulator) -> tuple[int, int]:
    """(POSTs received, generations created)."""
    stats = emulator.stats
    return stats.requests[POST], stats.generations_created


# --------------------------------------------------------------------------- 429: rate limits


async def test_rpm_429_within_the_maximum_wait_is_retried(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=429, rate_limit="rpm", retry_after=7))

    generation = await create()

    assert generation.state is GenerationState.QUEUED
    assert counters(luma_emulator) == (2, 1)
    assert len(sleeps) == 1 and 7 <= sleeps[0] <= 7.7


async def test_rpm_429_beyond_the_maximum_wait_raises_rate_limit_error(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    # The real sliding window: the second POST inside the minute is refused, Retry-After about 60.
    luma_emulator.configure(rpm_limit=1)
    await create()

    with pytest.raises(LumaRateLimitError) as caught:
        await create()

    assert caught.value.detail == "Rate limit exceeded" and caught.value.retryable
    # max_rate_limit_wait (120 s) admits two waits of ~60 s; a third is not started.
    assert len(sleeps) == 2 and all(59 <= wait <= 61 for wait in sleeps)
    assert counters(luma_emulator) == (1 + 3, 1)


async def test_concurrency_429_waits_are_bounded_by_max_rate_limit_wait(
    create: Any, connect: Callable[..., None], luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    connect(extra={"max_rate_limit_wait": 90})
    luma_emulator.configure(concurrency_limit=1, queued_seconds=600)
    await create()

    with pytest.raises(LumaRateLimitError) as caught:
        await create()

    assert caught.value.detail == "Too many concurrent jobs" and caught.value.retry_after == 60
    # One 60 s wait fits in 90 s, a second would not: it is not started.
    assert len(sleeps) == 1 and 60 <= sleeps[0] <= 61
    assert counters(luma_emulator) == (1 + 2, 1)


async def test_a_proxys_429_proves_nothing(create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=429, proxy=True, retry_after=1))

    with pytest.raises(LumaSubmissionUnknownError, match="HTTP 429"):
        await create()

    assert counters(luma_emulator) == (1, 0) and sleeps == []


# ------------------------------------------------------------------------------- 502 / 503


@pytest.mark.parametrize(("status", "low", "high"), [(502, 5.0, 10.0), (503, 0.25, 0.5)])
async def test_the_apis_own_502_and_503_are_retried(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps, status: int, low: float, high: float
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=status))

    generation = await create(request_id=REQUEST_ID)

    assert generation.state is GenerationState.QUEUED and generation.request_id == REQUEST_ID
    assert counters(luma_emulator) == (2, 1)
    # Luma advises 5-10 s before repeating a 502; a 503 gets the ordinary short backoff.
    assert len(sleeps) == 1 and low <= sleeps[0] <= high


@pytest.mark.parametrize("status", [502, 503])
@pytest.mark.parametrize(
    ("kind", "created"), [("status", 0), ("proxy_after_create", 1)], ids=["before-origin", "after-create"]
)
async def test_a_proxys_502_and_503_are_of_unknown_fate(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps, status: int, kind: str, created: int
) -> None:
    # A load balancer's page does not say whether the origin took the job (here: as scripted).
    luma_emulator.add_fault(Fault(method="POST", status=status, kind=kind, proxy=True))  # type: ignore[arg-type]

    with pytest.raises(LumaSubmissionUnknownError, match=f"HTTP {status} from something in front") as caught:
        await create(request_id=REQUEST_ID)

    assert caught.value.request_id == REQUEST_ID
    assert counters(luma_emulator) == (1, created) and sleeps == []


# -------------------------------------------------------------------- answers lost after sending


async def test_a_read_timeout_after_create_is_of_unknown_fate(
    create: Any, connect: Callable[..., None], luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    connect(extra={"timeout": 0.5})
    luma_emulator.add_fault(Fault(method="POST", kind="read_timeout", delay=5))

    with pytest.raises(LumaSubmissionUnknownError, match="ReadTimeout") as caught:
        await create(request_id=REQUEST_ID)

    assert caught.value.request_id == REQUEST_ID
    assert counters(luma_emulator) == (1, 1) and sleeps == []


async def test_a_connection_dropped_after_create_is_of_unknown_fate(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="drop_after_create"))

    with pytest.raises(LumaSubmissionUnknownError):
        await create()

    assert counters(luma_emulator) == (1, 1) and sleeps == []


async def test_a_connection_dropped_before_any_answer_is_of_unknown_fate(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    # Nothing was created here, but the client cannot know that: the request had left.
    luma_emulator.add_fault(Fault(method="POST", kind="drop"))

    with pytest.raises(LumaSubmissionUnknownError, match="RemoteProtocolError"):
        await create()

    assert counters(luma_emulator) == (1, 0) and sleeps == []


async def test_an_unreadable_201_is_of_unknown_fate(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="malformed"))

    with pytest.raises(LumaSubmissionUnknownError):
        await create()

    assert counters(luma_emulator) == (1, 1) and sleeps == []


async def test_a_connection_that_never_opened_is_retried(
    create: Any, connect: Callable[..., None], sleeps: Sleeps
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    connect(host=f"http://127.0.0.1:{closed_port}/v1", extra={"max_retries": 2})

    with pytest.raises(LumaTransportError, match=r"3 attempt\(s\): ConnectError") as caught:
        await create()

    assert caught.value.retryable and len(sleeps) == 2


# ----------------------------------------------------------------- refusals: nothing queued


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, LumaInvalidRequestError),
        (401, LumaAuthenticationError),
        (402, LumaInsufficientFundsError),
        (403, LumaPermissionDeniedError),
        (413, LumaPayloadTooLargeError),
        (422, LumaInvalidRequestError),
    ],
)
async def test_a_refusal_is_sent_once_with_its_documented_error(
    create: Any, luma_emulator: LumaEmulator, sleeps: Sleeps, status: int, error_class: type[LumaAPIError]
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=status))

    with pytest.raises(error_class) as caught:
        await create(request_id=REQUEST_ID)

    assert type(caught.value) is error_class and caught.value.status_code == status
    assert not caught.value.retryable and caught.value.request_id == REQUEST_ID
    assert counters(luma_emulator) == (1, 0) and sleeps == []


async def test_a_key_the_api_does_not_know_is_refused_once(
    create: Any, connect: Callable[..., None], luma_emulator: LumaEmulator, sleeps: Sleeps
) -> None:
    connect(password="luma-api-not-a-key-it-knows")

    with pytest.raises(LumaAuthenticationError, match="Invalid API key"):
        await create()

    assert counters(luma_emulator) == (1, 0) and sleeps == []
