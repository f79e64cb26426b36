"""
Downloads of a completed generation's outputs from their presigned URLs.

An output URL is a bearer secret for an hour: it is fetched without any header of ours but
``User-Agent``, never logged (the label stands in for it) and never put in an exception message. The
body is streamed into the caller's file chunk by chunk, hashed on the way, so memory does not grow
with the image.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import httpx

from airflow_provider_luma.exceptions import (
    LumaOutputDownloadError,
    LumaOutputNotAvailableError,
    LumaTransportError,
)
from airflow_provider_luma.models import Generation, GenerationState

if TYPE_CHECKING:
    from collections.abc import Callable


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


def open_output(
    get_generation: Callable[[str], Generation],
    request_output: Callable[[Generation, int], httpx.Response],
    generation_id: str,
    index: int,
    log: Any,
) -> tuple[Generation, httpx.Response]:
    """
    A fresh URL's response, headers read and body not yet; one refresh when the URL was refused.

    The generation is read first, for a fresh presigned URL (they last an hour). A 403 (an expired
    URL) comes before any body, so nothing was written yet and one more read of the generation and
    one more try are safe.
    """
    generation = get_generation(generation_id)
    response = request_output(generation, index)
    if response.status_code == 403:
        response.close()
        log.info("Output URL of generation %s was refused (403): fetching a fresh one", generation_id)
        generation = get_generation(generation_id)
        response = request_output(generation, index)
    if response.status_code != 200:
        response.close()
        raise LumaOutputDownloadError(
            response.status_code,
            f"the storage refused output {index} of generation {generation_id}",
            response.headers.get("x-amz-request-id") or response.headers.get("x-request-id"),
        )
    return generation, response


def write_output(
    generation: Generation, response: httpx.Response, destination: IO[bytes]
) -> DownloadedOutput:
    """Stream an opened output into ``destination``, then close the response."""
    try:
        size, digest = _stream_into(response, destination, generation.id)
    finally:
        response.close()
    return DownloadedOutput(
        content_type=_content_type(response), size=size, sha256=digest, generation=generation
    )


def output_url(generation: Generation, index: int) -> str:
    """The presigned URL of output ``index``; raises when the generation has none (yet)."""
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
