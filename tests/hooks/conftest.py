"""Fixtures for the hook's unit tests: a connection to a fake base URL, a sleep recorder, a clock."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Any
from unittest import mock

import httpx
import pytest
import respx

from airflow_provider_luma.hooks._aiohttp import AiohttpTransport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BASE_URL = "https://luma.test/v1"
API_KEY = "luma-api-unit-test-key"
OUTPUT_URL = "https://storage.test/generations/out.png?X-Amz-Expires=3600&X-Amz-Signature=s3cr3t"
#: The header the API stamps on every /v1 response (and a proxy's own error page lacks).
API_HEADERS = {"X-API-Version": "2026-04-01"}


@contextlib.contextmanager
def respx_router(**options: Any) -> Iterator[respx.MockRouter]:
    """
    ``respx.mock(**options)``, reaching the async client too.

    respx intercepts httpcore's pool, which the async client does not use (it sends over aiohttp):
    while the router is active, the aiohttp transport hands each request to an httpcore transport
    instead, so one route serves the sync and the async path. The aiohttp transport itself is tested
    over real HTTP (``test_aiohttp_transport.py``, the emulator's fault matrix).
    """
    via_httpcore = httpx.AsyncHTTPTransport(verify=False)

    async def send(self: AiohttpTransport, request: httpx.Request) -> httpx.Response:
        return await via_httpcore.handle_async_request(request)

    with respx.mock(**options) as router, mock.patch.object(AiohttpTransport, "handle_async_request", send):
        yield router


class FakeClock:
    """Epoch seconds that move only when a recorded sleep (or the test) moves them."""

    def __init__(self, now: float = 1_775_649_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps(list):
    """Records the waits a retry loop asked for, sync or async, without waiting (moving ``clock``)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds

    async def asleep(self, seconds: float) -> None:
        self(seconds)


def api_error(status: int, detail: Any, **headers: str) -> httpx.Response:
    """An error answer as the API itself sends it: a JSON ``detail`` and ``X-API-Version``."""
    return httpx.Response(status, headers={**API_HEADERS, **headers}, json={"detail": detail})


def proxy_page(status: int) -> httpx.Response:
    """A load balancer's own error page: HTML, no ``X-API-Version``."""
    html = f"<html><head><title>{status}</title></head><body><h1>{status}</h1><hr>nginx</body></html>"
    return httpx.Response(status, headers={"Content-Type": "text/html"}, text=html)


def generation_body(
    generation_id: str | None = None, state: str = "queued", output_url: str = OUTPUT_URL, **extra: Any
) -> dict[str, Any]:
    """A Generation body in the documented shape."""
    return {
        "id": generation_id or str(uuid.uuid4()),
        "type": "image",
        "state": state,
        "model": "uni-1",
        "created_at": "2026-04-08T12:00:00Z",
        "output": [{"type": "image", "url": output_url}] if state == "completed" else [],
        "failure_reason": None,
        "failure_code": None,
        **extra,
    }


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define ``luma_default`` (or another id) through the environment, as Airflow reads it."""

    def _set(conn_id: str = "luma_default", **fields: Any) -> None:
        value = {"conn_type": "luma", **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))

    return _set


@pytest.fixture
def luma_conn(set_connection: Callable[..., None]) -> Callable[..., None]:
    """The default connection pointing at :data:`BASE_URL`; call it again to change extras."""

    def _set(**extra: Any) -> None:
        set_connection(host=BASE_URL, password=API_KEY, extra=extra)

    _set()
    return _set


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
