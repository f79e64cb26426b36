"""
What a POST may never do: go out under an id the caller did not choose, be repeated when its fate is
unknown, pass for a transient error, swallow a cancellation, or quote a key in an error.

Each case runs the sync and the async path (respx; sleeps recorded, never taken).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_luma._compat import AirflowTaskTimeout
from airflow_provider_luma.exceptions import (
    LumaRequestValidationError,
    LumaSubmissionUnknownError,
    LumaTransportError,
)
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest
from tests.hooks.conftest import BASE_URL, Sleeps, api_error, generation_body, respx_router

if TYPE_CHECKING:
    from collections.abc import Callable

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
REQUEST = GenerationRequest.build(prompt="a lighthouse at dusk")
#: The shape the operator sends: airflow-<dag>-<run>-<task>-<map>-<try>.
TASK_ID = "airflow-luma_hero-scheduled__2026-04-08T00:00:00+00:00-hero--1-2"


class Api:
    """Calls the hook the sync or the async way."""

    def __init__(self, mode: str, sleeps: Sleeps) -> None:
        self.mode = mode
        self.sleeps = sleeps
        self.hook = LumaHook(sleep=sleeps, async_sleep=sleeps.asleep)

    async def create(self, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return self.hook.create_generation(REQUEST, **kwargs)
        return await self.hook.acreate_generation(REQUEST, **kwargs)

    async def get(self) -> Any:
        if self.mode == "sync":
            return self.hook.get_generation(GEN_ID)
        return await self.hook.aget_generation(GEN_ID)


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, luma_conn: Callable[..., None], sleeps: Sleeps) -> Any:
    client = Api(request.param, sleeps)
    yield client
    await client.hook.aclose()


@pytest.fixture
def router() -> Any:
    with respx_router(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def echoing_201(request: httpx.Request) -> httpx.Response:
    """The API echoes the client's X-Request-Id on every answer."""
    return httpx.Response(
        201, headers={"X-Request-Id": request.headers["X-Request-Id"]}, json=generation_body(GEN_ID)
    )


# ------------------------------------------------------------------------------ request ids


async def test_a_task_supplied_request_id_is_sent_and_is_the_generations_id(api: Api, router: Any) -> None:
    route = router.post("/generations").mock(side_effect=echoing_201)

    generation = await api.create(request_id=TASK_ID)

    assert route.calls.last.request.headers["X-Request-Id"] == TASK_ID
    assert generation.request_id == TASK_ID


async def test_a_post_generation_carries_the_id_sent_even_if_the_answer_names_another(
    api: Api, router: Any
) -> None:
    # The submission's id is the one the task recorded before sending; a GET's id must not replace it.
    router.post("/generations").mock(
        return_value=httpx.Response(201, headers={"X-Request-Id": "srv-42"}, json=generation_body(GEN_ID))
    )

    assert (await api.create(request_id=TASK_ID)).request_id == TASK_ID


async def test_an_unknown_fate_names_the_task_supplied_request_id(api: Api, router: Any) -> None:
    router.post("/generations").mock(side_effect=httpx.ReadTimeout("no answer"))

    with pytest.raises(LumaSubmissionUnknownError) as caught:
        await api.create(request_id=TASK_ID)

    assert caught.value.request_id == TASK_ID and TASK_ID in str(caught.value)


async def test_without_a_request_id_each_call_sends_a_fresh_uuid4(api: Api, router: Any) -> None:
    route = router.post("/generations").mock(side_effect=echoing_201)

    first, second = await api.create(), await api.create()

    assert first.request_id != second.request_id
    assert [call.request.headers["X-Request-Id"] for call in route.calls] == [
        first.request_id,
        second.request_id,
    ]


@pytest.mark.parametrize(
    "bad",
    ["", "has space", "line\nbreak", "tab\there", "caf\u00e9", "x" * 201, 42],
    ids=["empty", "space", "newline", "tab", "non-ascii", "too-long", "not-a-string"],
)
async def test_an_unsafe_request_id_is_refused_before_anything_is_sent(
    api: Api, router: Any, bad: Any
) -> None:
    route = router.post("/generations").mock(side_effect=echoing_201)

    with pytest.raises(LumaRequestValidationError) as caught:
        await api.create(request_id=bad)

    assert caught.value.field == "request_id" and route.call_count == 0


async def test_a_request_id_of_200_printable_characters_is_accepted(api: Api, router: Any) -> None:
    longest = "a-~!" * 50
    router.post("/generations").mock(side_effect=echoing_201)

    assert (await api.create(request_id=longest)).request_id == longest


# ----------------------------------------------------------------- what escapes the send


async def test_a_request_h11_refuses_to_write_is_nothing_sent_and_not_repeated(api: Api, router: Any) -> None:
    # h11 refuses a header value with a line break before writing a byte, quoting the header.
    refused = httpx.LocalProtocolError("Illegal header value b'Bearer luma-api-SECRET\\nKEYTAIL'")
    route = router.post("/generations").mock(side_effect=refused)

    with pytest.raises(LumaTransportError) as caught:
        await api.create()

    # Not "may be billed": nothing left. Not retried either: the same request fails the same way.
    assert not isinstance(caught.value, LumaSubmissionUnknownError)
    assert route.call_count == 1 and api.sleeps == [] and not caught.value.retryable
    assert "SECRET" not in str(caught.value) and "KEYTAIL" not in str(caught.value)
    assert "LocalProtocolError" in str(caught.value)


async def test_transport_error_messages_lose_keys_and_signatures(
    api: Api, router: Any, luma_conn: Callable[..., None]
) -> None:
    luma_conn(max_retries=0)
    api.hook = LumaHook(sleep=api.sleeps, async_sleep=api.sleeps.asleep)
    leaky = httpx.ConnectError(
        "proxy said no to https://s.example/o.png?X-Amz-Signature=SIGSECRET for Bearer luma-api-KEYSECRET"
    )
    router.get(f"/generations/{GEN_ID}").mock(side_effect=leaky)

    with pytest.raises(LumaTransportError) as caught:
        await api.get()

    message = str(caught.value)
    assert "SIGSECRET" not in message and "KEYSECRET" not in message
    assert "proxy said no to https://s.example/o.png" in message


async def test_a_non_httpx_exception_escaping_a_post_is_of_unknown_fate(api: Api, router: Any) -> None:
    # A bug in a transport layer may strike after the request went out: never retried, never generic.
    route = router.post("/generations").mock(side_effect=RuntimeError("h11 internal state corrupted"))

    with pytest.raises(LumaSubmissionUnknownError, match="RuntimeError") as caught:
        await api.create(request_id=TASK_ID)

    assert route.call_count == 1 and api.sleeps == []
    assert caught.value.request_id == TASK_ID and isinstance(caught.value.__cause__, RuntimeError)


async def test_a_non_httpx_exception_escaping_a_get_propagates_as_it_is(api: Api, router: Any) -> None:
    route = router.get(f"/generations/{GEN_ID}").mock(side_effect=RuntimeError("a bug"))

    with pytest.raises(RuntimeError, match="a bug"):
        await api.get()

    assert route.call_count == 1 and api.sleeps == []


@pytest.mark.parametrize(
    "interruption",
    [AirflowTaskTimeout("execution_timeout"), asyncio.CancelledError(), KeyboardInterrupt()],
    ids=lambda error: type(error).__name__,
)
async def test_an_interruption_during_a_post_propagates_unchanged(
    api: Api, router: Any, interruption: BaseException
) -> None:
    # The operator catches these around the POST and reports "fate unknown" with the request id; the
    # hook must neither swallow nor rewrap them (a cancellation must stay a cancellation).
    sent: list[str] = []

    def interrupted(request: httpx.Request) -> httpx.Response:
        # respx records a call only once it is answered: count the attempts here.
        sent.append(request.headers["X-Request-Id"])
        raise interruption

    router.post("/generations").mock(side_effect=interrupted)

    with pytest.raises(type(interruption)) as caught:
        await api.create(request_id=TASK_ID)

    assert caught.value is interruption
    assert sent == [TASK_ID] and api.sleeps == []
    assert api.hook.submission_may_have_been_sent  # it was out when interrupted


async def test_an_interruption_while_waiting_out_a_429_says_nothing_was_sent(api: Api, router: Any) -> None:
    """The operator may then clear its pending record: every answer so far proved nothing queued."""

    def interrupted_wait(seconds: float) -> None:
        raise AirflowTaskTimeout("execution_timeout")

    async def interrupted_async_wait(seconds: float) -> None:
        interrupted_wait(seconds)

    api.hook._sleep, api.hook._async_sleep = interrupted_wait, interrupted_async_wait
    router.post("/generations").mock(
        return_value=api_error(429, "Too many concurrent jobs", **{"Retry-After": "60"})
    )
    with pytest.raises(AirflowTaskTimeout):
        await api.create(request_id=TASK_ID)
    assert not api.hook.submission_may_have_been_sent
