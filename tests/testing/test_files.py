"""The emulator's Files API over real HTTP: create, presigned PUT, complete, ingest, get, list, delete."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_luma.testing import Fault, LumaEmulator

from .conftest import START, Clocked, image_bytes

PNG = image_bytes(40, 20)
FILE_KEYS = [
    "id",
    "created_at",
    "mime_type",
    "purpose",
    "size_bytes",
    "state",
    "deleted_at",
    "expires_at",
    "failure_reason",
    "filename",
    "user_id",
]


def create(api: httpx.Client, data: bytes = PNG, **fields: Any) -> dict[str, Any]:
    response = api.post("/files", json={"mime_type": "image/png", "size_bytes": len(data), **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def put(created: dict[str, Any], data: bytes = PNG, **headers: str) -> httpx.Response:
    upload = created["upload"]
    return httpx.put(upload["url"], content=data, headers={**upload["headers"], **headers})


def uploaded(api: httpx.Client, data: bytes = PNG, **fields: Any) -> str:
    """A file created, uploaded and completed; returns its id."""
    created = create(api, data, **fields)
    assert put(created, data).status_code == 200
    assert api.post(f"/files/{created['id']}/complete").status_code == 200
    file_id: str = created["id"]
    return file_id


def s3_code(response: httpx.Response) -> str:
    match = re.search(r"<Code>(\w+)</Code>", response.text)
    assert match, response.text
    return match[1]


# --- create --------------------------------------------------------------------------------------


def test_create_returns_a_pending_file_and_a_presigned_put(clocked: Clocked) -> None:
    response = clocked.api.post(
        "/files",
        json={"mime_type": "image/png", "size_bytes": 82, "filename": "a.png", "purpose": "reference"},
    )
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["id", "state", "file", "upload"]
    assert (body["state"], body["file"]["id"]) == ("pending", body["id"])
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert list(body["file"]) == FILE_KEYS
    assert body["file"] | {"id": None} == {
        "id": None,
        "created_at": "2026-04-08T12:00:00Z",
        "mime_type": "image/png",
        "purpose": "reference",
        "size_bytes": 82,
        "state": "pending",
        "deleted_at": None,
        "expires_at": None,
        "failure_reason": None,
        "filename": "a.png",
        "user_id": None,
    }
    upload = body["upload"]
    assert (upload["method"], upload["headers"], upload["expires_at"]) == (
        "PUT",
        {"Content-Type": "image/png"},
        "2026-04-08T12:15:00Z",
    )
    url = httpx.URL(upload["url"])
    assert str(url).startswith(f"{clocked.emulator.root_url}/uploads/{body['id']}?")
    assert url.params["X-Amz-Expires"] == "900" and url.params["X-Amz-Signature"]
    assert response.headers["X-API-Version"] == "2026-04-01"
    assert clocked.emulator.stats.files_created == 1


def test_purpose_defaults_to_input_and_the_optional_fields_are_echoed(clocked: Clocked) -> None:
    body = create(clocked.api, user_id="end-user-7", expires_at="2026-04-09T12:00:00Z")
    assert (body["file"]["purpose"], body["file"]["user_id"]) == ("input", "end-user-7")
    assert body["file"]["expires_at"] == "2026-04-09T12:00:00Z"


@pytest.mark.parametrize(
    ("fields", "status", "detail"),
    [
        (
            {"mime_type": "text/plain"},
            400,
            "Unsupported mime_type 'text/plain'. Valid: image/gif, image/jpeg, image/png, image/webp",
        ),
        ({"mime_type": "image/svg+xml"}, 400, None),
        ({"size_bytes": 0}, 400, "size_bytes must be between 1 and 52428800"),
        ({"size_bytes": 52428801}, 413, "File exceeds 50 MB size limit"),
        ({"purpose": "output"}, 400, "Invalid purpose 'output'. Valid: input, reference"),
        ({"expires_at": "tomorrow"}, 400, "Invalid expires_at 'tomorrow': expected an ISO 8601 datetime"),
        ({"expires_at": "2026-04-08T11:59:59Z"}, 400, "expires_at must be in the future"),
        ({"expires_at": "2026-04-08T12:00:00"}, 400, "expires_at must be in the future"),
    ],
)
def test_create_refuses_bad_values(clocked: Clocked, fields: dict, status: int, detail: str | None) -> None:
    response = clocked.api.post("/files", json={"mime_type": "image/png", "size_bytes": 10, **fields})
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)
    if detail is not None:
        assert response.json()["detail"] == detail
    assert clocked.emulator.stats.files_created == 0


def test_the_largest_allowed_size_is_accepted(api: httpx.Client) -> None:
    assert create(api, size_bytes=52428800)["file"]["size_bytes"] == 52428800


@pytest.mark.parametrize(
    ("content", "error_type", "loc"),
    [
        (b'{"mime_type": "image/png"}', "missing", ["body", "size_bytes"]),
        (b'{"mime_type": "image/png", "size_bytes": "10"}', "int_type", ["body", "size_bytes"]),
        (b'{"mime_type": "image/png", "size_bytes": true}', "int_type", ["body", "size_bytes"]),
        (b'{"mime_type": null, "size_bytes": 1}', "string_type", ["body", "mime_type"]),
        (b'{"mime_type": "image/png",', "json_invalid", ["body", 26]),
    ],
)
def test_malformed_create_bodies_are_fastapi_style_422(
    api: httpx.Client, content: bytes, error_type: str, loc: list
) -> None:
    response = api.post("/files", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == (error_type, loc)


def test_every_files_endpoint_needs_a_key(luma_emulator: LumaEmulator, api: httpx.Client) -> None:
    file_id = create(api)["id"]
    with httpx.Client(base_url=luma_emulator.base_url) as anonymous:
        responses = [
            anonymous.post("/files", json={"mime_type": "image/png", "size_bytes": 1}),
            anonymous.get("/files"),
            anonymous.get(f"/files/{file_id}"),
            anonymous.delete(f"/files/{file_id}"),
            anonymous.post(f"/files/{file_id}/complete"),
        ]
    assert {(r.status_code, r.json()["detail"]) for r in responses} == {(401, "Missing or invalid API key")}
    assert luma_emulator.stats.files_created == 1


# --- the presigned PUT ---------------------------------------------------------------------------


def test_put_stores_the_bytes_and_answers_with_an_etag(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    response = put(create(api))
    assert response.status_code == 200
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])
    assert "X-API-Version" not in response.headers  # storage, not the API
    stats = luma_emulator.stats
    assert (stats.file_uploads, stats.file_upload_bytes, stats.requests["PUT upload"]) == (1, len(PNG), 1)


def test_put_with_an_authorization_header_is_refused_like_s3(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    created = create(api)
    response = put(created, Authorization=f"Bearer {luma_emulator.api_key}")
    assert response.status_code == 400
    assert s3_code(response) == "InvalidArgument"
    assert "Only one auth mechanism allowed" in response.text
    assert luma_emulator.stats.upload_authorization_refused == 1
    assert luma_emulator.stats.file_uploads == 0
    # Nothing was stored: complete still finds no upload.
    assert api.post(f"/files/{created['id']}/complete").status_code == 409


def test_put_with_a_tampered_or_expired_url_is_403(clocked: Clocked) -> None:
    created = create(clocked.api)
    url = created["upload"]["url"]
    tampered = httpx.put(url[:-4] + "0000", content=PNG, headers={"Content-Type": "image/png"})
    assert (tampered.status_code, s3_code(tampered)) == (403, "SignatureDoesNotMatch")
    clocked.clock.advance(901)
    expired = put(created)
    assert (expired.status_code, s3_code(expired)) == (403, "AccessDenied")
    assert "expired" in expired.text
    assert clocked.emulator.stats.file_uploads == 0


def test_put_needs_the_announced_content_type(api: httpx.Client) -> None:
    response = put(create(api), **{"Content-Type": "application/octet-stream"})
    assert (response.status_code, s3_code(response)) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize(("sent", "code"), [(PNG[:-1], "EntityTooSmall"), (PNG + b"x", "EntityTooLarge")])
def test_put_needs_exactly_the_announced_size(
    api: httpx.Client, luma_emulator: LumaEmulator, sent: bytes, code: str
) -> None:
    response = put(create(api), sent)
    assert (response.status_code, s3_code(response)) == (400, code)
    assert luma_emulator.stats.file_uploads == 0


def test_put_accepts_a_chunked_body(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    created = create(api)

    def pieces() -> Any:
        yield PNG[:7]
        yield PNG[7:]

    response = put(created, pieces())  # type: ignore[arg-type]
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 200
    assert luma_emulator.stats.file_upload_bytes == len(PNG)


def test_put_after_complete_is_refused(api: httpx.Client) -> None:
    created = create(api)
    put(created)
    api.post(f"/files/{created['id']}/complete")
    response = put(created)
    assert (response.status_code, s3_code(response)) == (403, "AccessDenied")


# --- complete and ingest -------------------------------------------------------------------------


def test_complete_before_the_upload_is_409(api: httpx.Client) -> None:
    response = api.post(f"/files/{create(api)['id']}/complete")
    assert (response.status_code, response.json()) == (409, {"detail": "File upload not received"})


def test_complete_answers_pending_and_the_next_read_is_ready(clocked: Clocked) -> None:
    created = create(clocked.api)
    put(created)
    completed = clocked.api.post(f"/files/{created['id']}/complete")
    assert (completed.status_code, completed.json()["state"]) == (200, "pending")
    assert list(completed.json()) == FILE_KEYS
    assert clocked.api.get(f"/files/{created['id']}").json()["state"] == "ready"
    assert clocked.emulator.file_state(created["id"]) == "ready"


def test_ingest_takes_file_ingest_seconds(clocked: Clocked) -> None:
    clocked.emulator.configure(file_ingest_seconds=5)
    file_id = uploaded(clocked.api)
    clocked.clock.advance(4.9)
    assert clocked.api.get(f"/files/{file_id}").json()["state"] == "pending"
    clocked.clock.advance(0.2)
    assert clocked.api.get(f"/files/{file_id}").json()["state"] == "ready"


def test_complete_again_returns_the_file_as_it_is(clocked: Clocked) -> None:
    clocked.emulator.configure(file_ingest_seconds=5)
    file_id = uploaded(clocked.api)
    clocked.clock.advance(6)
    again = clocked.api.post(f"/files/{file_id}/complete")
    assert (again.status_code, again.json()["state"]) == (200, "ready")


@pytest.mark.parametrize(
    ("declared", "data", "reason"),
    [
        ("image/png", b"%PDF-1.7 not an image at all", "content-type is not an image"),
        ("image/jpeg", PNG, "content is image/png, not the declared mime_type image/jpeg"),
    ],
)
def test_ingest_judges_the_bytes_by_content(
    api: httpx.Client, declared: str, data: bytes, reason: str
) -> None:
    created = create(api, data, mime_type=declared)
    put(created, data)
    assert api.post(f"/files/{created['id']}/complete").json()["failure_reason"] is None
    body = api.get(f"/files/{created['id']}").json()
    assert (body["state"], body["failure_reason"]) == ("failed", reason)


@pytest.mark.parametrize(
    ("image_format", "mime_type"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")]
)
def test_every_documented_format_is_ingested(api: httpx.Client, image_format: str, mime_type: str) -> None:
    data = image_bytes(8, 6, image_format)
    file_id = uploaded(api, data, mime_type=mime_type)
    assert api.get(f"/files/{file_id}").json()["state"] == "ready"


def test_fail_next_file_ingest(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.fail_next_file_ingest("flagged: weapon")
    failed, fine = uploaded(api), uploaded(api)
    assert api.get(f"/files/{failed}").json()["failure_reason"] == "flagged: weapon"
    assert api.get(f"/files/{fine}").json()["state"] == "ready"


# --- get, ownership, delete, expiry --------------------------------------------------------------


@pytest.mark.parametrize(
    "make_id",
    [
        lambda file_id: str(uuid.uuid4()),
        lambda file_id: file_id.replace("-", ""),
        lambda file_id: "{" + file_id + "}",
        lambda file_id: "urn:uuid:" + file_id,
        lambda file_id: "not-a-uuid",
    ],
    ids=["unknown", "unhyphenated", "braces", "urn", "garbage"],
)
def test_get_finds_only_canonical_ids(api: httpx.Client, make_id: Any) -> None:
    file_id = create(api)["id"]
    response = api.get(f"/files/{make_id(file_id)}")
    assert (response.status_code, response.json()) == (404, {"detail": "File not found"})
    assert api.get(f"/files/{file_id.upper()}").json()["id"] == file_id


def test_another_clients_files_are_invisible(api: httpx.Client, other_api: httpx.Client) -> None:
    mine = uploaded(api)
    theirs = create(other_api)["id"]
    not_found = (404, {"detail": "File not found"})
    for client, foreign in ((other_api, mine), (api, theirs)):
        for response in (
            client.get(f"/files/{foreign}"),
            client.delete(f"/files/{foreign}"),
            client.post(f"/files/{foreign}/complete"),
        ):
            assert (response.status_code, response.json()) == not_found
    assert [f["id"] for f in api.get("/files").json()["data"]] == [mine]
    assert [f["id"] for f in other_api.get("/files").json()["data"]] == [theirs]
    assert api.get(f"/files/{mine}").json()["state"] == "ready"


def test_a_second_key_of_the_same_client_sees_its_files(
    luma_emulator: LumaEmulator, api: httpx.Client
) -> None:
    luma_emulator.add_api_key("luma-api-colleague")
    file_id = create(api)["id"]
    response = api.get(f"/files/{file_id}", headers={"Authorization": "Bearer luma-api-colleague"})
    assert response.status_code == 200


def test_delete_is_soft_and_idempotent(clocked: Clocked) -> None:
    file_id = uploaded(clocked.api)
    clocked.clock.advance(10)
    first = clocked.api.delete(f"/files/{file_id}", headers={"Accept": "*/*"})
    assert (first.status_code, first.content) == (204, b"")
    clocked.clock.advance(10)
    assert clocked.api.delete(f"/files/{file_id}").status_code == 204
    body = clocked.api.get(f"/files/{file_id}").json()
    assert (body["state"], body["deleted_at"]) == ("deleted", "2026-04-08T12:00:10Z")
    unknown = clocked.api.delete(f"/files/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "File not found"})


def test_a_file_past_expires_at_reads_deleted(clocked: Clocked) -> None:
    file_id = uploaded(clocked.api, expires_at="2026-04-08T12:01:00Z")
    clocked.clock.advance(59)
    assert clocked.api.get(f"/files/{file_id}").json()["state"] == "ready"
    clocked.clock.advance(600)
    body = clocked.api.get(f"/files/{file_id}").json()
    assert (body["state"], body["deleted_at"], body["expires_at"]) == (
        "deleted",
        "2026-04-08T12:01:00Z",
        "2026-04-08T12:01:00Z",
    )
    # A DELETE after expiry keeps the moment it was deleted.
    clocked.api.delete(f"/files/{file_id}")
    assert clocked.api.get(f"/files/{file_id}").json()["deleted_at"] == "2026-04-08T12:01:00Z"


def test_expire_file_now(clocked: Clocked) -> None:
    file_id = uploaded(clocked.api)
    clocked.clock.advance(5)
    clocked.emulator.expire_file(file_id)
    body = clocked.api.get(f"/files/{file_id}").json()
    assert (body["state"], body["deleted_at"]) == ("deleted", "2026-04-08T12:00:05Z")
    with pytest.raises(KeyError):
        clocked.emulator.expire_file(str(uuid.uuid4()))


# --- list ----------------------------------------------------------------------------------------


def test_list_pages_newest_first_with_an_opaque_cursor(clocked: Clocked) -> None:
    ids = []
    for _ in range(5):
        ids.append(create(clocked.api)["id"])
        clocked.clock.advance(1)
    seen: list[str] = []
    cursor = None
    pages = []
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = clocked.api.get("/files", params=params).json()
        pages.append((len(page["data"]), page["has_more"]))
        seen += [f["id"] for f in page["data"]]
        cursor = page["next_cursor"]
        assert (cursor is not None) == page["has_more"]
        if not page["has_more"]:
            break
    assert seen == ids[::-1]
    assert pages == [(2, True), (2, True), (1, False)]
    assert clocked.api.get("/files").json()["data"][0]["id"] == ids[-1]


def test_list_filters_and_leaves_deleted_files_out_unless_asked(clocked: Clocked) -> None:
    ready = uploaded(clocked.api)
    reference = create(clocked.api, purpose="reference")["id"]
    deleted = uploaded(clocked.api)
    clocked.api.delete(f"/files/{deleted}")

    def listed(**params: str) -> list[str]:
        return [f["id"] for f in clocked.api.get("/files", params=params).json()["data"]]

    assert listed() == [reference, ready]
    assert listed(state="deleted") == [deleted]
    assert listed(state="ready") == [ready]
    assert listed(state="pending") == [reference]
    assert listed(purpose="reference") == [reference]
    assert listed(purpose="input", state="ready") == [ready]


def test_list_default_limit_is_25(api: httpx.Client) -> None:
    for _ in range(26):
        create(api)
    page = api.get("/files").json()
    assert (len(page["data"]), page["has_more"]) == (25, True)
    assert len(api.get("/files", params={"limit": 100}).json()["data"]) == 26


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": "0"}, "limit must be between 1 and 100"),
        ({"limit": "101"}, "limit must be between 1 and 100"),
        ({"limit": "ten"}, "limit must be between 1 and 100"),
        ({"state": "gone"}, "Invalid state 'gone'. Valid: pending, ready, failed, deleted"),
        ({"purpose": "x"}, "Invalid purpose 'x'. Valid: input, reference"),
        ({"cursor": "bm90IG91cnM"}, "Invalid cursor"),
        ({"cursor": "%%%"}, "Invalid cursor"),
    ],
)
def test_list_refuses_bad_parameters(api: httpx.Client, params: dict, detail: str) -> None:
    response = api.get("/files", params=params)
    assert (response.status_code, response.json()) == (400, {"detail": detail})


# --- faults and the control plane ----------------------------------------------------------------


def test_files_and_upload_faults(api: httpx.Client, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="FILES", status=503))
    luma_emulator.add_fault(Fault(method="FILES", status=404))
    assert api.post("/files", json={"mime_type": "image/png", "size_bytes": 1}).status_code == 503
    assert api.get("/files").json() == {"detail": "File not found"}
    assert luma_emulator.stats.files_created == 0

    created = create(api)
    luma_emulator.add_fault(Fault(method="UPLOAD", status=503))
    refused = put(created)
    assert (refused.status_code, s3_code(refused)) == (503, "SlowDown")
    assert put(created).status_code == 200


def test_an_upload_timeout_after_storing_leaves_the_bytes(
    api: httpx.Client, luma_emulator: LumaEmulator
) -> None:
    created = create(api)
    luma_emulator.add_fault(Fault(method="UPLOAD", kind="read_timeout", delay=5))
    upload = created["upload"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.put(upload["url"], content=PNG, headers=upload["headers"], timeout=httpx.Timeout(10, read=0.2))
    # The PUT landed before the answer was lost: complete goes ahead.
    assert api.post(f"/files/{created['id']}/complete").status_code == 200


def test_control_plane_for_files(luma_emulator: LumaEmulator, api: httpx.Client) -> None:
    control = httpx.Client(base_url=f"{luma_emulator.root_url}/_emulator")
    assert control.post("/configure", json={"file_ingest_seconds": 30}).status_code == 200
    assert control.post("/fail_next_file_ingest", json={"reason": "nope", "count": 2}).json() == {
        "planned": 2
    }
    file_id = uploaded(api)
    assert api.get(f"/files/{file_id}").json()["state"] == "pending"
    assert control.post("/expire_file", json={"file_id": file_id}).status_code == 200
    assert control.post("/expire_file", json={"file_id": str(uuid.uuid4())}).status_code == 404
    assert api.get(f"/files/{file_id}").json()["state"] == "deleted"
    stats = control.get("/stats").json()
    assert (stats["files_created"], stats["file_uploads"], stats["file_upload_bytes"]) == (1, 1, len(PNG))
    assert stats["files"] == [
        {
            "id": file_id,
            "state": "deleted",
            "mime_type": "image/png",
            "size_bytes": len(PNG),
            "purpose": "input",
            "client": "primary",
        }
    ]
    control.post("/reset")
    assert control.get("/stats").json()["files"] == []
    control.close()


def test_iso_timestamps_parse_as_utc(clocked: Clocked) -> None:
    clocked.clock.advance(0.25)
    created_at = create(clocked.api)["file"]["created_at"]
    assert created_at == "2026-04-08T12:00:00.250000Z"
    parsed = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    assert parsed == datetime.fromtimestamp(START + 0.25, timezone.utc)
