"""The hook's Files API against scripted answers: which step may be repeated, what is checked first."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_luma.exceptions import (
    LumaAPIError,
    LumaFileUnusableError,
    LumaFileUploadError,
    LumaNotFoundError,
    LumaRequestValidationError,
    LumaSubmissionUnknownError,
)
from airflow_provider_luma.hooks.luma import LumaHook
from tests.hooks.conftest import API_HEADERS, API_KEY, BASE_URL, api_error, proxy_page, respx_router

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.hooks.conftest import FakeClock, Sleeps

FILE_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
PUT_URL = "https://storage.test/uploads/f?X-Amz-Expires=900&X-Amz-Signature=s3cr3t"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 9000  # 2.3 MB: several PUT chunks


def file_body(state: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "id": FILE_ID,
        "created_at": "2026-12-03T12:00:00Z",
        "mime_type": "image/png",
        "purpose": "reference",
        "size_bytes": len(PNG),
        "state": state,
        "deleted_at": None,
        "expires_at": None,
        "failure_reason": None,
        "filename": "brand.png",
        "user_id": None,
        **extra,
    }


def created() -> httpx.Response:
    body = {
        "id": FILE_ID,
        "state": "pending",
        "file": file_body(),
        "upload": {
            "method": "PUT",
            "url": PUT_URL,
            "headers": {"Content-Type": "image/png"},
            "expires_at": "2026-12-03T12:15:00Z",
        },
    }
    return httpx.Response(201, headers=API_HEADERS, json=body)


def ok_file(state: str = "ready", **extra: Any) -> httpx.Response:
    return httpx.Response(200, headers=API_HEADERS, json=file_body(state, **extra))


@pytest.fixture
def router() -> Iterator[Any]:
    with respx_router(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def hook(luma_conn: Callable[..., None], clocked_sleeps: tuple[Sleeps, FakeClock]) -> Iterator[LumaHook]:
    sleeps, clock = clocked_sleeps
    with LumaHook(sleep=sleeps, async_sleep=sleeps.asleep, clock=clock) as luma_hook:
        yield luma_hook


@pytest.fixture
def clocked_sleeps() -> tuple[Sleeps, FakeClock]:
    from tests.hooks.conftest import FakeClock, Sleeps

    clock = FakeClock()
    return Sleeps(clock), clock


class Storage:
    """A presigned PUT target that records what each attempt carried."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []
        self.headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        self.headers.append(request.headers)
        return httpx.Response(self.answers.pop(0) if self.answers else 200, headers={"ETag": '"x"'})


def routes(router: Any, storage: Storage, *, create: Any = None, file_answers: Any = None) -> dict[str, Any]:
    return {
        "create": router.post(f"{BASE_URL}/files").mock(side_effect=create or [created()]),
        "put": router.put(PUT_URL).mock(side_effect=storage),
        "complete": router.post(f"{BASE_URL}/files/{FILE_ID}/complete").mock(
            side_effect=[ok_file("pending")]
        ),
        "get": router.get(f"{BASE_URL}/files/{FILE_ID}").mock(side_effect=file_answers or [ok_file()]),
    }


def test_upload_streams_the_bytes_without_our_key_and_returns_the_ready_file(
    hook: LumaHook, router: Any
) -> None:
    storage = Storage()
    called = routes(router, storage, file_answers=[ok_file("pending"), ok_file("pending"), ok_file()])

    uploaded = hook.upload_file(io.BytesIO(PNG), purpose="reference", filename="brand.png")

    assert uploaded.file.state == "ready"
    assert uploaded.sha256 == hashlib.sha256(PNG).hexdigest()
    sent = json.loads(called["create"].calls[0].request.content)
    assert sent == {
        "mime_type": "image/png",
        "size_bytes": len(PNG),
        "purpose": "reference",
        "filename": "brand.png",
    }
    assert called["create"].calls[0].request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert storage.bodies == [PNG]
    assert "authorization" not in storage.headers[0]
    assert storage.headers[0]["content-type"] == "image/png"
    assert storage.headers[0]["content-length"] == str(len(PNG))
    assert called["complete"].call_count == 1
    assert called["get"].call_count == 3


def test_a_storage_fault_repeats_the_put_from_the_first_byte(hook: LumaHook, router: Any) -> None:
    storage = Storage(500, 503)
    routes(router, storage)

    uploaded = hook.upload_file(PNG)

    assert storage.bodies == [PNG, PNG, PNG]
    assert uploaded.sha256 == hashlib.sha256(PNG).hexdigest()


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (403, True)], ids=["bad-header", "expired"])
def test_storage_refusing_the_bytes_raises_without_completing(
    hook: LumaHook, router: Any, status: int, retryable: bool
) -> None:
    storage = Storage(status)
    called = routes(router, storage)

    with pytest.raises(LumaFileUploadError) as raised:
        hook.upload_file(PNG)

    assert raised.value.status_code == status
    # An expired URL: a new try creates a new file with a fresh one.
    assert raised.value.retryable is retryable
    assert "s3cr3t" not in str(raised.value)
    assert called["complete"].call_count == 0


def test_a_refused_complete_is_raised_not_waited_out(
    hook: LumaHook, router: Any, clocked_sleeps: tuple[Sleeps, FakeClock]
) -> None:
    called = routes(router, Storage())
    called["complete"].mock(side_effect=[api_error(409, "File upload not received")])

    with pytest.raises(LumaAPIError, match="File upload not received"):
        hook.upload_file(PNG)

    assert called["get"].call_count == 0
    assert clocked_sleeps[0] == []


def test_a_size_beyond_the_source_is_refused_before_any_call(hook: LumaHook, router: Any) -> None:
    called = routes(router, Storage())

    with pytest.raises(LumaRequestValidationError) as raised:
        hook.upload_file(PNG, size_bytes=len(PNG) + 1)

    assert raised.value.field == "size_bytes"
    assert called["create"].call_count == 0


def test_a_source_that_shrinks_during_the_upload_fails_named(hook: LumaHook, router: Any) -> None:
    class Shrinking(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            if self.tell() > 1024 * 1024:  # after the first chunk, the rest is gone
                self.truncate(self.tell())
            return chunk

    called = routes(router, Storage())

    with pytest.raises(LumaRequestValidationError, match="ended after"):
        hook.upload_file(Shrinking(PNG))

    assert called["complete"].call_count == 0


def test_a_post_keeps_the_post_rules_when_its_retry_state_is_built_directly() -> None:
    from airflow_provider_luma.hooks._retry import RetryPolicy, RetryState

    state = RetryState(RetryPolicy(), "POST", "/generations", "rid", logging.getLogger(__name__))

    assert state.creates == "generation" and state.rules == "POST"
    with pytest.raises(LumaSubmissionUnknownError):
        state.after_error(httpx.ReadTimeout("lost"))


def test_a_lost_file_creation_is_not_resent_but_a_new_try_may_upload(hook: LumaHook, router: Any) -> None:
    storage = Storage()
    called = routes(router, storage, create=[httpx.ReadTimeout("lost"), created()])

    with pytest.raises(LumaSubmissionUnknownError) as raised:
        hook.upload_file(PNG)

    assert called["create"].call_count == 1
    assert raised.value.retryable
    assert "POST /files" in str(raised.value) and "billed" in str(raised.value)


def test_a_gateway_page_on_file_creation_leaves_its_fate_unknown(hook: LumaHook, router: Any) -> None:
    called = routes(router, Storage(), create=[proxy_page(502), created()])

    with pytest.raises(LumaSubmissionUnknownError):
        hook.upload_file(PNG)

    assert called["create"].call_count == 1


def test_the_apis_own_503_on_file_creation_is_retried(hook: LumaHook, router: Any) -> None:
    called = routes(router, Storage(), create=[api_error(503, "Service unavailable"), created()])

    assert hook.upload_file(PNG).file.is_ready
    assert called["create"].call_count == 2


def test_complete_is_repeated_after_a_transient_fault(hook: LumaHook, router: Any) -> None:
    called = routes(router, Storage())
    called["complete"].mock(side_effect=[httpx.ReadTimeout("lost"), ok_file("pending")])

    assert hook.upload_file(PNG).file.is_ready
    assert called["complete"].call_count == 2


def test_a_refused_ingest_raises_with_lumas_reason(hook: LumaHook, router: Any) -> None:
    routes(router, Storage(), file_answers=[ok_file("failed", failure_reason="content-type is not an image")])

    with pytest.raises(LumaFileUnusableError, match="content-type is not an image") as raised:
        hook.upload_file(PNG)

    assert not raised.value.retryable


def test_an_ingest_slower_than_the_timeout_is_retryable(
    hook: LumaHook, router: Any, clocked_sleeps: tuple[Sleeps, FakeClock]
) -> None:
    routes(router, Storage(), file_answers=[ok_file("pending")] * 20)

    with pytest.raises(LumaFileUnusableError, match="still being ingested") as raised:
        hook.upload_file(PNG, ready_timeout=5)

    assert raised.value.retryable
    sleeps, _ = clocked_sleeps
    assert sum(sleeps) == pytest.approx(5)


@pytest.mark.parametrize(
    ("source", "options", "field"),
    [
        (b"GIF? no, plain text", {}, "source"),
        (PNG, {"mime_type": "image/jpeg"}, "mime_type"),
        (PNG, {"purpose": "style"}, "purpose"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (50 * 1024 * 1024), {}, "source"),
    ],
    ids=["not-an-image", "declared-type-differs", "bad-purpose", "over-50-MB"],
)
def test_bad_uploads_fail_before_any_call(
    hook: LumaHook, router: Any, source: bytes, options: dict[str, Any], field: str
) -> None:
    called = routes(router, Storage())

    with pytest.raises(LumaRequestValidationError) as raised:
        hook.upload_file(source, **options)

    assert raised.value.field == field
    assert called["create"].call_count == 0


def test_upload_from_a_local_path(hook: LumaHook, router: Any, tmp_path: Any) -> None:
    storage = Storage()
    routes(router, storage)
    path = tmp_path / "brand.png"
    path.write_bytes(PNG)

    assert hook.upload_file(path).sha256 == hashlib.sha256(PNG).hexdigest()
    assert storage.bodies == [PNG]


def test_list_files_pages_with_the_cursor(hook: LumaHook, router: Any) -> None:
    other = str(uuid.uuid4())
    pages = [
        httpx.Response(
            200,
            headers=API_HEADERS,
            json={"data": [file_body("ready")], "has_more": True, "next_cursor": "c1"},
        ),
        httpx.Response(
            200,
            headers=API_HEADERS,
            json={"data": [file_body("ready", id=other)], "has_more": False, "next_cursor": None},
        ),
    ]
    route = router.get(url__startswith=f"{BASE_URL}/files").mock(side_effect=pages)

    files = list(hook.iter_files(purpose="reference", state="ready", page_size=1))

    assert [file.id for file in files] == [FILE_ID, other]
    queries = [dict(call.request.url.params) for call in route.calls]
    assert queries == [
        {"limit": "1", "purpose": "reference", "state": "ready"},
        {"cursor": "c1", "limit": "1", "purpose": "reference", "state": "ready"},
    ]


@pytest.mark.parametrize(("option", "value"), [("limit", 0), ("limit", 101), ("state", "gone")])
def test_list_refuses_bad_filters_before_sending(
    hook: LumaHook, router: Any, option: str, value: Any
) -> None:
    route = router.get(url__startswith=f"{BASE_URL}/files")

    with pytest.raises(LumaRequestValidationError) as raised:
        hook.list_files(**{option: value})

    assert raised.value.field == option
    assert route.call_count == 0


def test_get_and_delete(hook: LumaHook, router: Any) -> None:
    router.get(f"{BASE_URL}/files/{FILE_ID}").mock(side_effect=[api_error(404, "File not found")])
    deleted = router.delete(f"{BASE_URL}/files/{FILE_ID}").mock(
        side_effect=[httpx.Response(204, headers=API_HEADERS)]
    )

    with pytest.raises(LumaNotFoundError):
        hook.get_file(FILE_ID)
    hook.delete_file(FILE_ID)

    assert deleted.call_count == 1


@pytest.mark.parametrize(
    "bad", ["{" + FILE_ID + "}", FILE_ID.replace("-", ""), f"urn:uuid:{FILE_ID}", "../x"]
)
def test_only_canonical_file_ids_are_sent(hook: LumaHook, router: Any, bad: str) -> None:
    with pytest.raises(LumaRequestValidationError):
        hook.get_file(bad)


async def test_async_twins(hook: LumaHook, router: Any) -> None:
    router.get(f"{BASE_URL}/files/{FILE_ID}").mock(side_effect=[ok_file()])
    router.get(f"{BASE_URL}/files").mock(
        side_effect=[httpx.Response(200, headers=API_HEADERS, json={"data": [], "has_more": False})]
    )
    router.delete(f"{BASE_URL}/files/{FILE_ID}").mock(side_effect=[httpx.Response(204, headers=API_HEADERS)])

    assert (await hook.aget_file(FILE_ID)).is_ready
    assert (await hook.alist_files()).files == ()
    await hook.adelete_file(FILE_ID)
    await hook.aclose()


# ------------------------------------------------------------------ create_generation as the SDK is called


def generation_created() -> httpx.Response:
    body = {
        "id": str(uuid.uuid4()),
        "type": "image_edit",
        "state": "queued",
        "model": "uni-1",
        "created_at": "2026-12-03T12:00:00Z",
        "output": [],
        "failure_reason": None,
        "failure_code": None,
    }
    return httpx.Response(201, headers=API_HEADERS, json=body)


async def test_create_generation_takes_the_sdks_keywords(hook: LumaHook, router: Any) -> None:
    from airflow_provider_luma.models import GenerationRequest

    route = router.post(f"{BASE_URL}/generations").mock(side_effect=[generation_created() for _ in range(3)])
    keywords: dict[str, Any] = {
        "prompt": "make it blue",
        "type": "image_edit",
        "source": {"file_id": FILE_ID},
        "image_ref": [{"url": "https://example.com/ref.png", "data": None}],
        "aspect_ratio": None,
    }

    hook.create_generation(**keywords)
    await hook.acreate_generation(**keywords)
    hook.create_generation(GenerationRequest.build(**keywords))

    bodies = [json.loads(call.request.content) for call in route.calls]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["source"] == {"file_id": FILE_ID}
    assert bodies[0]["image_ref"] == [{"url": "https://example.com/ref.png"}]
    await hook.aclose()


def test_create_generation_keywords_are_validated_before_sending(hook: LumaHook, router: Any) -> None:
    from airflow_provider_luma.models import GenerationRequest

    route = router.post(f"{BASE_URL}/generations")

    with pytest.raises(LumaRequestValidationError, match="aspect_ratio"):
        hook.create_generation(prompt="x", aspect_ratio="4:3")
    with pytest.raises(LumaRequestValidationError, match="video"):
        hook.create_generation(prompt="x", video={"duration": "5s"})
    with pytest.raises(TypeError, match="not both"):
        hook.create_generation(GenerationRequest(prompt="x"), prompt="y")
    with pytest.raises(TypeError):
        hook.create_generation(prompt="x", seed=3)
    assert route.call_count == 0
