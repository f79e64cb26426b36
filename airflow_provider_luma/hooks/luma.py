"""
``LumaHook``: the Luma Agents API from Airflow, synchronously (workers) and asynchronously (triggerer).

The hook owns the transport: the connection (key, base URL, timeouts, retry budget), the clients
built from one configuration, the one request builder, the one retry policy (:mod:`._retry`), and
the streaming download of an output from its presigned URL (:mod:`._downloads`). The API's calls
are grouped by resource, one mixin each: generations (:mod:`._generations`) and files
(:mod:`._files`); the answers become models or exceptions in one place (:mod:`._answers`). It knows
nothing of Airflow tasks.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_luma._compat import AirflowNotFoundException
from airflow_provider_luma.exceptions import (
    LumaAuthenticationError,
    LumaError,
    LumaRequestValidationError,
    LumaTransportError,
)
from airflow_provider_luma.hooks import _form
from airflow_provider_luma.hooks._answers import (
    NOT_FOUND_DETAIL,
    error_detail,
    generation_from,
    is_api_not_found,
)
from airflow_provider_luma.hooks._clients import ASYNC_CLIENTS, AsyncLease, send_within
from airflow_provider_luma.hooks._connection import (
    LumaSettings,
    asettings_from_connection,
    settings_from_connection,
)
from airflow_provider_luma.hooks._downloads import DownloadedOutput, open_output, output_url, write_output
from airflow_provider_luma.hooks._files import FilesAPI, UploadedFile
from airflow_provider_luma.hooks._generations import GENERATIONS, GenerationsAPI, generation_path
from airflow_provider_luma.hooks._logging import install_httpx_log_redaction
from airflow_provider_luma.hooks._retry import (
    BY_METHOD,
    RetryPolicy,
    RetryState,
    creates_by_method,
    run_async,
    run_sync,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    import httpx
    from airflow.sdk import Connection

    from airflow_provider_luma.models import Generation

#: What a caller-supplied ``X-Request-Id`` may hold: printable ASCII, no spaces (header-safe), bounded.
_REQUEST_ID = re.compile(r"[!-~]{1,200}")


class LumaHook(GenerationsAPI, FilesAPI, BaseHook):
    """
    Talk to the Luma Agents API: uni-1 generations (``create_generation``, ``get_generation``), the
    Files API (``upload_file``, ``get_file``, ``list_files``, ``iter_files``, ``delete_file``), and
    downloads of outputs; the asynchronous twins (``a...``) serve the triggerer.

    The connection's password is the API key (``LUMA_AGENTS_API_KEY`` is used when it has none, or
    when the default connection does not exist); its host is the base URL. Extras, all optional:
    ``timeout`` (read seconds, 60), ``connect_timeout`` (5), ``max_retries`` (5) and
    ``max_rate_limit_wait`` (seconds a call may wait on 429s, 120).

    :param luma_conn_id: the Airflow connection to use.
    :param sleep: how the synchronous retry loop waits (``time.sleep``; tests inject a recorder).
    :param async_sleep: how the asynchronous retry loop waits (``asyncio.sleep``).
    :param clock: epoch seconds, compared with a call's ``deadline`` (``time.time``; tests inject one
        that the recorded sleeps move).
    """

    conn_name_attr = "luma_conn_id"
    default_conn_name = "luma_default"
    conn_type = "luma"
    hook_name = "Luma"

    def __init__(
        self,
        luma_conn_id: str = default_conn_name,
        *,
        sleep: Callable[[float], object] | None = None,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
        clock: Callable[[], float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.luma_conn_id = luma_conn_id
        self._sleep = time.sleep if sleep is None else sleep
        self._async_sleep = asyncio.sleep if async_sleep is None else async_sleep
        self._clock = time.time if clock is None else clock
        self._settings: LumaSettings | None = None
        self._client: httpx.Client | None = None
        self._download_client: httpx.Client | None = None
        self._lease: AsyncLease | None = None
        self._submission: RetryState | None = None
        self._last_url: tuple[httpx.Client | httpx.AsyncClient, str, httpx.URL] | None = None
        install_httpx_log_redaction()

    # ----------------------------------------------------------------- connection form (Airflow UI)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide the fields the API does not use; name the others for what they hold."""
        return _form.ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields (Airflow < 3.2; later ones read ``conn_fields()`` via provider info)."""
        return _form.connection_form_widgets()

    @classmethod
    def conn_fields(cls) -> dict[str, Any]:
        """The extras in the declarative ``conn-fields`` form of provider info (Airflow >= 3.2)."""
        return _form.conn_fields()

    # ----------------------------------------------------------------------------- settings

    def _default_connection_may_be_missing(self) -> bool:
        """Only the default connection may be absent: the key can then come from the environment."""
        return self.luma_conn_id == self.default_conn_name

    def _get_settings(self) -> LumaSettings:
        if self._settings is None:
            conn: Connection | None = None
            try:
                conn = self.get_connection(self.luma_conn_id)
            except AirflowNotFoundException:
                if not self._default_connection_may_be_missing():
                    raise
            self._settings = settings_from_connection(conn, self.luma_conn_id)
        return self._settings

    async def _aget_settings(self) -> LumaSettings:
        # The synchronous lookup (and the sync extras and masking) would block the triggerer's loop.
        if self._settings is None:
            conn: Connection | None = None
            try:
                conn = await BaseHook.aget_connection(self.luma_conn_id)
            except AirflowNotFoundException:
                if not self._default_connection_may_be_missing():
                    raise
            self._settings = await asettings_from_connection(conn, self.luma_conn_id)
        return self._settings

    @property
    def base_url(self) -> str:
        """The API root this hook calls."""
        return self._get_settings().client.base_url

    # ------------------------------------------------------------------------------ clients

    def get_conn(self) -> httpx.Client:
        """The synchronous API client (pooled, reused by every call of this hook; no key on it)."""
        if self._client is None:
            self._client = self._get_settings().client.sync_client()
        return self._client

    def _storage_client(self) -> httpx.Client:
        """The client for presigned storage URLs (downloads and file uploads): none of our headers."""
        if self._download_client is None:
            self._download_client = self._get_settings().client.download_client()
        return self._download_client

    async def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._lease is not None and self._lease.loop is not loop:
            ASYNC_CLIENTS.abandon(self._lease)
            self._lease = None
        if self._lease is None:
            settings = await self._aget_settings()
            lease = await ASYNC_CLIENTS.acquire(settings.client)
            # Another coroutine sharing this hook may have leased while this one awaited.
            if self._lease is None:
                self._lease = lease
            else:
                await ASYNC_CLIENTS.release(lease)
        return self._lease.client

    def close(self) -> None:
        """Close the synchronous clients."""
        for client in (self._client, self._download_client):
            if client is not None:
                client.close()
        self._client = self._download_client = None

    async def aclose(self) -> None:
        """Give back the shared async client (the last user closes it) and close the sync clients."""
        lease, self._lease = self._lease, None
        if lease is not None:
            await ASYNC_CLIENTS.release(lease)
        self.close()

    def __enter__(self) -> LumaHook:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> LumaHook:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------- request builder

    @staticmethod
    def _request_args(
        settings: LumaSettings,
        method: str,
        url: httpx.URL | str,
        body: dict[str, Any] | None,
        request_id: str,
    ) -> dict[str, Any]:
        """The one request builder: every API request carries the key and a request id."""
        return {
            "method": method,
            "url": url,
            "json": body,
            "headers": {"Authorization": f"Bearer {settings.api_key}", "X-Request-Id": request_id},
        }

    @staticmethod
    def _request_id(request_id: str | None) -> str:
        """The id to send: the caller's (checked header-safe before anything is sent), else a uuid4."""
        if request_id is None:
            return str(uuid.uuid4())
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            shown = repr(request_id)[:80]
            raise LumaRequestValidationError(
                "request_id", f"must be 1-200 printable ASCII characters without spaces (got {shown})"
            )
        return request_id

    def _forget_submission(self, creates: str | None) -> None:
        if creates == "generation":
            self._submission = None

    def _prepare(
        self,
        settings: LumaSettings,
        client: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        request_id: str,
        *,
        policy: RetryPolicy | None = None,
        deadline: float | None = None,
        creates: str | None,
    ) -> tuple[httpx.Request, RetryState]:
        """One call's request and retry state; a submission's state is kept, to tell later if it was out."""
        url = self._url(client, path)
        request = client.build_request(**self._request_args(settings, method, url, body, request_id))
        state = (policy or settings.policy).start(
            method, path, request_id, self.log, deadline=deadline, clock=self._clock, creates=creates
        )
        if creates == "generation":
            self._submission = state
        return request, state

    def _url(self, client: httpx.Client | httpx.AsyncClient, path: str) -> httpx.URL:
        """
        ``path`` under the client's base URL, merged once for the path this hook keeps asking for.

        A wait GETs one path every few seconds; httpx parses and merges a relative URL on every
        request, the largest part of building one in the triggerer-scale profile, while an absolute
        ``httpx.URL`` passes through as it is.
        """
        last = self._last_url
        if last is None or last[0] is not client or last[1] != path:
            last = self._last_url = (client, path, client.build_request("GET", path).url)
        return last[2]

    @property
    def submission_may_have_been_sent(self) -> bool:
        """
        Whether the last :meth:`create_generation` (or its async twin) may have reached the API.

        ``False`` when it was interrupted (by a task timeout, say) before its first attempt, or while it
        waited between attempts after answers that proved nothing was queued: sending it again then
        cannot pay twice. ``True`` whenever a request may have been out.
        """
        return self._submission is not None and self._submission.in_flight

    @staticmethod
    def _within(request: httpx.Request, settings: LumaSettings, budget: float | None) -> httpx.Request:
        """``request`` with its timeouts cut to ``budget`` (the time left before a deadline), if any."""
        if budget is not None:
            request.extensions["timeout"] = settings.client.timeouts_within(budget).as_dict()
        return request

    def _exchange(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        policy: RetryPolicy | None = None,
        request_id: str | None = None,
        deadline: float | None = None,
        creates: str | None = BY_METHOD,
    ) -> tuple[httpx.Response, str]:
        """
        The answer the retry policy accepted, and the request id it was sent with.

        ``creates`` names what a second attempt could create twice (the POST rules); by default a
        POST creates a generation and any other method may be repeated.
        """
        request_id = self._request_id(request_id)
        creates = creates_by_method(method, creates)
        self._forget_submission(creates)
        settings = self._get_settings()
        client = self.get_conn()
        request, state = self._prepare(
            settings,
            client,
            method,
            path,
            body,
            request_id,
            policy=policy,
            deadline=deadline,
            creates=creates,
        )
        response = run_sync(
            lambda budget: send_within(client, self._within(request, settings, budget), budget, self._clock),
            state,
            self._sleep,
        )
        return response, request_id

    async def _aexchange(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
        creates: str | None = BY_METHOD,
    ) -> tuple[httpx.Response, str]:
        """The asynchronous :meth:`_exchange`, on the shared async client."""
        request_id = self._request_id(request_id)
        creates = creates_by_method(method, creates)
        self._forget_submission(creates)
        client = await self._aclient()
        settings = await self._aget_settings()
        request, state = self._prepare(
            settings, client, method, path, body, request_id, deadline=deadline, creates=creates
        )
        response = await run_async(
            lambda budget: client.send(self._within(request, settings, budget)), state, self._async_sleep
        )
        return response, request_id

    # -------------------------------------------------------------------------------- the API

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the key and the base URL with one GET of a random id.

        Only the API's own 404 (``X-API-Version`` and the detail "Generation not found") proves both:
        any other web server at a wrong base URL answers 404 too.
        """
        try:
            settings = self._get_settings()
            response, request_id = self._exchange(
                "GET",
                generation_path(str(uuid.uuid4())),
                policy=replace(settings.policy, max_retries=0),
            )
            if response.status_code == 404:
                detail = error_detail(response)
                if is_api_not_found(response, detail):
                    return True, "Connection successful: the API accepted the key."
                return False, (
                    f"The base URL {settings.client.base_url} does not look like the Luma API: it "
                    f"answered 404 ({detail[:100]}) without the API's X-API-Version header and "
                    f"'{NOT_FOUND_DETAIL}' detail. Check the connection's host."
                )
            generation_from(response, request_id, "GET")
        except LumaAuthenticationError as error:
            return False, f"The API refused the key: {error.detail} (request id {error.request_id})."
        except LumaTransportError as error:
            return False, f"Cannot reach the API at {self.base_url}: {error}"
        except LumaError as error:
            return False, str(error)
        return False, (
            f"The base URL {settings.client.base_url} does not look like the Luma API: it answered "
            f"{response.status_code} for a generation that cannot exist."
        )

    # ---------------------------------------------------------------------------- downloads

    def download_output(
        self, generation_id: str, destination: IO[bytes], *, index: int = 0
    ) -> DownloadedOutput:
        """
        Stream one output of a completed generation into ``destination``.

        The generation is read first, for a fresh presigned URL (they last an hour). Bytes go to
        ``destination.write`` chunk by chunk, hashed on the way, so memory does not grow with the
        image. A 403 (an expired URL) is answered by one more read of the generation and one more
        try. A connection lost half-way raises :class:`LumaTransportError`; the caller discards
        what was written.

        :param generation_id: the generation's id.
        :param destination: a binary file-like object, written in order.
        :param index: which output (uni-1 returns one).
        """
        generation, response = open_output(
            self.get_generation, self._request_output, generation_id, index, self.log
        )
        return write_output(generation, response, destination)

    def _request_output(self, generation: Generation, index: int) -> httpx.Response:
        url = output_url(generation, index)
        client = self._storage_client()
        request = client.build_request("GET", url)
        # The label stands in for the URL, whose query string is a credential.
        label = f"{GENERATIONS}/{generation.id} output[{index}]"
        state = self._get_settings().policy.start("GET", label, "(storage)", self.log, clock=self._clock)
        return run_sync(lambda budget: client.send(request, stream=True), state, self._sleep)


__all__ = ["DownloadedOutput", "LumaHook", "UploadedFile"]
