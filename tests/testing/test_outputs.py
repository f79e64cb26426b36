"""Output URLs and images: presigned-style minting and expiry, S3-like refusals, real decodable pixels."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

    from .conftest import Clocked

RATIO_SIZES = {
    "3:1": (64, 21),
    "2:1": (64, 32),
    "16:9": (64, 36),
    "3:2": (64, 43),
    "1:1": (64, 64),
    "2:3": (43, 64),
    "9:16": (36, 64),
    "1:2": (32, 64),
    "1:3": (21, 64),
    None: (64, 64),
}


def completed(api: httpx.Client, emulator: LumaEmulator, **body: object) -> dict:
    """Create a generation, force it completed, and return the GET body."""
    response = api.post("/generations", json={"prompt": "a lighthouse", **body})
    assert response.status_code == 201, response.text
    generation_id = response.json()["id"]
    emulator.set_state(generation_id, "completed")
    result: dict = api.get(f"/generations/{generation_id}").json()
    return result


def download(url: str, **kwargs: object) -> httpx.Response:
    return httpx.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_url_is_presigned_style_on_the_emulator(clocked: Clocked) -> None:
    body = completed(clocked.api, clocked.emulator)
    url = urlsplit(body["output"][0]["url"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}" == clocked.emulator.root_url
    assert url.path == f"/outputs/{body['id']}/output.png"
    assert query["X-Amz-Expires"] == "3600"
    assert query["X-Amz-Date"] == "20260408T120000Z"
    assert len(query["X-Amz-Signature"]) == 64


def test_each_get_mints_a_fresh_url(clocked: Clocked) -> None:
    body = completed(clocked.api, clocked.emulator)
    clocked.clock.advance(5)
    again = clocked.api.get(f"/generations/{body['id']}").json()
    assert again["output"][0]["url"] != body["output"][0]["url"]
    assert "X-Amz-Date=20260408T120005Z" in again["output"][0]["url"]
    assert download(body["output"][0]["url"]).status_code == 200
    assert download(again["output"][0]["url"]).status_code == 200


def test_url_expires_after_its_ttl_with_an_s3_error(clocked: Clocked) -> None:
    clocked.emulator.configure(url_ttl_seconds=60)
    body = completed(clocked.api, clocked.emulator)
    url = body["output"][0]["url"]
    clocked.clock.advance(60)
    assert download(url).status_code == 200
    clocked.clock.advance(1)
    expired = download(url)
    assert expired.status_code == 403
    assert expired.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.text
    # The image is still there: a new GET mints a working URL.
    fresh = clocked.api.get(f"/generations/{body['id']}").json()["output"][0]["url"]
    assert download(fresh).status_code == 200


def test_expire_output_urls_retires_every_minted_url(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    bodies = [completed(api, luma_emulator) for _ in range(2)]
    luma_emulator.expire_output_urls()
    for body in bodies:
        response = download(body["output"][0]["url"])
        assert response.status_code == 403
        assert "Request has expired" in response.text
    fresh = api.get(f"/generations/{bodies[0]['id']}").json()["output"][0]["url"]
    assert download(fresh).status_code == 200


def test_tampered_or_unsigned_urls_are_refused(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    url = completed(api, luma_emulator)["output"][0]["url"]
    tampered = download(url[:-4] + "0000")
    assert tampered.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in tampered.text
    assert download(url.split("?")[0]).status_code == 403


def test_authorization_header_is_refused_like_s3(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    url = completed(api, luma_emulator)["output"][0]["url"]
    refused = download(url, headers={"Authorization": f"Bearer {luma_emulator.api_key}"})
    assert refused.status_code == 400
    assert "<Code>InvalidArgument</Code>" in refused.text
    assert "Only one auth mechanism allowed" in refused.text
    assert luma_emulator.stats.output_authorization_refused == 1
    # Output responses are storage responses, not API ones.
    assert "X-API-Version" not in refused.headers


def test_unfinished_generation_has_no_url_and_no_object(clocked: Clocked) -> None:
    generation_id = clocked.api.post("/generations", json={"prompt": "x"}).json()["id"]
    assert clocked.api.get(f"/generations/{generation_id}").json()["output"] == []


@pytest.mark.parametrize("ratio", list(RATIO_SIZES))
@pytest.mark.parametrize("output_format", ["png", "jpeg", None])
def test_images_are_real_and_sized_by_ratio(
    api: httpx.Client, luma_emulator: LumaEmulator, ratio: str | None, output_format: str | None
) -> None:
    body = completed(api, luma_emulator, aspect_ratio=ratio, output_format=output_format)
    response = download(body["output"][0]["url"])
    assert response.status_code == 200
    expected = {"png": "PNG", "jpeg": "JPEG", None: "PNG"}[output_format]
    assert response.headers["content-type"] == f"image/{expected.lower()}"
    assert int(response.headers["content-length"]) == len(response.content)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert (image.format, image.size) == (expected, RATIO_SIZES[ratio])
    assert (
        body["output"][0]["url"].split("?")[0].endswith("output.jpg" if expected == "JPEG" else "output.png")
    )


def test_images_are_deterministic_per_prompt(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    def fetch(prompt: str) -> bytes:
        return download(completed(api, luma_emulator, prompt=prompt)["output"][0]["url"]).content

    assert fetch("a red barn") == fetch("a red barn")
    assert fetch("a red barn") != fetch("a blue barn")


def test_long_edge_is_configurable(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.configure(long_edge=300)
    body = completed(api, luma_emulator, aspect_ratio="16:9", output_format="jpeg")
    assert Image.open(io.BytesIO(download(body["output"][0]["url"]).content)).size == (300, 169)


def _encoded(fmt: str, size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_edit_keeps_the_size_of_a_base64_source(
    api: httpx.Client, luma_emulator: LumaEmulator, fmt: str, media_type: str
) -> None:
    source = {"data": _encoded(fmt, (50, 30)), "media_type": media_type}
    body = completed(api, luma_emulator, type="image_edit", source=source, aspect_ratio="1:3")
    assert Image.open(io.BytesIO(download(body["output"][0]["url"]).content)).size == (50, 30)


def test_edit_of_a_generation_keeps_its_size_and_a_url_source_gets_the_default(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    first = completed(api, luma_emulator, aspect_ratio="2:1")
    edit = completed(api, luma_emulator, type="image_edit", source={"generation_id": first["id"]})
    assert Image.open(io.BytesIO(download(edit["output"][0]["url"]).content)).size == (64, 32)
    by_url = completed(api, luma_emulator, type="image_edit", source={"url": "https://e.com/a.png"})
    assert Image.open(io.BytesIO(download(by_url["output"][0]["url"]).content)).size == (64, 64)


@pytest.mark.parametrize("output_format", ["png", "jpeg"])
def test_padding_makes_outputs_large_and_streams_them(
    api: httpx.Client, luma_emulator: LumaEmulator, output_format: str
) -> None:
    luma_emulator.configure(output_padding_bytes=3_000_000)
    url = completed(api, luma_emulator, output_format=output_format)["output"][0]["url"]
    pieces = []
    with httpx.stream("GET", url, timeout=10) as response:
        assert response.headers["content-length"] == "3000000"
        pieces = list(response.iter_raw())
    data = b"".join(pieces)
    assert len(data) == 3_000_000
    assert len(pieces) > 1
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == (64, 64)
