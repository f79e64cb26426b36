"""
``LumaHook``: the Luma Agents API from Airflow, synchronously (workers) and asynchronously (triggerer).

The hook owns the transport: the connection (key, base URL, timeouts, retry budget), the clients
built from one configuration, the one retry policy (:mod:`._retry`), the mapping of answers to
:class:`~airflow_provider_luma.models.Generation` or to an exception, and the streaming download of
an output from its presigned URL. It knows nothing of Airflow tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from airflow_provider_luma._compat import AirflowNotFoundException
from airflow_provider_luma.exceptions import (
    LumaAuthenticationError,
    LumaError,
    LumaNotFoundError,
    LumaOutputDownloadError,
    LumaOutputNotAvailableError,
    LumaRequestValidationError,
    LumaSubmissionUnknownError,
    LumaTransportError,
    LumaUnexpectedResponseError,
    api_error_from_response,
)
from airflow_provider_luma.hooks._clients import ASYNC_CLIENTS, DEFAULT_BASE_URL, AsyncLease
from airflow_provider_luma.hooks._connection import EXTRAS, LumaSettings, settings_from_connection
from airflow_provider_luma.hooks._logging import install_httpx_log_redaction
from airflow_provider_luma.hooks._retry import RetryPolicy, is_retryable_status, run_async, run_sync
from airflow_provider_luma.models import Generation, GenerationRequest, GenerationState, is_generation_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from airflow.sdk import Connection

_GENERATIONS = "/generations"
#: Labels and help for the connection extras, shared by the form widgets and ``conn_fields``.
_EXTRA_FIELDS: dict[str, tuple[str, str]] = {
    "timeout": ("Read timeout (s)", "Seconds to wait for the API to answer a request."),
    "connect_timeout": ("Connect timeout (s)", "Seconds to wait for a connection to open."),
    "max_retries": ("Max retries", "Retries of a transient failure (POSTs only when nothing was queued)."),
    "max_rate_limit_wait": (
        "Max rate-limit wait (s)",
        "Total seconds one call may wait on 429 Retry-After before failing with a rate-limit error.",
    ),
}


@dataclass(frozen=True)
class DownloadedOutput:
    """
    What :meth:`LumaHook.download_output` wrote.

    :param content_type: the media type, from the storage's ``Content-Type`` (or the URL's suffix).
    :param size: bytes written.
    :param sha256: hex digest of the bytes written, computed while streaming.
    :param generation: the generation read to get the URL (its ``summary()`` is safe to log).
    """

    content_type: str
    size: int
    sha256: str
    generation: Generation


class LumaHook(BaseHook):
    """
    Talk to the Luma Agents API (uni-1 image generation).

    The connection's password is the API key (``LUMA_AGENTS_API_KEY`` is used when it has none, or
    when the default connection does not exist); its host is the base URL. Extras, all optional:
    ``timeout`` (read seconds, 60), ``connect_timeout`` (5), ``max_retries`` (5) and
    ``max_rate_limit_wait`` (seconds a call may wait on 429s, 120).

    :param luma_conn_id: the Airflow connection to use.
    :param sleep: how the synchronous retry loop waits (``time.sleep``; tests inject a recorder).
    :param async_sleep: how the asynchronous retry loop waits (``asyncio.sleep``).
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.luma_conn_id = luma_conn_id
        self._sleep = time.sleep if sleep is None else sleep
        self._async_sleep = asyncio.sleep if async_sleep is None else async_sleep
        self._settings: LumaSettings | None = None
        self._client: httpx.Client | None = None
        self._download_client: httpx.Client | None = None
        self._lease: AsyncLease | None = None
        install_httpx_log_redaction()

    # ----------------------------------------------------------------- connection form (Airflow UI)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide the fields the API does not use; name the others for what they hold."""
        return {
            "hidden_fields": ["schema", "login", "port"],
            "relabeling": {"password": "API key", "host": "Base URL"},
            "placeholders": {"host": DEFAULT_BASE_URL, "password": "luma-api-..."},
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as form fields (Airflow < 3.2; later ones read ``conn_fields()`` via provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        widgets: dict[str, Any] = {}
        for name, (label, description) in _EXTRA_FIELDS.items():
            field_class = IntegerField if EXTRAS[name][0] is int else StringField
            widgets[name] = field_class(
                lazy_gettext(label),
                description=description,
                validators=[Optional(), NumberRange(min=0)] if field_class is IntegerField else [Optional()],
                widget=BS3TextFieldWidget(),
            )
        return widgets

    @classmethod
    def conn_fields(cls) -> dict[str, Any]:
        """The extras in the declarative ``conn-fields`` form of provider info (Airflow >= 3.2)."""
        return {
            name: {
                "label": label,
                "description": description,
                "schema": {
                    "type": ["integer" if EXTRAS[name][0] is int else "number", "null"],
                    "minimum": 0,
                    "default": EXTRAS[name][1],
                },
            }
            for name, (label, description) in _EXTRA_FIELDS.items()
        }

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
        # The synchronous lookup would block the triggerer's event loop.
        if self._settings is None:
            conn: Connection | None = None
            try:
                conn = await BaseHook.aget_connection(self.luma_conn_id)
            except AirflowNotFoundException:
                if not self._default_connection_may_be_missing():
                    raise
            self._settings = settings_from_connection(conn, self.luma_conn_id)
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
        settings: LumaSettings, method: str, path: str, body: dict[str, Any] | None, request_id: str
    ) -> dict[str, Any]:
        """The one request builder: every API request carries the key and a request id."""
        return {
            "method": method,
            "url": path,
            "json": body,
            "headers": {"Authorization": f"Bearer {settings.api_key}", "X-Request-Id": request_id},
        }

    @staticmethod
    def _generation_path(generation_id: str) -> str:
        if not is_generation_id(generation_id):
            raise LumaRequestValidationError(
                "generation_id", f"must be a generation's UUID (got {generation_id!r})"
            )
        return f"{_GENERATIONS}/{quote(generation_id, safe='')}"

    @staticmethod
    def _check_request(request: GenerationRequest) -> dict[str, Any]:
        if not isinstance(request, GenerationRequest):
            raise TypeError(f"expected a GenerationRequest, got {type(request).__name__}")
        return request.to_json()

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, policy: RetryPolicy | None = None
    ) -> Generation:
        settings = self._get_settings()
        client = self.get_conn()
        request_id = str(uuid.uuid4())
        request = client.build_request(**self._request_args(settings, method, path, body, request_id))
        state = (policy or settings.policy).start(method, path, request_id, self.log)
        response = run_sync(lambda: client.send(request), state, self._sleep)
        return _generation_from(response, request_id, method)

    async def _asend(self, method: str, path: str, body: dict[str, Any] | None = None) -> Generation:
        client = await self._aclient()
        settings = await self._aget_settings()
        request_id = str(uuid.uuid4())
        request = client.build_request(**self._request_args(settings, method, path, body, request_id))
        state = settings.policy.start(method, path, request_id, self.log)
        response = await run_async(lambda: client.send(request), state, self._async_sleep)
        return _generation_from(response, request_id, method)

    # -------------------------------------------------------------------------------- the API

    def create_generation(self, request: GenerationRequest) -> Generation:
        """Submit a generation (``POST /generations``); never repeated when its answer is lost."""
        return self._send("POST", _GENERATIONS, self._check_request(request))

    def get_generation(self, generation_id: str) -> Generation:
        """Read a generation (``GET /generations/{id}``), retrying transient faults."""
        return self._send("GET", self._generation_path(generation_id))

    async def acreate_generation(self, request: GenerationRequest) -> Generation:
        """The asynchronous :meth:`create_generation`."""
        return await self._asend("POST", _GENERATIONS, self._check_request(request))

    async def aget_generation(self, generation_id: str) -> Generation:
        """The asynchronous :meth:`get_generation`: async connection lookup, shared pooled client."""
        return await self._asend("GET", self._generation_path(generation_id))

    def test_connection(self) -> tuple[bool, str]:
        """Check the key and the base URL with one GET of a random id: a 404 proves the key works."""
        try:
            settings = self._get_settings()
            self._send(
                "GET",
                self._generation_path(str(uuid.uuid4())),
                policy=replace(settings.policy, max_retries=0),
            )
        except LumaNotFoundError:
            return True, "Connection successful: the API accepted the key."
        except LumaAuthenticationError as error:
            return False, f"The API refused the key: {error.detail} (request id {error.request_id})."
        except LumaTransportError as error:
            return False, f"Cannot reach the API at {self.base_url}: {error}"
        except LumaError as error:
            return False, str(error)
        return True, "Connection successful."

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
        generation, response = self._open_output(generation_id, index)
        try:
            size, digest = _stream_into(response, destination, generation_id)
        finally:
            response.close()
        return DownloadedOutput(
            content_type=_content_type(response), size=size, sha256=digest, generation=generation
        )

    def _open_output(self, generation_id: str, index: int) -> tuple[Generation, httpx.Response]:
        """A fresh URL's response, headers read and body not yet; one refresh when the URL was refused."""
        generation = self.get_generation(generation_id)
        response = self._request_output(generation, index)
        if response.status_code == 403:
            # Nothing was written yet (a 403 comes before any body), so a fresh URL may be tried.
            response.close()
            self.log.info(
                "Output URL of generation %s was refused (403): fetching a fresh one", generation_id
            )
            generation = self.get_generation(generation_id)
            response = self._request_output(generation, index)
        if response.status_code != 200:
            response.close()
            raise LumaOutputDownloadError(
                response.status_code,
                f"the storage refused output {index} of generation {generation_id}",
                response.headers.get("x-amz-request-id") or response.headers.get("x-request-id"),
            )
        return generation, response

    def _request_output(self, generation: Generation, index: int) -> httpx.Response:
        url = _output_url(generation, index)
        if self._download_client is None:
            self._download_client = self._get_settings().client.download_client()
        client = self._download_client
        request = client.build_request("GET", url)
        # The label stands in for the URL, whose query string is a credential.
        label = f"{_GENERATIONS}/{generation.id} output[{index}]"
        state = self._get_settings().policy.start("GET", label, "(storage)", self.log)
        return run_sync(lambda: client.send(request, stream=True), state, self._sleep)


def _output_url(generation: Generation, index: int) -> str:
    if generation.state is not GenerationState.COMPLETED:
        raise LumaOutputNotAvailableError(
            generation.id, generation.state.value, generation.failure_code, "the generation is not completed"
        )
    if not 0 <= index < len(generation.output):
        raise LumaOutputNotAvailableError(
            generation.id,
            generation.state.value,
            generation.failure_code,
            f"output index {index} is out of range ({len(generation.output)} output(s))",
        )
    return generation.output[index].url


def _stream_into(response: httpx.Response, destination: IO[bytes], generation_id: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        # Chunks as they arrive off the socket (tens of kB): no re-buffering into larger blocks.
        for chunk in response.iter_bytes():
            digest.update(chunk)
            destination.write(chunk)
            size += len(chunk)
    except httpx.TransportError as error:
        raise LumaTransportError(
            f"The download of generation {generation_id}'s output broke after {size} bytes: "
            f"{type(error).__name__}"
        ) from error
    return size, digest.hexdigest()


def _content_type(response: httpx.Response) -> str:
    header = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if header and header != "application/octet-stream":
        return header
    guessed, _ = mimetypes.guess_type(response.url.path)
    return guessed or header or "application/octet-stream"


#: Anything in an error body that could be a credential: a query string (a presigned URL's
#: signature) or something shaped like a Luma API key.
_SECRET_LOOKING = re.compile(r"\?[^\s\"']*|luma-api-[A-Za-z0-9_-]+")


def _detail(response: httpx.Response) -> str:
    """
    The ``detail`` of an error body, safe to put in an exception message (and so in a task log).

    A string ``detail`` is the API's own sentence. Anything else (a framework's list of validation
    errors, a proxy's page) may echo the request back: only the error locations and messages are
    kept, and whatever looks like a URL signature or a key is cut out.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text[:200] or response.reason_phrase or f"HTTP {response.status_code}"
        return _SECRET_LOOKING.sub("<redacted>", text)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        detail = [
            {key: item[key] for key in ("loc", "msg") if key in item} if isinstance(item, dict) else item
            for item in detail
        ]
    return _SECRET_LOOKING.sub("<redacted>", json.dumps(detail if detail is not None else body)[:500])


def _generation_from(response: httpx.Response, request_id: str, method: str) -> Generation:
    """
    The one place an API answer becomes a :class:`Generation` or an exception.

    A POST that succeeded but whose body cannot be read has created a generation we cannot name:
    that is a lost answer, reported like any other submission of unknown fate.
    """
    answered_id = response.headers.get("x-request-id") or request_id
    if not response.is_success:
        error = api_error_from_response(
            response.status_code, _detail(response), answered_id, response.headers
        )
        if (
            method == "POST"
            and response.status_code >= 500
            and not is_retryable_status("POST", response.status_code)
        ):
            # Only 502 and 503 are documented as "nothing was queued"; after a 500 or a gateway's
            # 504/52x the generation may exist, so a task retry must not submit again.
            raise LumaSubmissionUnknownError(
                request_id, f"HTTP {response.status_code}: {error.detail}"
            ) from error
        raise error
    try:
        try:
            body = response.json()
        except ValueError as error:
            raise LumaUnexpectedResponseError(
                response.status_code, f"the body is not JSON ({error})", answered_id
            ) from error
        if not isinstance(body, dict):
            raise LumaUnexpectedResponseError(
                response.status_code, "the body is not a JSON object", answered_id
            )
        return Generation.from_json(body, answered_id)
    except LumaUnexpectedResponseError as error:
        if method == "POST":
            raise LumaSubmissionUnknownError(
                request_id, f"unreadable {response.status_code} answer"
            ) from error
        raise


__all__ = ["DownloadedOutput", "LumaHook"]
