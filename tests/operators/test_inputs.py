"""How a staged input finds an earlier upload: ready, pending (another task uploading), stale, expiring."""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from PIL import Image

from airflow_provider_luma.exceptions import LumaFileUnusableError, LumaRequestValidationError
from airflow_provider_luma.hooks._files import UploadedFile
from airflow_provider_luma.models import GenerationRequest
from airflow_provider_luma.models.file import LumaFile
from airflow_provider_luma.operators._inputs import StagedInputs, file_name

LOG = logging.getLogger(__name__)
NOW = datetime.now(timezone.utc)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


class FakeFilesHook:
    """The Files calls ``StagedInputs`` makes, answered from a list; uploads recorded."""

    def __init__(self, listed: list[LumaFile], becomes: LumaFile | None = None) -> None:
        self.listed = listed
        self.becomes = becomes
        self.uploads: list[dict[str, Any]] = []
        self.waited: list[str] = []

    def iter_files(self, **_: Any) -> Any:
        return iter(self.listed)

    def wait_for_file(self, file_id: str, *, timeout: float) -> LumaFile:
        self.waited.append(file_id)
        if self.becomes is None:
            raise LumaFileUnusableError(file_id, "pending", "still being ingested", retryable=True)
        return self.becomes

    def upload_file(self, source: Any, **options: Any) -> UploadedFile:
        import hashlib

        content = source.read()
        self.uploads.append(options)
        file = LumaFile(
            "11111111-2222-4333-8444-555555555555", "ready", "image/png", "reference", len(content), ""
        )
        return UploadedFile(file, hashlib.sha256(content).hexdigest())


@pytest.fixture
def staged(tmp_path: Any) -> Any:
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "brand.png").write_bytes(_png())
    with StagedInputs(LOG) as inputs:
        ref = inputs.add(ObjectStoragePath(f"file://{tmp_path}/brand.png"), "image_ref[0]")
        yield inputs, GenerationRequest(prompt="x", image_ref=(ref,))


def _listed(
    staged: Any, state: str, *, age: timedelta = timedelta(0), expires_in: timedelta | None = None
) -> LumaFile:
    inputs, _ = staged
    image = inputs.images[0]
    return LumaFile(
        id="99999999-8888-4777-8666-555555555555",
        state=state,
        mime_type="image/png",
        purpose="reference",
        size_bytes=image.size,
        created_at=(NOW - age).isoformat(),
        filename=file_name(image.sha256, image.media_type),
        expires_at=None if expires_in is None else (NOW + expires_in).isoformat(),
    )


def test_a_ready_upload_of_the_same_bytes_is_reused(staged: Any) -> None:
    inputs, request = staged
    hook = FakeFilesHook([_listed(staged, "ready", expires_in=timedelta(days=3))])

    resolved = inputs.resolve(hook, request)

    assert resolved.image_ref[0].file_id == "99999999-8888-4777-8666-555555555555"
    assert hook.uploads == [] and inputs.resolved[0]["reused"] is True


def test_one_expiring_within_the_hour_is_not(staged: Any) -> None:
    inputs, request = staged
    hook = FakeFilesHook([_listed(staged, "ready", expires_in=timedelta(minutes=20))])

    resolved = inputs.resolve(hook, request)

    assert resolved.image_ref[0].file_id == "11111111-2222-4333-8444-555555555555"
    [upload] = hook.uploads
    assert upload["purpose"] == "reference" and upload["filename"].startswith("airflow-luma-sha256-")
    assert upload["expires_at"] > NOW + timedelta(days=6)


def test_another_tasks_upload_in_progress_is_waited_for(staged: Any) -> None:
    inputs, request = staged
    pending = _listed(staged, "pending", age=timedelta(seconds=5))
    hook = FakeFilesHook([pending], becomes=replace(pending, state="ready"))

    inputs.resolve(hook, request)

    assert hook.waited == [pending.id] and hook.uploads == []


@pytest.mark.parametrize(
    ("state", "age", "becomes_ready"),
    [
        ("pending", timedelta(minutes=30), True),
        ("pending", timedelta(seconds=5), False),
        ("failed", timedelta(0), True),
    ],
    ids=["stale-orphan", "never-ready", "failed"],
)
def test_an_orphan_a_slow_one_or_a_failed_one_means_uploading_ours(
    staged: Any, state: str, age: timedelta, becomes_ready: bool
) -> None:
    inputs, request = staged
    listed = _listed(staged, state, age=age)
    hook = FakeFilesHook([listed], becomes=replace(listed, state="ready") if becomes_ready else None)

    inputs.resolve(hook, request)

    assert len(hook.uploads) == 1
    assert hook.waited == ([] if age > timedelta(minutes=10) or state == "failed" else [listed.id])


def test_the_fingerprint_depends_on_the_bytes_not_the_file_id(staged: Any, tmp_path: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    _, request = staged
    with StagedInputs(LOG) as again:
        same = again.add(ObjectStoragePath(f"file://{tmp_path}/brand.png"), "image_ref[0]")
    assert GenerationRequest(prompt="x", image_ref=(same,)).fingerprint() == request.fingerprint()
    (tmp_path / "other.png").write_bytes(_png()[:-12] + b"\0" * 12)
    with StagedInputs(LOG) as other:
        different = other.add(ObjectStoragePath(f"file://{tmp_path}/other.png"), "image_ref[0]")
    assert GenerationRequest(prompt="x", image_ref=(different,)).fingerprint() != request.fingerprint()


def test_a_storage_file_that_is_no_image_is_refused_unsent(tmp_path: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "notes.png").write_text("not an image")
    with StagedInputs(LOG) as inputs, pytest.raises(LumaRequestValidationError, match="not a PNG"):
        inputs.add(ObjectStoragePath(f"file://{tmp_path}/notes.png"), "source")


def test_a_ready_copy_wins_over_a_newer_pending_one(staged: Any) -> None:
    inputs, request = staged
    orphan = replace(
        _listed(staged, "pending", age=timedelta(seconds=5)), id="77777777-8888-4777-8666-555555555555"
    )
    ready = _listed(staged, "ready", age=timedelta(hours=2), expires_in=timedelta(days=3))
    hook = FakeFilesHook([orphan, ready])

    resolved = inputs.resolve(hook, request)

    assert resolved.image_ref[0].file_id == ready.id
    assert hook.waited == [] and hook.uploads == []


def test_an_expiry_that_cannot_be_read_is_not_trusted(staged: Any) -> None:
    inputs, request = staged
    hook = FakeFilesHook([replace(_listed(staged, "ready"), expires_at="next tuesday")])

    inputs.resolve(hook, request)

    assert len(hook.uploads) == 1


def test_the_fingerprint_is_the_inline_requests_whichever_way_the_image_goes(
    staged: Any, tmp_path: Any
) -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.storage import read_storage_image

    inputs, request = staged
    inline = read_storage_image(ObjectStoragePath(f"file://{tmp_path}/brand.png"), "image_ref[0]")

    assert inputs.fingerprint(request) == GenerationRequest(prompt="x", image_ref=(inline,)).fingerprint()


def test_the_same_image_twice_names_one_file_for_both(tmp_path: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    (tmp_path / "brand.png").write_bytes(_png())
    path = ObjectStoragePath(f"file://{tmp_path}/brand.png")
    with StagedInputs(LOG) as inputs:
        refs = (inputs.add(path, "image_ref[0]"), inputs.add(path, "image_ref[1]"))
        hook = FakeFilesHook([])
        resolved = inputs.resolve(hook, GenerationRequest(prompt="x", image_ref=refs))
        described = inputs.describe(resolved)

    assert len(hook.uploads) == 1
    assert resolved.image_ref[0].file_id == resolved.image_ref[1].file_id
    assert [ref["file_id"] for ref in described["image_ref"]] == [resolved.image_ref[0].file_id] * 2
    assert [item["reused"] for item in inputs.resolved] == [False, True]


def test_an_s3_reference_is_uploaded_to_the_emulator_once_and_then_found(
    s3: Any, luma_emulator: Any, luma_connection: str
) -> None:
    import hashlib

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.hooks.luma import LumaHook
    from tests.support import AWS_CONN_ID, BUCKET

    content = _png()
    s3.client.put_object(Bucket=BUCKET, Key="brand/logo.png", Body=content)
    path = ObjectStoragePath(f"s3://{BUCKET}/brand/logo.png", conn_id=AWS_CONN_ID)
    with LumaHook(luma_connection) as hook:
        for expected_reused in (False, True):
            with StagedInputs(LOG) as inputs:
                ref = inputs.add(path, "image_ref[0]")
                resolved = inputs.resolve(hook, GenerationRequest(prompt="x", image_ref=(ref,)))
            [item] = inputs.resolved
            assert item["reused"] is expected_reused
            assert item["uri"] == f"s3://{BUCKET}/brand/logo.png"
            assert item["sha256"] == hashlib.sha256(content).hexdigest()
        assert hook.get_file(resolved.image_ref[0].file_id).size_bytes == len(content)
    assert luma_emulator.stats.file_uploads == 1
    assert luma_emulator.stats.file_upload_bytes == len(content)
