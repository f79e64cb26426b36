"""
The Files API over HTTP: ``/v1/files`` and the presigned upload target ``PUT /uploads/{file_id}``.

The flow is the SDK's presigned (JSON) one: ``POST /v1/files`` announces the type and exact size and gets
a PUT URL, the bytes go there (to storage, not the API: no API key, S3's rules and XML errors), and
``POST /v1/files/{id}/complete`` starts ingest. Files belong to the caller's client; another client's
file answers 404 exactly like a missing one. Details the docs do not give are the emulator's wording:
the value checks answer 400 with a string ``detail`` (413 over the 50 MB image limit), malformed bodies
a FastAPI-style 422 like ``POST /v1/generations``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import JSONResponse, Response

from airflow_provider_luma.testing import files
from airflow_provider_luma.testing.auth import api_error, authenticate
from airflow_provider_luma.testing.outputs import ONE_AUTH_MECHANISM, s3_error_xml
from airflow_provider_luma.testing.refs import CANONICAL_UUID, Rejected
from airflow_provider_luma.testing.validation import schema_error
from airflow_provider_luma.testing.wire import REQUEST_ID

if TYPE_CHECKING:
    from starlette.requests import Request

    from airflow_provider_luma.testing.faults import Fault
    from airflow_provider_luma.testing.outputs import UrlSigner
    from airflow_provider_luma.testing.state import EmulatorState

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_NOT_FOUND = "File not found"


class Guard(Protocol):
    """The fault machinery and S3 error bodies of the app, shared by these handlers."""

    async def before(self, method: str, request: Request) -> tuple[Fault | None, Response | None]: ...

    async def after(self, fault: Fault | None, request: Request, response: Response) -> Response: ...

    def s3_error(self, request: Request, status: int, message: str | None = None) -> Response: ...


class FilesApi:
    """Route handlers of the Files API over one emulator's state, URL signer and faults."""

    def __init__(self, state: EmulatorState, signer: UrlSigner, guard: Guard) -> None:
        self.state = state
        self.signer = signer
        self.guard = guard

    async def _handle(self, request: Request, counter: str, handler: Any) -> Response:
        """Count, authenticate, apply a ``FILES`` fault, then run ``handler(client)`` (under the lock)."""
        self.state.count_request(counter)
        raw = await request.body()
        client = authenticate(self.state, request)
        if isinstance(client, Response):
            return client
        fault, replaced = await self.guard.before("FILES", request)
        if replaced is not None:
            return replaced
        try:
            with self.state.lock:
                response = handler(client, raw)
        except Rejected as rejected:
            response = api_error(rejected.status, rejected.detail)
        return await self.guard.after(fault, request, response)

    def _owned(self, request: Request, client: str) -> files.StoredFile:
        file_id = request.path_params["file_id"]
        stored = self.state.files.owned(file_id.lower(), client) if CANONICAL_UUID.match(file_id) else None
        if stored is None:
            raise Rejected(404, _NOT_FOUND)
        return stored

    # --- /v1/files -------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        def handle(client: str, raw: bytes) -> Response:
            stored = self.state.files.create(client=client, **_parse_create(raw, self.state.clock()))
            now = stored.created
            ttl = self.state.settings.upload_url_ttl_seconds
            url = self.signer.mint(
                str(request.base_url),
                f"/uploads/{stored.id}",
                now,
                ttl,
                self.state.url_epoch,
                signed_headers="content-type;host",
            )
            upload = {
                "method": "PUT",
                "url": url,
                "headers": {"Content-Type": stored.mime_type},
                "expires_at": files.iso(now + ttl),
            }
            body = {"id": stored.id, "state": "pending", "file": stored.to_json(now), "upload": upload}
            return JSONResponse(body, status_code=201)

        return await self._handle(request, "POST /v1/files", handle)

    async def list(self, request: Request) -> Response:
        def handle(client: str, raw: bytes) -> Response:
            query = request.query_params
            limit = _limit(query.get("limit"))
            purpose = _choice("purpose", query.get("purpose"), files.PURPOSES)
            state = _choice("state", query.get("state"), files.FILE_STATES)
            cursor = query.get("cursor")
            try:
                after = None if cursor is None else files.decode_cursor(cursor)
            except ValueError as exc:
                raise Rejected(400, "Invalid cursor") from exc
            page, has_more = self.state.files.page(client, after, limit, purpose, state)
            now = self.state.clock()
            return JSONResponse(
                {
                    "data": [stored.to_json(now) for stored in page],
                    "has_more": has_more,
                    "next_cursor": files.encode_cursor(page[-1].sequence) if has_more else None,
                }
            )

        return await self._handle(request, "GET /v1/files", handle)

    async def get(self, request: Request) -> Response:
        def handle(client: str, raw: bytes) -> Response:
            return JSONResponse(self._owned(request, client).to_json(self.state.clock()))

        return await self._handle(request, "GET /v1/files/{id}", handle)

    async def delete(self, request: Request) -> Response:
        def handle(client: str, raw: bytes) -> Response:
            # Soft and idempotent: a deleted (or expired) file stays readable as ``deleted``.
            self.state.files.delete(self._owned(request, client))
            return Response(status_code=204)

        return await self._handle(request, "DELETE /v1/files/{id}", handle)

    async def complete(self, request: Request) -> Response:
        """Start ingest of an uploaded file.

        Inferred, not documented: before any bytes arrived the answer is 409 ``File upload not
        received``; a file already completed (or deleted) is returned as it is, so a retried complete
        is harmless. A fresh complete answers ``pending`` (ingest runs after it, as the SDK says).
        """

        def handle(client: str, raw: bytes) -> Response:
            stored = self._owned(request, client)
            now = self.state.clock()
            if stored.completed_at is not None or stored.state_at(now) == "deleted":
                return JSONResponse(stored.to_json(now))
            if stored.data is None:
                raise Rejected(409, "File upload not received")
            self.state.files.complete(stored, self.state.settings.file_ingest_seconds)
            return JSONResponse({**stored.to_json(now), "state": "pending", "failure_reason": None})

        return await self._handle(request, "POST /v1/files/{id}/complete", handle)

    # --- the presigned upload target -------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        """``PUT`` of a file's bytes, checked as S3 checks a presigned PUT; 200 with an ``ETag``."""
        self.state.count_request("PUT upload")
        request_id = request.scope[REQUEST_ID]
        if "authorization" in request.headers:
            # A client that sends its API key to storage leaks it; S3 refuses the request outright.
            with self.state.lock:
                self.state.upload_authorization_refused += 1
            return _s3(400, "InvalidArgument", ONE_AUTH_MECHANISM, request_id)
        with self.state.lock:
            now, epoch = self.state.clock(), self.state.url_epoch
            stored = self.state.files.files.get(request.path_params["file_id"])
        refused = self.signer.check(request.url.path, request.query_params, now, epoch)
        if refused is not None:
            return _s3(*refused, request_id)
        if stored is None:
            return self.guard.s3_error(request, 404, "The specified upload does not exist.")
        if stored.completed_at is not None or stored.state_at(now) == "deleted":
            return _s3(403, "AccessDenied", "The upload for this file is closed.", request_id)
        if request.headers.get("content-type", "").strip().lower() != stored.mime_type:
            message = f"The Content-Type signed for this upload is {stored.mime_type}."
            return _s3(403, "SignatureDoesNotMatch", message, request_id)
        data = await _read_at_most(request, stored.size_bytes)
        if len(data) != stored.size_bytes:
            code = "EntityTooLarge" if len(data) > stored.size_bytes else "EntityTooSmall"
            message = f"The upload must be exactly {stored.size_bytes} bytes, as announced."
            return _s3(400, code, message, request_id)
        fault, replaced = await self.guard.before("UPLOAD", request)
        if replaced is not None:
            return replaced
        with self.state.lock:
            etag = self.state.files.receive(stored, data)
        response = Response(status_code=200, headers={"ETag": etag, "x-amz-request-id": request_id})
        return await self.guard.after(fault, request, response)


async def _read_at_most(request: Request, size: int) -> bytes:
    """The request body (chunked or not), stopping one byte past ``size`` so no body is held unbounded."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > size:
            break
    return bytes(received)


def _s3(status: int, code: str, message: str, request_id: str) -> Response:
    return Response(s3_error_xml(code, message, request_id), status_code=status, media_type="application/xml")


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Rejected(400, f"limit must be between 1 and {MAX_LIMIT}")
    return int(raw)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> Any:
    """``value`` when it is one of ``allowed`` (or None), else the 400 naming the valid values."""
    if value is not None and value not in allowed:
        raise Rejected(400, f"Invalid {name} '{value}'. Valid: {', '.join(allowed)}")
    return value


def _parse_create(raw: bytes, now: float) -> dict[str, Any]:
    """The fields of a ``POST /v1/files`` body, checked; raises ``Rejected``."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise Rejected(
            422, [schema_error("json_invalid", [getattr(exc, "pos", 0)], "JSON decode error", {})]
        ) from exc
    if not isinstance(body, dict):
        raise Rejected(
            422, [schema_error("model_attributes_type", [], "Input should be a valid dictionary", body)]
        )
    _check_schema(body)
    mime_type, size_bytes = body["mime_type"], body["size_bytes"]
    if mime_type not in files.IMAGE_MIME_TYPES:
        raise Rejected(
            400, f"Unsupported mime_type '{mime_type}'. Valid: {', '.join(files.IMAGE_MIME_TYPES)}"
        )
    if size_bytes < 1:
        raise Rejected(400, f"size_bytes must be between 1 and {files.MAX_FILE_BYTES}")
    if size_bytes > files.MAX_FILE_BYTES:
        raise Rejected(413, "File exceeds 50 MB size limit")
    purpose = _choice("purpose", body.get("purpose"), files.PURPOSES) or "input"
    return {
        "mime_type": mime_type,
        "size_bytes": size_bytes,
        "purpose": purpose,
        "filename": body.get("filename"),
        "user_id": body.get("user_id"),
        "expires_at": _expires_at(body.get("expires_at"), now),
    }


def _check_schema(body: dict[str, Any]) -> None:
    required = ("mime_type", "size_bytes")
    errors = [
        schema_error("missing", [name], "Field required", body) for name in required if name not in body
    ]
    for name in ("mime_type", "purpose", "filename", "user_id", "expires_at"):
        value = body.get(name)
        nullable = name != "mime_type"
        if name in body and not isinstance(value, str) and not (value is None and nullable):
            errors.append(schema_error("string_type", [name], "Input should be a valid string", value))
    size = body.get("size_bytes")
    if "size_bytes" in body and (not isinstance(size, int) or isinstance(size, bool)):
        errors.append(schema_error("int_type", ["size_bytes"], "Input should be a valid integer", size))
    if errors:
        raise Rejected(422, errors)


def _expires_at(value: str | None, now: float) -> float | None:
    """Unix seconds of an ISO 8601 ``expires_at`` (no zone: UTC), which must lie in the future."""
    if value is None:
        return None
    try:
        # Python 3.10's fromisoformat takes no "Z".
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError as exc:
        raise Rejected(400, f"Invalid expires_at '{value}': expected an ISO 8601 datetime") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.timestamp() <= now:
        raise Rejected(400, "expires_at must be in the future")
    return moment.timestamp()
