"""``LumaPromoteOutputsOperator``: copy approved images from staging to where they are published."""

from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_luma._compat import conf
from airflow_provider_luma._failures import raise_for_task
from airflow_provider_luma.exceptions import LumaError, LumaManifestError
from airflow_provider_luma.manifest import images_of_uploads, read_record, storage_path_of
from airflow_provider_luma.storage import configured_folder, conn_id_of, object_uri
from airflow_provider_luma.uploads import (
    RELATIVE_NAME,
    check_relative_name,
    contained_target,
    finished_output,
    is_jinja,
    publish_output,
    record_path,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_luma.manifest import ManifestImage

_CHUNK = 1024 * 1024


class LumaPromoteOutputsOperator(BaseOperator):
    """
    Publish staged images: copy each to ``folder`` with a metadata record that says where it came from.

    The step after a review: the generate and upload tasks store into a staging folder, a person
    approves some (Airflow's ``HITLOperator``), and this task copies exactly those to the published
    folder. Exactly what was approved: each image's bytes are hashed while they are copied and must
    match the sha256 its upload recorded, or nothing is published for it (the staged object changed
    after the review). Each copy is written whole, then its record (the staged record, with the new
    ``uri`` and a ``promoted`` section naming the source and this task), so the published folder
    never holds a record that describes other bytes. A retry skips the copies already finished. It
    returns what the upload returns, for the images it published, so a
    ``LumaPublishManifestOperator`` can announce them as one batch.

    :param uploads: the upload results to publish (mapped or not), for example the approved subset.
        Templated.
    :param folder: the folder to publish into, relative to ``destination``: a path that cannot leave
        it. Images keep their file names. Templated.
    :param destination: the storage root (``ObjectStoragePath`` or URL); defaults to
        ``[luma] output_path``. Templated.
    :param destination_conn_id: the connection for ``destination`` and the staged images; defaults
        to ``[luma] output_conn_id``.
    """

    template_fields: Sequence[str] = ("uploads", "folder", "destination", "destination_conn_id")
    ui_color = "#d7f5dc"

    def __init__(
        self,
        *,
        uploads: Any,
        folder: str,
        destination: str | ObjectStoragePath | None = None,
        destination_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not is_jinja(folder):
            check_relative_name(folder, folder, expected=RELATIVE_NAME, field="folder")
        self.uploads = uploads
        self.folder = folder
        self.destination = destination
        self.destination_conn_id = destination_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        try:
            check_relative_name(self.folder, self.folder, expected=RELATIVE_NAME, field="folder")
            root = configured_folder(self.destination, self.destination_conn_id, task_id=self.task_id)
            conn_id = conn_id_of(root) or conf.get("luma", "output_conn_id", fallback="") or None
            results: dict[str, list[dict[str, Any]]] = {}
            for image in images_of_uploads(self.uploads):
                name = posixpath.join(self.folder, posixpath.basename(image.uri))
                target = contained_target(root, name)
                entry = self._promote(image, target, conn_id, context)
                results.setdefault(image.generation_id, []).append(entry)
        except LumaError as error:
            raise_for_task(error)
        return [{"generation_id": gid, "outputs": outputs} for gid, outputs in results.items()]

    def _promote(
        self, image: ManifestImage, target: ObjectStoragePath, conn_id: str | None, context: Context
    ) -> dict[str, Any]:
        uri = object_uri(target)
        entry: dict[str, Any] = {
            "index": image.index,
            "uri": uri,
            "metadata_uri": object_uri(record_path(target)),
            "sha256": image.sha256,
            "size": image.size,
            "content_type": image.content_type,
        }
        done = finished_output(target, image.generation_id, image.index)
        if done is not None and done.sha256 == image.sha256:
            self.log.info("%s is already published at %s: skipped", image.uri, uri)
            return entry
        staged_record = read_record(image, conn_id)
        source = storage_path_of(image.uri, conn_id)
        with tempfile.TemporaryFile(prefix="luma-promote-") as staging:
            digest = hashlib.sha256()
            with source.fs.open(source.path, "rb") as reader:
                for chunk in iter(partial(reader.read, _CHUNK), b""):
                    digest.update(chunk)
                    staging.write(chunk)
            if digest.hexdigest() != image.sha256 or staging.tell() != image.size:
                raise LumaManifestError(
                    f"{image.uri} changed after it was staged (its sha256 or size is not the recorded "
                    "one): it is not what was approved, and is not published"
                )
            staging.seek(0)
            record = _promoted_record(staged_record, uri, image.uri, context["ti"])
            publish_output(staging, target, image.size, record, exclusive=False)
        self.log.info("Published %s as %s (sha256 %s)", image.uri, uri, image.sha256)
        return entry


def _promoted_record(staged: Mapping[str, Any], uri: str, source_uri: str, ti: Any) -> bytes:
    """The staged record at its new place: the same facts, the new ``uri``, and where it came from."""
    now = datetime.now(timezone.utc).isoformat()
    record = {
        **staged,
        "uri": uri,
        "written_at": now,
        "promoted": {
            "from": source_uri,
            "at": now,
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
        },
    }
    return json.dumps(record, indent=2, sort_keys=True).encode()
