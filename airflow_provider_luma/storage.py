"""
Object storage for the operators: reference images read in, generated images written out.

Reading refuses an image over the API's 50 MB limit before reading it. Writing is all or nothing:
a failed or interrupted write never leaves a partial object under the final name, whatever the
store (see :func:`publish`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from contextlib import contextmanager, suppress
from functools import partial
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_luma.exceptions import LumaRequestValidationError
from airflow_provider_luma.models import MAX_IMAGE_BYTES, ImageRef

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import ObjectStoragePath

#: URL schemes the API fetches itself; any other ``scheme://`` string is read from storage.
_API_FETCHED_SCHEMES = ("https://", "http://")
#: Signatures of the image formats the API accepts, tried before the file name's suffix.
_MAGIC_BYTES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
)
_SUFFIX_MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
_EXTENSIONS: dict[str, str] = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
_COPY_CHUNK = 1024 * 1024
#: Multipart part size on object stores: also the most a write holds in memory.
_PART_SIZE = 8 * 1024 * 1024
_LOCAL_PROTOCOLS = ("file", "local")
#: Stores whose files honour ``autocommit=False`` (verified against an S3 server in the tests).
_DEFERRED_COMMIT_PROTOCOLS = frozenset({"s3", "s3a"})


def conn_id_of(path: ObjectStoragePath) -> str | None:
    """The connection a path was given (a property from Airflow 3.2, a storage option before)."""
    return getattr(path, "conn_id", None) or path.storage_options.get("conn_id")


def is_storage_reference(value: Any) -> bool:
    """Whether a reference names a file in storage (read and sent as base64) rather than an API URL."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and "://" in value and not value.startswith(_API_FETCHED_SCHEMES)


def _media_type(head: bytes, suffix: str, field_name: str) -> str:
    for offset, magic, media_type in _MAGIC_BYTES:
        if head[offset : offset + len(magic)] == magic:
            return media_type
    if suffix.lower() in _SUFFIX_MEDIA_TYPES:
        return _SUFFIX_MEDIA_TYPES[suffix.lower()]
    raise LumaRequestValidationError(field_name, "the file is not a PNG, JPEG, WebP or GIF image")


def read_storage_image(value: Any, field_name: str, conn_id: str | None = None) -> ImageRef:
    """
    Read an image from object storage into a base64 reference, refusing files over 50 MB unread.

    :param value: an ``ObjectStoragePath`` or a URL such as ``s3://bucket/key.png`` or ``file:///x.png``.
    :param field_name: the request field it fills, for errors.
    :param conn_id: the Airflow connection for a URL given as a string.
    """
    from airflow.sdk import ObjectStoragePath

    path = value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(str(value), conn_id=conn_id)
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise LumaRequestValidationError(
            field_name, f"{path} is {size} bytes, over the API's 50 MB limit ({MAX_IMAGE_BYTES} bytes)"
        )
    with path.open("rb") as handle:
        # One byte more than allowed tells a file that grew after stat() without reading all of it.
        content = handle.read(MAX_IMAGE_BYTES + 1)
    if len(content) > MAX_IMAGE_BYTES:
        raise LumaRequestValidationError(field_name, f"{path} is over the API's 50 MB limit")
    return ImageRef(
        data=base64.b64encode(content).decode("ascii"),
        media_type=_media_type(content[:16], path.suffix, field_name),
        field_name=field_name,
    )


def extension_for(content_type: str) -> str:
    """The file extension for an image MIME type (``.bin`` for one this provider does not know)."""
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), ".bin")


def object_uri(path: ObjectStoragePath) -> str:
    """A plain URL for a stored object: no conn id in it, so it can name an Asset or go to XCom."""
    return f"{path.protocol}://{path.path}"


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


@contextmanager
def _atomic_writer(target: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """
    Open ``target`` for writing so that it appears complete or not at all.

    A plain ``with path.open("wb")`` would not do: fsspec's ``close()`` on the way out of a failed
    block commits whatever was written. So each kind of store gets the strongest way it has.
    """
    if is_local(target):
        writer = _local_writer(target)
    elif target.protocol in _DEFERRED_COMMIT_PROTOCOLS:
        writer = _deferred_commit_writer(target)
    else:
        writer = _temporary_key_writer(target)
    with writer as sink:
        yield sink


@contextmanager
def _local_writer(target: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """A hidden temporary file in the same directory, flushed to disk, then renamed (atomic on POSIX)."""
    directory = os.path.dirname(target.path)
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(temp, "wb") as sink:
            yield sink
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temp, target.path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(temp)
        raise


@contextmanager
def _deferred_commit_writer(target: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """
    The final key, written as a multipart upload that only ``commit()`` completes.

    With ``autocommit=False`` s3fs uploads parts as they fill but completes the upload only on
    ``commit()``; ``discard()`` aborts it, so neither an object nor billable parts stay behind.
    """
    fs = target.fs
    sink = fs.open(target.path, "wb", autocommit=False, block_size=_PART_SIZE)
    try:
        try:
            yield sink
            sink.close()
            sink.commit()
        except BaseException:
            # close() uploads the last part without completing the upload; discard() aborts it.
            with suppress(Exception):
                sink.close()
            sink.discard()
            raise
    finally:
        # fsspec parks deferred files on the filesystem's transaction; this one is settled.
        with suppress(ValueError):
            fs.transaction.files.remove(sink)


@contextmanager
def _temporary_key_writer(target: ObjectStoragePath) -> Iterator[IO[bytes]]:
    """
    For stores not known to defer commits: a hidden temporary key, moved to the final name when whole.

    A failed write may commit the temporary key on close, so it is deleted; the final name is only
    ever written by the move of a complete object.
    """
    fs = target.fs
    temp = f"{os.path.dirname(target.path)}/.{target.name}.{uuid.uuid4().hex}.partial"
    try:
        with fs.open(temp, "wb", block_size=_PART_SIZE) as sink:
            yield sink
        fs.mv(temp, target.path)
    except BaseException:
        with suppress(Exception):
            fs.rm(temp)
        raise


def publish(source: IO[bytes], target: ObjectStoragePath) -> int:
    """Copy ``source`` to ``target`` in chunks, all or nothing; returns the bytes written."""
    written = 0
    with _atomic_writer(target) as sink:
        for chunk in iter(partial(source.read, _COPY_CHUNK), b""):
            sink.write(chunk)
            written += len(chunk)
    return written


def read_json(path: ObjectStoragePath) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def sha256_of(path: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with path.fs.open(path.path, "rb") as source:
        for chunk in iter(partial(source.read, _COPY_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
