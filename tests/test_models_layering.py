"""The layering job in the models: its request rules, its unknown price, and its layered outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.models import (
    Generation,
    GenerationRequest,
    Layer,
    estimate_cost_of_described,
)

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
SOURCE = "https://example.com/poster.png"


def layering(**fields: Any) -> GenerationRequest:
    return GenerationRequest.build(**{"type": "layering", "source": SOURCE, **fields})


# ------------------------------------------------------------------------------------- requests


def test_a_layering_job_needs_no_prompt_and_sends_none() -> None:
    for prompt in (None, ""):
        request = layering(prompt=prompt)
        assert request.to_json() == {"type": "layering", "model": "uni-1", "source": {"url": SOURCE}}
    # Without a prompt at all: the build takes none either.
    assert layering().to_json() == layering(prompt="").to_json()


def test_a_layering_job_serialises_its_options_prompt_and_source_in_every_form() -> None:
    request = layering(prompt="split the hero from the sky", layering={"resolution": "2k"})
    assert request.to_json() == {
        "type": "layering",
        "model": "uni-1",
        "prompt": "split the hero from the sky",
        "layering": {"resolution": "2k"},
        "source": {"url": SOURCE},
    }
    for source, sent in ((GEN_ID, {"generation_id": GEN_ID}), ({"file_id": GEN_ID}, {"file_id": GEN_ID})):
        assert layering(source=source).to_json()["source"] == sent
    assert "layering" not in layering(layering={}).to_json()  # {} asks for the defaults, as None does


def test_the_layering_options_are_in_the_description_and_the_fingerprint() -> None:
    one_k, two_k = layering(layering={"resolution": "1k"}), layering(layering={"resolution": "2k"})
    assert two_k.describe()["layering"] == {"resolution": "2k"}
    assert one_k.fingerprint() != two_k.fingerprint() != layering().fingerprint()
    assert two_k.fingerprint() == layering(layering={"resolution": "2k"}).fingerprint()


def test_the_options_are_copied_so_a_later_change_cannot_bypass_the_check() -> None:
    options = {"resolution": "2k"}
    request = layering(layering=options)
    options["resolution"] = "8k"
    request.to_json()["layering"]["resolution"] = "8k"
    assert request.to_json()["layering"] == {"resolution": "2k"}
    assert hash(request) == hash(layering(layering={"resolution": "2k"}))


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"model": "uni-1-max"}, "model", "'uni-1' only"),
        ({"source": None}, "source", "required for type 'layering'"),
        ({"image_ref": [SOURCE]}, "image_ref", "not valid for type 'layering'"),
        ({"prompt": "x" * 501}, "prompt", "at most 500 characters for type 'layering' (got 501)"),
        ({"prompt": 7}, "prompt", "500"),
        ({"aspect_ratio": "16:9"}, "aspect_ratio", "plans the layers from the source"),
        ({"style": "auto"}, "style", "plans the layers from the source"),
        ({"layering": {"resolution": "4k"}}, "layering", "valid: 1k, 2k"),
        ({"layering": {"resolution": None}}, "layering", "valid: 1k, 2k"),
        ({"layering": {"layers": 4}}, "layering", "unknown keys ['layers']; valid: resolution"),
        ({"layering": "2k"}, "layering", "expected a mapping {'resolution': '1k' | '2k'}"),
    ],
)
def test_what_a_layering_job_refuses_names_the_field(fields: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(LumaRequestValidationError) as caught:
        layering(**fields)
    assert caught.value.field == field
    assert says in str(caught.value)


def test_a_prompt_of_500_characters_is_the_longest_a_layering_job_takes() -> None:
    assert layering(prompt="x" * 500).to_json()["prompt"] == "x" * 500


@pytest.mark.parametrize("other", ["image", "image_edit"])
def test_the_layering_options_belong_to_layering_alone(other: str) -> None:
    source = {"source": SOURCE} if other == "image_edit" else {}
    with pytest.raises(LumaRequestValidationError) as caught:
        GenerationRequest.build(prompt="x", type=other, layering={"resolution": "1k"}, **source)
    assert caught.value.field == "layering" and "only valid for type 'layering'" in str(caught.value)


def test_the_other_types_keep_their_prompt_rule() -> None:
    # The optional prompt is layering's alone: an image still needs 1 to 6000 characters.
    for prompt in (None, ""):
        with pytest.raises(LumaRequestValidationError, match="between 1 and 6000"):
            GenerationRequest.build(prompt=prompt)
    with pytest.raises(LumaRequestValidationError, match="only valid for type 'image_edit' or 'layering'"):
        GenerationRequest.build(prompt="x", source=SOURCE)


# ----------------------------------------------------------------------------------------- price


def test_a_layering_job_has_no_price_rather_than_a_guess() -> None:
    for options in (None, {"resolution": "1k"}, {"resolution": "2k"}):
        request = layering(layering=options)
        assert request.estimated_cost_usd() is None
        assert estimate_cost_of_described(request.describe()) is None
    # The source would count as an input image on an edit; the type, not the inputs, is what is unpriced.
    assert (
        GenerationRequest.build(prompt="x", type="image_edit", source=SOURCE).estimated_cost_usd() == 0.0434
    )


# --------------------------------------------------------------------------------------- outputs


def _layer(index: int, label: str, alpha_hint: str = "soft", **extra: Any) -> dict[str, Any]:
    return {"index": index, "label": label, "description": f"The {label}", "alpha_hint": alpha_hint, **extra}


def layered_body(*layers: Any) -> dict[str, Any]:
    return {
        "id": GEN_ID,
        "type": "layering",
        "state": "completed",
        "model": "uni-1",
        "created_at": "2026-04-08T12:00:00Z",
        "output": [
            {
                "type": "image",
                "url": f"https://s.example/layer-{i}.png?X-Amz-Signature=secret",
                "layer": layer,
            }
            for i, layer in enumerate(layers)
        ],
    }


def test_each_output_of_a_layering_job_carries_its_layer() -> None:
    generation = Generation.from_json(
        layered_body(_layer(0, "fox"), _layer(1, "lamp", "hard"), _layer(2, "background", "none"))
    )
    assert [output.layer for output in generation.output] == [
        Layer(0, "fox", "The fox", "soft"),
        Layer(1, "lamp", "The lamp", "hard"),
        Layer(2, "background", "The background", "none"),
    ]


def test_the_summary_lists_the_layers_by_output_without_urls() -> None:
    summary = Generation.from_json(layered_body(_layer(0, "fox"), _layer(1, "background", "none"))).summary()
    assert summary["output_count"] == 2
    assert summary["layers"] == [
        {"output_index": 0, "index": 0, "label": "fox", "description": "The fox", "alpha_hint": "soft"},
        {
            "output_index": 1,
            "index": 1,
            "label": "background",
            "description": "The background",
            "alpha_hint": "none",
        },
    ]
    assert "secret" not in json.dumps(summary) and "s.example" not in json.dumps(summary)


def test_an_image_has_no_layers() -> None:
    body = {**layered_body(None), "type": "image"}
    generation = Generation.from_json(body)
    assert generation.output[0].layer is None and generation.summary()["layers"] == []


@pytest.mark.parametrize(
    ("layer", "read"),
    [
        # Keys this provider does not know (a newer API's) are ignored.
        (_layer(1, "fox", z_order=3, mask_url="https://x"), Layer(1, "fox", "The fox", "soft")),
        # Missing or non-text captions read as empty; an unknown hint is kept as sent.
        ({"index": 2, "label": 5, "alpha_hint": "feathered"}, Layer(2, "", "", "feathered")),
        # Without a readable index it is no layer: the image still stores, by its output position.
        ({"label": "fox"}, None),
        ({"index": "1", "label": "fox"}, None),
        ({"index": True, "label": "fox"}, None),
        ({"index": -1, "label": "fox"}, None),
        ("fox", None),
        ([0, "fox"], None),
    ],
)
def test_a_layer_is_read_leniently_and_a_bad_one_costs_no_output(layer: Any, read: Layer | None) -> None:
    generation = Generation.from_json(layered_body(layer))
    assert len(generation.output) == 1 and generation.output[0].url.startswith("https://s.example/")
    assert generation.output[0].layer == read


def test_a_layer_round_trips_through_its_json() -> None:
    layer = Layer(2, "background", "The scene behind", "none")
    assert Layer.from_json(json.loads(json.dumps(layer.to_json()))) == layer


def test_layering_refuses_jpeg_and_reads_empty_options_as_none() -> None:
    from airflow_provider_luma.exceptions import LumaRequestValidationError
    from airflow_provider_luma.models import GenerationRequest

    source = "https://example.com/poster.png"
    with pytest.raises(LumaRequestValidationError) as raised:
        GenerationRequest.build(type="layering", source=source, output_format="jpeg")
    assert raised.value.field == "output_format"
    empty = GenerationRequest.build(type="layering", source=source, layering={})
    assert empty.layering is None
    assert empty.fingerprint() == GenerationRequest.build(type="layering", source=source).fingerprint()
    with pytest.raises(LumaRequestValidationError):
        GenerationRequest.build(type="layering", source=source, layering="")


def test_layer_text_from_the_server_is_bounded() -> None:
    from airflow_provider_luma.models import Layer

    layer = Layer.from_json(
        {"index": 0, "label": "x" * 10_000, "description": "y" * 100_000, "alpha_hint": "soft"}
    )

    assert layer is not None
    assert len(layer.label) == 64 and layer.label.endswith("\u2026")
    assert len(layer.description) == 500 and layer.alpha_hint == "soft"
