"""
The HTTP clients: one configuration for the sync and async API clients, a plain client for output
downloads, the process's one SSL context, and the registry that lets many triggers share pooled async
clients.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_luma import __version__
from airflow_provider_luma._offloop import BuiltOnce
from airflow_provider_luma.hooks import _aiohttp

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator

DEFAULT_BASE_URL = "https://agents.lumalabs.ai/v1"
USER_AGENT = f"airflow-provider-luma/{__version__}"
#: Connections a client keeps open and alive: a triggerer's many pollers reuse them instead of
#: reconnecting (at a 2 s interval and ~1 ms per answer, 1000 waits keep only a few busy at once).
MAX_CONNECTIONS = 100
_LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)


class _NoCookies(http.cookiejar.CookieJar):
    """
    A cookie jar that keeps nothing.

    A client is shared by every connection with the same base URL (and, for the async one, by every
    trigger on the loop), while the key travels per request: a cookie the API (or a proxy) set in
    answer to one key would otherwise ride along with another key's requests. The API needs no
    cookies, so none is stored. ``CookieJar.extract_cookies`` and ``httpx.Cookies.set`` both store
    through ``set_cookie``.
    """

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


class _NoCookieStore(httpx.Cookies):
    """
    httpx's cookie store over :class:`_NoCookies`, which does not even read an answer's cookies.

    httpx hands every answer to the store, which wraps it and its request in ``urllib`` objects for the
    jar: about a tenth of a poll's CPU in the triggerer-scale profile, for nothing kept.
    """

    def __init__(self) -> None:
        super().__init__()
        self.jar = _NoCookies()

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


#: Stores nothing, so one serves every client.
_NO_COOKIES = _NoCookieStore()


class _Cookieless:
    """
    Mixed into our clients: their cookie store is :data:`_NO_COOKIES`.

    A store passed to httpx's constructor is copied into a plain ``httpx.Cookies``, so the client's
    own ``cookies`` is replaced instead (setting it is ignored: nothing is kept).
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value: object) -> None:
        return None


class _Client(_Cookieless, httpx.Client):
    """A cookieless ``httpx.Client``."""


class _AsyncClient(_Cookieless, httpx.AsyncClient):
    """A cookieless ``httpx.AsyncClient``."""


def _default_ssl_context() -> ssl.SSLContext:
    """
    httpx's own default context (it honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``).

    Building one loads the CA bundle (20-40 ms of CPU): a worker pays it once instead of once per
    hook, and a triggerer restarting with 2000 Luma waits once instead of 2000 times, off its loop.
    """
    return httpx.create_ssl_context(verify=True, trust_env=True)


#: The SSL context every client of this process verifies with.
SSL_CONTEXT: BuiltOnce[ssl.SSLContext] = BuiltOnce(_default_ssl_context)


@dataclass(frozen=True)
class ClientConfig:
    """
    Everything a client is built from, except the API key (sent per request, so clients can be shared).

    :param base_url: the API root, such as ``https://agents.lumalabs.ai/v1``.
    :param timeout: seconds to wait for reading, writing and a free pooled connection.
    :param connect_timeout: seconds to wait for a connection to open.
    """

    base_url: str = DEFAULT_BASE_URL
    timeout: float = 60.0
    connect_timeout: float = 5.0

    def _options(self) -> dict[str, Any]:
        return {"timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout)}

    def timeouts_within(self, seconds: float) -> httpx.Timeout:
        """This configuration's timeouts, none longer than ``seconds`` (the time left before a deadline)."""
        seconds = max(0.0, seconds)
        return httpx.Timeout(min(self.timeout, seconds), connect=min(self.connect_timeout, seconds))

    def _api_options(self) -> dict[str, Any]:
        return {
            **self._options(),
            "base_url": self.base_url,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        }

    def sync_client(self) -> httpx.Client:
        """A client for the API (no credentials on it)."""
        return _Client(**self._api_options(), limits=_LIMITS, verify=SSL_CONTEXT.get())

    def async_client(self, ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
        """
        The asynchronous twin of :meth:`sync_client`, over aiohttp (:mod:`._aiohttp` says why).

        Built on the running loop, without blocking it: ``ssl_context`` is already loaded
        (:data:`SSL_CONTEXT`).
        """
        transport = _aiohttp.AiohttpTransport(_aiohttp.session(ssl_context, MAX_CONNECTIONS), self.base_url)
        return _AsyncClient(**self._api_options(), transport=transport)

    def download_client(self) -> httpx.Client:
        """
        A client for presigned output URLs: no base URL and no header of ours but ``User-Agent``.

        The URL's signature is its credential; an ``Authorization`` header would be refused by S3 and
        would hand our API key to the storage host.
        """
        return _Client(
            **self._options(),
            limits=_LIMITS,
            verify=SSL_CONTEXT.get(),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
        )


class _ReadByDeadline(httpx.SyncByteStream):
    """A response body whose reading ends by a time: httpx's timeouts bound each read, not all of them."""

    def __init__(
        self, stream: httpx.SyncByteStream, request: httpx.Request, ends_at: float, clock: Callable[[], float]
    ) -> None:
        self._stream = stream
        self._request = request
        self._ends_at = ends_at
        self._clock = clock

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if self._clock() > self._ends_at:
                raise httpx.ReadTimeout(
                    "the answer was still arriving at the deadline", request=self._request
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()


def send_within(
    client: httpx.Client, request: httpx.Request, budget: float | None, clock: Callable[[], float]
) -> httpx.Response:
    """
    Send ``request``; with a ``budget`` (seconds), its whole answer must arrive within it.

    A server trickling its answer a byte at a time passes every per-read timeout; only a bound on the
    whole read ends such a call by its deadline (the async side bounds the attempt with ``_compat.within``).
    """
    if budget is None:
        return client.send(request)
    response = client.send(request, stream=True)
    response.stream = _ReadByDeadline(response.stream, request, clock() + budget, clock)  # type: ignore[arg-type]
    try:
        response.read()
    except BaseException:
        response.close()
        raise
    return response


@dataclass
class _Entry:
    client: httpx.AsyncClient
    users: int = 0


@dataclass
class AsyncLease:
    """
    One user's hold on a shared async client; give it back with :meth:`AsyncClientRegistry.release`.

    :param loop: the event loop the client belongs to.
    :param config: the configuration it was built from.
    :param client: the shared client.
    """

    loop: asyncio.AbstractEventLoop
    config: ClientConfig
    client: httpx.AsyncClient = field(repr=False)
    released: bool = False


class AsyncClientRegistry:
    """
    Shared ``httpx.AsyncClient`` objects, one per (event loop, client configuration), reference-counted.

    A triggerer runs many Luma triggers on one event loop; each trigger's hook leases the client for
    its base URL instead of opening its own pool for every poll. An httpx async client belongs to the
    loop it was first used on, hence the loop in the key. The last release closes the client.
    """

    def __init__(self) -> None:
        # Triggerers run one loop, but tests and workers may run loops in several threads.
        self._lock = threading.Lock()
        self._entries: dict[tuple[asyncio.AbstractEventLoop, ClientConfig], _Entry] = {}

    async def acquire(self, config: ClientConfig) -> AsyncLease:
        """
        Lease the running loop's client for ``config``, creating it on first use.

        However many triggers start together, one client is built per key: the only wait is for the
        process's SSL context (one build, shared), after which the check and the creation run without
        an ``await`` between them. A caller cancelled during that wait holds no lease.
        """
        loop = asyncio.get_running_loop()
        lease = self._lease_existing(loop, config)
        if lease is not None:
            return lease
        ssl_context = await SSL_CONTEXT.aget()
        with self._lock:
            entry = self._entries.get((loop, config))
            if entry is None:
                entry = self._entries[(loop, config)] = _Entry(config.async_client(ssl_context))
            entry.users += 1
        return AsyncLease(loop, config, entry.client)

    def _lease_existing(self, loop: asyncio.AbstractEventLoop, config: ClientConfig) -> AsyncLease | None:
        with self._lock:
            self._forget_closed_loops()
            entry = self._entries.get((loop, config))
            if entry is None:
                return None
            entry.users += 1
            return AsyncLease(loop, config, entry.client)

    async def release(self, lease: AsyncLease) -> None:
        """Give a lease back; the last user of a client closes it. Releasing twice is harmless."""
        client = self._drop(lease)
        if client is not None:
            await client.aclose()

    def abandon(self, lease: AsyncLease) -> None:
        """Give back a lease from a loop that is no longer running (its client cannot be awaited)."""
        self._drop(lease)

    def _drop(self, lease: AsyncLease) -> httpx.AsyncClient | None:
        with self._lock:
            if lease.released:
                return None
            lease.released = True
            key = (lease.loop, lease.config)
            entry = self._entries.get(key)
            if entry is None:
                # Its loop closed and the entry was forgotten; nothing is left to close.
                return None
            entry.users -= 1
            if entry.users:
                return None
            del self._entries[key]
            return entry.client

    def _forget_closed_loops(self) -> None:
        # A loop closed without its users releasing: its sockets died with it, nothing to await.
        for key in [key for key in self._entries if key[0].is_closed()]:
            del self._entries[key]

    def users(self, config: ClientConfig) -> int:
        """How many leases the running loop holds on the client for ``config`` (for tests and metrics)."""
        with self._lock:
            entry = self._entries.get((asyncio.get_running_loop(), config))
            return entry.users if entry else 0


#: The process-wide registry every hook uses.
ASYNC_CLIENTS = AsyncClientRegistry()
