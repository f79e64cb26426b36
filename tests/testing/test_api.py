"""The emulator's /v1 endpoints over real HTTP: bodies, statuses, details, headers, auth, states, limits."""

from __future__ import annotations

import base64
import io
import re
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from airflow_provider_luma.testing import LumaEmulator
from airflow_provider_luma.testing import refs as emulator_refs

from .conftest import START, Clocked

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
VALID_RATIOS = "1:1, 1:2, 1:3, 16:9, 2:1, 2:3, 3:1, 3:2, 9:16"


def png_base64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def assert_api_headers(response: httpx.Response) -> None:
    assert response.headers["X-API-Version"] == "2026-04-01"
    assert UUID4.match(response.headers["X-Request-Id"])


def test_create_returns_the_documented_201(clocked: Clocked) -> None:
    response = clocked.api.post("/generations", json={"prompt": "a red fox"})

    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "id",
        "type",
        "state",
        "model",
        "created_at",
        "output",
        "failure_reason",
        "failure_code",
    ]
    assert UUID4.match(body["id"])
    assert body | {"id": None} == {
        "id": None,
        "type": "image",
        "state": "queued",
        "model": "uni-1",
        "created_at": "2026-04-08T12:00:00Z",
        "output": [],
        "failure_reason": None,
        "failure_code": None,
    }
    assert response.headers["content-type"] == "application/json"
    assert response.headers["X-RateLimit-Limit"] == "30"
    assert response.headers["X-RateLimit-Remaining"] == "29"
    assert response.headers["X-RateLimit-Reset"] == str(int(START) + 60)
    assert_api_headers(response)


def test_request_id_is_echoed_on_every_kind_of_response(api: httpx.Client) -> None:
    sent = {"X-Request-Id": "myapp-user42-batch7-req003"}
    created = api.post("/generations", json={"prompt": "x"}, headers=sent)
    responses = [
        created,
        api.get(f"/generations/{created.json()['id']}", headers=sent),
        api.get("/generations/nope", headers=sent),
        api.post("/generations", json={"prompt": ""}, headers=sent),
        api.post("/generations", json={"prompt": "x"}, headers={**sent, "Authorization": "Bearer nope"}),
        api.get("/unknown-path", headers=sent),
        api.delete("/generations", headers=sent),
    ]
    assert [r.status_code for r in responses] == [201, 200, 404, 400, 401, 404, 405]
    for response in responses:
        assert response.headers["X-Request-Id"] == "myapp-user42-batch7-req003"
        assert response.headers["X-API-Version"] == "2026-04-01"
    # Without the header the server makes a fresh UUID each time.
    first, second = (api.get("/generations/nope").headers["X-Request-Id"] for _ in range(2))
    assert UUID4.match(first) and UUID4.match(second) and first != second


def test_rate_limit_headers_only_on_201(api: httpx.Client) -> None:
    created = api.post("/generations", json={"prompt": "x"})
    others = [
        api.get(f"/generations/{created.json()['id']}"),
        api.post("/generations", json={"prompt": "x", "model": "nope"}),
        api.get("/generations/missing"),
    ]
    assert "X-RateLimit-Limit" in created.headers
    for response in others:
        assert not [h for h in response.headers if h.lower().startswith("x-ratelimit")]
        assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Missing or invalid API key"),
        ("bearer {key}", "Missing or invalid API key"),
        ("Token {key}", "Missing or invalid API key"),
        ("Bearer not-a-luma-key", "Missing or invalid API key"),
        ("Bearer", "Missing or invalid API key"),
        ("Bearer luma-api-never-issued", "Invalid API key"),
        ("Bearer luma-api-revoked", "API key has been revoked"),
        ("Bearer luma-api-expired", "API key has expired"),
    ],
)
def test_auth_failures_on_both_endpoints(
    luma_emulator: LumaEmulator, authorization: str | None, detail: str
) -> None:
    luma_emulator.add_api_key("luma-api-revoked", "revoked")
    luma_emulator.add_api_key("luma-api-expired", "expired")
    headers = (
        {} if authorization is None else {"Authorization": authorization.format(key=luma_emulator.api_key)}
    )
    with httpx.Client(base_url=luma_emulator.base_url) as client:
        post = client.post("/generations", json={"prompt": "x"}, headers=headers)
        get = client.get(f"/generations/{uuid.uuid4()}", headers=headers)
    for response in (post, get):
        assert response.status_code == 401
        assert response.json() == {"detail": detail}
        assert_api_headers(response)
    assert luma_emulator.stats.generations_created == 0


def test_a_second_active_key_of_the_same_client_sees_the_generation(
    luma_emulator: LumaEmulator, api: httpx.Client
) -> None:
    luma_emulator.add_api_key("luma-api-second")
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    response = api.get(f"/generations/{generation_id}", headers={"Authorization": "Bearer luma-api-second"})
    assert response.status_code == 200


EDIT_SOURCE = {"url": "https://example.com/a.png"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"prompt": "x", "model": "uni-2"}, "Unknown model: uni-2"),
        ({"prompt": "x", "type": "video"}, "Type 'video' is not supported for model 'uni-1'"),
        (
            {"prompt": "x", "type": "image", "model": "ray-3.2"},
            "Type 'image' is not supported for model 'ray-3.2'",
        ),
        (
            {"prompt": "x", "type": "layering", "model": "uni-1-max"},
            "Type 'layering' is not supported for model 'uni-1-max'",
        ),
        ({"prompt": ""}, "Prompt must be between 1 and 6000 characters"),
        ({"prompt": "x" * 6001}, "Prompt must be between 1 and 6000 characters"),
        ({"prompt": "x", "aspect_ratio": "4:3"}, f"Invalid aspect_ratio '4:3'. Valid: {VALID_RATIOS}"),
        ({"prompt": "x", "type": "image_edit"}, "source is required for type 'image_edit'"),
        ({"prompt": "x", "source": EDIT_SOURCE}, "source is only valid for type 'image_edit'"),
        (
            {
                "prompt": "x",
                "image_ref": [{"url": "https://e.com/a.png", "data": "AAAA", "media_type": "image/png"}],
            },
            "image_ref[0]: provide either 'url' or 'data', not both",
        ),
        (
            {"prompt": "x", "image_ref": [EDIT_SOURCE, {}]},
            "image_ref[1]: provide either 'url' or 'data', not neither",
        ),
        (
            {"prompt": "x", "image_ref": [{"url": None, "data": None, "media_type": None}]},
            "image_ref[0]: provide either 'url' or 'data', not neither",
        ),
        (
            {"prompt": "x", "image_ref": [{"data": "AAAA"}]},
            "image_ref[0]: 'media_type' is required with 'data'",
        ),
        (
            {"prompt": "x", "type": "image_edit", "source": {}},
            "source: provide either 'url' or 'data', not neither",
        ),
        (
            {"prompt": "x", "type": "image_edit", "source": EDIT_SOURCE, "image_ref": [EDIT_SOURCE] * 9},
            "image_edit supports up to 8 reference images (source occupies one slot)",
        ),
    ],
)
def test_documented_400_details(
    api: httpx.Client, luma_emulator: LumaEmulator, body: dict, detail: str
) -> None:
    response = api.post("/generations", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert_api_headers(response)
    assert luma_emulator.stats.generations_created == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"prompt": "x", "image_ref": [EDIT_SOURCE] * 10}, "image supports up to 9 reference images"),
        (
            {"prompt": "x", "style": "manga", "aspect_ratio": "16:9"},
            "Style 'manga' requires a portrait aspect_ratio (2:3, 9:16, 1:2, 1:3), got '16:9'",
        ),
        (
            {"prompt": "x", "type": "video", "model": "ray-3.2"},
            "Type 'video' is not supported by the Luma emulator",
        ),
        (
            {"prompt": "x" * 501, "type": "layering", "source": EDIT_SOURCE},
            "Prompt must be at most 500 characters for type 'layering'",
        ),
        (
            {"prompt": "x", "type": "layering", "source": EDIT_SOURCE, "image_ref": [EDIT_SOURCE]},
            "image_ref is not supported for type 'layering'",
        ),
        (
            {"prompt": "x", "type": "layering", "source": EDIT_SOURCE, "layering": {"resolution": "4k"}},
            "Invalid layering.resolution '4k'. Valid: 1k, 2k",
        ),
    ],
)
def test_undocumented_400s_have_emulator_wording(api: httpx.Client, body: dict, detail: str) -> None:
    response = api.post("/generations", json=body)
    assert (response.status_code, response.json()) == (400, {"detail": detail})


def test_validation_runs_in_the_documented_order(api: httpx.Client) -> None:
    # model -> type -> prompt -> aspect_ratio -> source/type -> ImageRef shape -> ref count -> manga
    everything_wrong: dict[str, Any] = {
        "prompt": "",
        "model": "nope",
        "type": "video",
        "aspect_ratio": "4:3",
        "source": {},
        "image_ref": [{}] * 10,
        "style": "manga",
    }
    expected = [
        ("model", "Unknown model: nope"),
        ("type", "Type 'video' is not supported for model 'uni-1'"),
        ("prompt", "Prompt must be between 1 and 6000 characters"),
        ("aspect_ratio", f"Invalid aspect_ratio '4:3'. Valid: {VALID_RATIOS}"),
        ("source", "source is only valid for type 'image_edit'"),
        ("image_ref", "image_ref[0]: provide either 'url' or 'data', not neither"),
        ("image_ref", "image supports up to 9 reference images"),
    ]
    body = dict(everything_wrong)
    fixes: dict[str, Any] = {
        "model": "uni-1",
        "type": "image",
        "prompt": "x",
        "aspect_ratio": "16:9",
        "source": None,
    }
    for field, detail in expected:
        assert api.post("/generations", json=body).json() == {"detail": detail}
        if field == "image_ref" and body["image_ref"][0] == {}:
            body["image_ref"] = [EDIT_SOURCE] * 10
        elif field == "image_ref":
            body["image_ref"] = [EDIT_SOURCE]
        else:
            body[field] = fixes[field]
    assert "manga" in api.post("/generations", json=body).json()["detail"]


@pytest.mark.parametrize(
    ("content", "error_type", "loc"),
    [
        (b'{"prompt": "x",', "json_invalid", ["body", 15]),
        (b'{"type": "image"}', "missing", ["body", "prompt"]),
        (b'{"prompt": 5}', "string_type", ["body", "prompt"]),
        (b'{"prompt": null}', "string_type", ["body", "prompt"]),
        (b'{"prompt": "x", "style": "anime"}', "enum", ["body", "style"]),
        (b'{"prompt": "x", "output_format": "gif"}', "enum", ["body", "output_format"]),
        (b'{"prompt": "x", "web_search": "yes"}', "bool_type", ["body", "web_search"]),
        (
            b'{"prompt": "x", "image_ref": ["https://e.com/a.png"]}',
            "model_attributes_type",
            ["body", "image_ref", 0],
        ),
        (b'["x"]', "model_attributes_type", ["body"]),
    ],
)
def test_schema_errors_are_fastapi_style_422(
    api: httpx.Client, content: bytes, error_type: str, loc: list
) -> None:
    response = api.post("/generations", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == (error_type, loc)
    assert_api_headers(response)


@pytest.mark.parametrize(
    ("ref", "status", "detail"),
    [
        ({"data": "%%%not base64", "media_type": "image/png"}, 422, "image_ref[0]: invalid base64 data"),
        (
            {"data": base64.b64encode(b"hello").decode(), "media_type": "text/plain"},
            422,
            "image_ref[0]: content-type is not an image",
        ),
        ({"url": "http://example.com/a.png"}, 422, "image_ref[0]: failed to fetch URL"),
        ({"generation_id": str(uuid.uuid4())}, 422, "image_ref[0]: generation not found"),
        (
            {"data": base64.b64encode(b"x" * 101).decode(), "media_type": "image/png"},
            413,
            "image_ref[0]: image exceeds 50 MB limit",
        ),
    ],
)
def test_media_errors(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch, ref: dict, status: int, detail: str
) -> None:
    # The 50 MB cap scaled down to 100 bytes, so the test does not post 67 MB of base64.
    monkeypatch.setattr(emulator_refs, "MAX_IMAGE_BYTES", 100)
    response = api.post("/generations", json={"prompt": "x", "image_ref": [ref]})
    assert (response.status_code, response.json()) == (status, {"detail": detail})


def test_null_is_accepted_wherever_the_sdk_sends_it(api: httpx.Client) -> None:
    body = {
        "prompt": "x",
        "type": None,
        "model": None,
        "aspect_ratio": None,
        "style": None,
        "output_format": None,
        "web_search": None,
        "user_id": None,
        "source": None,
        "video": None,
        "layering": None,
        "image_ref": [
            {
                "url": "https://e.com/a.png",
                "data": None,
                "media_type": None,
                "generation_id": None,
                "file_id": None,
            }
        ],
        "unknown_future_field": 1,
    }
    response = api.post("/generations", json=body)
    assert response.status_code == 201, response.text
    assert (response.json()["type"], response.json()["model"]) == ("image", "uni-1")


def test_model_is_echoed(api: httpx.Client) -> None:
    body = api.post("/generations", json={"prompt": "x", "model": "uni-1-max", "type": "image"}).json()
    assert body["model"] == "uni-1-max"


@pytest.mark.parametrize("generation_id", [str(uuid.uuid4()), "not-a-uuid", "a/b", "%20"])
def test_unknown_or_malformed_ids_are_404(api: httpx.Client, generation_id: str) -> None:
    response = api.get(f"/generations/{generation_id}")
    assert (response.status_code, response.json()) == (404, {"detail": "Generation not found"})
    assert_api_headers(response)


def test_uppercase_uuid_finds_the_generation(api: httpx.Client) -> None:
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    assert api.get(f"/generations/{generation_id.upper()}").json()["id"] == generation_id


def test_states_move_with_time(clocked: Clocked) -> None:
    generation_id = clocked.api.post("/generations", json={"prompt": "x"}).json()["id"]

    def state() -> str:
        return clocked.api.get(f"/generations/{generation_id}").json()["state"]

    assert state() == "queued"
    clocked.clock.advance(0.99)
    assert state() == "queued"
    clocked.clock.advance(0.02)
    assert state() == "processing"
    clocked.clock.advance(2)
    body = clocked.api.get(f"/generations/{generation_id}").json()
    assert body["state"] == "completed"
    assert [item["type"] for item in body["output"]] == ["image"]
    assert body["failure_code"] is None and body["failure_reason"] is None
    assert clocked.emulator.generation_state(generation_id) == "completed"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("content_moderated", "Generation output was flagged by our content moderation system."),
        ("budget_exhausted", "Insufficient credits to complete this generation."),
        ("generation_failed", "Generation failed"),
        ("output_not_found", "Output artifacts not found"),
        ("image_too_large", "Input image exceeds the size limit"),
        ("unsupported_format", "Input image format is not supported"),
        ("corrupt_input", "Input image could not be decoded"),
        ("invalid_request", "The request was invalid"),
        ("rate_limited", "Upstream rate limit exceeded"),
    ],
)
def test_planned_failures_end_failed_with_the_code(clocked: Clocked, code: str, reason: str) -> None:
    clocked.emulator.fail_next_generations(code, count=1)
    failing, succeeding = (
        clocked.api.post("/generations", json={"prompt": "x"}).json()["id"] for _ in range(2)
    )
    clocked.clock.advance(1.5)
    assert clocked.api.get(f"/generations/{failing}").json()["state"] == "processing"
    clocked.clock.advance(2)
    body = clocked.api.get(f"/generations/{failing}").json()
    assert (body["state"], body["failure_code"], body["failure_reason"], body["output"]) == (
        "failed",
        code,
        reason,
        [],
    )
    assert clocked.api.get(f"/generations/{succeeding}").json()["state"] == "completed"


def test_fail_next_generations_with_count_and_custom_reason(clocked: Clocked) -> None:
    clocked.emulator.fail_next_generations("generation_failed", count=2, reason="GPU on fire")
    ids = [clocked.api.post("/generations", json={"prompt": "x"}).json()["id"] for _ in range(3)]
    clocked.clock.advance(10)
    bodies = [clocked.api.get(f"/generations/{i}").json() for i in ids]
    assert [b["state"] for b in bodies] == ["failed", "failed", "completed"]
    assert bodies[0]["failure_reason"] == "GPU on fire"
    with pytest.raises(ValueError, match="unknown failure code"):
        clocked.emulator.fail_next_generations("bogus")


def test_set_state_forces_transitions(clocked: Clocked) -> None:
    generation_id = clocked.api.post("/generations", json={"prompt": "x"}).json()["id"]
    clocked.emulator.set_state(generation_id, "completed")
    assert clocked.api.get(f"/generations/{generation_id}").json()["state"] == "completed"
    clocked.emulator.set_state(generation_id, "failed", failure_code="content_moderated")
    body = clocked.api.get(f"/generations/{generation_id}").json()
    assert (body["state"], body["failure_code"], body["output"]) == ("failed", "content_moderated", [])
    assert body["failure_reason"] == "Generation output was flagged by our content moderation system."
    clocked.emulator.set_state(generation_id, "processing")
    clocked.clock.advance(100)
    assert clocked.api.get(f"/generations/{generation_id}").json()["state"] == "processing"
    with pytest.raises(KeyError):
        clocked.emulator.set_state(str(uuid.uuid4()), "completed")


def test_set_state_admits_an_undocumented_state_only_when_asked(clocked: Clocked) -> None:
    generation_id = clocked.api.post("/generations", json={"prompt": "x"}).json()["id"]
    with pytest.raises(ValueError, match="allow_unknown"):
        clocked.emulator.set_state(generation_id, "moderating")

    clocked.emulator.set_state(generation_id, "moderating", allow_unknown=True)
    clocked.clock.advance(100)

    body = clocked.api.get(f"/generations/{generation_id}").json()
    assert (body["state"], body["output"], body["failure_code"]) == ("moderating", [], None)
    # Not terminal: the job still holds its concurrency slot.
    clocked.emulator.configure(concurrency_limit=1)
    assert clocked.api.post("/generations", json={"prompt": "x"}).status_code == 429


def test_rpm_limit_sliding_window(clocked: Clocked) -> None:
    clocked.emulator.configure(rpm_limit=3, concurrency_limit=100)
    remaining = []
    for _ in range(3):
        response = clocked.api.post("/generations", json={"prompt": "x"})
        remaining.append(response.headers["X-RateLimit-Remaining"])
        clocked.clock.advance(10)
    assert remaining == ["2", "1", "0"]

    # now = START + 30; the oldest request (START) ages out at START + 60.
    refused = clocked.api.post("/generations", json={"prompt": "x"})
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded"}
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == str(int(START) + 60)
    assert_api_headers(refused)

    clocked.clock.advance(29.5)
    assert clocked.api.post("/generations", json={"prompt": "x"}).headers["Retry-After"] == "1"
    # GETs do not count against the RPM.
    for _ in range(5):
        clocked.api.get(f"/generations/{uuid.uuid4()}")
    clocked.clock.advance(0.5)
    accepted = clocked.api.post("/generations", json={"prompt": "x"})
    assert accepted.status_code == 201
    assert accepted.headers["X-RateLimit-Remaining"] == "0"
    assert clocked.emulator.stats.generations_created == 4


def test_concurrency_limit_and_slots_freed_by_terminal_states(clocked: Clocked) -> None:
    clocked.emulator.configure(concurrency_limit=2)
    first, second = (clocked.api.post("/generations", json={"prompt": "x"}).json()["id"] for _ in range(2))

    refused = clocked.api.post("/generations", json={"prompt": "x"})
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many concurrent jobs"}
    assert refused.headers["Retry-After"] == "60"
    assert not [h for h in refused.headers if h.lower().startswith("x-ratelimit")]
    assert_api_headers(refused)

    clocked.emulator.set_state(first, "failed")
    assert clocked.api.post("/generations", json={"prompt": "x"}).status_code == 201
    assert clocked.api.post("/generations", json={"prompt": "x"}).status_code == 429
    clocked.clock.advance(3)  # everything completes
    assert clocked.api.post("/generations", json={"prompt": "x"}).status_code == 201
    assert clocked.emulator.generation_state(second) == "completed"


def test_reset_forgets_generations_windows_and_restores_settings(clocked: Clocked) -> None:
    clocked.emulator.configure(rpm_limit=1)
    generation_id = clocked.api.post("/generations", json={"prompt": "x"}).json()["id"]
    assert clocked.api.post("/generations", json={"prompt": "x"}).status_code == 429
    clocked.emulator.reset()
    assert clocked.api.get(f"/generations/{generation_id}").status_code == 404
    response = clocked.api.post("/generations", json={"prompt": "x"})
    assert response.headers["X-RateLimit-Limit"] == "30"
    assert clocked.emulator.stats.generations_created == 1
