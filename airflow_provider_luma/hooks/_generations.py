"""
The generation calls of :class:`~airflow_provider_luma.hooks.luma.LumaHook`: submit and read.

A submission is never repeated when its answer is lost (the hook's retry policy, POST rules); a read
is repeated after any transient fault, and ends by its deadline. Both are callable with a
:class:`~airflow_provider_luma.models.GenerationRequest` or, as users call the official SDK, with the
request's fields as keywords.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.hooks._answers import generation_from
from airflow_provider_luma.hooks._transport import HookTransport
from airflow_provider_luma.models import Generation, GenerationRequest, canonical_id, is_generation_id

GENERATIONS = "/generations"


def request_body(request: GenerationRequest | None, fields: dict[str, Any]) -> dict[str, Any]:
    """
    The body of a submission given as a request or, as the SDK takes it, as keywords.

    The SDK's ``video`` options belong to ray-3.2, which this provider does not drive: refused by
    name rather than sent.
    """
    if request is not None:
        if fields:
            raise TypeError(f"pass a GenerationRequest or its fields, not both (got {sorted(fields)})")
        if not isinstance(request, GenerationRequest):
            raise TypeError(f"expected a GenerationRequest, got {type(request).__name__}")
        return request.to_json()
    if "video" in fields:
        raise LumaRequestValidationError(
            "video", "video options (ray-3.2) are not supported by this provider"
        )
    return GenerationRequest.build(**fields).to_json()


def generation_path(generation_id: str) -> str:
    """The API path of a generation; an id that is not a canonical UUID is refused before anything is sent."""
    if not is_generation_id(generation_id):
        raise LumaRequestValidationError(
            "generation_id", f"must be a generation's UUID (got {generation_id!r})"
        )
    return f"{GENERATIONS}/{quote(canonical_id(generation_id), safe='')}"


class GenerationsAPI(HookTransport):
    """The generations part of :class:`~airflow_provider_luma.hooks.luma.LumaHook` (a mixin)."""

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
    ) -> Generation:
        response, sent_id = self._exchange(method, path, body, request_id=request_id, deadline=deadline)
        return generation_from(response, sent_id, method)

    async def _asend(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
    ) -> Generation:
        response, sent_id = await self._aexchange(
            method, path, body, request_id=request_id, deadline=deadline
        )
        return generation_from(response, sent_id, method)

    def create_generation(
        self, request: GenerationRequest | None = None, /, *, request_id: str | None = None, **fields: Any
    ) -> Generation:
        """
        Submit a generation (``POST /generations``); never repeated when its answer is lost.

        Called with a :class:`GenerationRequest`, or as the official SDK is called, with the
        request's fields as keywords (``prompt=``, ``type=``, ``model=``, ``aspect_ratio=``,
        ``style=``, ``output_format=``, ``web_search=``, ``source=``, ``image_ref=``, ``user_id=``,
        ``layering=``; references as the API's mappings, URLs or ids). Either way the request is
        validated before anything is sent.

        :param request: the validated request (or none, and the fields as keywords).
        :param request_id: the ``X-Request-Id`` to send (printable ASCII without spaces, at most 200
            characters), so a caller can record it *before* the POST and find the submission again;
            a uuid4 by default. The returned generation's ``request_id``, and that of a
            :class:`LumaSubmissionUnknownError`, is this id.
        """
        body = request_body(request, fields)
        return self._send("POST", GENERATIONS, body, request_id=request_id)

    def get_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation:
        """
        Read a generation (``GET /generations/{id}``), retrying transient faults.

        :param generation_id: the generation's UUID.
        :param deadline: epoch seconds (``time.time()``) past which no attempt or retry wait runs: each
            attempt's timeouts are cut to the time left, and a call out of time raises a retryable
            :class:`LumaTransportError` ("the deadline passed after N attempt(s)"). The first attempt
            always gets at least a second (the last look a waiter takes at its deadline), so a call
            made less than a second before its deadline may end up to a second after it.
        """
        return self._send("GET", generation_path(generation_id), deadline=deadline)

    async def acreate_generation(
        self, request: GenerationRequest | None = None, /, *, request_id: str | None = None, **fields: Any
    ) -> Generation:
        """The asynchronous :meth:`create_generation` (a request, or its fields as keywords)."""
        body = request_body(request, fields)
        return await self._asend("POST", GENERATIONS, body, request_id=request_id)

    async def aget_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation:
        """
        The asynchronous :meth:`get_generation`: async connection lookup, shared pooled client.

        With a ``deadline`` each attempt is also bounded as a whole (``_compat.within``), since httpx
        times each read, and a server trickling bytes could otherwise hold the triggerer's wait.
        """
        return await self._asend("GET", generation_path(generation_id), deadline=deadline)
