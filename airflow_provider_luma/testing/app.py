"""
The emulator's HTTP surface: the two ``/v1`` endpoints, output downloads and the ``/_emulator`` control plane.

``create_app`` builds a Starlette app and wraps it in ``Wire``, an outer ASGI layer that stamps
``X-Request-Id`` and ``X-API-Version`` on every ``/v1`` response (including routing errors and crashes)
and keeps the server's own ``send``/``receive`` so a fault can close the TCP connection. A ``proxy``
fault's page is the one ``/v1`` answer left unstamped: it stands for a load balancer, not the API.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_luma.testing import images, validation
from airflow_provider_luma.testing.faults import Fault, FaultQueue
from airflow_provider_luma.testing.outputs import ONE_AUTH_MECHANISM, UrlSigner, s3_error_xml
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

KEY_PREFIX = "luma-api-"
_KEY_STATUS_DETAILS = {"revoked": "API key has been revoked", "expired": "API key has expired"}


def _api_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


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
    """Route handlers over one emulator's state, faults and URL signer."""

    def __init__(self, state: EmulatorState, faults: FaultQueue, signer: UrlSigner) -> None:
        self.state = state
        self.faults = faults
        self.signer = signer

    # --- /v1 -------------------------------------------------------------------------------------

    def _auth_error(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        # The scheme word is case-sensitive: "bearer ..." is refused like a missing key.
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if not token.startswith(KEY_PREFIX):
            return _api_error(401, "Missing or invalid API key")
        status = self.state.api_keys.get(token)
        if status is None:
            return _api_error(401, "Invalid API key")
        if status in _KEY_STATUS_DETAILS:
            return _api_error(401, _KEY_STATUS_DETAILS[status])
        return None

    async def _before(self, method: str, request: Request) -> tuple[Fault | None, Response | None]:
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
            if method == "OUTPUT":
                return fault, self._s3_error(request, fault.status or 500, fault.detail)
            with self.state.lock:
                status, detail, headers = fault.api_error(self.state.settings.rpm_limit, self.state.clock())
            return fault, _api_error(status, detail, headers)
        if fault.kind == "drop":
            await connection.drop()
            return fault, NoResponse()
        if fault.kind == "slow" and not await connection.wait(fault.delay):
            # The client gave up while the server was still busy: nothing is processed. Counted, so
            # a test can wait for the server to have let the request go before asserting on it.
            self.state.count_request(f"{method} abandoned")
            return fault, NoResponse()
        return fault, None

    async def _after(self, fault: Fault | None, request: Request, response: Response) -> Response:
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
        fault, replaced = await self._before("POST", request)
        if replaced is not None:
            return replaced
        return await self._after(fault, request, self._create(request, raw))

    def _create(self, request: Request, raw: bytes) -> Response:
        refused = self._auth_error(request)
        if refused is not None:
            return refused
        try:
            parsed = validation.parse(raw, self.state.settings.long_edge, self._generation_size)
        except validation.Rejected as rejected:
            return _api_error(rejected.status, rejected.detail)
        with self.state.lock:
            admission = self.state.admit()
            if admission.status is not None:
                return _api_error(admission.status, admission.detail, admission.headers)
            generation = self.state.create(
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

    def _generation_size(self, generation_id: str) -> tuple[int, int] | None:
        generation = self._find(generation_id)
        return None if generation is None else (generation.width, generation.height)

    def _find(self, generation_id: str) -> Generation | None:
        try:
            canonical = str(uuid.UUID(generation_id))
        except ValueError:
            return None
        return self.state.get(canonical)

    async def get_generation(self, request: Request) -> Response:
        self.state.count_request("GET /v1/generations/{id}")
        fault, replaced = await self._before("GET", request)
        if replaced is not None:
            return replaced
        response = self._auth_error(request)
        if response is None:
            generation = self._find(request.path_params["generation_id"])
            if generation is None:
                response = _api_error(404, "Generation not found")
            else:
                with self.state.lock:
                    response = JSONResponse(self._generation_json(generation, request))
        return await self._after(fault, request, response)

    def _generation_json(self, generation: Generation, request: Request) -> dict[str, Any]:
        now = self.state.clock()
        state = generation.state_at(now)
        failure = generation.failure() if state == "failed" else None
        output = []
        if state == "completed":
            path = f"/outputs/{generation.id}/{images.FILE_NAMES[generation.output_format]}"
            url = self.signer.mint(
                str(request.base_url), path, now, self.state.settings.url_ttl_seconds, self.state.url_epoch
            )
            output.append({"type": "image", "url": url})
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

    def _s3_error(self, request: Request, status: int, message: str | None = None) -> Response:
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
        fault, replaced = await self._before("OUTPUT", request)
        if replaced is not None:
            return replaced
        return await self._after(fault, request, await self._output(request, fault))

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
        generation = self._find(request.path_params["generation_id"])
        if (
            generation is None
            or generation.state_at(now) != "completed"
            or request.path_params["name"] != images.FILE_NAMES[generation.output_format]
        ):
            return self._s3_error(request, 404, "The specified key does not exist.")
        image = await run_in_threadpool(self.state.cached_output, generation.id, _renderer(generation))
        body = images.OutputBody.build(image, generation.output_format, padding)
        headers = {
            "Content-Type": body.content_type,
            "Content-Length": str(body.size),
            "ETag": f'"{generation.id}"',
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
                }
                for g in self.state.generations.values()
            ]
        return JSONResponse(
            {
                "generations_created": stats.generations_created,
                "requests": dict(stats.requests),
                "output_authorization_refused": stats.output_authorization_refused,
                "requests_with_cookie": stats.requests_with_cookie,
                "faults": self.faults.pending(),
                "generations": generations,
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


def _renderer(generation: Generation) -> Callable[[], bytes]:
    def render() -> bytes:
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
        Route("/_emulator/stats", api.control_stats, methods=["GET"]),
        Route("/_emulator/reset", api.control_reset, methods=["POST"]),
        Route("/_emulator/faults", api.control_faults, methods=["POST"]),
        Route("/_emulator/set_state", api.control_set_state, methods=["POST"]),
        Route("/_emulator/fail_next", api.control_fail_next, methods=["POST"]),
        Route("/_emulator/expire_output_urls", api.control_expire, methods=["POST"]),
        Route("/_emulator/configure", api.control_configure, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return Wire(app)
