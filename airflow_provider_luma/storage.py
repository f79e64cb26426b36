"""
Object storage for the operators: reference images read in, generated images written out.

Reading refuses an image over the API's 50 MB limit before reading it. Writing is all or nothing:
a failed, interrupted or short write never leaves a partial object under the final name, whatever
the store (see :func:`publish`). What goes where, and in which order, is the ``uploads`` package's
business; this module only writes one object at a time.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import uuid
from contextlib import contextmanager, suppress
from functools import partial
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_luma._compat import conf
from airflow_provider_luma.exceptions import (
    LumaConfigurationError,
    LumaIncompleteWriteError,
    LumaRequestValidationError,
)
from airflow_provider_luma.models import MAX_IMAGE_BYTES, ImageRef, sniff_media_type

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import ObjectStoragePath

#: URL schemes the API fetches itself; any other ``scheme://`` string is read from storage.
_API_FETCHED_SCHEMES = ("https://", "http://")
_EXTENSIONS: dict[str, str] = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
_COPY_CHUNK = 1024 * 1024
#: Multipart part size on object stores: also the most a write holds in memory.
_PART_SIZE = 8 * 1024 * 1024
_LOCAL_PROTOCOLS = ("file", "local")
#: Stores whose files honour ``autocommit=False`` and ``If-None-Match`` (verified against an S3
#: server in the tests).
_DEFERRED_COMMIT_PROTOCOLS = frozenset({"s3", "s3a"})


def _check_size(target: ObjectStoragePath, stored: int, expected: int) -> None:
    if stored != expected:
        raise LumaIncompleteWriteError(object_uri(target), stored, expected)


def conn_id_of(path: ObjectStoragePath) -> str | None:
    """The connection a path was given (a property from Airflow 3.2, a storage option before)."""
    return getattr(path, "conn_id", None) or path.storage_options.get("conn_id")


def is_storage_path(value: Any) -> bool:
    """
    Whether ``value`` is a path object: an ``ObjectStoragePath`` or a local ``os.PathLike``.

    Both are checked: with universal_pathlib 0.3 (Airflow 3.3) an ``ObjectStoragePath`` is no longer
    an ``os.PathLike``, which it was with 0.2 (Airflow 3.1).
    """
    if isinstance(value, os.PathLike):
        return True
    from airflow.sdk import ObjectStoragePath

    return isinstance(value, ObjectStoragePath)


def is_storage_reference(value: Any) -> bool:
    """Whether a reference names a file in storage (read and sent as base64) rather than an API URL."""
    if is_storage_path(value):
        return True
    return isinstance(value, str) and "://" in value and not value.startswith(_API_FETCHED_SCHEMES)


def _media_type(content: bytes, field_name: str) -> str:
    """The type the file's own bytes announce: its name's suffix proves nothing."""
    media_type = sniff_media_type(content[:16])
    if media_type is None:
        raise LumaRequestValidationError(field_name, "the file is not a PNG, JPEG, WebP or GIF image")
    return media_type


def storage_path(value: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` as given, or one for a URL such as ``s3://bucket/key.png``."""
    from airflow.sdk import ObjectStoragePath

    return value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(str(value), conn_id=conn_id)


def read_storage_image(value: Any, field_name: str, conn_id: str | None = None) -> ImageRef:
    """
    Read an image from object storage into a base64 reference, refusing files over 50 MB unread.

    :param value: an ``ObjectStoragePath`` or a URL such as ``s3://bucket/key.png`` or ``file:///x.png``.
    :param field_name: the request field it fills, for errors.
    :param conn_id: the Airflow connection for a URL given as a string.
    """
    path = storage_path(value, conn_id)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        # Named like any other bad input: a retry of the same task cannot make the file appear.
        raise LumaRequestValidationError(field_name, f"{object_uri(path)} does not exist") from None
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
        media_type=_media_type(content, field_name),
        field_name=field_name,
    )


def configured_folder(
    destination: str | ObjectStoragePath | None, conn_id: str | None, *, task_id: str
) -> ObjectStoragePath:
    """
    The folder a task writes to: its own ``destination``, or the deployment's ``[luma]`` defaults.

    One storage per deployment is the usual set-up (``AIRFLOW__LUMA__OUTPUT_PATH`` and
    ``AIRFLOW__LUMA__OUTPUT_CONN_ID``), so that DAGs name no bucket. A bare path is a local folder.
    """
    from airflow.sdk import ObjectStoragePath

    destination = destination or conf.get("luma", "output_path", fallback="")
    conn_id = conn_id or conf.get("luma", "output_conn_id", fallback="") or None
    if not destination:
        raise LumaConfigurationError(
            f"Task {task_id} has no destination: pass destination= (and destination_conn_id=), "
            "or set the [luma] output_path and output_conn_id options (AIRFLOW__LUMA__OUTPUT_PATH, "
            "AIRFLOW__LUMA__OUTPUT_CONN_ID)."
        )
    if isinstance(destination, ObjectStoragePath):
        if conn_id is None or conn_id_of(destination) is not None:
            return destination
        destination = str(destination)
    if "://" not in destination:
        destination = "file://" + os.path.abspath(destination)
    return ObjectStoragePath(destination, conn_id=conn_id)


def extension_for(content_type: str) -> str:
    """The file extension for an image MIME type (``.bin`` for one this provider does not know)."""
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), ".bin")


def object_uri(path: ObjectStoragePath) -> str:
    """A plain URL for a stored object: no conn id in it, so it can name an Asset or go to XCom."""
    return f"{path.protocol}://{path.path}"


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in _LOCAL_PROTOCOLS


@contextmanager
def _atomic_writer(target: ObjectStoragePath, size: int, exclusive: bool) -> Iterator[IO[bytes]]:
    """
    Open ``target`` for writing so that it appears complete, with ``size`` bytes, or not at all.

    A plain ``with path.open("wb")`` would not do: fsspec's ``close()`` on the way out of a failed
    block commits whatever was written. So each kind of store gets the strongest way it has.
    """
    if is_local(target):
        writer = _local_writer(target, size, exclusive)
    elif target.protocol in _DEFERRED_COMMIT_PROTOCOLS:
        writer = _deferred_commit_writer(target, size, exclusive)
    else:
        writer = _temporary_key_writer(target, size, exclusive)
    with writer as sink:
        yield sink


def _partial_name(target: ObjectStoragePath) -> str:
    """A hidden sibling of ``target``: same folder, so a rename or move stays within one place."""
    return f"{os.path.dirname(target.path)}/.{target.name}.{uuid.uuid4().hex}.partial"


@contextmanager
def _local_writer(target: ObjectStoragePath, size: int, exclusive: bool) -> Iterator[IO[bytes]]:
    """
    A hidden temporary file in the same directory, flushed to disk, then renamed (atomic on POSIX).

    The exclusive form links the temporary file to the final name instead: ``link`` refuses an
    existing name, atomically, where ``rename`` would replace it.
    """
    os.makedirs(os.path.dirname(target.path), exist_ok=True)
    temp = _partial_name(target)
    try:
        with open(temp, "wb") as sink:
            yield sink
            sink.flush()
            os.fsync(sink.fileno())
            _check_size(target, os.fstat(sink.fileno()).st_size, size)
        if exclusive:
            os.link(temp, target.path)
            os.remove(temp)
        else:
            os.replace(temp, target.path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(temp)
        raise


@contextmanager
def _deferred_commit_writer(target: ObjectStoragePath, size: int, exclusive: bool) -> Iterator[IO[bytes]]:
    """
    The final key, written as a multipart upload that only ``commit()`` completes.

    With ``autocommit=False`` s3fs uploads parts as they fill but completes the upload only on
    ``commit()``; ``discard()`` aborts it, so neither an object nor billable parts stay behind. Mode
    ``xb`` sends ``If-None-Match: *`` with the completion: S3 refuses it if the key exists.
    """
    fs = target.fs
    sink = fs.open(target.path, "xb" if exclusive else "wb", autocommit=False, block_size=_PART_SIZE)
    try:
        try:
            yield sink
            sink.close()
            _check_size(target, _uploaded_bytes(sink), size)
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


def _uploaded_bytes(sink: Any) -> int:
    """What the S3 server holds of a multipart upload not yet completed: the sum of its parts."""
    if sink.mpu is None:  # nothing was uploaded
        return 0
    total, marker = 0, 0
    while True:
        listing = sink.fs.call_s3(
            "list_parts",
            Bucket=sink.bucket,
            Key=sink.key,
            UploadId=sink.mpu["UploadId"],
            PartNumberMarker=marker,
        )
        total += sum(part["Size"] for part in listing.get("Parts", []))
        if not listing.get("IsTruncated"):
            return total
        marker = listing["NextPartNumberMarker"]


@contextmanager
def _temporary_key_writer(target: ObjectStoragePath, size: int, exclusive: bool) -> Iterator[IO[bytes]]:
    """
    For stores not known to defer commits: a hidden temporary key, moved to the final name when whole.

    A failed write may commit the temporary key on close, so it is deleted; the final name is only
    ever written by the move of a complete object. These stores get no conditional move from
    fsspec, so the exclusive form checks for the final name just before the move: a writer that
    gets in between those two steps is overwritten (docs/upload.md).
    """
    fs = target.fs
    temp = _partial_name(target)
    try:
        with fs.open(temp, "wb", block_size=_PART_SIZE) as sink:
            yield sink
        fs.invalidate_cache(temp)
        _check_size(target, fs.size(temp), size)
        if exclusive and fs.exists(target.path):
            raise FileExistsError(object_uri(target))
        fs.mv(temp, target.path)
    except BaseException:
        with suppress(Exception):
            fs.rm(temp)
        raise


def publish(source: IO[bytes], target: ObjectStoragePath, *, size: int, exclusive: bool = False) -> None:
    """
    Copy ``source`` to ``target`` in chunks, all or nothing, and only if exactly ``size`` bytes arrived.

    An object smaller than one part goes to S3 as one ``PutObject``, which S3 applies whole or not at
    all, instead of a three-request multipart upload. Memory is bounded by the part size.

    :param source: a file or buffer, read to its end (``read(n)`` gives ``n`` bytes until then).
    :param target: the final name.
    :param size: the bytes the object must have; checked on the store before the final name exists.
    :param exclusive: refuse to replace an existing object (``FileExistsError``). Atomic on local disk
        (``link``) and S3 (``If-None-Match: *``); a check just before the move on other stores.
    """
    chunks: Iterator[bytes] = iter(partial(source.read, _COPY_CHUNK), b"")
    if target.protocol in _DEFERRED_COMMIT_PROTOCOLS:
        head = source.read(_PART_SIZE)
        if len(head) < _PART_SIZE:
            _check_size(target, len(head), size)
            target.fs.pipe_file(target.path, head, mode="create" if exclusive else "overwrite")
            return
        chunks = itertools.chain([head], chunks)
    with _atomic_writer(target, size, exclusive) as sink:
        for chunk in chunks:
            sink.write(chunk)


def remove(path: ObjectStoragePath) -> None:
    """Delete one object; one that is not there is fine."""
    with suppress(FileNotFoundError):
        path.fs.rm_file(path.path)
    path.fs.invalidate_cache(path.path)


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
