"""
The async API client's transport: httpx's request and response types over an aiohttp session.

Why not httpx's own transport: httpcore's async pool scans its whole queue on every request event,
so its CPU per request grows with the requests in flight, and a triggerer holding Airflow's default
1000 waits on one loop collapses (``benchmarks/RESULTS.md``: at N=2000, 11% of the poll rate on a
full core; over aiohttp the same trigger holds 97% on a third of one). Keeping httpx on top keeps one
request builder, one client configuration for the sync (worker) and async (triggerer) sides, and one
retry policy, which reads httpx's exception types: this module is the one place aiohttp's errors
become httpx's, sorted by what matters for a POST, whether a byte of the request may have left.
"""

from __future__ import annotations

import re
import urllib.request
from typing import TYPE_CHECKING

import aiohttp
import httpx
from yarl import URL

from airflow_provider_luma.exceptions import LumaConfigurationError

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping


def _session_timeout(timeouts: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """
    httpx's per-request timeouts in aiohttp's terms.

    aiohttp has no write timeout: a request body is bounded only by the attempt's deadline, when it
    has one (the operator submits, with its images, on the worker's sync client).
    """
    return aiohttp.ClientTimeout(
        total=None,
        # aiohttp's ``connect`` covers waiting for a pooled connection and opening one.
        connect=timeouts.get("pool"),
        sock_connect=timeouts.get("connect"),
        sock_read=timeouts.get("read"),
    )


def _transport_error(error: Exception, request: httpx.Request) -> httpx.TransportError:
    """
    The httpx error an aiohttp failure stands for.

    Only failures before the request was written become a ``ConnectError`` or ``ConnectTimeout``,
    which the retry policy may repeat even for a POST; everything after (a dropped connection, a read
    timeout, a garbled answer) is a ``ReadError``, ``ReadTimeout`` or ``RemoteProtocolError``, after
    which a POST's fate is unknown.
    """
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(error, (aiohttp.SocketTimeoutError, TimeoutError)):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError)):
        # Refused, unreachable, DNS, a certificate refused in the handshake, or a proxy that would
        # not open the tunnel: the request itself never left.
        return httpx.ConnectError(message, request=request)
    if isinstance(
        error, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)
    ):
        # Dropped mid-answer, a body cut short, or a head aiohttp's parser refused (what h11 calls a
        # protocol error).
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)


#: The control characters aiohttp refuses in a header (with a plain ``ValueError``), CR and LF among them.
_FORBIDDEN_IN_HEADERS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _headers(request: httpx.Request) -> list[tuple[str, str]]:
    """
    The request's headers for aiohttp, refused as h11 would refuse them, before anything is sent.

    A line break in a value (a key pasted with its newline) would otherwise be left to aiohttp's own
    check, which raises a plain ``ValueError`` that the retry policy could not tell from a bug.
    """
    headers = []
    for name, value in request.headers.raw:
        if _FORBIDDEN_IN_HEADERS.search(name) or _FORBIDDEN_IN_HEADERS.search(value):
            raise httpx.LocalProtocolError("Illegal header value", request=request)
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    return headers


def _environment_proxy(url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """
    The proxy ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts it.

    From the environment alone: aiohttp's own lookup also reads ``~/.netrc``, a blocking file read
    on the event loop.
    """
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or (url.host and bypass(url.host, proxies)):
        return None, None
    # httpx reads "proxy:3128" as http://proxy:3128; yarl would take "proxy" for the scheme.
    proxy_url = URL(proxy if "://" in proxy else f"http://{proxy}")
    if proxy_url.scheme not in ("http", "https") or not proxy_url.host:
        raise LumaConfigurationError(
            f"The proxy the environment names for {url.host} ({proxy_url.with_user(None)}) is not an "
            "http:// or https:// proxy, which is all the triggerer's client can use; nothing was sent."
        )
    return proxy_url.with_user(None), aiohttp.BasicAuth.from_url(proxy_url)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    An ``httpx.AsyncClient`` transport that sends through one shared ``aiohttp.ClientSession``.

    Redirects, cookies and decompression stay httpx's: the session follows no redirect, keeps no
    cookie and hands the body over as it came, so a response behaves as it does on the sync side.

    The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``, as httpx honours
    them on the sync side) is looked up once here: aiohttp's own ``trust_env`` would read ``~/.netrc``
    on every request, the largest single cost of a poll in the triggerer-scale profile.

    :param session: the session (its connector holds the pool and the process's SSL context).
    :param base_url: the API root every request of this client goes to.
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._proxy, self._proxy_auth = _environment_proxy(URL(base_url))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = _headers(request)
        body = await request.aread()
        try:
            async with self._session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
                timeout=_session_timeout(request.extensions.get("timeout", {})),
            ) as answer:
                content = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _transport_error(error, request) from error
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()},
        )

    async def aclose(self) -> None:
        await self._session.close()


def session(ssl_context: ssl.SSLContext, max_connections: int) -> aiohttp.ClientSession:
    """A session for :class:`AiohttpTransport`, built on the running loop (cheap: no CA bundle loaded)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, ssl=ssl_context),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        # The environment's proxy is the transport's, looked up once (AiohttpTransport says why).
        trust_env=False,
        # httpx sets every header the API needs; aiohttp adds none of its own.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )
