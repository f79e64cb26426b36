"""Request validation, serialisation, fingerprints, prices and the Generation model."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import pytest

from airflow_provider_luma.exceptions import LumaRequestValidationError, LumaUnexpectedResponseError
from airflow_provider_luma.models import (
    ASPECT_RATIOS,
    MAX_IMAGE_BYTES,
    FailureCode,
    Generation,
    GenerationRequest,
    GenerationState,
    ImageRef,
    estimate_cost_of_described,
    estimate_cost_usd,
    failure_code_is_retryable,
    is_generation_id,
)

GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 30).decode()


def field_of(**kwargs: Any) -> str:
    with pytest.raises(LumaRequestValidationError) as caught:
        GenerationRequest.build(**{"prompt": "a fox", **kwargs})
    return caught.value.field


# ------------------------------------------------------------------------------------ validation


def test_a_minimal_request_serialises_to_the_documented_body() -> None:
    request = GenerationRequest.build(prompt="a fox")
    assert request.to_json() == {"prompt": "a fox", "type": "image", "model": "uni-1"}


def test_every_field_serialises() -> None:
    request = GenerationRequest.build(
        prompt="a fox",
        model="uni-1-max",
        aspect_ratio="9:16",
        style="manga",
        output_format="jpeg",
        web_search=True,
        image_ref=["https://example.com/a.png", {"data": PNG_B64, "media_type": "image/png"}, GEN_ID],
        user_id="user-1",
    )
    assert request.to_json() == {
        "prompt": "a fox",
        "type": "image",
        "model": "uni-1-max",
        "aspect_ratio": "9:16",
        "style": "manga",
        "output_format": "jpeg",
        "user_id": "user-1",
        "web_search": True,
        "image_ref": [
            {"url": "https://example.com/a.png"},
            {"data": PNG_B64, "media_type": "image/png"},
            {"generation_id": GEN_ID},
        ],
    }


@pytest.mark.parametrize(
    ("kwargs", "field", "names"),
    [
        ({"model": "ray-3.2"}, "model", "uni-1-max"),
        ({"type": "video"}, "type", "image_edit"),
        ({"prompt": ""}, "prompt", "6000"),
        ({"prompt": "x" * 6001}, "prompt", "6001"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio", "16:9"),
        ({"style": "anime"}, "style", "manga"),
        ({"output_format": "webp"}, "output_format", "jpeg"),
        ({"web_search": "yes"}, "web_search", "true or false"),
        ({"style": "manga", "aspect_ratio": "16:9"}, "aspect_ratio", "portrait"),
        ({"source": "https://example.com/a.png"}, "source", "image_edit"),
        ({"type": "image_edit"}, "source", "required"),
        ({"image_ref": ["https://example.com/a.png"] * 10}, "image_ref", "at most 9"),
        (
            {"type": "image_edit", "source": GEN_ID, "image_ref": ["https://example.com/a.png"] * 9},
            "image_ref",
            "source occupies",
        ),
        ({"image_ref": ["http://example.com/a.png"]}, "image_ref[0]", "https://"),
        ({"image_ref": [{}]}, "image_ref[0]", "exactly one"),
        ({"image_ref": [{"url": "https://e.com/a.png", "data": PNG_B64}]}, "image_ref[0]", "exactly one"),
        ({"image_ref": [{"data": PNG_B64}]}, "image_ref[0]", "media_type"),
        # An empty string is a value the API would receive, not an absent field.
        ({"image_ref": [{"url": "", "generation_id": GEN_ID}]}, "image_ref[0]", "exactly one"),
        ({"image_ref": [{"data": "not base64!", "media_type": "image/png"}]}, "image_ref[0]", "base64"),
        ({"image_ref": [{"generation_id": "nope"}]}, "image_ref[0]", "UUID"),
        ({"image_ref": [{"file_id": "file-123"}]}, "image_ref[0]", "'file_id' must be a UUID"),
        ({"image_ref": [{"weight": 0.5, "url": "https://e.com/a.png"}]}, "image_ref[0]", "unknown keys"),
        ({"image_ref": ["s3://bucket/key.png"]}, "image_ref[0]", "https://"),
        ({"image_ref": [42]}, "image_ref[0]", "int"),
        ({"user_id": 7}, "user_id", "string"),
    ],
)
def test_invalid_requests_name_the_field_and_the_valid_values(
    kwargs: dict[str, Any], field: str, names: str
) -> None:
    with pytest.raises(LumaRequestValidationError) as caught:
        GenerationRequest.build(**{"prompt": "a fox", **kwargs})
    assert caught.value.field == field
    assert names in str(caught.value)


def test_all_nine_ratios_are_accepted_and_manga_takes_portrait_ones() -> None:
    for ratio in ASPECT_RATIOS:
        GenerationRequest.build(prompt="x", aspect_ratio=ratio)
    for ratio in ("2:3", "9:16", "1:2", "1:3", None):
        GenerationRequest.build(prompt="x", style="manga", aspect_ratio=ratio)


def test_an_oversized_base64_image_is_refused_without_decoding() -> None:
    # 4 base64 characters decode to 3 bytes: one block more than the limit.
    data = "A" * ((MAX_IMAGE_BYTES // 3 + 1) * 4)
    with pytest.raises(LumaRequestValidationError, match="50 MB"):
        ImageRef(data=data, media_type="image/png", field_name="source")


def test_image_edit_with_eight_references_is_accepted() -> None:
    request = GenerationRequest.build(
        prompt="x", type="image_edit", source=GEN_ID, image_ref=["https://example.com/a.png"] * 8
    )
    assert request.input_image_count == 9


def test_references_given_bare_or_as_image_refs() -> None:
    ref = ImageRef(url="https://example.com/a.png")
    single = GenerationRequest.build(prompt="x", image_ref=ref)
    assert single.image_ref == (ref,) and single.image_ref[0].field_name == "image_ref[0]"
    assert GenerationRequest.build(prompt="x", image_ref="https://example.com/a.png").image_ref == (ref,)
    assert GenerationRequest.build(prompt="x", image_ref={"url": "https://example.com/a.png"}).image_ref == (
        ref,
    )


def test_is_generation_id() -> None:
    assert is_generation_id(GEN_ID) and not is_generation_id("g1")
    assert is_generation_id(GEN_ID.upper())  # hex digits in either case
    assert not is_generation_id(uuid.UUID(GEN_ID))  # not a string: not accepted as a wire id
    assert not is_generation_id(None)


@pytest.mark.parametrize(
    "spelling",
    [
        "{" + GEN_ID + "}",
        "urn:uuid:" + GEN_ID,
        GEN_ID.replace("-", ""),
        GEN_ID + "\n",
        " " + GEN_ID,
        GEN_ID[:8] + GEN_ID[9:13] + "-" + GEN_ID[13:],  # hyphens moved
    ],
)
def test_only_the_canonical_spelling_of_a_uuid_is_a_generation_id(spelling: str) -> None:
    # uuid.UUID reads all of these as the same id: each would be a second path for one generation.
    assert uuid.UUID(spelling.strip()) == uuid.UUID(GEN_ID)
    assert not is_generation_id(spelling)
    with pytest.raises(LumaRequestValidationError, match="UUID"):
        ImageRef(generation_id=spelling, field_name="source")


# ------------------------------------------------------------------------- describe, fingerprint


def test_describe_keeps_no_base64() -> None:
    request = GenerationRequest.build(
        prompt="x", type="image_edit", source={"data": PNG_B64, "media_type": "image/png"}
    )
    described = request.describe()
    assert PNG_B64 not in json.dumps(described)
    assert described["source"]["media_type"] == "image/png" and described["source"]["bytes"] == 38
    assert described["source"]["sha256"] == hashlib.sha256(base64.b64decode(PNG_B64)).hexdigest()
    assert PNG_B64 not in repr(request.source)


def test_describe_drops_the_signature_of_a_signed_url() -> None:
    signed = "https://bucket.example/ref.png?X-Amz-Expires=600&X-Amz-Signature=SECRETSIG"
    described = GenerationRequest.build(
        prompt="x", image_ref=[signed, "https://cdn.example/plain.png"]
    ).describe()
    assert described["image_ref"] == [
        {"url": "https://bucket.example/ref.png?<redacted>"},
        {"url": "https://cdn.example/plain.png"},
    ]


def test_fingerprint_tracks_what_would_be_sent() -> None:
    one = GenerationRequest.build(prompt="a fox", aspect_ratio="1:1")
    assert one.fingerprint() == GenerationRequest.build(aspect_ratio="1:1", prompt="a fox").fingerprint()
    assert one.fingerprint() != GenerationRequest.build(prompt="a fox", aspect_ratio="2:1").fingerprint()


# ----------------------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("model", "images", "price"),
    [
        ("uni-1", 0, 0.0404),
        ("uni-1", 1, 0.0434),
        ("uni-1", 9, 0.0674),
        ("uni-1-max", 0, 0.1000),
        ("uni-1-max", 1, 0.1030),
        ("uni-1-max", 5, 0.1150),
        ("uni-1-max", 9, 0.1270),
    ],
)
def test_published_prices(model: str, images: int, price: float) -> None:
    assert estimate_cost_usd(model, images) == pytest.approx(price)


def test_request_estimate_counts_source_and_references() -> None:
    request = GenerationRequest.build(
        prompt="x", type="image_edit", source=GEN_ID, image_ref=["https://example.com/a.png"] * 2
    )
    assert request.estimated_cost_usd() == pytest.approx(0.0494)


@pytest.mark.parametrize(
    ("fields", "price"),
    [
        ({}, 0.0404),
        ({"model": "uni-1-max", "image_ref": ["https://example.com/a.png"] * 3}, 0.1030 + 2 * 0.0030),
        (
            {
                "type": "image_edit",
                "source": GEN_ID,
                "image_ref": [{"data": PNG_B64, "media_type": "image/png"}],
            },
            0.0464,
        ),
    ],
)
def test_a_described_request_costs_what_the_request_does(fields: dict[str, Any], price: float) -> None:
    # The description is all a later task (the upload) has: inline images in it are only a digest.
    request = GenerationRequest.build(prompt="x", **fields)
    assert estimate_cost_of_described(request.describe()) == pytest.approx(price)
    assert estimate_cost_of_described(request.describe()) == request.estimated_cost_usd()


@pytest.mark.parametrize("described", [{"prompt": "x"}, {"prompt": "x", "model": "uni-2"}])
def test_a_description_without_a_known_model_has_no_price(described: dict[str, Any]) -> None:
    assert estimate_cost_of_described(described) is None


# ---------------------------------------------------------------------------------- generations


def body(**extra: Any) -> dict[str, Any]:
    return {
        "id": GEN_ID,
        "type": "image",
        "state": "completed",
        "model": "uni-1",
        "created_at": "2026-04-08T12:00:00Z",
        "output": [{"type": "image", "url": "https://s.example/o.png?X-Amz-Signature=secret"}],
        "failure_reason": None,
        "failure_code": None,
        **extra,
    }


def test_generation_from_json_and_summary_without_urls() -> None:
    generation = Generation.from_json(body(unknown_field=1), request_id="req-1")
    assert generation.state is GenerationState.COMPLETED and generation.is_terminal
    assert generation.output[0].url.endswith("secret") and generation.request_id == "req-1"
    summary = generation.summary()
    assert summary["output_count"] == 1 and summary["generation_id"] == GEN_ID
    assert "secret" not in json.dumps(summary) and "secret" not in repr(generation)


def test_generation_with_null_output_and_failure() -> None:
    generation = Generation.from_json(
        body(state="failed", output=None, failure_code="content_moderated", failure_reason="flagged")
    )
    assert generation.output == () and generation.failure_code == "content_moderated"
    assert not GenerationState.PROCESSING.is_terminal and GenerationState.FAILED.is_terminal


@pytest.mark.parametrize(
    "broken",
    [{"state": "queued"}, body(state=None), body(output=[{"type": "image"}]), body(output=["x"])],
)
def test_an_unreadable_generation_is_an_unexpected_response(broken: dict[str, Any]) -> None:
    with pytest.raises(LumaUnexpectedResponseError) as caught:
        Generation.from_json(broken, request_id="req-2")
    assert caught.value.request_id == "req-2"


def test_a_state_this_provider_does_not_know_is_kept_and_not_terminal() -> None:
    generation = Generation.from_json(body(state="dreaming"), request_id="req-2")
    assert generation.state is GenerationState.UNKNOWN and not generation.is_terminal
    assert generation.summary()["state"] == "dreaming"


def test_failure_code_retryability() -> None:
    retryable = {code.value for code in FailureCode if code.retryable}
    assert retryable == {"generation_failed", "output_not_found", "rate_limited"}
    assert failure_code_is_retryable("generation_failed") and not failure_code_is_retryable(
        "content_moderated"
    )
    assert not failure_code_is_retryable(None) and not failure_code_is_retryable("new_code")
