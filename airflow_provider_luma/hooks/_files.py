"""
The Files API calls of :class:`~airflow_provider_luma.hooks.luma.LumaHook`: upload, read, list, delete.

An upload follows the presigned flow the official SDK uses: ``POST /files`` (the file is created
``pending``, with a presigned PUT) → PUT of the bytes to that URL with the headers it names →
``POST /files/{id}/complete`` (ingest and moderation start) → reads until ``ready`` or ``failed``.

Each step follows the hook's one retry policy by what a second attempt could do:

- ``POST /files`` creates a file, so it is repeated only when the answer proves nothing was created
  (the POST rules of generations). A lost answer leaves a pending file behind; that costs nothing
  and it is never used, so the error is retryable by a new task try.
- The PUT writes the same bytes to the same URL, and ``complete`` moves an existing file on: both
  may be repeated after a transient fault. The body is read again from the start for every
  attempt, so the PUT streams (memory does not grow with the file) and hashes on the way.
- The PUT goes to storage on the client that carries none of our headers: the URL's signature is
  its credential, and an ``Authorization`` header would hand our API key to the storage host.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_provider_luma.exceptions import (
    LumaFileUnusableError,
    LumaFileUploadError,
    LumaRequestValidationError,
)
from airflow_provider_luma.hooks._answers import answer_body, error_detail
from airflow_provider_luma.hooks._retry import run_sync
from airflow_provider_luma.hooks._transport import HookTransport
from airflow_provider_luma.models import (
    MAX_IMAGE_BYTES,
    MEDIA_TYPES,
    canonical_id,
    is_generation_id,
    sniff_media_type,
)
from airflow_provider_luma.models.file import (
    FILE_PURPOSES,
    FILE_STATES,
    MAX_FILES_PER_PAGE,
    CreatedFile,
    FilePage,
    LumaFile,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    import httpx
    from airflow.sdk import ObjectStoragePath


_FILES = "/files"
#: The API's own 404 for a file that does not exist (or is another client's).
FILE_NOT_FOUND_DETAIL = "File not found"
#: Bytes read from the source per chunk of the PUT.
UPLOAD_CHUNK_BYTES = 1024 * 1024
#: Seconds between two reads of a file waiting for its ingest.
READY_POLL_SECONDS = 1.0
#: Bytes enough for every image signature :func:`sniff_media_type` knows.
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class UploadedFile:
    """
    What :meth:`FilesAPI.upload_file` sent: the file, ``ready``, and a digest of the bytes sent.

    :param file: the file as Luma reports it once ready.
    :param sha256: hex digest of the bytes uploaded, computed while streaming them.
    """

    file: LumaFile
    sha256: str

    @property
    def id(self) -> str:
        """The file's id, as ``ImageRef(file_id=...)`` takes it."""
        return self.file.id


def file_path(file_id: str) -> str:
    """The API path of a file; an id that is not a canonical UUID is refused before anything is sent."""
    if not is_generation_id(file_id):
        raise LumaRequestValidationError("file_id", f"must be a file's UUID (got {file_id!r})")
    return f"{_FILES}/{quote(canonical_id(file_id), safe='')}"


def _check_purpose(purpose: str) -> None:
    if purpose not in FILE_PURPOSES:
        raise LumaRequestValidationError(
            "purpose", f"invalid value {purpose!r}; valid: {', '.join(FILE_PURPOSES)}"
        )


def _list_path(cursor: str | None, limit: int | None, purpose: str | None, state: str | None) -> str:
    if limit is not None and not (isinstance(limit, int) and 1 <= limit <= MAX_FILES_PER_PAGE):
        raise LumaRequestValidationError("limit", f"must be 1 to {MAX_FILES_PER_PAGE} (got {limit!r})")
    if purpose is not None:
        _check_purpose(purpose)
    if state is not None and state not in FILE_STATES:
        raise LumaRequestValidationError("state", f"invalid value {state!r}; valid: {', '.join(FILE_STATES)}")
    query = {"cursor": cursor, "limit": limit, "purpose": purpose, "state": state}
    given = {key: value for key, value in query.items() if value is not None}
    return f"{_FILES}?{urlencode(given)}" if given else _FILES


class _Source:
    """
    The bytes of an upload, re-readable from the start for every PUT attempt.

    A local path or an ``ObjectStoragePath`` is opened (and closed) here; a file object given by the
    caller must be seekable (its size and a rewind per attempt need it) and stays open.
    """

    def __init__(self, source: Any, size_bytes: int | None) -> None:
        self._opened: IO[bytes] | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.stream: IO[bytes] = io.BytesIO(bytes(source))
        elif hasattr(source, "protocol") and hasattr(source, "open"):
            # An ObjectStoragePath (s3://, gs://, file://), opened by its own filesystem: with
            # universal_pathlib 0.2 (Airflow 3.1) it is os.PathLike too, but no local path.
            self.stream = self._opened = source.open("rb")
        elif isinstance(source, (str, os.PathLike)):
            self.stream = self._opened = open(source, "rb")  # noqa: SIM115 - closed by close()
        elif hasattr(source, "read") and hasattr(source, "seek"):
            self.stream = source
        else:
            raise TypeError(
                f"upload_file takes a local path, bytes or a seekable binary file object "
                f"(got {type(source).__name__})"
            )
        self.start = self.stream.tell()
        end = self.stream.seek(0, io.SEEK_END)
        self.stream.seek(self.start)
        available = end - self.start
        if size_bytes is not None and not 0 < size_bytes <= available:
            self.close()
            raise LumaRequestValidationError(
                "size_bytes", f"must be 1 to the {available} bytes the source holds (got {size_bytes})"
            )
        self.size = available if size_bytes is None else size_bytes
        self.head = self.stream.read(_SIGNATURE_BYTES)
        self.stream.seek(self.start)

    def chunks(self, digest: Any) -> Iterator[bytes]:
        """The bytes from the start, hashed into ``digest`` as they are read."""
        self.stream.seek(self.start)
        left = self.size
        while left > 0:
            chunk = self.stream.read(min(UPLOAD_CHUNK_BYTES, left))
            if not chunk:
                # It held enough bytes when the upload began: it shrank while being read.
                raise LumaRequestValidationError(
                    "source", f"ended after {self.size - left} of its {self.size} bytes during the upload"
                )
            digest.update(chunk)
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


def _media_type(source: _Source, declared: str | None) -> str:
    """The type to announce: the bytes' own (JPEG, PNG, WebP, GIF), which a declared one must match."""
    sniffed = sniff_media_type(source.head)
    if sniffed is None:
        raise LumaRequestValidationError(
            "source", "is not a PNG, JPEG, WebP or GIF image (the only files a generation takes)"
        )
    if declared is not None and declared != sniffed:
        raise LumaRequestValidationError(
            "mime_type", f"is {declared!r} but the bytes are {sniffed}; valid: {', '.join(MEDIA_TYPES)}"
        )
    return sniffed


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise LumaRequestValidationError("expires_at", "must be timezone-aware (a naive time is ambiguous)")
    return value.isoformat()


class FilesAPI(HookTransport):
    """The Files API part of :class:`~airflow_provider_luma.hooks.luma.LumaHook` (a mixin)."""

    def upload_file(
        self,
        source: str | os.PathLike[str] | ObjectStoragePath | bytes | IO[bytes],
        *,
        purpose: str = "input",
        mime_type: str | None = None,
        filename: str | None = None,
        expires_at: datetime | str | None = None,
        user_id: str | None = None,
        size_bytes: int | None = None,
        ready_timeout: float = 120.0,
    ) -> UploadedFile:
        """
        Upload an image and wait until Luma can use it (``ready``).

        Everything that can be checked locally is, before any call: the bytes are a PNG, JPEG, WebP
        or GIF image (by content; a declared ``mime_type`` must agree), at most 50 MB, and the
        purpose is known.

        :param source: a local path, an ``ObjectStoragePath`` (``s3://…``), bytes, or a seekable
            binary file object (read from its current position).
        :param purpose: ``input`` (an edit's source, a layering source) or ``reference``.
        :param mime_type: the media type, if you want it checked; read from the bytes otherwise.
        :param filename: a name recorded with the file (shown by :meth:`list_files`).
        :param expires_at: a timezone-aware time (or ISO-8601 string) after which Luma may delete it.
        :param user_id: your end user's opaque id, for Luma's abuse attribution.
        :param size_bytes: the bytes to send from ``source`` (default: all that is left).
        :param ready_timeout: seconds to wait for the ingest; a file still pending then raises a
            retryable :class:`LumaFileUnusableError`.
        :raises LumaFileUnusableError: ingest refused the file (with Luma's reason), or it was slow.
        """
        _check_purpose(purpose)
        data = _Source(source, size_bytes)
        try:
            body = {
                "mime_type": _media_type(data, mime_type),
                "size_bytes": data.size,
                "purpose": purpose,
                "filename": filename,
                "expires_at": _iso(expires_at),
                "user_id": user_id,
            }
            if not 0 < data.size <= MAX_IMAGE_BYTES:
                raise LumaRequestValidationError(
                    "source", f"must be 1 to {MAX_IMAGE_BYTES} bytes (the API's 50 MB; got {data.size})"
                )
            response, request_id = self._exchange(
                "POST",
                _FILES,
                {key: value for key, value in body.items() if value is not None},
                creates="file",
            )
            created = CreatedFile.from_json(answer_body(response, request_id, creates="file"), request_id)
            self.log.info("Created Luma file %s (%s bytes); uploading", created.file.id, data.size)
            digest = self._put(created, data)
        finally:
            data.close()
        response, request_id = self._exchange("POST", f"{file_path(created.file.id)}/complete", creates=None)
        _file(response, request_id)  # its refusal (a 409: no bytes arrived) is raised, not waited out
        ready = self.wait_for_file(created.file.id, timeout=ready_timeout)
        return UploadedFile(ready, digest)

    def _put(self, created: CreatedFile, data: _Source) -> str:
        """PUT the bytes to the presigned URL, streamed; the sha256 of the bytes the accepted attempt sent."""
        client = self._storage_client()
        digests: list[Any] = []

        def attempt(budget: float | None) -> httpx.Response:
            digest = hashlib.sha256()
            digests.append(digest)
            headers = {**created.upload.headers, "Content-Length": str(data.size)}
            request = client.build_request(
                "PUT", created.upload.url, content=data.chunks(digest), headers=headers
            )
            return client.send(request)

        # The label stands in for the URL, whose query string is a credential.
        label = f"{_FILES}/{created.file.id} upload"
        state = self._get_settings().policy.start(
            "PUT", label, "(storage)", self.log, clock=self._clock, creates=None, expects_json=False
        )
        response = run_sync(attempt, state, self._sleep)
        response.close()
        if not response.is_success:
            raise LumaFileUploadError(
                response.status_code,
                f"the storage refused the bytes of file {created.file.id}: {error_detail(response)}",
                response.headers.get("x-amz-request-id") or response.headers.get("x-request-id"),
            )
        return digests[-1].hexdigest()

    def wait_for_file(self, file_id: str, *, timeout: float = 120.0) -> LumaFile:
        """
        Read a file until its ingest ends; return it ``ready``, or raise why it cannot be used.

        :param file_id: the file's id.
        :param timeout: seconds to wait; a file still ``pending`` then raises a retryable error.
        """
        deadline = self._clock() + timeout
        file = self.get_file(file_id, deadline=deadline)
        while not file.is_settled and self._clock() < deadline:
            self._sleep(min(READY_POLL_SECONDS, max(0.0, deadline - self._clock())))
            file = self.get_file(file_id, deadline=deadline)
        return usable(file, timeout)

    def get_file(self, file_id: str, *, deadline: float | None = None) -> LumaFile:
        """Read a file (``GET /files/{id}``); an id Luma does not know raises ``LumaNotFoundError``."""
        response, request_id = self._exchange("GET", file_path(file_id), deadline=deadline)
        return _file(response, request_id)

    def list_files(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        purpose: str | None = None,
        state: str | None = None,
    ) -> FilePage:
        """
        One page of files, newest first (``GET /files``).

        :param cursor: the ``next_cursor`` of the previous page.
        :param limit: 1 to 100 files (the API's default is 25).
        :param purpose: only files of this purpose.
        :param state: only files in this state (deleted files are listed only when asked for).
        """
        response, request_id = self._exchange("GET", _list_path(cursor, limit, purpose, state))
        return FilePage.from_json(answer_body(response, request_id, creates=None), request_id)

    def iter_files(
        self,
        *,
        purpose: str | None = None,
        state: str | None = None,
        page_size: int = MAX_FILES_PER_PAGE,
        max_pages: int | None = None,
    ) -> Iterator[LumaFile]:
        """Every file, newest first, page after page (at most ``max_pages`` pages when given)."""
        cursor: str | None = None
        pages = 0
        while max_pages is None or pages < max_pages:
            page = self.list_files(cursor=cursor, limit=page_size, purpose=purpose, state=state)
            pages += 1
            yield from page.files
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def delete_file(self, file_id: str) -> None:
        """Soft-delete a file (``DELETE /files/{id}``, 204); deleting it again is not an error."""
        response, request_id = self._exchange("DELETE", file_path(file_id))
        _no_content(response, request_id)

    async def aget_file(self, file_id: str, *, deadline: float | None = None) -> LumaFile:
        """The asynchronous :meth:`get_file`."""
        response, request_id = await self._aexchange("GET", file_path(file_id), deadline=deadline)
        return _file(response, request_id)

    async def alist_files(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        purpose: str | None = None,
        state: str | None = None,
    ) -> FilePage:
        """The asynchronous :meth:`list_files`."""
        response, request_id = await self._aexchange("GET", _list_path(cursor, limit, purpose, state))
        return FilePage.from_json(answer_body(response, request_id, creates=None), request_id)

    async def adelete_file(self, file_id: str) -> None:
        """The asynchronous :meth:`delete_file`."""
        response, request_id = await self._aexchange("DELETE", file_path(file_id))
        _no_content(response, request_id)


def _file(response: httpx.Response, request_id: str) -> LumaFile:
    answered_id = response.headers.get("x-request-id") or request_id
    body = answer_body(response, request_id, creates=None, not_found=FILE_NOT_FOUND_DETAIL)
    return LumaFile.from_json(body, answered_id)


def _no_content(response: httpx.Response, request_id: str) -> None:
    if response.status_code != 204:
        answer_body(response, request_id, creates=None, not_found=FILE_NOT_FOUND_DETAIL)


def usable(file: LumaFile, waited: float) -> LumaFile:
    """``file`` when a generation may reference it; else the error saying why not."""
    if file.is_ready:
        return file
    if file.state == "pending":
        raise LumaFileUnusableError(
            file.id, file.state, f"still being ingested after {waited:.0f}s", retryable=True
        )
    reason = file.failure_reason or ("deleted or expired" if file.state == "deleted" else "no reason given")
    raise LumaFileUnusableError(file.id, file.state, reason, retryable=False)
