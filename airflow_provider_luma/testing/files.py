"""
The Files API's memory: uploaded files, their lifecycle, and keyset pages of them.

A file is created ``pending`` with a presigned PUT target, receives its bytes there, and is ingested once
the client calls ``complete``: it then stays ``pending`` for ``file_ingest_seconds`` and ends ``ready``,
or ``failed`` when its bytes are not an image of the announced type (sniffed by content, as the API's
ingest does) or a failure was planned. Like generations, the visible state is derived from timestamps on
each read, so nothing runs in the background; ``deleted`` comes from a soft delete or from ``expires_at``
passing. Everything here runs under the emulator's one lock (``EmulatorState.lock``).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.testing.images import read_dimensions, sniff_mime

if TYPE_CHECKING:
    from collections.abc import Callable

#: The documented image formats (JPEG, PNG, WebP, still GIF), as the MIME types a file may announce.
IMAGE_MIME_TYPES = ("image/gif", "image/jpeg", "image/png", "image/webp")
#: The documented per-image limit; the SDK's "up to 5 GiB" is S3's single-PUT ceiling, not the API's.
MAX_FILE_BYTES = 50 * 1024 * 1024
PURPOSES = ("input", "reference")
FILE_STATES = ("pending", "ready", "failed", "deleted")
NOT_AN_IMAGE = "content-type is not an image"
#: The emulator's wording for a planned ingest failure (the API documents none).
DEFAULT_INGEST_FAILURE = "File was flagged by our content moderation system."


def iso(timestamp: float) -> str:
    """ISO-8601 UTC with a ``Z``, with fractional seconds only when there are some."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StoredFile:
    """One file as the emulator stores it; ``state_at`` derives the visible state."""

    id: str
    client: str
    sequence: int
    created: float
    mime_type: str
    purpose: str
    size_bytes: int
    filename: str | None
    user_id: str | None
    expires_at: float | None
    data: bytes | None = None
    completed_at: float | None = None
    ready_at: float | None = None
    failure_reason: str | None = None
    deleted_at: float | None = None

    def deletion_at(self, now: float) -> float | None:
        """When the file was deleted, by DELETE or by its TTL, if that moment has come."""
        moments = [t for t in (self.deleted_at, self.expires_at) if t is not None and t <= now]
        return min(moments) if moments else None

    def state_at(self, now: float) -> str:
        if self.deletion_at(now) is not None:
            return "deleted"
        if self.ready_at is None or now < self.ready_at:
            return "pending"
        return "failed" if self.failure_reason is not None else "ready"

    def pixel_size(self) -> tuple[int, int] | None:
        return None if self.data is None else read_dimensions(self.data)

    def to_json(self, now: float) -> dict[str, Any]:
        state = self.state_at(now)
        deleted = self.deletion_at(now)
        return {
            "id": self.id,
            "created_at": iso(self.created),
            "mime_type": self.mime_type,
            "purpose": self.purpose,
            "size_bytes": self.size_bytes,
            "state": state,
            "deleted_at": None if deleted is None else iso(deleted),
            "expires_at": None if self.expires_at is None else iso(self.expires_at),
            "failure_reason": self.failure_reason if state == "failed" else None,
            "filename": self.filename,
            "user_id": self.user_id,
        }


class FileStore:
    """Files of every client, keyed by id; callers hold the emulator's lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.files: dict[str, StoredFile] = {}
        self.planned_failures: collections.deque[str] = collections.deque()
        self.created = 0
        self.uploads = 0
        self.upload_bytes = 0
        self._sequence = 0

    def create(
        self,
        *,
        client: str,
        mime_type: str,
        purpose: str,
        size_bytes: int,
        filename: str | None,
        user_id: str | None,
        expires_at: float | None,
    ) -> StoredFile:
        self._sequence += 1
        stored = StoredFile(
            id=str(uuid.uuid4()),
            client=client,
            sequence=self._sequence,
            created=self._clock(),
            mime_type=mime_type,
            purpose=purpose,
            size_bytes=size_bytes,
            filename=filename,
            user_id=user_id,
            expires_at=expires_at,
        )
        self.files[stored.id] = stored
        self.created += 1
        return stored

    def owned(self, file_id: str, client: str) -> StoredFile | None:
        """The file if ``client`` owns it; None for another client's, as for an unknown one."""
        stored = self.files.get(file_id)
        return stored if stored is not None and stored.client == client else None

    def receive(self, stored: StoredFile, data: bytes) -> str:
        """Store uploaded bytes (a later PUT before ``complete`` replaces them, as S3 does); the ETag."""
        stored.data = data
        self.uploads += 1
        self.upload_bytes += len(data)
        return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'

    def complete(self, stored: StoredFile, ingest_seconds: float) -> None:
        """Start ingest of the received bytes: the verdict is fixed now, shown once ingest took its time."""
        assert stored.data is not None
        now = self._clock()
        stored.completed_at = now
        stored.ready_at = now + ingest_seconds
        sniffed = sniff_mime(stored.data)
        if self.planned_failures:
            stored.failure_reason = self.planned_failures.popleft()
        elif sniffed is None:
            stored.failure_reason = NOT_AN_IMAGE
        elif sniffed != stored.mime_type:
            stored.failure_reason = f"content is {sniffed}, not the declared mime_type {stored.mime_type}"

    def delete(self, stored: StoredFile) -> None:
        if stored.deletion_at(self._clock()) is None:
            stored.deleted_at = self._clock()

    def expire(self, file_id: str) -> None:
        """Move a file's ``expires_at`` to now: it reads ``deleted`` from now on; KeyError if unknown."""
        self.files[file_id].expires_at = self._clock()

    def plan_failures(self, reason: str | None, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.planned_failures.extend([reason or DEFAULT_INGEST_FAILURE] * count)

    def page(
        self, client: str, after: int | None, limit: int, purpose: str | None, state: str | None
    ) -> tuple[list[StoredFile], bool]:
        """One page of ``client``'s files, newest first, below the sequence number ``after``.

        Deleted files are left out unless ``state="deleted"`` asks for them.
        """
        now = self._clock()
        matching = [
            stored
            for stored in sorted(self.files.values(), key=lambda f: f.sequence, reverse=True)
            if stored.client == client
            and (after is None or stored.sequence < after)
            and (purpose is None or stored.purpose == purpose)
            and (stored.state_at(now) == state if state is not None else stored.state_at(now) != "deleted")
        ]
        return matching[:limit], len(matching) > limit


def encode_cursor(sequence: int) -> str:
    """An opaque cursor naming the last file of a page."""
    return base64.urlsafe_b64encode(f"files:{sequence}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence number in a cursor; ValueError when it is not one this emulator made."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(cursor) from exc
    prefix, _, number = text.partition(":")
    if prefix != "files" or not number.isdigit():
        raise ValueError(cursor)
    return int(number)
