"""
Files of the Luma Files API, as typed values: what ``POST``/``GET /v1/files`` return, and a page of them.

A file is an image uploaded once and referenced by id (``ImageRef(file_id=...)``) by any number of
generations, instead of sending its bytes as base64 in every request. Its lifecycle: ``pending``
(created, bytes not yet received or still being ingested and moderated), ``ready`` (usable),
``failed`` (ingest or moderation refused it, with a ``failure_reason``) or ``deleted`` (soft-deleted,
or expired past its ``expires_at``). The shapes follow the official SDK's types (``luma_agents``
0.5.0: ``File``, ``CreateFileResponse``, ``PresignedUpload``, ``FileList``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_luma.exceptions import LumaUnexpectedResponseError

FILE_PURPOSES: tuple[str, ...] = ("input", "reference")
FILE_STATES: tuple[str, ...] = ("pending", "ready", "failed", "deleted")
#: A list page holds 1 to 100 files (the API's bounds); 25 when not asked.
MAX_FILES_PER_PAGE = 100


@dataclass(frozen=True)
class LumaFile:
    """
    A file in the caller's namespace.

    :param id: the file's UUID, referenced as ``ImageRef(file_id=...)``.
    :param state: ``pending``, ``ready``, ``failed`` or ``deleted`` (another string when the API
        sends one this provider does not know).
    :param mime_type: the media type of the stored bytes.
    :param purpose: ``input`` (the subject, e.g. an edit's source) or ``reference`` (guidance).
    :param size_bytes: the stored size.
    :param created_at: ISO-8601 creation time, as the API gave it.
    :param filename: the name given at upload, if any.
    :param expires_at: when Luma may delete it, if a TTL was set.
    :param deleted_at: when it was deleted, if it was.
    :param failure_reason: why ingest refused it, when ``failed``.
    :param user_id: the end-user tag given at upload.
    :param request_id: the ``X-Request-Id`` of the response this was read from.
    """

    id: str
    state: str
    mime_type: str
    purpose: str
    size_bytes: int
    created_at: str
    filename: str | None = None
    expires_at: str | None = None
    deleted_at: str | None = None
    failure_reason: str | None = None
    user_id: str | None = None
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], request_id: str | None = None) -> LumaFile:
        """Read a ``File`` body; one without an id, a state or a size is an unexpected response."""
        try:
            return cls(
                id=str(body["id"]),
                state=str(body["state"]),
                mime_type=str(body.get("mime_type") or ""),
                purpose=str(body.get("purpose") or ""),
                size_bytes=int(body["size_bytes"]),
                created_at=str(body.get("created_at") or ""),
                filename=_optional(body.get("filename")),
                expires_at=_optional(body.get("expires_at")),
                deleted_at=_optional(body.get("deleted_at")),
                failure_reason=_optional(body.get("failure_reason")),
                user_id=_optional(body.get("user_id")),
                request_id=request_id,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LumaUnexpectedResponseError(
                200, f"unreadable file body ({type(error).__name__}: {error})", request_id
            ) from error

    @property
    def is_ready(self) -> bool:
        return self.state == "ready"

    @property
    def is_settled(self) -> bool:
        """Whether its state will not change by itself any more (anything but ``pending``)."""
        return self.state != "pending"

    def summary(self) -> dict[str, Any]:
        """What may go to XCom and logs (a file has no secret: its bytes stay at Luma)."""
        return {
            "file_id": self.id,
            "state": self.state,
            "mime_type": self.mime_type,
            "purpose": self.purpose,
            "size_bytes": self.size_bytes,
            "filename": self.filename,
            "expires_at": self.expires_at,
        }


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class PresignedUpload:
    """
    Where the bytes of a new file go: a PUT to a presigned storage URL with the headers it names.

    :param url: the presigned URL, a bearer secret until it expires: kept out of ``repr``.
    :param headers: headers the PUT must carry (the signature covers them).
    :param expires_at: when the URL stops working.
    """

    url: str = field(repr=False)
    headers: Mapping[str, str]
    expires_at: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PresignedUpload:
        method = str(body.get("method") or "PUT").upper()
        if method != "PUT":
            raise ValueError(f"upload method {method!r} (only PUT is documented)")
        headers = body.get("headers") or {}
        return cls(
            url=str(body["url"]),
            headers={str(key): str(value) for key, value in headers.items()},
            expires_at=_optional(body.get("expires_at")),
        )


@dataclass(frozen=True)
class CreatedFile:
    """
    The answer to ``POST /v1/files``: the new (``pending``) file and where to upload its bytes.

    :param file: the file record.
    :param upload: the presigned PUT.
    """

    file: LumaFile
    upload: PresignedUpload

    @classmethod
    def from_json(cls, body: Mapping[str, Any], request_id: str | None = None) -> CreatedFile:
        try:
            upload = body["upload"]
            if not isinstance(upload, Mapping):
                raise TypeError("no presigned upload in the answer")
            return cls(LumaFile.from_json(body["file"], request_id), PresignedUpload.from_json(upload))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise LumaUnexpectedResponseError(
                201, f"unreadable file creation ({type(error).__name__}: {error})", request_id
            ) from error


@dataclass(frozen=True)
class FilePage:
    """
    One page of ``GET /v1/files``, newest first.

    :param files: the files of this page.
    :param next_cursor: pass it back as ``cursor`` for the next page; ``None`` on the last page.
    """

    files: tuple[LumaFile, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any], request_id: str | None = None) -> FilePage:
        try:
            files = tuple(LumaFile.from_json(item, request_id) for item in body["data"])
            more = bool(body.get("has_more"))
            cursor = _optional(body.get("next_cursor")) if more else None
        except (KeyError, TypeError) as error:
            raise LumaUnexpectedResponseError(
                200, f"unreadable file list ({type(error).__name__}: {error})", request_id
            ) from error
        if more and not cursor:
            raise LumaUnexpectedResponseError(200, "a file list with more pages but no cursor", request_id)
        return cls(files, cursor)


__all__ = ["FILE_PURPOSES", "FILE_STATES", "CreatedFile", "FilePage", "LumaFile", "PresignedUpload"]
