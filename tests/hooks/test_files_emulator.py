"""The hook's Files API against the emulator over real HTTP: the presigned flow and its refusals."""

from __future__ import annotations

import hashlib
import io
import time
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from airflow_provider_luma.exceptions import LumaFileUnusableError, LumaNotFoundError
from airflow_provider_luma.hooks.luma import LumaHook
from airflow_provider_luma.models import GenerationState
from airflow_provider_luma.testing import Fault

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator


def _png(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "orange").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def hook(luma_connection: str) -> Any:
    with LumaHook(luma_connection) as luma_hook:
        yield luma_hook


def _wait_completed(hook: LumaHook, generation_id: str) -> Any:
    deadline = time.monotonic() + 10
    generation = hook.get_generation(generation_id)
    while not generation.is_terminal:
        assert time.monotonic() < deadline, "the generation never finished"
        generation = hook.get_generation(generation_id)
    return generation


def test_upload_then_edit_by_file_id(hook: LumaHook, luma_emulator: LumaEmulator) -> None:
    content = _png()
    uploaded = hook.upload_file(content, purpose="input", filename="source.png")

    assert uploaded.file.state == "ready" and uploaded.file.size_bytes == len(content)
    assert uploaded.sha256 == hashlib.sha256(content).hexdigest()
    # The emulator's PUT target refuses an Authorization header, as S3 does: this one carried none.
    assert luma_emulator.stats.file_uploads == 1
    created = hook.create_generation(
        prompt="make it night", type="image_edit", source={"file_id": uploaded.id}
    )
    generation = _wait_completed(hook, created.id)
    assert generation.state is GenerationState.COMPLETED
    downloaded = io.BytesIO()
    hook.download_output(generation.id, downloaded)
    # An edit keeps its source's size: the emulator read the uploaded file.
    assert Image.open(io.BytesIO(downloaded.getvalue())).size == (40, 30)


def test_a_slow_ingest_is_waited_for(hook: LumaHook, luma_emulator: LumaEmulator) -> None:
    luma_emulator.configure(file_ingest_seconds=0.3)

    assert hook.upload_file(_png()).file.is_ready


def test_a_refused_ingest_names_lumas_reason(hook: LumaHook, luma_emulator: LumaEmulator) -> None:
    luma_emulator.fail_next_file_ingest("Input image was flagged by our content moderation system.")

    with pytest.raises(LumaFileUnusableError, match="content moderation") as raised:
        hook.upload_file(_png())

    assert not raised.value.retryable


def test_a_storage_fault_on_the_put_is_retried(hook: LumaHook, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="UPLOAD", status=503))

    assert hook.upload_file(_png()).file.is_ready
    assert luma_emulator.stats.file_uploads == 1


def test_list_pages_and_delete(hook: LumaHook, luma_emulator: LumaEmulator) -> None:
    ids = [hook.upload_file(_png((8 + i, 8)), purpose="reference").id for i in range(3)]

    listed = [file.id for file in hook.iter_files(purpose="reference", page_size=2)]
    assert listed == ids[::-1]  # newest first, across two pages

    hook.delete_file(ids[0])
    hook.delete_file(ids[0])
    assert hook.get_file(ids[0]).state == "deleted"
    assert [file.id for file in hook.iter_files(purpose="reference")] == ids[:0:-1]
    with pytest.raises(LumaNotFoundError):
        hook.get_file("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")


async def test_async_reads(hook: LumaHook) -> None:
    uploaded = hook.upload_file(_png())

    assert (await hook.aget_file(uploaded.id)).is_ready
    assert [file.id for file in (await hook.alist_files()).files] == [uploaded.id]
    await hook.adelete_file(uploaded.id)
    assert (await hook.aget_file(uploaded.id)).state == "deleted"
    await hook.aclose()


def test_upload_straight_from_s3(hook: LumaHook, luma_emulator: LumaEmulator, s3: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    from tests.support import AWS_CONN_ID, BUCKET

    content = _png((20, 10))
    s3.client.put_object(Bucket=BUCKET, Key="in/logo.png", Body=content)

    uploaded = hook.upload_file(ObjectStoragePath(f"s3://{BUCKET}/in/logo.png", conn_id=AWS_CONN_ID))

    assert uploaded.sha256 == hashlib.sha256(content).hexdigest()
    assert luma_emulator.stats.file_upload_bytes == len(content)
