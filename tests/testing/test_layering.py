"""``type: "layering"`` over real HTTP: what is refused, and the layers as real RGBA PNGs."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

from .conftest import image_bytes

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

#: 48 x 24: a 2:1 source, so a layer's shape shows it follows the source.
SOURCE = {"data": base64.b64encode(image_bytes(48, 24)).decode(), "media_type": "image/png"}


def completed(api: httpx.Client, emulator: LumaEmulator, **body: Any) -> dict[str, Any]:
    created = api.post("/generations", json={"type": "layering", "source": SOURCE, **body})
    assert created.status_code == 201, created.text
    emulator.set_state(created.json()["id"], "completed")
    generation: dict[str, Any] = api.get(f"/generations/{created.json()['id']}").json()
    return generation


def download(url: str) -> Image.Image:
    response = httpx.get(url)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "image/png")
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"model": "uni-1-max", "source": SOURCE}, "Type 'layering' is not supported for model 'uni-1-max'"),
        ({}, "source is required for type 'layering'"),
        ({"source": None}, "source is required for type 'layering'"),
        ({"source": SOURCE, "image_ref": [SOURCE]}, "image_ref is not supported for type 'layering'"),
        (
            {"source": SOURCE, "layering": {"resolution": "4k"}},
            "Invalid layering.resolution '4k'. Valid: 1k, 2k",
        ),
        (
            {"source": SOURCE, "prompt": "x" * 501},
            "Prompt must be at most 500 characters for type 'layering'",
        ),
    ],
)
def test_layering_refusals(api: httpx.Client, luma_emulator: LumaEmulator, body: dict, detail: str) -> None:
    response = api.post("/generations", json={"type": "layering", **body})
    assert (response.status_code, response.json()) == (400, {"detail": detail})
    assert luma_emulator.stats.generations_created == 0


@pytest.mark.parametrize("prompt", [{}, {"prompt": ""}, {"prompt": None}, {"prompt": "x" * 500}])
def test_the_prompt_is_optional_up_to_500_characters(api: httpx.Client, prompt: dict) -> None:
    response = api.post("/generations", json={"type": "layering", "source": SOURCE, **prompt})
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "layering"


@pytest.mark.parametrize("options", [None, {}, {"resolution": None}, {"resolution": "1k"}])
def test_layering_options_may_be_left_out(api: httpx.Client, options: Any) -> None:
    response = api.post("/generations", json={"type": "layering", "source": SOURCE, "layering": options})
    assert response.status_code == 201, response.text


def test_layering_options_must_be_an_object(api: httpx.Client) -> None:
    response = api.post("/generations", json={"type": "layering", "source": SOURCE, "layering": "2k"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "layering"]


def test_a_completed_job_has_layers_front_to_back(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    generation = completed(api, luma_emulator)
    output = generation["output"]
    assert len(output) == 3
    assert [item["type"] for item in output] == ["image"] * 3
    layers = [item["layer"] for item in output]
    assert [layer["index"] for layer in layers] == [0, 1, 2]
    assert [layer["alpha_hint"] for layer in layers] == ["soft", "hard", "none"]
    assert layers[-1]["label"] == "background"
    for layer in layers:
        assert set(layer) == {"index", "label", "description", "alpha_hint"}
        assert layer["label"] and layer["description"]
    assert len({item["url"] for item in output}) == 3


def test_each_layer_is_an_rgba_png_transparent_outside_its_shape(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    output = completed(api, luma_emulator, layering={"resolution": "2k"})["output"]
    subject, prop, background = (download(item["url"]) for item in output)
    for image in (subject, prop, background):
        # 2k: the session emulator's long edge (64), in the source's 2:1 shape.
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (64, 32))
    corners = [(0, 0), (63, 0), (0, 31), (63, 31)]
    for foreground in (subject, prop):
        alpha = foreground.getchannel("A")
        assert [alpha.getpixel(corner) for corner in corners] == [0] * 4
        assert alpha.getextrema() == (0, 255)
    # The subject's edge is feathered; the prop's is sharp; the background is opaque everywhere.
    assert set(subject.getchannel("A").tobytes()) > {0, 255}
    assert set(prop.getchannel("A").tobytes()) == {0, 255}
    assert background.getchannel("A").getextrema() == (255, 255)
    # The two foreground layers cover different pixels.
    subject_mask = subject.getchannel("A").tobytes()
    prop_mask = prop.getchannel("A").tobytes()
    assert not any(s == 255 and p == 255 for s, p in zip(subject_mask, prop_mask, strict=True))


def test_1k_layers_have_half_the_long_edge(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    output = completed(api, luma_emulator, layering={"resolution": "1k"})["output"]
    assert {download(item["url"]).size for item in output} == {(32, 16)}


def test_layers_follow_a_generation_source(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    tall = api.post("/generations", json={"prompt": "x", "aspect_ratio": "1:2"}).json()["id"]
    luma_emulator.set_state(tall, "completed")
    output = completed(api, luma_emulator, source={"generation_id": tall}, layering={"resolution": "2k"})[
        "output"
    ]
    assert download(output[0]["url"]).size == (32, 64)


def test_layers_are_deterministic_per_generation(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    first = completed(api, luma_emulator)
    again = api.get(f"/generations/{first['id']}").json()
    assert [item["layer"] for item in again["output"]] == [item["layer"] for item in first["output"]]
    assert [httpx.get(i["url"]).content for i in again["output"]] == [
        httpx.get(i["url"]).content for i in first["output"]
    ]


def test_a_layering_job_waits_like_any_other(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    created = api.post("/generations", json={"type": "layering", "source": SOURCE}).json()
    assert (created["state"], created["output"]) == ("queued", [])
    luma_emulator.set_state(created["id"], "failed")
    assert api.get(f"/generations/{created['id']}").json()["output"] == []
