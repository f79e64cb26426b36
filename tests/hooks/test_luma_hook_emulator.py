"""LumaHook against the Luma emulator over real HTTP on 127.0.0.1: the full path and its faults."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_luma.exceptions import (
    LumaOutputDownloadError,
    LumaRateLimitError,
    LumaRequestValidationError,
    LumaSubmissionUnknownError,
    LumaTransportError,
)
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import Generation, GenerationRequest, GenerationState
from airflow_provider_luma.testing import Fault

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.hooks.conftest import Sleeps

POST = "POST /v1/generations"
OUTPUT = "GET output"
REQUEST = GenerationRequest.build(prompt="a lighthouse at dusk", aspect_ratio="16:9", output_format="png")
DEADLINE_SECONDS = 10.0


@pytest.fixture
def hook(luma_connection: str, sleeps: Sleeps) -> Any:
    with LumaHook(luma_connection, sleep=sleeps, async_sleep=sleeps.asleep) as luma_hook:
        yield luma_hook


@pytest.fixture
def with_extras(luma_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Re-point ``luma_default`` at the emulator with connection extras."""

    def _set(**extra: Any) -> None:
        connection = json.loads(luma_emulator.connection_json())
        connection["extra"] = {**(connection.get("extra") or {}), **extra}
        monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", json.dumps(connection))

    return _set


def wait_until_terminal(hook: LumaHook, generation: Generation) -> Generation:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not generation.is_terminal:
        assert time.monotonic() < deadline, f"generation still {generation.state.value}"
        time.sleep(0.05)
        generation = hook.get_generation(generation.id)
    return generation


def completed_generation(hook: LumaHook) -> Generation:
    generation = wait_until_terminal(hook, hook.create_generation(REQUEST))
    assert generation.state is GenerationState.COMPLETED
    return generation


def assert_png(data: bytes) -> None:
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16]


# ------------------------------------------------------------------------------------ round trips


def test_round_trip_sync(hook: LumaHook, luma_emulator: Any) -> None:
    created = hook.create_generation(REQUEST)
    assert created.state is GenerationState.QUEUED and created.request_id

    generation = wait_until_terminal(hook, created)
    destination = io.BytesIO()
    result = hook.download_output(generation.id, destination)

    assert result.generation.state is GenerationState.COMPLETED and result.content_type == "image/png"
    assert result.size == len(destination.getvalue()) > 0
    assert result.sha256 == hashlib.sha256(destination.getvalue()).hexdigest()
    assert_png(destination.getvalue())
    # The emulator answers 400 to an output request carrying Authorization, as S3 does: one clean GET.
    assert luma_emulator.stats.requests[OUTPUT] == 1
    assert luma_emulator.stats.generations_created == 1


async def test_round_trip_async(luma_connection: str, luma_emulator: Any, sleeps: Sleeps) -> None:
    async with LumaHook(luma_connection, sleep=sleeps, async_sleep=sleeps.asleep) as hook:
        generation = await hook.acreate_generation(REQUEST)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not generation.is_terminal:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
            generation = await hook.aget_generation(generation.id)
        assert generation.state is GenerationState.COMPLETED

        destination = io.BytesIO()
        result = await asyncio.to_thread(hook.download_output, generation.id, destination)

    assert_png(destination.getvalue())
    assert result.sha256 == hashlib.sha256(destination.getvalue()).hexdigest()
    assert luma_emulator.stats.generations_created == 1


# ------------------------------------------------------------------------------ never pay twice


def test_a_post_read_timeout_is_never_retried(
    with_extras: Callable[..., None], luma_emulator: Any, sleeps: Sleeps
) -> None:
    with_extras(timeout=0.5)
    luma_emulator.add_fault(Fault(method="POST", kind="read_timeout", delay=1))

    with LumaHook(sleep=sleeps) as hook, pytest.raises(LumaSubmissionUnknownError) as caught:
        hook.create_generation(REQUEST)

    assert "ReadTimeout" in str(caught.value) and caught.value.request_id in str(caught.value)
    assert luma_emulator.stats.generations_created == 1
    assert luma_emulator.stats.requests[POST] == 1 and sleeps == []


def test_a_post_dropped_after_create_is_never_retried(hook: LumaHook, luma_emulator: Any) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="drop_after_create"))

    with pytest.raises(LumaSubmissionUnknownError):
        hook.create_generation(REQUEST)

    assert luma_emulator.stats.generations_created == 1 and luma_emulator.stats.requests[POST] == 1


@pytest.mark.parametrize("status", [502, 503])
def test_a_post_refused_with_nothing_queued_is_retried_once(
    hook: LumaHook, luma_emulator: Any, sleeps: Sleeps, status: int
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=status))

    generation = hook.create_generation(REQUEST)

    assert generation.state is GenerationState.QUEUED
    assert luma_emulator.stats.requests[POST] == 2 and luma_emulator.stats.generations_created == 1
    assert len(sleeps) == 1


def test_a_concurrency_429_waits_then_gives_up_beyond_the_maximum(
    hook: LumaHook, luma_emulator: Any, sleeps: Sleeps
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=429, rate_limit="concurrency", times=3))

    with pytest.raises(LumaRateLimitError) as caught:
        hook.create_generation(REQUEST)

    assert caught.value.detail == "Too many concurrent jobs" and caught.value.retry_after == 60
    assert len(sleeps) == 2 and all(60 <= wait <= 61 for wait in sleeps)
    assert luma_emulator.stats.requests[POST] == 3 and luma_emulator.stats.generations_created == 0


def test_an_unreadable_201_is_a_submission_of_unknown_fate(hook: LumaHook, luma_emulator: Any) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="malformed"))

    with pytest.raises(LumaSubmissionUnknownError):
        hook.create_generation(REQUEST)
    assert luma_emulator.stats.requests[POST] == 1 and luma_emulator.stats.generations_created == 1


def test_a_bad_request_sends_nothing(hook: LumaHook, luma_emulator: Any) -> None:
    with pytest.raises(LumaRequestValidationError, match="aspect_ratio"):
        hook.create_generation(GenerationRequest.build(prompt="a fox", style="manga", aspect_ratio="16:9"))
    assert sum(luma_emulator.stats.requests.values()) == 0


# ------------------------------------------------------------------------------------ GET faults


def test_a_dropped_get_is_retried(hook: LumaHook, luma_emulator: Any, sleeps: Sleeps) -> None:
    created = hook.create_generation(REQUEST)
    luma_emulator.add_fault(Fault(method="GET", kind="drop"))

    assert hook.get_generation(created.id).id == created.id
    assert len(sleeps) == 1


def test_a_malformed_get_body_is_asked_again(hook: LumaHook, luma_emulator: Any, sleeps: Sleeps) -> None:
    created = hook.create_generation(REQUEST)
    luma_emulator.add_fault(Fault(method="GET", kind="malformed"))

    assert hook.get_generation(created.id).id == created.id
    assert luma_emulator.stats.requests["GET /v1/generations/{id}"] == 2 and len(sleeps) == 1


# --------------------------------------------------------------------------------------- outputs


def test_an_expired_url_is_refreshed_once(hook: LumaHook, luma_emulator: Any) -> None:
    generation = completed_generation(hook)
    luma_emulator.add_fault(Fault(method="OUTPUT", status=403))
    destination = io.BytesIO()

    hook.download_output(generation.id, destination)

    assert_png(destination.getvalue())
    assert luma_emulator.stats.requests[OUTPUT] == 2


def test_a_url_refused_twice_raises(hook: LumaHook, luma_emulator: Any) -> None:
    generation = completed_generation(hook)
    luma_emulator.add_fault(Fault(method="OUTPUT", status=403, times=2))
    destination = io.BytesIO()

    with pytest.raises(LumaOutputDownloadError) as caught:
        hook.download_output(generation.id, destination)

    assert caught.value.status_code == 403 and destination.getvalue() == b""
    assert luma_emulator.stats.requests[OUTPUT] == 2


def test_a_url_minted_before_expiry_is_refused_but_the_hook_gets_a_fresh_one(
    hook: LumaHook, luma_emulator: Any
) -> None:
    generation = completed_generation(hook)
    luma_emulator.expire_output_urls()

    # The download reads the generation again, so it never uses the expired URL.
    hook.download_output(generation.id, io.BytesIO())
    assert luma_emulator.stats.requests[OUTPUT] == 1


def test_a_download_dropped_midway_raises_transport_error(hook: LumaHook, luma_emulator: Any) -> None:
    generation = completed_generation(hook)
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="drop_midway"))

    with pytest.raises(LumaTransportError, match="broke after"):
        hook.download_output(generation.id, io.BytesIO())


# ------------------------------------------------------------------------------ test_connection


def test_test_connection_against_the_emulator(hook: LumaHook) -> None:
    assert hook.test_connection() == (True, "Connection successful: the API accepted the key.")


def test_test_connection_with_a_wrong_key(luma_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = json.loads(luma_emulator.connection_json())
    connection["password"] = "luma-api-not-a-real-key"
    monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", json.dumps(connection))

    ok, message = LumaHook().test_connection()

    assert not ok and "refused the key" in message


def test_test_connection_at_a_base_url_that_is_not_the_api(
    luma_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator's root, without /v1: a web server that answers 404, but not the API's 404.
    connection = json.loads(luma_emulator.connection_json())
    connection["host"] = luma_emulator.root_url
    monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", json.dumps(connection))

    ok, message = LumaHook().test_connection()

    assert not ok and "does not look like the Luma API" in message and luma_emulator.root_url in message


# ------------------------------------------------------------------------------------- cookies


def test_a_cookie_set_for_one_key_is_never_sent_with_another(
    luma_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both connections share one pooled async client (same base URL): a stored cookie would carry
    # the first key's session into the second key's requests.
    other_key = "luma-api-second-client"
    luma_emulator.add_api_key(other_key)
    connection = json.loads(luma_emulator.connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_LUMA_A", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_CONN_LUMA_B", json.dumps({**connection, "password": other_key}))
    cookie = {"Set-Cookie": "session=for-key-a; Path=/"}

    async def both() -> None:
        async with LumaHook("luma_a") as first, LumaHook("luma_b") as second:
            created = await first.acreate_generation(REQUEST)
            luma_emulator.add_fault(Fault(method="GET", kind="slow", headers=cookie))
            await first.aget_generation(created.id)
            assert await first._aclient() is await second._aclient()
            await second.aget_generation(created.id)
            await first.aget_generation(created.id)

    asyncio.run(both())

    assert luma_emulator.stats.requests["GET /v1/generations/{id}"] == 3
    assert luma_emulator.stats.requests_with_cookie == 0


def test_the_sync_clients_keep_no_cookies_either(hook: LumaHook, luma_emulator: Any) -> None:
    created = completed_generation(hook)
    luma_emulator.add_fault(Fault(method="GET", kind="slow", headers={"Set-Cookie": "lb=1; Path=/"}))
    luma_emulator.add_fault(Fault(method="OUTPUT", kind="slow", headers={"Set-Cookie": "s3=1; Path=/"}))

    hook.download_output(created.id, io.BytesIO())
    hook.download_output(created.id, io.BytesIO())

    assert luma_emulator.stats.requests[OUTPUT] == 2 and luma_emulator.stats.requests_with_cookie == 0
