"""
The key a connection holds: checked before any use without ever being quoted, stripped, masked; and
the async lookup, which must not talk to the supervisor synchronously from the event loop.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import airflow.sdk.log
import httpx
import pytest
from airflow.sdk import Connection

from airflow_provider_luma.exceptions import LumaConfigurationError
from airflow_provider_luma.hooks import _connection
from airflow_provider_luma.hooks.luma import LumaHook
from tests.hooks.conftest import BASE_URL, generation_body, respx_router

if TYPE_CHECKING:
    from collections.abc import Callable

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
HAS_ASYNC_FORMS = hasattr(Connection, "aextra_dejson") and hasattr(airflow.sdk.log, "amask_secret")


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the hook handed to the sync ``mask_secret``."""
    calls: list[Any] = []
    monkeypatch.setattr(_connection, "mask_secret", lambda secret, name=None: calls.append(secret))
    return calls


@pytest.mark.parametrize(
    ("key", "fault"),
    [
        ("luma-api-SECRET\nTAIL", "contains a line break at position 16 of 20"),
        ("luma-api-SECRET\r\nTAIL", "contains a line break at position 16 of 21"),
        ("luma-api-SECRET TAIL", "contains a space or tab at position 16 of 20"),
        ("luma-api-SECRET\tTAIL", "contains a space or tab at position 16 of 20"),
        ("luma-api-SECRET\x07TAIL", "contains a control character at position 16 of 20"),
        ("luma-api-SECRET\u00e9TAIL", "contains a non-ASCII character (U+00E9) at position 16 of 20"),
        ("luma-api-SECRET\u201dTAIL", "contains a non-ASCII character (U+201D) at position 16 of 20"),
    ],
    ids=["newline", "crlf", "space", "tab", "control", "accent", "curly-quote"],
)
def test_a_key_with_a_stray_character_is_refused_without_being_quoted(
    set_connection: Callable[..., None], key: str, fault: str
) -> None:
    set_connection("luma_prod", host=BASE_URL, password=key)

    with respx_router(assert_all_mocked=True) as mock, pytest.raises(LumaConfigurationError) as caught:
        LumaHook("luma_prod").get_generation(GEN_ID)

    message = str(caught.value)
    assert fault in message and "'luma_prod'" in message
    assert "SECRET" not in message and "TAIL" not in message and mock.calls.call_count == 0


def test_a_bad_key_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_LUMA_DEFAULT", raising=False)
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", "luma-api-SECRET\nTAIL")

    with pytest.raises(LumaConfigurationError, match="LUMA_AGENTS_API_KEY") as caught:
        LumaHook()._get_settings()

    assert "line break" in str(caught.value) and "SECRET" not in str(caught.value)


async def test_a_bad_key_is_refused_on_the_async_path_too(set_connection: Callable[..., None]) -> None:
    set_connection(host=BASE_URL, password="luma-api-SECRET\nTAIL")

    async with LumaHook() as hook:
        with pytest.raises(LumaConfigurationError, match="line break") as caught:
            await hook.aget_generation(GEN_ID)

    assert "SECRET" not in str(caught.value)


def test_surrounding_whitespace_is_stripped_and_the_stripped_key_masked(
    set_connection: Callable[..., None], masked: list[Any]
) -> None:
    # A key pasted with its trailing newline: the newline is not part of the key, and the masker must
    # know the key as it is sent (the unstripped string would never match a log line's text).
    set_connection(host=BASE_URL, password="  luma-api-pasted\n")

    settings = LumaHook()._get_settings()

    assert settings.api_key == "luma-api-pasted"
    assert masked == ["luma-api-pasted"]


def test_a_whitespace_only_password_falls_back_to_the_environment(
    set_connection: Callable[..., None], monkeypatch: pytest.MonkeyPatch, masked: list[Any]
) -> None:
    set_connection(host=BASE_URL, password=" \n")
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", " luma-api-from-env ")

    assert LumaHook()._get_settings().api_key == "luma-api-from-env"
    assert masked == ["luma-api-from-env"]


@pytest.mark.skipif(not HAS_ASYNC_FORMS, reason="the Task SDK has no aextra_dejson/amask_secret before 3.3")
async def test_the_async_lookup_uses_the_task_sdks_async_forms(
    set_connection: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a sync supervisor call on the event loop")

    amasked: list[Any] = []

    async def amask(secret: Any, name: str | None = None) -> None:
        amasked.append(secret)

    monkeypatch.setattr(Connection, "extra_dejson", property(blocking))
    monkeypatch.setattr(_connection, "mask_secret", blocking)
    monkeypatch.setattr(airflow.sdk.log, "amask_secret", amask)
    set_connection(host=BASE_URL, password=" luma-api-async ", extra={"timeout": 7, "max_retries": 2})

    hook = LumaHook()
    settings = await hook._aget_settings()

    # The SDK's own lookup masks the raw password; the hook adds the stripped key, the async way.
    assert settings.api_key == "luma-api-async" and "luma-api-async" in amasked
    assert (settings.client.timeout, settings.policy.max_retries) == (7.0, 2)
    await hook.aclose()


async def test_the_async_lookup_falls_back_to_the_sync_forms_on_older_airflow(
    monkeypatch: pytest.MonkeyPatch, masked: list[Any]
) -> None:
    # Airflow < 3.3 (the 3.1.1 floor) has neither async form: the sync ones must still do the job.
    # (A stand-in connection: removing the method from the SDK's class would break its own lookup.)
    monkeypatch.delattr(airflow.sdk.log, "amask_secret", raising=False)
    older = SimpleNamespace(password="luma-api-floor", host=BASE_URL, port=None, extra_dejson={"timeout": 9})

    settings = await _connection.asettings_from_connection(older, "luma_default")  # type: ignore[arg-type]

    assert settings.api_key == "luma-api-floor" and masked == ["luma-api-floor"]
    assert settings.client.timeout == 9.0 and settings.client.base_url == BASE_URL


async def test_sync_and_async_lookups_give_the_same_settings(set_connection: Callable[..., None]) -> None:
    set_connection(host="luma.internal", port=8443, password="luma-api-same", extra={"connect_timeout": 2})

    sync, asynchronous = LumaHook()._get_settings(), await LumaHook()._aget_settings()

    assert sync == asynchronous and sync.client.base_url == "https://luma.internal:8443/v1"


def test_a_valid_key_reaches_the_api_as_it_was_entered(set_connection: Callable[..., None]) -> None:
    set_connection(host=BASE_URL, password="luma-api-Ab0_-~!")
    with respx_router(base_url=BASE_URL) as mock:
        route = mock.get(f"/generations/{GEN_ID}").mock(
            return_value=httpx.Response(200, json=generation_body(GEN_ID))
        )
        with LumaHook() as hook:
            hook.get_generation(GEN_ID)

    assert route.calls.last.request.headers["Authorization"] == "Bearer luma-api-Ab0_-~!"
