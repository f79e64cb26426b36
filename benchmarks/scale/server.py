"""
A minimal keep-alive stand-in for ``GET /v1/generations/{id}`` (always ``processing``), for the
triggerer-scale benchmark: uvloop + httptools on a core of its own, so the server never limits the
client and the client's CPU per poll is what is measured. ``GET /_count`` answers
``"<requests> <distinct ids>"`` so the client can read its achieved rate without instrumenting the code
under test.

    python -m benchmarks.scale.server PORT [CERT KEY]
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
_BODY = json.dumps(
    {
        "id": _PLACEHOLDER,
        "type": "image",
        "state": "processing",
        "model": "uni-1",
        "created_at": "2026-04-08T12:00:00Z",
        "updated_at": "2026-04-08T12:00:05Z",
        "output": [],
        "failure_reason": None,
        "failure_code": None,
    }
).encode()
_requests = [0]
_seen: set[str] = set()


async def generation(request: Request) -> Response:
    _requests[0] += 1
    generation_id = request.path_params["generation_id"]
    _seen.add(generation_id)
    return Response(
        _BODY.replace(_PLACEHOLDER.encode(), generation_id.encode()),
        media_type="application/json",
        headers={
            "X-Request-Id": request.headers.get("x-request-id") or str(uuid.uuid4()),
            "X-API-Version": "2026-04-01",
        },
    )


async def count(request: Request) -> Response:
    return Response(f"{_requests[0]} {len(_seen)}")


app = Starlette(routes=[Route("/v1/generations/{generation_id}", generation), Route("/_count", count)])

if __name__ == "__main__":
    import uvicorn

    tls = {"ssl_certfile": sys.argv[2], "ssl_keyfile": sys.argv[3]} if len(sys.argv) > 3 else {}
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=8192,
        **tls,  # type: ignore[arg-type]
    )
