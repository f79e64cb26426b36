"""
The emulator's HTTP surface: the generation endpoints, output downloads and the ``/_emulator`` control plane.

The Files API (``/v1/files`` and the presigned upload target) lives in :mod:`.files_api`; both share the
authentication of :mod:`.auth`, and both answer scripted faults only once a request has authenticated,
so a request with a bad key gets its 401 and leaves the queued fault for the next real one.

``create_app`` builds a Starlette app and wraps it in ``Wire``, an outer ASGI layer that stamps
``X-Request-Id`` and ``X-API-Version`` on every ``/v1`` response (including routing errors and crashes)
and keeps the server's own ``send``/``receive`` so a fault can close the TCP connection. A ``proxy``
fault's page is the one ``/v1`` answer left unstamped: it stands for a load balancer, not the API.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_luma.testing import images, layers, validation
from airflow_provider_luma.testing.auth import api_error, authenticate
from airflow_provider_luma.testing.faults import STORAGE_METHODS, Fault, FaultQueue
from airflow_provider_luma.testing.files_api import FilesApi
from airflow_provider_luma.testing.outputs import ONE_AUTH_MECHANISM, UrlSigner, s3_error_xml
from airflow_provider_luma.testing.refs import CANONICAL_UUID
from airflow_provider_luma.testing.wire import (
    CONNECTION,
    PROXY_MARK,
    REQUEST_ID,
    Connection,
    NoResponse,
    Stream,
    Trickled,
    Truncated,
    Wire,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request
    from starlette.types import ASGIApp

    from airflow_provider_luma.testing.state import EmulatorState, Generation


def _proxy_page(fault: Fault) -> Response:
    """A load balancer's error page: HTML, and (``Wire`` sees the mark) none of the API's headers."""
    status, html, headers = fault.proxy_page()
    return Response(html, status_code=status, headers={**headers, PROXY_MARK: "1"}, media_type="text/html")


def _malformed(response: Response) -> Response:
    """The same status and headers with a body cut in half (invalid JSON, or a truncated image)."""
    body = bytes(response.body)[: len(bytes(response.body)) // 2]
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body, status_code=response.status_code, headers=headers)


class _Api:
    """Route handlers over one emulator's state, faults and URL signer (the Files API's in ``files``)."""

    def __init__(self, state: EmulatorState, faults: FaultQueue, signer: UrlSigner) -> None:
        self.state = state
        self.faults = faults
        self.signer = signer
        self.files = FilesApi(state, signer, self)

    # --- /v1 -------------------------------------------------------------------------------------

    async def before(self, method: str, request: Request) -> tuple[Fault | None, Response | None]:
        """Take the next fault for ``method``; a response here replaces the normal handling."""
        if "cookie" in request.headers:
            # The API sets no cookies; a client that sends one anyway carries state between requests.
            with self.state.lock:
                self.state.requests_with_cookie += 1
        fault = self.faults.take(method)
        connection: Connection = request.scope[CONNECTION]
        if fault is None:
            return None, None
        if fault.kind == "status":
            if fault.proxy:
                return fault, _proxy_page(fault)
            if method in STORAGE_METHODS:
                return fault, self.s3_error(request, fault.status or 500, fault.detail)
            with self.state.lock:
                status, detail, headers = fault.api_error(self.state.settings.rpm_limit, self.state.clock())
            return fault, api_error(status, detail, headers)
        if fault.kind == "drop":
            await connection.drop()
            return fault, NoResponse()
        if fault.kind == "slow" and not await connection.wait(fault.delay):
            # The client gave up while the server was still busy: nothing is processed. Counted, so
            # a test can wait for the server to have let the request go before asserting on it.
            self.state.count_request(f"{method} abandoned")
            return fault, NoResponse()
        return fault, None

    async def after(self, fault: Fault | None, request: Request, response: Response) -> Response:
        """Apply the part of a fault that comes after normal handling."""
        connection: Connection = request.scope[CONNECTION]
        if fault is None:
            return response
        for name, value in fault.headers.items():
            response.headers[name] = value
        if fault.kind == "read_timeout" and not await connection.wait(fault.delay):
            return NoResponse()
        if fault.kind == "drop_after_create":
            return Truncated(response, connection)
        if fault.kind == "proxy_after_create":
            return _proxy_page(fault)
        if fault.kind == "malformed":
            return _malformed(response)
        if fault.kind == "trickle":
            return Trickled(response, connection, fault.delay)
        return response

    async def create_generation(self, request: Request) -> Response:
        self.state.count_request("POST /v1/generations")
        raw = await request.body()
        client = authenticate(self.state, request)
        if isinstance(client, Response):
            return client
        fault, replaced = await self.before("POST", request)
        if replaced is not None:
            return replaced
        return await self.after(fault, request, self._create(client, request, raw))

    def _create(self, client: str, request: Request, raw: bytes) -> Response:
        with self.state.lock:
            settings = self.state.settings
        lookups = validation.Lookups(
            generation_size=lambda generation_id: self._generation_size(generation_id, client),
            file_state=lambda file_id: self._file_state(file_id, client),
            allow_loopback_urls=settings.allow_loopback_urls,
        )
        try:
            parsed = validation.parse(raw, settings.long_edge, lookups)
        except validation.Rejected as rejected:
            return api_error(rejected.status, rejected.detail)
        with self.state.lock:
            admission = self.state.admit(client)
            if admission.status is not None:
                return api_error(admission.status, admission.detail, admission.headers)
            generation = self.state.create(
                client=client,
                type=parsed.type,
                model=parsed.model,
                prompt=parsed.prompt,
                output_format=parsed.output_format,
                width=parsed.width,
                height=parsed.height,
            )
            # The API's 201 always shows the job queued, however fast it then runs.
            body = {**self._generation_json(generation, request), "state": "queued", "output": []}
        return JSONResponse(body, status_code=201, headers=admission.headers)

    def _generation_size(self, generation_id: str, client: str) -> tuple[int, int] | None:
        generation = self._find(generation_id, client)
        return None if generation is None else (generation.width, generation.height)

    def _file_state(self, file_id: str, client: str) -> tuple[str, tuple[int, int] | None] | None:
        with self.state.lock:
            stored = self.state.files.owned(file_id.lower(), client)
            return None if stored is None else (stored.state_at(self.state.clock()), stored.pixel_size())

    def _find(self, generation_id: str, client: str) -> Generation | None:
        """The client's generation with this id; only canonical hyphenated UUIDs (any case) are ids."""
        if not CANONICAL_UUID.match(generation_id):
            return None
        return self.state.get(generation_id.lower(), client)

    async def get_generation(self, request: Request) -> Response:
        self.state.count_request("GET /v1/generations/{id}")
        client = authenticate(self.state, request)
        if isinstance(client, Response):
            return client
        fault, replaced = await self.before("GET", request)
        if replaced is not None:
            return replaced
        generation = self._find(request.path_params["generation_id"], client)
        if generation is None:
            response: Response = api_error(404, "Generation not found")
        else:
            with self.state.lock:
                response = JSONResponse(self._generation_json(generation, request))
        return await self.after(fault, request, response)

    def _generation_json(self, generation: Generation, request: Request) -> dict[str, Any]:
        now = self.state.clock()
        state = generation.state_at(now)
        failure = generation.failure() if state == "failed" else None
        output = []
        if state == "completed":
            for name, layer in _outputs(generation):
                url = self.signer.mint(
                    str(request.base_url),
                    f"/outputs/{generation.id}/{name}",
                    now,
                    self.state.settings.url_ttl_seconds,
                    self.state.url_epoch,
                )
                item: dict[str, Any] = {"type": "image", "url": url}
                if layer is not None:
                    item["layer"] = layer.to_json()
                output.append(item)
        return {
            "id": generation.id,
            "type": generation.type,
            "state": state,
            "model": generation.model,
            "created_at": generation.created_at(),
            "output": output,
            "failure_reason": failure[1] if failure else None,
            "failure_code": failure[0] if failure else None,
        }

    # --- output downloads ------------------------------------------------------------------------

    def s3_error(self, request: Request, status: int, message: str | None = None) -> Response:
        codes = {
            400: "InvalidArgument",
            403: "AccessDenied",
            404: "NoSuchKey",
            500: "InternalError",
            503: "SlowDown",
        }
        code = codes.get(status, "InternalError")
        body = s3_error_xml(code, message or code, request.scope[REQUEST_ID])
        return Response(body, status_code=status, media_type="application/xml")

    async def get_output(self, request: Request) -> Response:
        self.state.count_request("GET output")
        fault, replaced = await self.before("OUTPUT", request)
        if replaced is not None:
            return replaced
        return await self.after(fault, request, await self._output(request, fault))

    async def _output(self, request: Request, fault: Fault | None) -> Response:
        request_id = request.scope[REQUEST_ID]
        if "authorization" in request.headers:
            with self.state.lock:
                self.state.output_authorization_refused += 1
            refusal = s3_error_xml("InvalidArgument", ONE_AUTH_MECHANISM, request_id)
            return Response(refusal, status_code=400, media_type="application/xml")
        with self.state.lock:
            now, epoch = self.state.clock(), self.state.url_epoch
            padding = self.state.settings.output_padding_bytes
        refused = self.signer.check(request.url.path, request.query_params, now, epoch)
        if refused is not None:
            status, code, message = refused
            xml = s3_error_xml(code, message, request_id)
            return Response(xml, status_code=status, media_type="application/xml")
        # The URL is the credential here (as on S3): any client's output is served to whoever holds it.
        with self.state.lock:
            generation = self.state.generations.get(request.path_params["generation_id"])
        name = request.path_params["name"]
        found = dict(_outputs(generation)) if generation is not None else {}
        if generation is None or generation.state_at(now) != "completed" or name not in found:
            return self.s3_error(request, 404, "The specified key does not exist.")
        render = _renderer(generation, found[name])
        image = await run_in_threadpool(self.state.cached_output, generation.id, name, render)
        output_format = "png" if found[name] is not None else generation.output_format
        body = images.OutputBody.build(image, output_format, padding)
        headers = {
            "Content-Type": body.content_type,
            "Content-Length": str(body.size),
            "ETag": f'"{generation.id}/{name}"',
            "x-amz-request-id": request_id,
        }
        if fault is not None and fault.kind == "malformed":
            # Small enough to hold: a truncated copy with a matching Content-Length.
            return Response(b"".join(body.chunks()), headers=headers, media_type=body.content_type)
        cut_at = body.size // 2 if fault is not None and fault.kind == "drop_midway" else None
        return Stream(body.chunks(), headers, request.scope[CONNECTION], cut_at)

    # --- control plane ---------------------------------------------------------------------------

    async def control_stats(self, request: Request) -> Response:
        stats = self.state.stats()
        now = self.state.clock()
        with self.state.lock:
            generations = [
                {
                    "id": g.id,
                    "state": g.state_at(now),
                    "type": g.type,
                    "model": g.model,
                    "width": g.width,
                    "height": g.height,
                    "output_format": g.output_format,
                    "client": g.client,
                }
                for g in self.state.generations.values()
            ]
            stored_files = [
                {
                    "id": f.id,
                    "state": f.state_at(now),
                    "mime_type": f.mime_type,
                    "size_bytes": f.size_bytes,
                    "purpose": f.purpose,
                    "client": f.client,
                }
                for f in self.state.files.files.values()
            ]
        return JSONResponse(
            {
                "generations_created": stats.generations_created,
                "requests": dict(stats.requests),
                "output_authorization_refused": stats.output_authorization_refused,
                "requests_with_cookie": stats.requests_with_cookie,
                "files_created": stats.files_created,
                "file_uploads": stats.file_uploads,
                "file_upload_bytes": stats.file_upload_bytes,
                "upload_authorization_refused": stats.upload_authorization_refused,
                "faults": self.faults.pending(),
                "generations": generations,
                "files": stored_files,
            }
        )

    async def control_reset(self, request: Request) -> Response:
        self.state.reset()
        self.faults.clear()
        return JSONResponse({"reset": True})

    async def control_faults(self, request: Request) -> Response:
        return await _control(request, self._add_faults)

    def _add_faults(self, body: Any) -> dict[str, Any]:
        faults = [Fault.from_json(item) for item in (body if isinstance(body, list) else [body])]
        for fault in faults:
            self.faults.add(fault)
        return {"faults": self.faults.pending()}

    async def control_set_state(self, request: Request) -> Response:
        def apply(body: dict[str, Any]) -> dict[str, Any]:
            self.state.set_state(**body)
            return {"generation_id": body["generation_id"], "state": body["state"]}

        return await _control(request, apply)

    async def control_fail_next(self, request: Request) -> Response:
        def apply(body: dict[str, Any]) -> dict[str, Any]:
            self.state.plan_failures(body["code"], int(body.get("count", 1)), body.get("reason"))
            return {"planned": len(self.state.planned_failures)}

        return await _control(request, apply)

    async def control_fail_next_file_ingest(self, request: Request) -> Response:
        def apply(body: dict[str, Any]) -> dict[str, Any]:
            with self.state.lock:
                self.state.files.plan_failures(body.get("reason"), int(body.get("count", 1)))
                return {"planned": len(self.state.files.planned_failures)}

        return await _control(request, apply)

    async def control_expire_file(self, request: Request) -> Response:
        def apply(body: dict[str, Any]) -> dict[str, Any]:
            with self.state.lock:
                self.state.files.expire(body["file_id"])
            return {"file_id": body["file_id"], "expired": True}

        return await _control(request, apply)

    async def control_expire(self, request: Request) -> Response:
        self.state.expire_output_urls()
        return JSONResponse({"expired": True})

    async def control_configure(self, request: Request) -> Response:
        def apply(body: dict[str, Any]) -> dict[str, Any]:
            self.state.configure(**body)
            return {"settings": vars(self.state.settings)}

        return await _control(request, apply)


async def _control(request: Request, apply: Callable[[Any], dict[str, Any]]) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
        return JSONResponse(apply(body))
    except KeyError as exc:
        return JSONResponse({"detail": f"not found: {exc.args[0]}"}, status_code=404)
    except (TypeError, ValueError) as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)


def _outputs(generation: Generation) -> list[tuple[str, layers.Layer | None]]:
    """The output files of a completed generation: one image, or one RGBA PNG per layer."""
    if generation.type == "layering":
        return [(layers.file_name(layer.index), layer) for layer in layers.plan(generation.id)]
    return [(images.FILE_NAMES[generation.output_format], None)]


def _renderer(generation: Generation, layer: layers.Layer | None) -> Callable[[], bytes]:
    def render() -> bytes:
        if layer is not None:
            return layer.render(generation.width, generation.height)
        return images.render(generation.prompt, generation.width, generation.height, generation.output_format)

    return render


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # FastAPI's shape for routing errors (404 Not Found, 405 Method Not Allowed).
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(state: EmulatorState, faults: FaultQueue, signer: UrlSigner) -> ASGIApp:
    """The emulator's ASGI app over the given state, fault queue and URL signer."""
    api = _Api(state, faults, signer)
    routes = [
        Route("/v1/generations", api.create_generation, methods=["POST"]),
        Route("/v1/generations/{generation_id:path}", api.get_generation, methods=["GET"]),
        Route("/outputs/{generation_id}/{name}", api.get_output, methods=["GET"]),
        Route("/v1/files", api.files.create, methods=["POST"]),
        Route("/v1/files", api.files.list, methods=["GET"]),
        Route("/v1/files/{file_id}/complete", api.files.complete, methods=["POST"]),
        Route("/v1/files/{file_id:path}", api.files.get, methods=["GET"]),
        Route("/v1/files/{file_id:path}", api.files.delete, methods=["DELETE"]),
        Route("/uploads/{file_id}", api.files.upload, methods=["PUT"]),
        Route("/_emulator/stats", api.control_stats, methods=["GET"]),
        Route("/_emulator/reset", api.control_reset, methods=["POST"]),
        Route("/_emulator/faults", api.control_faults, methods=["POST"]),
        Route("/_emulator/set_state", api.control_set_state, methods=["POST"]),
        Route("/_emulator/fail_next", api.control_fail_next, methods=["POST"]),
        Route("/_emulator/expire_output_urls", api.control_expire, methods=["POST"]),
        Route("/_emulator/fail_next_file_ingest", api.control_fail_next_file_ingest, methods=["POST"]),
        Route("/_emulator/expire_file", api.control_expire_file, methods=["POST"]),
        Route("/_emulator/configure", api.control_configure, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return Wire(app)
