"""What the docs say the API refuses, over HTTP: media by content, fetchable URLs, ids, ownership, faults."""

from __future__ import annotations

import base64
import io
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

from airflow_provider_luma.testing import Fault

from .conftest import api_client, image_bytes
from .test_files import uploaded

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

    from .conftest import Clocked


EDIT_SOURCE = {"url": "https://cdn.example.com/a.png"}


def data_ref(data: bytes, media_type: str = "image/png") -> dict[str, str]:
    return {"data": base64.b64encode(data).decode(), "media_type": media_type}


def refused(api: httpx.Client, body: dict[str, Any]) -> tuple[int, Any]:
    response = api.post("/generations", json=body)
    return response.status_code, response.json()


# --- media by content ----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"hello, world", b"", b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_data_that_is_not_an_image_is_refused_whatever_its_media_type(api: httpx.Client, data: bytes) -> None:
    assert refused(api, {"prompt": "x", "image_ref": [data_ref(data)]}) == (
        422,
        {"detail": "image_ref[0]: content-type is not an image"},
    )
    edit = {"prompt": "x", "type": "image_edit", "source": data_ref(data, "image/jpeg")}
    assert refused(api, edit) == (422, {"detail": "source: content-type is not an image"})


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "GIF"])
def test_every_documented_format_is_an_image(api: httpx.Client, image_format: str) -> None:
    ref = data_ref(image_bytes(8, 4, image_format), f"image/{image_format.lower()}")
    assert api.post("/generations", json={"prompt": "x", "image_ref": [ref]}).status_code == 201


# --- URL references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.com/a.png",
        "https://localhost/a.png",
        "https://images.localhost/a.png",
        "https://127.0.0.1/a.png",
        "https://127.8.9.10:8443/a.png",
        "https://[::1]/a.png",
        "https://10.0.0.5/a.png",
        "https://172.16.3.4/a.png",
        "https://192.168.1.10/a.png",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/a.png",
        "https://[::ffff:10.0.0.1]/a.png",
        "https://2130706433/a.png",
        "https://0.0.0.0/a.png",
        "ftp://cdn.example.com/a.png",
        "https:///a.png",
        "not a url",
    ],
)
def test_urls_the_fetch_proxy_would_not_fetch_are_422(api: httpx.Client, url: str) -> None:
    assert refused(api, {"prompt": "x", "image_ref": [{"url": url}]}) == (
        422,
        {"detail": "image_ref[0]: failed to fetch URL"},
    )


@pytest.mark.parametrize(
    "url", ["https://cdn.example.com/a.png", "https://8.8.8.8/a.png", "https://[2606:4700::1]/a"]
)
def test_public_https_urls_are_accepted(api: httpx.Client, url: str) -> None:
    assert api.post("/generations", json={"prompt": "x", "image_ref": [{"url": url}]}).status_code == 201


def test_allow_loopback_urls_lets_a_local_test_server_through(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    local = {"url": f"{luma_emulator.root_url}/outputs/x/output.png"}
    body = {"prompt": "x", "type": "image_edit", "source": local}
    assert refused(api, body) == (422, {"detail": "source: failed to fetch URL"})
    luma_emulator.configure(allow_loopback_urls=True)
    assert api.post("/generations", json=body).status_code == 201
    # Only loopback: private addresses stay refused.
    private = {"prompt": "x", "image_ref": [{"url": "http://10.0.0.5/a.png"}]}
    assert refused(api, private)[0] == 422


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spell",
    [
        lambda gid: gid.replace("-", ""),
        lambda gid: "{" + gid + "}",
        lambda gid: "urn:uuid:" + gid,
    ],
    ids=["unhyphenated", "braces", "urn"],
)
def test_only_canonical_uuids_name_a_generation(
    api: httpx.Client, luma_emulator: LumaEmulator, spell: Any
) -> None:
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    luma_emulator.set_state(generation_id, "completed")
    response = api.get(f"/generations/{spell(generation_id)}")
    assert (response.status_code, response.json()) == (404, {"detail": "Generation not found"})
    edit = {"prompt": "x", "type": "image_edit", "source": {"generation_id": spell(generation_id)}}
    assert refused(api, edit) == (422, {"detail": "source: generation not found"})
    canonical = {"prompt": "x", "type": "image_edit", "source": {"generation_id": generation_id}}
    assert api.post("/generations", json=canonical).status_code == 201


# --- file_id references --------------------------------------------------------------------------


def test_a_ready_file_sizes_an_edit(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    file_id = uploaded(api, image_bytes(40, 20))
    body = {"prompt": "x", "type": "image_edit", "source": {"file_id": file_id}, "aspect_ratio": "9:16"}
    generation_id = api.post("/generations", json=body).json()["id"]
    luma_emulator.set_state(generation_id, "completed")
    [output] = api.get(f"/generations/{generation_id}").json()["output"]
    assert Image.open(io.BytesIO(httpx.get(output["url"]).content)).size == (40, 20)


def test_file_references_must_be_ready_and_owned(clocked: Clocked) -> None:
    api = clocked.api
    clocked.emulator.configure(file_ingest_seconds=10)

    def edit(file_id: str, where: str = "source") -> tuple[int, Any]:
        ref = {"file_id": file_id}
        body: dict[str, Any] = {"prompt": "x", "type": "image_edit", "source": ref}
        if where == "image_ref":
            body["image_ref"] = [ref]
            body["source"] = EDIT_SOURCE
        return refused(api, body)

    pending = uploaded(api)
    assert edit(pending) == (422, {"detail": "source: file is not ready (state: pending)"})
    assert edit(pending, "image_ref") == (422, {"detail": "image_ref[0]: file is not ready (state: pending)"})
    failed = uploaded(api, b"not a png")
    deleted = uploaded(api)
    api.delete(f"/files/{deleted}")
    expired = uploaded(api)
    clocked.emulator.expire_file(expired)
    with api_client(clocked.emulator, key=clocked.emulator.other_api_key) as other:
        theirs = uploaded(other)
    clocked.clock.advance(10)

    assert edit(pending)[0] == 201
    assert edit(failed) == (422, {"detail": "source: file is not ready (state: failed)"})
    assert edit(deleted) == (422, {"detail": "source: file is not ready (state: deleted)"})
    assert edit(expired) == (422, {"detail": "source: file is not ready (state: deleted)"})
    assert edit(theirs, "image_ref") == (422, {"detail": "image_ref[0]: file not found"})
    assert edit(str(uuid.uuid4())) == (422, {"detail": "source: file not found"})
    assert edit(pending.replace("-", "")) == (422, {"detail": "source: file not found"})


# --- ownership of generations --------------------------------------------------------------------


def test_another_clients_generations_are_invisible(
    api: httpx.Client, other_api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    mine = api.post("/generations", json={"prompt": "x"}).json()["id"]
    luma_emulator.set_state(mine, "completed")
    theirs = other_api.post("/generations", json={"prompt": "x"}).json()["id"]
    for client, foreign in ((other_api, mine), (api, theirs)):
        response = client.get(f"/generations/{foreign}")
        assert (response.status_code, response.json()) == (404, {"detail": "Generation not found"})
    chained = {"prompt": "x", "type": "image_edit", "source": {"generation_id": mine}}
    assert refused(other_api, chained) == (422, {"detail": "source: generation not found"})
    assert api.get(f"/generations/{mine}").status_code == 200


def test_each_client_has_its_own_rate_limits(
    api: httpx.Client, other_api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    luma_emulator.configure(rpm_limit=1, concurrency_limit=5)
    assert api.post("/generations", json={"prompt": "x"}).status_code == 201
    assert api.post("/generations", json={"prompt": "x"}).status_code == 429
    other = other_api.post("/generations", json={"prompt": "x"})
    assert (other.status_code, other.headers["X-RateLimit-Remaining"]) == (201, "0")


def test_a_key_added_to_the_other_client_sees_its_work(
    luma_emulator: LumaEmulator, other_api: httpx.Client
) -> None:
    luma_emulator.add_api_key("luma-api-other-colleague", other_client=True)
    theirs = other_api.post("/generations", json={"prompt": "x"}).json()["id"]
    with api_client(luma_emulator, key="luma-api-other-colleague") as colleague:
        assert colleague.get(f"/generations/{theirs}").status_code == 200


# --- faults come after authentication ------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer luma-api-never-issued", "bearer {key}"])
def test_a_queued_fault_waits_for_an_authenticated_request(
    api: httpx.Client, luma_emulator: LumaEmulator, authorization: str | None
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=402))
    luma_emulator.add_fault(Fault(method="GET", kind="drop"))
    luma_emulator.add_fault(Fault(method="FILES", status=503))
    headers = (
        {} if authorization is None else {"Authorization": authorization.format(key=luma_emulator.api_key)}
    )
    with httpx.Client(base_url=luma_emulator.base_url, headers=headers) as anonymous:
        responses = [
            anonymous.post("/generations", json={"prompt": "x"}),
            anonymous.get(f"/generations/{uuid.uuid4()}"),
            anonymous.get("/files"),
        ]
    assert [r.status_code for r in responses] == [401, 401, 401]
    assert len(luma_emulator.pending_faults()) == 3
    assert api.post("/generations", json={"prompt": "x"}).status_code == 402
    assert api.get("/files").status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(f"/generations/{uuid.uuid4()}")
    assert luma_emulator.pending_faults() == []


# --- models, types and ratios --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["video", "video_edit", "video_reframe"])
@pytest.mark.parametrize("model", ["uni-1", "uni-1-max"])
def test_video_types_on_an_image_model_name_the_type(api: httpx.Client, kind: str, model: str) -> None:
    assert refused(api, {"prompt": "x", "type": kind, "model": model}) == (
        400,
        {"detail": f"Type '{kind}' is not supported for model '{model}'"},
    )


@pytest.mark.parametrize("kind", ["image", "image_edit", "layering"])
def test_image_types_on_ray_name_the_type(api: httpx.Client, kind: str) -> None:
    assert refused(api, {"prompt": "x", "type": kind, "model": "ray-3.2"}) == (
        400,
        {"detail": f"Type '{kind}' is not supported for model 'ray-3.2'"},
    )


@pytest.mark.parametrize("ratio", ["16:9", "4:3", "21:9", "1:1"])
def test_aspect_ratio_is_ignored_on_an_edit(
    api: httpx.Client, luma_emulator: LumaEmulator, ratio: str
) -> None:
    source = data_ref(image_bytes(30, 10))
    body = {"prompt": "x", "type": "image_edit", "source": source, "aspect_ratio": ratio, "style": "manga"}
    generation_id = api.post("/generations", json=body).json()["id"]
    luma_emulator.set_state(generation_id, "completed")
    [output] = api.get(f"/generations/{generation_id}").json()["output"]
    assert Image.open(io.BytesIO(httpx.get(output["url"]).content)).size == (30, 10)


@pytest.mark.parametrize("ratio", ["5:4", 5])
@pytest.mark.parametrize("kind", ["image", "image_edit"])
def test_a_ratio_outside_the_sdk_enum_is_a_schema_error(api: httpx.Client, kind: str, ratio: Any) -> None:
    body = {
        "prompt": "x",
        "type": kind,
        "source": EDIT_SOURCE if kind == "image_edit" else None,
        "aspect_ratio": ratio,
    }
    response = api.post("/generations", json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == ("enum", ["body", "aspect_ratio"])
    assert error["msg"].startswith("Input should be '3:1', '2:1', '21:9'") and error["msg"].endswith(
        " or '1:3'"
    )
