"""LumaHook with respx: configuration, headers, error mapping, downloads, log hygiene, the client registry."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from airflow.exceptions import AirflowNotFoundException
from airflow.sdk import BaseHook

from airflow_provider_luma import __version__
from airflow_provider_luma.exceptions import (
    LumaAPIError,
    LumaAuthenticationError,
    LumaConfigurationError,
    LumaInsufficientFundsError,
    LumaInvalidRequestError,
    LumaNotFoundError,
    LumaOutputDownloadError,
    LumaOutputNotAvailableError,
    LumaPayloadTooLargeError,
    LumaPermissionDeniedError,
    LumaRequestValidationError,
    LumaTransportError,
    LumaUnexpectedResponseError,
)
from airflow_provider_luma.hooks._clients import ASYNC_CLIENTS, DEFAULT_BASE_URL
from airflow_provider_luma.hooks._connection import base_url_from_host
from airflow_provider_luma.hooks._logging import install_httpx_log_redaction, redact_url
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationRequest
from tests.hooks.conftest import (
    API_KEY,
    BASE_URL,
    OUTPUT_URL,
    Sleeps,
    api_error,
    generation_body,
    respx_router,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
STORAGE = "https://storage.test"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.fixture
def router() -> Iterator[Any]:
    with respx_router(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def hook(luma_conn: Callable[..., None], sleeps: Sleeps) -> Iterator[LumaHook]:
    with LumaHook(sleep=sleeps, async_sleep=sleeps.asleep) as luma_hook:
        yield luma_hook


def get_route(router: Any, *responses: Any) -> Any:
    return router.get(f"{BASE_URL}/generations/{GEN_ID}").mock(side_effect=list(responses))


def completed(output_url: str = OUTPUT_URL) -> httpx.Response:
    return httpx.Response(200, json=generation_body(GEN_ID, state="completed", output_url=output_url))


# ------------------------------------------------------------------------------- configuration


def test_class_attributes() -> None:
    assert (LumaHook.conn_name_attr, LumaHook.default_conn_name) == ("luma_conn_id", "luma_default")
    assert (LumaHook.conn_type, LumaHook.hook_name) == ("luma", "Luma")


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("http://127.0.0.1:8000/v1", None, "http://127.0.0.1:8000/v1"),
        ("https://proxy.example/luma/v1/", None, "https://proxy.example/luma/v1"),
        ("agents.lumalabs.ai", None, "https://agents.lumalabs.ai/v1"),
        ("luma.internal", 8443, "https://luma.internal:8443/v1"),
        ("", None, DEFAULT_BASE_URL),
        (None, None, DEFAULT_BASE_URL),
    ],
)
def test_base_url_from_host(host: str | None, port: int | None, expected: str) -> None:
    assert base_url_from_host(host, port) == expected


def test_base_url_with_another_scheme_is_refused() -> None:
    with pytest.raises(LumaConfigurationError, match="ftp"):
        base_url_from_host("ftp://files.example/v1")


def test_connection_host_password_and_extras(set_connection: Callable[..., None]) -> None:
    set_connection(
        host="http://127.0.0.1:9/v1",
        password="luma-api-abc",
        extra={"timeout": "12.5", "connect_timeout": 2, "max_retries": "1", "max_rate_limit_wait": 30},
    )
    settings = LumaHook()._get_settings()

    assert settings.api_key == "luma-api-abc" and settings.client.base_url == "http://127.0.0.1:9/v1"
    assert (settings.client.timeout, settings.client.connect_timeout) == (12.5, 2.0)
    assert (settings.policy.max_retries, settings.policy.max_rate_limit_wait) == (1, 30.0)
    assert "luma-api-abc" not in repr(settings)


def test_defaults_without_extras(luma_conn: Callable[..., None]) -> None:
    settings = LumaHook()._get_settings()
    assert (settings.client.timeout, settings.client.connect_timeout) == (60.0, 5.0)
    assert (settings.policy.max_retries, settings.policy.max_rate_limit_wait) == (5, 120.0)


def test_bad_extra_names_the_extra(set_connection: Callable[..., None]) -> None:
    set_connection(host=BASE_URL, password=API_KEY, extra={"max_retries": "lots"})
    with pytest.raises(LumaConfigurationError, match="max_retries"):
        LumaHook()._get_settings()


def test_env_var_when_the_default_connection_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_LUMA_DEFAULT", raising=False)
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", "luma-api-from-env")
    settings = LumaHook()._get_settings()
    assert settings.api_key == "luma-api-from-env" and settings.client.base_url == DEFAULT_BASE_URL


def test_env_var_when_the_connection_has_no_password(
    set_connection: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection("luma_other", host="http://127.0.0.1:9/v1")
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", "luma-api-from-env")
    settings = LumaHook("luma_other")._get_settings()
    assert settings.api_key == "luma-api-from-env" and settings.client.base_url == "http://127.0.0.1:9/v1"


def test_a_missing_named_connection_is_not_replaced_by_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", "luma-api-from-env")
    with pytest.raises(AirflowNotFoundException):
        LumaHook("luma_typo")._get_settings()


def test_no_key_anywhere_names_both_ways_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_LUMA_DEFAULT", raising=False)
    monkeypatch.delenv("LUMA_AGENTS_API_KEY", raising=False)
    with pytest.raises(LumaConfigurationError) as caught:
        LumaHook()._get_settings()
    assert "luma_default" in str(caught.value) and "LUMA_AGENTS_API_KEY" in str(caught.value)


async def test_async_path_never_uses_the_sync_connection_lookup(
    luma_conn: Callable[..., None], router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the sync lookup blocks the triggerer's event loop")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(forbidden))
    get_route(router, httpx.Response(200, json=generation_body(GEN_ID)))
    async with LumaHook() as hook:
        generation = await hook.aget_generation(GEN_ID)
    assert generation.id == GEN_ID


def test_ui_field_behaviour() -> None:
    behaviour = LumaHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port"}
    assert behaviour["relabeling"] == {"password": "API key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://agents.lumalabs.ai/v1"


def test_conn_fields_declare_every_extra_with_its_default() -> None:
    fields = LumaHook.conn_fields()
    assert {name: spec["schema"]["default"] for name, spec in fields.items()} == {
        "timeout": 60.0,
        "connect_timeout": 5.0,
        "max_retries": 5,
        "max_rate_limit_wait": 120.0,
    }
    assert fields["max_retries"]["schema"]["type"] == ["integer", "null"]


def test_provider_info_declares_the_same_connection_form() -> None:
    """Airflow >= 3.2 builds the connection form from provider info, without importing the hook."""
    from airflow_provider_luma.get_provider_info import get_provider_info

    (connection_type,) = get_provider_info()["connection-types"]
    behaviour = LumaHook.get_ui_field_behaviour()
    assert connection_type["conn-fields"] == LumaHook.conn_fields()
    assert connection_type["ui-field-behaviour"] == {
        "hidden-fields": behaviour["hidden_fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    assert connection_type["hook-name"] == LumaHook.hook_name


def test_connection_form_widgets_when_the_fab_ui_is_installed() -> None:
    pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    assert set(LumaHook.get_connection_form_widgets()) == set(LumaHook.conn_fields())


# ------------------------------------------------------------------------------ requests sent


def test_every_request_carries_key_user_agent_and_a_fresh_request_id(hook: LumaHook, router: Any) -> None:
    route = get_route(router, httpx.Response(200, json=generation_body(GEN_ID)), completed())

    hook.get_generation(GEN_ID)
    hook.get_generation(GEN_ID)

    first, second = (call.request.headers for call in route.calls)
    assert first["Authorization"] == f"Bearer {API_KEY}"
    assert first["User-Agent"] == f"airflow-provider-luma/{__version__}"
    assert uuid.UUID(first["X-Request-Id"]).version == 4
    assert first["X-Request-Id"] != second["X-Request-Id"]


def test_post_body_is_the_request_json(hook: LumaHook, router: Any) -> None:
    request = GenerationRequest.build(prompt="a fox", aspect_ratio="16:9", output_format="png")
    route = router.post(f"{BASE_URL}/generations").mock(
        return_value=httpx.Response(201, headers={"X-Request-Id": "srv-42"}, json=generation_body(GEN_ID))
    )

    generation = hook.create_generation(request)

    import json

    assert json.loads(route.calls.last.request.content) == request.to_json()
    assert route.calls.last.request.headers["Content-Type"] == "application/json"
    # The submission's id is the one sent (the API echoes it), whatever the answer's header says.
    assert generation.request_id == route.calls.last.request.headers["X-Request-Id"]
    assert generation.id == GEN_ID


def test_a_bad_request_fails_before_any_http_call(hook: LumaHook) -> None:
    with respx_router(assert_all_mocked=True) as mock:
        with pytest.raises(LumaRequestValidationError) as caught:
            hook.create_generation(GenerationRequest.build(prompt="a fox", aspect_ratio="4:3"))
        assert caught.value.field == "aspect_ratio" and "16:9" in str(caught.value)
        with pytest.raises(TypeError):
            hook.create_generation({"prompt": "a fox"})  # type: ignore[arg-type]
        with pytest.raises(LumaRequestValidationError, match="generation_id"):
            hook.get_generation("../files")
        assert mock.calls.call_count == 0


# ------------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "detail", "error_class"),
    [
        (400, "Invalid aspect_ratio '4:3'. Valid: 1:1", LumaInvalidRequestError),
        (401, "Invalid API key", LumaAuthenticationError),
        (402, "Insufficient credits. Please add credits to continue.", LumaInsufficientFundsError),
        (403, "API client is suspended", LumaPermissionDeniedError),
        (404, "Generation not found", LumaNotFoundError),
        (413, "Image exceeds 50 MB size limit", LumaPayloadTooLargeError),
        (422, "source: invalid base64 data", LumaInvalidRequestError),
        (418, "I'm a teapot", LumaUnexpectedResponseError),
    ],
)
async def test_each_error_status_maps_to_its_exception(
    luma_conn: Callable[..., None], router: Any, status: int, detail: str, error_class: type[LumaAPIError]
) -> None:
    headers = {"X-Request-Id": "srv-7", "X-API-Version": "2026-04-01"}
    route = router.post(f"{BASE_URL}/generations").mock(
        return_value=httpx.Response(status, headers=headers, json={"detail": detail})
    )
    request = GenerationRequest.build(prompt="a fox")
    for attempt in ("sync", "async"):
        async with LumaHook() as hook:
            with pytest.raises(error_class) as caught:
                if attempt == "sync":
                    hook.create_generation(request)
                else:
                    await hook.acreate_generation(request)
        assert type(caught.value) is error_class
        assert (caught.value.status_code, caught.value.detail, caught.value.request_id) == (
            status,
            detail,
            "srv-7",
        )
        assert "srv-7" in str(caught.value) and detail in str(caught.value)
    assert route.call_count == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, text="<html><body><h1>404 Not Found</h1>nginx</body></html>"),
        httpx.Response(404, json={"detail": "Not Found"}, headers={"X-API-Version": "2026-04-01"}),
    ],
    ids=["gateway-page", "another-404"],
)
def test_only_the_apis_own_404_says_a_generation_is_gone(
    hook: LumaHook, router: Any, response: httpx.Response
) -> None:
    """Read as "gone", a gateway's 404 would make a reattaching task submit, and pay, again."""
    router.get(f"{BASE_URL}/generations/{GEN_ID}").mock(return_value=response)
    with pytest.raises(LumaUnexpectedResponseError) as caught:
        hook.get_generation(GEN_ID)
    assert not isinstance(caught.value, LumaNotFoundError)
    assert caught.value.retryable


def test_list_detail_and_non_json_errors_are_kept_readable(hook: LumaHook, router: Any) -> None:
    fastapi_detail = [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]
    get_route(
        router, httpx.Response(422, json={"detail": fastapi_detail}), httpx.Response(400, text="bad gateway")
    )

    with pytest.raises(LumaInvalidRequestError, match="field required"):
        hook.get_generation(GEN_ID)
    with pytest.raises(LumaInvalidRequestError, match="bad gateway") as caught:
        hook.get_generation(GEN_ID)
    # Without a server id the error quotes the id we sent.
    assert caught.value.request_id and uuid.UUID(caught.value.request_id)


def test_error_bodies_that_echo_the_request_lose_signatures_and_keys(hook: LumaHook, router: Any) -> None:
    echoed = [
        {
            "loc": ["body", "image_ref", 0, "url"],
            "msg": "invalid URL",
            "input": "https://bucket.example/x.png?X-Amz-Signature=SECRETSIG",
        }
    ]
    proxy_page = (
        "upstream said no to https://a.example/o.png?X-Amz-Signature=SECRETSIG with luma-api-SECRETKEY"
    )
    get_route(router, httpx.Response(422, json={"detail": echoed}), httpx.Response(400, text=proxy_page))

    for _ in range(2):
        with pytest.raises(LumaInvalidRequestError) as caught:
            hook.get_generation(GEN_ID)
        assert "SECRETSIG" not in str(caught.value) and "SECRETKEY" not in str(caught.value)
        assert "invalid URL" in str(caught.value) or "upstream said no" in str(caught.value)


@pytest.mark.parametrize("body", [b"[]", b'{"state": "queued"}', b'{"id": "x", "state": 7}'])
def test_an_unreadable_body_is_an_unexpected_response(hook: LumaHook, router: Any, body: bytes) -> None:
    get_route(router, httpx.Response(200, content=body, headers={"X-Request-Id": "srv-9"}))
    with pytest.raises(LumaUnexpectedResponseError) as caught:
        hook.get_generation(GEN_ID)
    assert caught.value.request_id == "srv-9"


def test_a_get_whose_body_is_not_json_is_asked_again(hook: LumaHook, router: Any, sleeps: Sleeps) -> None:
    # A body cut short on the way is a lost answer, like a dropped connection: a GET can be repeated.
    truncated = httpx.Response(200, content=b'{"id": "d290f1ee')
    route = get_route(router, truncated, httpx.Response(200, json=generation_body(GEN_ID)))

    assert hook.get_generation(GEN_ID).id == GEN_ID
    assert route.call_count == 2 and len(sleeps) == 1


def test_a_get_whose_body_is_never_json_ends_in_a_retryable_transport_error(
    luma_conn: Callable[..., None], router: Any, sleeps: Sleeps
) -> None:
    luma_conn(max_retries=2)
    route = router.get(f"{BASE_URL}/generations/{GEN_ID}").mock(
        return_value=httpx.Response(200, text="<html>captive portal</html>")
    )

    with LumaHook(sleep=sleeps) as hook, pytest.raises(LumaTransportError, match="DecodingError") as caught:
        hook.get_generation(GEN_ID)

    assert caught.value.retryable and route.call_count == 3


# ----------------------------------------------------------------------------- test_connection


def test_test_connection_404_means_the_key_works(hook: LumaHook, router: Any) -> None:
    route = router.get(url__startswith=f"{BASE_URL}/generations/").mock(
        return_value=api_error(404, "Generation not found")
    )
    assert hook.test_connection() == (True, "Connection successful: the API accepted the key.")
    assert route.call_count == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="<html><h1>404 Not Found</h1></html>"),
        # The API's words without its header, and its header with another detail (a routing 404).
        httpx.Response(404, json={"detail": "Generation not found"}),
        api_error(404, "Not Found"),
    ],
    ids=["html", "no-header", "other-detail"],
)
def test_test_connection_any_other_404_says_the_base_url_is_wrong(
    hook: LumaHook, router: Any, answer: httpx.Response
) -> None:
    router.get(url__startswith=f"{BASE_URL}/generations/").mock(return_value=answer)

    ok, message = hook.test_connection()

    assert not ok and f"The base URL {BASE_URL} does not look like the Luma API" in message


def test_test_connection_a_200_for_a_random_id_is_not_the_api(hook: LumaHook, router: Any) -> None:
    router.get(url__startswith=f"{BASE_URL}/generations/").mock(
        return_value=httpx.Response(200, json=generation_body(GEN_ID))
    )

    ok, message = hook.test_connection()

    assert not ok and "does not look like the Luma API" in message


def test_test_connection_401_says_the_key_is_refused(hook: LumaHook, router: Any) -> None:
    router.get(url__startswith=f"{BASE_URL}/generations/").mock(
        return_value=httpx.Response(401, json={"detail": "API key has been revoked"})
    )
    ok, message = hook.test_connection()
    assert not ok and "refused the key" in message and "API key has been revoked" in message


def test_test_connection_unreachable_host_fails_at_once(hook: LumaHook, router: Any, sleeps: Sleeps) -> None:
    route = router.get(url__startswith=f"{BASE_URL}/generations/").mock(
        side_effect=httpx.ConnectError("refused")
    )
    ok, message = hook.test_connection()
    assert not ok and f"Cannot reach the API at {BASE_URL}" in message
    assert route.call_count == 1 and sleeps == []


def test_test_connection_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUMA_AGENTS_API_KEY", raising=False)
    ok, message = LumaHook().test_connection()
    assert not ok and "LUMA_AGENTS_API_KEY" in message


# ---------------------------------------------------------------------------------- downloads


class BrokenStream(httpx.SyncByteStream):
    """A body that dies after its first chunk, like a connection reset half-way."""

    def __iter__(self) -> Iterator[bytes]:
        yield PNG[:100]
        raise httpx.ReadError("connection reset by peer")


def test_download_streams_hashes_and_sends_no_credentials(hook: LumaHook, router: Any) -> None:
    get_route(router, completed())
    output = router.get(url__startswith=f"{STORAGE}/").mock(
        return_value=httpx.Response(200, content=PNG, headers={"Content-Type": "image/png"})
    )
    destination = io.BytesIO()

    result = hook.download_output(GEN_ID, destination)

    assert destination.getvalue() == PNG
    assert (result.size, result.sha256, result.content_type) == (
        len(PNG),
        hashlib.sha256(PNG).hexdigest(),
        "image/png",
    )
    assert result.generation.id == GEN_ID
    sent = output.calls.last.request
    assert "authorization" not in sent.headers and "x-request-id" not in sent.headers
    assert sent.headers["User-Agent"] == f"airflow-provider-luma/{__version__}"
    assert str(sent.url) == OUTPUT_URL


def test_download_content_type_falls_back_to_the_url_suffix(hook: LumaHook, router: Any) -> None:
    get_route(router, completed(f"{STORAGE}/g/output.jpg?X-Amz-Signature=abc"))
    router.get(url__startswith=f"{STORAGE}/").mock(
        return_value=httpx.Response(
            200, content=b"\xff\xd8", headers={"Content-Type": "application/octet-stream"}
        )
    )
    assert hook.download_output(GEN_ID, io.BytesIO()).content_type == "image/jpeg"


def test_download_refreshes_an_expired_url_once(hook: LumaHook, router: Any) -> None:
    generation = get_route(
        router, completed(f"{STORAGE}/old.png?sig=1"), completed(f"{STORAGE}/new.png?sig=2")
    )
    router.get(f"{STORAGE}/old.png").mock(
        return_value=httpx.Response(403, text="<Error>AccessDenied</Error>")
    )
    new = router.get(f"{STORAGE}/new.png").mock(return_value=httpx.Response(200, content=PNG))
    destination = io.BytesIO()

    result = hook.download_output(GEN_ID, destination)

    assert generation.call_count == 2 and new.call_count == 1
    assert destination.getvalue() == PNG and result.size == len(PNG)


def test_download_a_second_403_raises(hook: LumaHook, router: Any) -> None:
    generation = get_route(router, completed(), completed())
    output = router.get(url__startswith=f"{STORAGE}/").mock(
        return_value=httpx.Response(403, headers={"x-amz-request-id": "s3-1"})
    )
    destination = io.BytesIO()

    with pytest.raises(LumaOutputDownloadError) as caught:
        hook.download_output(GEN_ID, destination)

    assert generation.call_count == 2 and output.call_count == 2
    assert (caught.value.status_code, caught.value.request_id) == (403, "s3-1")
    assert "s3cr3t" not in str(caught.value) and destination.getvalue() == b""


def test_download_of_a_failed_generation_names_state_and_failure_code(hook: LumaHook, router: Any) -> None:
    failed = generation_body(
        GEN_ID, state="failed", failure_code="content_moderated", failure_reason="flagged"
    )
    get_route(router, httpx.Response(200, json=failed))
    output = router.get(url__startswith=f"{STORAGE}/").mock(return_value=httpx.Response(200))

    with pytest.raises(LumaOutputNotAvailableError) as caught:
        hook.download_output(GEN_ID, io.BytesIO())

    assert "state failed" in str(caught.value) and "content_moderated" in str(caught.value)
    assert not caught.value.retryable and output.call_count == 0


def test_download_of_a_running_generation_is_retryable_later(hook: LumaHook, router: Any) -> None:
    get_route(router, httpx.Response(200, json=generation_body(GEN_ID, state="processing")))
    with pytest.raises(LumaOutputNotAvailableError, match="state processing") as caught:
        hook.download_output(GEN_ID, io.BytesIO())
    assert caught.value.retryable


def test_download_index_out_of_range(hook: LumaHook, router: Any) -> None:
    get_route(router, completed())
    with pytest.raises(LumaOutputNotAvailableError, match="index 1 is out of range"):
        hook.download_output(GEN_ID, io.BytesIO(), index=1)


def test_download_broken_half_way_raises_transport_error(hook: LumaHook, router: Any) -> None:
    get_route(router, completed())
    router.get(url__startswith=f"{STORAGE}/").mock(return_value=httpx.Response(200, stream=BrokenStream()))

    with pytest.raises(LumaTransportError, match="after 100 bytes"):
        hook.download_output(GEN_ID, io.BytesIO())


def test_download_retries_a_storage_5xx_before_the_body(hook: LumaHook, router: Any, sleeps: Sleeps) -> None:
    get_route(router, completed())
    output = router.get(url__startswith=f"{STORAGE}/").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, content=PNG)]
    )
    assert hook.download_output(GEN_ID, io.BytesIO()).size == len(PNG)
    assert output.call_count == 2 and len(sleeps) == 1


# ------------------------------------------------------------------------------------ logging


def test_httpx_request_log_hides_the_presigned_signature(
    hook: LumaHook, router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    get_route(router, completed())
    router.get(url__startswith=f"{STORAGE}/").mock(return_value=httpx.Response(200, content=PNG))

    with caplog.at_level(logging.INFO, logger="httpx"):
        hook.download_output(GEN_ID, io.BytesIO())

    messages = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert any(f"{STORAGE}/generations/out.png?<redacted>" in message for message in messages)
    assert any(f"/generations/{GEN_ID}" in message for message in messages)
    assert not any("s3cr3t" in message or "X-Amz" in message for message in messages)


def test_redaction_filter_is_installed_once() -> None:
    install_httpx_log_redaction()
    install_httpx_log_redaction()
    names = [type(f).__name__ for f in logging.getLogger("httpx").filters]
    assert names.count("RedactQueryStringFilter") == 1
    assert (
        redact_url("https://h/p?a=1") == "https://h/p?<redacted>"
        and redact_url("https://h/p") == "https://h/p"
    )


# ------------------------------------------------------------------------- async client registry


async def test_hooks_on_one_loop_share_one_pooled_client_but_send_their_own_keys(
    set_connection: Callable[..., None], router: Any
) -> None:
    set_connection("luma_a", host=BASE_URL, password="luma-api-aaa")
    set_connection("luma_b", host=BASE_URL, password="luma-api-bbb")
    route = get_route(router, *(httpx.Response(200, json=generation_body(GEN_ID)) for _ in range(2)))
    first, second = LumaHook("luma_a"), LumaHook("luma_b")

    await asyncio.gather(first.aget_generation(GEN_ID), second.aget_generation(GEN_ID))

    client = await first._aclient()
    assert client is await second._aclient()
    config = first._get_settings().client
    assert ASYNC_CLIENTS.users(config) == 2
    assert sorted(call.request.headers["Authorization"] for call in route.calls) == [
        "Bearer luma-api-aaa",
        "Bearer luma-api-bbb",
    ]
    await first.aclose()
    assert not client.is_closed and ASYNC_CLIENTS.users(config) == 1
    await second.aclose()
    assert client.is_closed and ASYNC_CLIENTS.users(config) == 0
    await second.aclose()  # a second close is harmless


async def test_another_base_url_gets_its_own_client(set_connection: Callable[..., None]) -> None:
    set_connection("luma_a", host=BASE_URL, password="luma-api-aaa")
    set_connection("luma_b", host="http://127.0.0.1:9/v1", password="luma-api-aaa")
    async with LumaHook("luma_a") as first, LumaHook("luma_b") as second:
        assert await first._aclient() is not await second._aclient()


def test_each_event_loop_gets_its_own_client(luma_conn: Callable[..., None]) -> None:
    hook = LumaHook()

    async def lease() -> httpx.AsyncClient:
        return await hook._aclient()

    loop_one, loop_two = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        client_one = loop_one.run_until_complete(lease())
        # A hook moved to another loop drops its old lease rather than using a client bound elsewhere.
        client_two = loop_two.run_until_complete(lease())
        assert client_one is not client_two
        loop_two.run_until_complete(hook.aclose())
        assert client_two.is_closed
    finally:
        loop_one.run_until_complete(client_one.aclose())
        loop_one.close()
        loop_two.close()


async def test_concurrent_first_calls_of_one_hook_take_one_lease(luma_conn: Callable[..., None]) -> None:
    hook = LumaHook()
    clients = await asyncio.gather(*(hook._aclient() for _ in range(5)))
    config = hook._get_settings().client
    assert len({id(client) for client in clients}) == 1 and ASYNC_CLIENTS.users(config) == 1
    await hook.aclose()
    assert clients[0].is_closed and ASYNC_CLIENTS.users(config) == 0


def test_a_hook_moved_from_a_closed_loop_gets_a_new_client(luma_conn: Callable[..., None]) -> None:
    """A loop closed (asyncio.run) without its hook releasing: another hook's lease forgets its entry."""
    moved, other = LumaHook(), LumaHook()
    first = asyncio.run(moved._aclient())
    asyncio.run(other._aclient())  # the registry forgets the closed loop's entry here

    second = asyncio.run(moved._aclient())

    assert first is not second


def test_a_gateways_html_page_is_quoted_as_one_line_of_words(hook: LumaHook, router: Any) -> None:
    page = "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body><h1>400 Bad Request</h1></body>"
    get_route(router, httpx.Response(400, headers={"Content-Type": "text/html"}, text=page))

    with pytest.raises(LumaInvalidRequestError) as caught:
        hook.get_generation(GEN_ID)

    assert caught.value.detail == "400 Bad Request 400 Bad Request"
