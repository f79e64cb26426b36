"""The official SDK (``luma_agents`` 0.5.0) drives the Files API and layering on the emulator."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

import httpx
import luma_agents
import pytest
from luma_agents.types import CreateFileResponse, File, FileList
from luma_agents.types.generation_output import Layer
from PIL import Image

from .conftest import image_bytes

if TYPE_CHECKING:
    from luma_agents.types import Generation

    from airflow_provider_luma.testing import LumaEmulator

SOURCE = image_bytes(48, 32)


def upload(sdk: luma_agents.Luma, data: bytes = SOURCE, **fields: str) -> CreateFileResponse:
    """``files.create``, then the PUT of the bytes to storage exactly as the envelope says."""
    created = sdk.files.create(mime_type="image/png", size_bytes=len(data), **fields)  # type: ignore[arg-type]
    assert created.upload is not None
    assert created.upload.method == "PUT"
    response = httpx.put(created.upload.url, content=data, headers=created.upload.headers)
    assert response.status_code == 200, response.text
    return created


def wait(sdk: luma_agents.Luma, generation_id: str) -> Generation:
    deadline = time.monotonic() + 10
    generation = sdk.generations.get(generation_id)
    while generation.state not in ("completed", "failed"):
        assert time.monotonic() < deadline, "generation never finished"
        generation = sdk.generations.get(generation_id)
    return generation


def test_sdk_files_flow(sdk: luma_agents.Luma, luma_emulator: LumaEmulator) -> None:
    luma_emulator.configure(file_ingest_seconds=0.05)
    created = upload(sdk, filename="fox.png")
    assert isinstance(created, CreateFileResponse)
    assert (created.state, created.file.state, created.file.filename) == ("pending", "pending", "fox.png")

    completed = sdk.files.complete(created.id)
    assert isinstance(completed, File)
    assert completed.state == "pending"
    deadline = time.monotonic() + 10
    file = sdk.files.get(created.id)
    while file.state == "pending":
        assert time.monotonic() < deadline, "file never left pending"
        file = sdk.files.get(created.id)
    assert (file.state, file.size_bytes, file.purpose) == ("ready", len(SOURCE), "input")
    assert file.created_at.tzinfo is not None

    others = [upload(sdk).id for _ in range(2)]
    first = sdk.files.list(limit=2)
    assert isinstance(first, FileList)
    assert ([f.id for f in first.data], first.has_more) == (others[::-1], True)
    assert first.next_cursor is not None
    second = sdk.files.list(limit=2, cursor=first.next_cursor)
    assert ([f.id for f in second.data], second.has_more, second.next_cursor) == ([created.id], False, None)
    assert [f.id for f in sdk.files.list(state="ready").data] == [created.id]

    edit = sdk.generations.create(prompt="make it blue", type="image_edit", source={"file_id": created.id})
    generation = wait(sdk, edit.id)
    assert generation.state == "completed" and generation.output is not None
    image = Image.open(io.BytesIO(httpx.get(generation.output[0].url).content))
    assert image.size == (48, 32)

    assert sdk.files.delete(created.id) is None
    deleted = sdk.files.get(created.id)
    assert deleted.state == "deleted" and deleted.deleted_at is not None
    assert [f.id for f in sdk.files.list(state="deleted").data] == [created.id]
    stats = luma_emulator.stats
    assert (stats.files_created, stats.file_uploads, stats.file_upload_bytes) == (3, 3, 3 * len(SOURCE))


def test_sdk_layering_job(sdk: luma_agents.Luma) -> None:
    created = upload(sdk)
    sdk.files.complete(created.id)
    job = sdk.generations.create(
        prompt="", type="layering", source={"file_id": created.id}, layering={"resolution": "1k"}
    )
    generation = wait(sdk, job.id)
    assert generation.state == "completed" and generation.output
    layers = [item.layer for item in generation.output]
    assert all(isinstance(layer, Layer) for layer in layers)
    assert [layer.index for layer in layers if layer] == list(range(len(layers)))
    assert layers[-1] is not None and layers[-1].alpha_hint == "none"
    for item in generation.output:
        image = Image.open(io.BytesIO(httpx.get(item.url).content))
        # 1k: half the session emulator's long edge (64), in the source's 3:2 shape.
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (32, 21))


def test_sdk_sees_the_files_errors(sdk: luma_agents.Luma) -> None:
    created = sdk.files.create(mime_type="image/png", size_bytes=10)
    with pytest.raises(luma_agents.ConflictError, match="File upload not received"):
        sdk.files.complete(created.id)
    with pytest.raises(luma_agents.NotFoundError, match="File not found"):
        sdk.files.get("d290f1ee-6c54-4b01-90e6-d701748f0851")
    with pytest.raises(luma_agents.BadRequestError, match="Unsupported mime_type"):
        sdk.files.create(mime_type="application/pdf", size_bytes=10)
    with pytest.raises(luma_agents.UnprocessableEntityError, match="file is not ready"):
        sdk.generations.create(prompt="x", type="image_edit", source={"file_id": created.id})


async def test_async_sdk_files_flow(luma_emulator: LumaEmulator) -> None:
    async with luma_agents.AsyncLuma(
        auth_token=luma_emulator.api_key, base_url=luma_emulator.base_url, max_retries=0
    ) as client:
        created = await client.files.create(
            mime_type="image/png", size_bytes=len(SOURCE), purpose="reference"
        )
        assert created.upload is not None
        async with httpx.AsyncClient() as storage:
            put = await storage.put(created.upload.url, content=SOURCE, headers=created.upload.headers)
        assert put.status_code == 200
        await client.files.complete(created.id)
        assert (await client.files.get(created.id)).state == "ready"
        assert [f.purpose for f in (await client.files.list(purpose="reference")).data] == ["reference"]
        await client.files.delete(created.id)
        assert (await client.files.get(created.id)).state == "deleted"
