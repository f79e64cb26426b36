"""
How the emulator's answers go on the wire: whole, stamped with the API's headers, or broken on purpose.

:class:`Wire` is an outer ASGI layer that stamps ``X-Request-Id`` and ``X-API-Version`` on every
``/v1`` response (including routing errors and crashes) and keeps the server's own ``send`` and
``receive``, so that a fault can close the TCP connection (:class:`Connection`). A ``proxy`` fault's
page is the one ``/v1`` answer left unstamped: it stands for a load balancer, not the API. The other
classes are the broken answers the faults send: none, half a body, a body a byte at a time, a stream
cut after some bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING

from starlette.responses import Response

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSION = "2026-04-01"
#: Where ``Wire`` keeps the request's connection and id in the ASGI scope.
CONNECTION = "luma.connection"
REQUEST_ID = "luma.request_id"
#: Marks a response as a gateway's page for ``Wire`` (which removes it and stamps nothing).
PROXY_MARK = "x-luma-emulator-proxy"
_DRAIN_SECONDS = 5.0


class Connection:
    """The server's own receive/send for one request, to wait on or cut the TCP connection."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send

    async def _disconnected(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def wait(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False if the client hung up meanwhile (the wait then ends early)."""
        watcher = asyncio.ensure_future(self._disconnected())
        try:
            done, _ = await asyncio.wait({watcher}, timeout=delay)
        finally:
            watcher.cancel()
        return not done

    async def drop(self) -> None:
        """Close the TCP connection now, whatever was sent so far, and wait until the server sees it."""
        # uvicorn's send is a bound method of its request cycle, which holds the asyncio transport.
        transport = getattr(getattr(self.send, "__self__", None), "transport", None)
        if transport is None:
            raise RuntimeError("dropping a connection needs the emulator's uvicorn server")
        transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._disconnected(), _DRAIN_SECONDS)


class Wire:
    """Outer ASGI layer: API headers on every ``/v1`` response, and the raw connection for faults."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_header(scope, b"x-request-id") or str(uuid.uuid4())
        scope[CONNECTION] = Connection(receive, send)
        scope[REQUEST_ID] = request_id
        if not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kept = [(key, value) for key, value in headers if key.lower() != PROXY_MARK.encode()]
                if len(kept) == len(headers):
                    kept += [
                        (b"x-request-id", request_id.encode("latin-1")),
                        (b"x-api-version", API_VERSION.encode()),
                    ]
                message["headers"] = kept
            await send(message)

        await self.app(scope, receive, stamped)


def request_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class NoResponse(Response):
    """For a dropped connection: nothing more is sent."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class _Broken(Response):
    """An answer sent with the status and headers of ``original`` (full Content-Length), its body mangled."""

    def __init__(self, original: Response, connection: Connection) -> None:
        super().__init__()
        self.original = original
        self.connection = connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.original.status_code}
        await send({**start, "headers": self.original.raw_headers})
        await self.send_body(bytes(self.original.body), send)

    async def send_body(self, body: bytes, send: Send) -> None:
        raise NotImplementedError


class Truncated(_Broken):
    """Send the headers of ``response`` and half its body, then cut the connection."""

    async def send_body(self, body: bytes, send: Send) -> None:
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await self.connection.drop()


class Trickled(_Broken):
    """Send ``response`` whole, but its body one byte every ``delay`` seconds (until the client hangs up)."""

    def __init__(self, original: Response, connection: Connection, delay: float) -> None:
        super().__init__(original, connection)
        self.delay = delay

    async def send_body(self, body: bytes, send: Send) -> None:
        for index in range(len(body)):
            await send({"type": "http.response.body", "body": body[index : index + 1], "more_body": True})
            if not await self.connection.wait(self.delay):
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class Stream(Response):
    """Stream ``chunks`` with a known Content-Length; optionally cut the connection after ``cut_at`` bytes."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        headers: dict[str, str],
        connection: Connection,
        cut_at: int | None = None,
    ) -> None:
        super().__init__(headers=headers)
        self.chunks = chunks
        self.connection = connection
        self.cut_at = cut_at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        sent = 0
        for chunk in self.chunks:
            if self.cut_at is not None and sent + len(chunk) >= self.cut_at:
                await send(
                    {"type": "http.response.body", "body": chunk[: self.cut_at - sent], "more_body": True}
                )
                await self.connection.drop()
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
