"""
The async client's aiohttp transport over real sockets on 127.0.0.1, and the registry that shares it.

The emulator's fault matrix (``tests/faults``) already runs every POST and GET fault through this
transport; these cases cover what only the transport decides: headers refused before sending,
httpx's decoding and redirect rules kept, one client and one SSL context however many triggers start.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_luma._offloop import BuiltOnce
from airflow_provider_luma.hooks import _clients
from airflow_provider_luma.hooks._clients import ASYNC_CLIENTS, ClientConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.timeout(60)


class RawServer:
    """An HTTP/1.1 server that answers every request with one fixed raw answer, counting requests."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.requests.append(head)
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


def answer(status: str, body: bytes, **headers: str) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        f"Content-Length: {len(body)}",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
async def client() -> AsyncIterator[Callable[[int], httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def make(port: int) -> httpx.AsyncClient:
        made.append(
            ClientConfig(base_url=f"http://127.0.0.1:{port}/v1").async_client(ssl.create_default_context())
        )
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(client: Any) -> None:
    async with RawServer(answer("200 OK", b"{}")) as server:
        with pytest.raises(httpx.LocalProtocolError):
            await client(server.port).get(
                "/generations/x", headers={"Authorization": "Bearer luma-api-k\r\nX: y"}
            )
    # LocalProtocolError is among the errors that prove nothing was sent: it must be true here.
    assert server.requests == []


async def test_a_compressed_answer_is_decoded_by_httpx(client: Any) -> None:
    body = json.dumps({"state": "processing"}).encode()
    async with RawServer(answer("200 OK", gzip.compress(body), Content_Encoding="gzip")) as server:
        response = await client(server.port).get("/generations/x")
    assert response.json() == {"state": "processing"}


async def test_a_redirect_is_returned_not_followed(client: Any) -> None:
    # Following it would carry the Authorization header to wherever it points.
    async with RawServer(answer("302 Found", b"", Location="http://127.0.0.1:9/elsewhere")) as server:
        response = await client(server.port).get(
            "/generations/x", headers={"Authorization": "Bearer luma-api-k"}
        )
    assert response.status_code == 302 and len(server.requests) == 1


async def test_the_request_goes_out_as_httpx_built_it(client: Any) -> None:
    async with RawServer(answer("201 Created", b'{"id": "g"}', Content_Type="application/json")) as server:
        response = await client(server.port).post(
            "/generations", json={"prompt": "a lighthouse"}, headers={"X-Request-Id": "r-1"}
        )
    assert response.status_code == 201 and response.json() == {"id": "g"}
    head = server.requests[0].decode().lower()
    assert head.startswith("post /v1/generations http/1.1")
    assert "x-request-id: r-1" in head and "content-type: application/json" in head
    assert f"user-agent: {_clients.USER_AGENT.lower()}" in head


async def test_a_refused_connection_is_a_connect_error(client: Any) -> None:
    # Nothing listens on the port of a server just closed: "the connection never opened".
    async with RawServer(b"") as server:
        port = server.port
    with pytest.raises(httpx.ConnectError):
        await client(port).get("/generations/x")


# --------------------------------------------------------------------------------- registry


class CountingBuild:
    """An SSL context build that waits until released, so many acquires pile up on it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def __call__(self) -> ssl.SSLContext:
        self.calls += 1
        asyncio.run_coroutine_threadsafe(self.release.wait(), self.loop).result()
        return ssl.create_default_context()


async def test_many_triggers_starting_at_once_build_one_client_and_one_ssl_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build = CountingBuild()
    monkeypatch.setattr(_clients, "SSL_CONTEXT", BuiltOnce(build))
    config = ClientConfig(base_url="http://127.0.0.1:9/single-flight")
    acquiring = [asyncio.create_task(ASYNC_CLIENTS.acquire(config)) for _ in range(200)]
    # Let every acquire reach the wait for the context, then let the one build finish.
    while not build.calls:
        await asyncio.sleep(0)
    build.release.set()
    leases = await asyncio.gather(*acquiring)

    assert build.calls == 1
    assert len({id(lease.client) for lease in leases}) == 1 and ASYNC_CLIENTS.users(config) == 200
    for lease in leases:
        await ASYNC_CLIENTS.release(lease)
    assert leases[0].client._transport._session.closed and ASYNC_CLIENTS.users(config) == 0  # type: ignore[attr-defined]


async def test_a_trigger_cancelled_while_acquiring_holds_no_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    build = CountingBuild()
    monkeypatch.setattr(_clients, "SSL_CONTEXT", BuiltOnce(build))
    config = ClientConfig(base_url="http://127.0.0.1:9/cancelled")
    cancelled = asyncio.create_task(ASYNC_CLIENTS.acquire(config))
    staying = asyncio.create_task(ASYNC_CLIENTS.acquire(config))
    while not build.calls:
        await asyncio.sleep(0)
    cancelled.cancel()
    build.release.set()
    lease = await staying

    assert cancelled.cancelled() and build.calls == 1
    assert ASYNC_CLIENTS.users(config) == 1
    await ASYNC_CLIENTS.release(lease)
    assert lease.client._transport._session.closed  # type: ignore[attr-defined]


async def test_a_failed_ssl_context_build_is_tried_again_by_the_next_caller() -> None:
    attempts: list[int] = []

    def build() -> ssl.SSLContext:
        attempts.append(1)
        if len(attempts) == 1:
            raise ssl.SSLError("no CA bundle at SSL_CERT_FILE")
        return ssl.create_default_context()

    shared = BuiltOnce(build)
    with pytest.raises(ssl.SSLError):
        await shared.aget()
    assert isinstance(await shared.aget(), ssl.SSLContext) and len(attempts) == 2


def test_the_sync_and_async_sides_verify_with_the_one_context(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = BuiltOnce(ssl.create_default_context)
    monkeypatch.setattr(_clients, "SSL_CONTEXT", shared)
    config = ClientConfig(base_url="https://luma.test/v1")

    async def async_side() -> ssl.SSLContext:
        lease = await ASYNC_CLIENTS.acquire(config)
        connector = lease.client._transport._session.connector  # type: ignore[attr-defined]
        await ASYNC_CLIENTS.release(lease)
        return connector._ssl  # type: ignore[no-any-return]

    with config.sync_client() as sync_client, config.download_client() as download_client:
        sync_contexts = {
            id(each._transport._pool._ssl_context)  # type: ignore[attr-defined]
            for each in (sync_client, download_client)
        }
    assert sync_contexts == {id(asyncio.run(async_side()))} == {id(shared.get())}


async def test_the_environments_proxy_is_used_and_no_proxy_honoured(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with RawServer(answer("200 OK", b"{}")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        proxied = ClientConfig(base_url="http://luma.test/v1").async_client(ssl.create_default_context())
        monkeypatch.setenv("NO_PROXY", "luma.test")
        direct = ClientConfig(base_url="http://luma.test/v1").async_client(ssl.create_default_context())
        try:
            await proxied.get("/generations/x")
            with pytest.raises(httpx.ConnectError):  # luma.test does not resolve: it went direct
                await direct.get("/generations/x")
        finally:
            await proxied.aclose()
            await direct.aclose()
    assert len(proxy.requests) == 1
    assert proxy.requests[0].startswith(b"GET http://luma.test/v1/generations/x HTTP/1.1")


@pytest.mark.parametrize("header", ["Bearer luma-api-k\tx\x01", "Bearer luma-api-k\x7f"])
async def test_any_control_character_aiohttp_refuses_is_refused_as_h11_would(
    client: Any, header: str
) -> None:
    async with RawServer(answer("200 OK", b"{}")) as server:
        with pytest.raises(httpx.LocalProtocolError):
            await client(server.port).post("/generations", headers={"Authorization": header})
    assert server.requests == []


async def test_a_proxy_named_without_a_scheme_is_taken_as_http(monkeypatch: pytest.MonkeyPatch) -> None:
    async with RawServer(answer("200 OK", b"{}")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"127.0.0.1:{proxy.port}")
        proxied = ClientConfig(base_url="http://luma.test/v1").async_client(ssl.create_default_context())
        try:
            await proxied.get("/generations/x")
        finally:
            await proxied.aclose()
    assert proxy.requests[0].startswith(b"GET http://luma.test/v1/generations/x")


def test_a_socks_proxy_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_luma.exceptions import LumaConfigurationError

    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")

    async def build() -> None:
        ClientConfig(base_url="https://luma.test/v1").async_client(ssl.create_default_context())

    with pytest.raises(LumaConfigurationError, match="not an http:// or https:// proxy"):
        asyncio.run(build())
