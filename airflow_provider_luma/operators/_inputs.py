"""
Input images from storage sent as uploaded files (``file_id``) instead of base64, each uploaded once.

A 40 MB source sent as base64 is 53 MB of JSON in every request, and a mapped refresh that uses one
brand reference in 50 tasks would send it 50 times. Through the Files API it is uploaded once and
referenced by id. "Once" is kept by Luma's own file list, the record every task of every DAG on the
same account already shares: a file is named after the sha256 of its bytes
(``airflow-luma-sha256-<hex>.png``), so a task that finds a ``ready`` file of that name and purpose
uses it, one that finds a ``pending`` one (another task uploading it right now) waits for it, and one
that finds none, or only a deleted, expired or failed one, uploads. Two tasks that look at the same
moment may both upload: that costs an extra upload, never a wrong image, and files cost nothing.
No Airflow state is needed, so it works the same on every Airflow version and across DAGs.

The bytes are spooled to a local temporary file while they are hashed (memory does not grow with
the image), so the object is read from storage once. A retry's submission record compares requests
by content, not by file id: the fingerprint of a request with staged files is the one the same
request would have with those images inline (computed by streaming their base64 through the hash,
in constant memory), so a retry reattaches whether the try before sent them inline or as files, and
a retry that reattaches uploads nothing. Until the upload, each file reference holds a placeholder
id derived from the sha256; it is never sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_luma.exceptions import LumaFileUnusableError, LumaRequestValidationError
from airflow_provider_luma.models import MAX_IMAGE_BYTES, ImageRef, sniff_media_type
from airflow_provider_luma.storage import object_uri

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest
    from airflow_provider_luma.models.file import LumaFile

#: Inputs at least this large go as uploaded files when ``upload_inputs`` is left unset: Luma advises
#: keeping inline images under 4 MB.
AUTO_UPLOAD_BYTES = 4 * 1024 * 1024
#: How long Luma keeps an uploaded input (its ``expires_at``): a weekly refresh finds last week's gone.
INPUT_FILE_TTL = timedelta(days=7)
#: A file expiring sooner than this is not reused: the generation must still find it.
REUSE_MARGIN = timedelta(hours=1)
#: A ``pending`` file older than this is an orphan (a lost creation, a task killed mid-upload).
STALE_PENDING = timedelta(minutes=10)
#: Seconds to wait for another task's upload of the same bytes before uploading ours.
SHARED_UPLOAD_WAIT = 60.0
#: Pages of the file list (newest first, 100 each) searched for an earlier upload.
LOOKUP_PAGES = 3
#: Bytes read from storage per chunk while spooling (a multiple of 3, so base64 chunks concatenate).
_CHUNK_BYTES = 3 * 349_525
_PLACEHOLDER_NAMESPACE = uuid.UUID("5b0c6f3e-8f0a-4f7e-9d61-6c2f1b3a9e10")
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


def file_name(sha256: str, media_type: str) -> str:
    """The name an input is uploaded under, which later tasks find it by."""
    return f"airflow-luma-sha256-{sha256}{_EXTENSIONS.get(media_type, '')}"


def should_upload(path: ObjectStoragePath, upload_inputs: bool | None) -> bool:
    """Whether a storage input goes as a file: as asked, or (unset) when it is 4 MB or more."""
    if upload_inputs is not None:
        return upload_inputs
    try:
        return int(path.stat().st_size) >= AUTO_UPLOAD_BYTES
    except FileNotFoundError:
        return False  # the base64 path names the missing object


@dataclass
class StagedImage:
    """
    A storage image read into a local spool, hashed, waiting to be uploaded (or found uploaded).

    :param field_name: the request field (``source``, ``image_ref[2]``).
    :param uri: the storage object it came from.
    :param sha256: hex digest of its bytes.
    :param size: its bytes.
    :param media_type: its type, read from the bytes.
    :param purpose: ``input`` for a source, ``reference`` for a reference image.
    """

    field_name: str
    uri: str
    sha256: str
    size: int
    media_type: str
    purpose: str
    spool: IO[bytes] = field(repr=False)

    @property
    def file_name(self) -> str:
        return file_name(self.sha256, self.media_type)

    @property
    def placeholder_id(self) -> str:
        """The id a reference holds until the upload: the same for the same bytes and purpose."""
        return str(uuid.uuid5(_PLACEHOLDER_NAMESPACE, f"{self.purpose}:{self.sha256}"))

    def reference(self) -> ImageRef:
        """The reference the request holds until :meth:`StagedInputs.resolve` names the real file."""
        return ImageRef(file_id=self.placeholder_id, field_name=self.field_name)

    def base64_chunks(self) -> Iterator[bytes]:
        """The spooled bytes as base64, chunk by chunk (their concatenation is the whole encoding)."""
        self.spool.seek(0)
        while chunk := self.spool.read(_CHUNK_BYTES):
            yield base64.b64encode(chunk)


def stage(path: ObjectStoragePath, field_name: str) -> StagedImage:
    """Spool and hash a storage image, refusing one over 50 MB (unread) or that is no image, unsent."""
    try:
        stated = int(path.stat().st_size)
    except FileNotFoundError:
        raise LumaRequestValidationError(field_name, f"{object_uri(path)} does not exist") from None
    if stated > MAX_IMAGE_BYTES:
        raise LumaRequestValidationError(
            field_name,
            f"{object_uri(path)} is {stated} bytes, over the API's 50 MB limit ({MAX_IMAGE_BYTES} bytes)",
        )
    spool = tempfile.TemporaryFile(prefix="luma-input-")  # noqa: SIM115 - closed by StagedInputs
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise LumaRequestValidationError(
                        field_name, f"{object_uri(path)} is over the API's 50 MB limit"
                    )
                head = head or chunk[:16]
                digest.update(chunk)
                spool.write(chunk)
    except FileNotFoundError:
        spool.close()
        raise LumaRequestValidationError(field_name, f"{object_uri(path)} does not exist") from None
    except BaseException:
        spool.close()
        raise
    media_type = sniff_media_type(head)
    if media_type is None:
        spool.close()
        raise LumaRequestValidationError(
            field_name, f"{object_uri(path)} is not a PNG, JPEG, WebP or GIF image"
        )
    spool.seek(0)
    purpose = "input" if field_name == "source" else "reference"
    return StagedImage(field_name, object_uri(path), digest.hexdigest(), size, media_type, purpose, spool)


class StagedInputs:
    """
    The storage images of one request that go as files: staged while the request is built, then
    resolved (found or uploaded) only when a new submission is made.

    :param log: the task's logger.
    """

    def __init__(self, log: Any) -> None:
        self.log = log
        self.images: list[StagedImage] = []
        self.resolved: list[dict[str, Any]] = []

    def __enter__(self) -> StagedInputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self, request: GenerationRequest) -> dict[str, Any]:
        """
        ``request.describe()`` with each staged image named by its storage URI and sha256, and its
        file id once resolved (a reattaching try, which uploads nothing, knows no id).
        """
        described = request.describe()
        by_field = {image.field_name: image for image in self.images}
        ids = {item["field"]: item["file_id"] for item in self.resolved}

        def named(ref: dict[str, Any], field_name: str) -> dict[str, Any]:
            image = by_field.get(field_name)
            if image is None:
                return ref
            return {"file_id": ids.get(field_name), "uri": image.uri, "sha256": image.sha256}

        if "source" in described:
            described["source"] = named(described["source"], "source")
        if "image_ref" in described:
            described["image_ref"] = [
                named(ref, f"image_ref[{index}]") for index, ref in enumerate(described["image_ref"])
            ]
        return described

    def add(self, path: ObjectStoragePath, field_name: str) -> ImageRef:
        image = stage(path, field_name)
        self.images.append(image)
        return image.reference()

    def close(self) -> None:
        for image in self.images:
            image.spool.close()

    def fingerprint(self, request: GenerationRequest) -> str:
        """
        :meth:`GenerationRequest.fingerprint` of ``request`` with its staged images inline: the same
        digest whether they are sent inline or as files, computed without building the base64 text.
        """
        if not self.images:
            return request.fingerprint()
        staged = {image.placeholder_id: image for image in self.images}
        tokens: dict[str, StagedImage] = {}

        def inline(ref: dict[str, Any]) -> dict[str, Any]:
            image = staged.get(ref.get("file_id", ""))
            if image is None:
                return ref
            token = f"staged-{uuid.uuid4().hex}"
            tokens[token] = image
            return {"data": token, "media_type": image.media_type}

        body = request.to_json()
        if "source" in body:
            body["source"] = inline(body["source"])
        if "image_ref" in body:
            body["image_ref"] = [inline(ref) for ref in body["image_ref"]]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256()
        for part in re.split(f"({'|'.join(tokens)})", canonical):
            if part in tokens:
                for chunk in tokens[part].base64_chunks():
                    digest.update(chunk)
            else:
                digest.update(part.encode())
        return digest.hexdigest()

    def resolve(self, hook: LumaHook, request: GenerationRequest) -> GenerationRequest:
        """``request`` with every placeholder replaced by a ready file's id (uploading what is missing)."""
        if not self.images:
            return request
        ids: dict[str, str] = {}
        for image in self.images:
            known = image.placeholder_id in ids
            if not known:
                file, reused = _find_or_upload(hook, image, self.log)
                ids[image.placeholder_id] = file.id
            self.resolved.append(
                {
                    "field": image.field_name,
                    "uri": image.uri,
                    "sha256": image.sha256,
                    "file_id": ids[image.placeholder_id],
                    # The same bytes twice in one request: the second names the file the first found.
                    "reused": True if known else reused,
                }
            )

        def real(ref: ImageRef) -> ImageRef:
            return replace(ref, file_id=ids[ref.file_id]) if ref.file_id in ids else ref

        return replace(
            request,
            source=None if request.source is None else real(request.source),
            image_ref=tuple(real(ref) for ref in request.image_ref),
        )


def _find_or_upload(hook: LumaHook, image: StagedImage, log: Any) -> tuple[LumaFile, bool]:
    """A ready file of these bytes and purpose: an earlier upload when one is usable, else a new one."""
    earlier = _earlier_upload(hook, image)
    if earlier is not None and earlier.state == "pending":
        log.info(
            "File %s (same bytes as %s) is being uploaded by another task: waiting", earlier.id, image.uri
        )
        try:
            earlier = hook.wait_for_file(earlier.id, timeout=SHARED_UPLOAD_WAIT)
        except LumaFileUnusableError:
            earlier = None
    if earlier is not None and earlier.is_ready:
        log.info("Reusing Luma file %s for %s (%s)", earlier.id, image.field_name, image.uri)
        return earlier, True
    image.spool.seek(0)
    uploaded = hook.upload_file(
        image.spool,
        purpose=image.purpose,
        mime_type=image.media_type,
        filename=image.file_name,
        expires_at=datetime.now(timezone.utc) + INPUT_FILE_TTL,
        size_bytes=image.size,
    )
    if uploaded.sha256 != image.sha256:
        # The spool is ours and was not written since: a mismatch is a bug. The file's name would
        # claim bytes it does not hold, so it is deleted before anyone can reuse it.
        hook.delete_file(uploaded.id)
        raise LumaFileUnusableError(uploaded.id, uploaded.file.state, "uploaded bytes differ", retryable=True)
    log.info("Uploaded %s as Luma file %s (%s bytes)", image.uri, uploaded.id, image.size)
    return uploaded.file, False


def _earlier_upload(hook: LumaHook, image: StagedImage) -> LumaFile | None:
    """
    The newest ready file of these bytes and purpose that lasts another hour, else the newest one
    still being uploaded (pending for less than :data:`STALE_PENDING`), else none.

    A ready copy wins over a newer pending one: that may be an orphan (a lost creation) that would
    only be waited out.
    """
    now = datetime.now(timezone.utc)
    pending: LumaFile | None = None
    for file in hook.iter_files(purpose=image.purpose, max_pages=LOOKUP_PAGES):
        if file.filename != image.file_name or file.size_bytes != image.size:
            continue
        if file.state == "ready" and _lasts(file, now + REUSE_MARGIN):
            return file
        if pending is None and file.state == "pending" and _created_after(file, now - STALE_PENDING):
            pending = file
    return pending


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _lasts(file: LumaFile, until: datetime) -> bool:
    """Whether ``file`` outlives ``until``: no expiry does; one that cannot be read does not."""
    if not file.expires_at:
        return True
    expires = _parse(file.expires_at)
    return expires is not None and expires > until


def _created_after(file: LumaFile, since: datetime) -> bool:
    created = _parse(file.created_at)
    return created is not None and created > since
