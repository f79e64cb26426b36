"""
``LumaUploadOutputsOperator``: store a completed generation's images.

A GET for fresh presigned URLs, the bytes streamed (and hashed) by the hook into a scratch file on
the worker, published to the destination in one step that either completes or leaves nothing, then
the metadata record, written last so that its presence means the image next to it is complete. See
``docs/upload.md``.
"""

from __future__ import annotations

import io
import json
import os
import string
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_luma._compat import AirflowFailException, conf
from airflow_provider_luma.exceptions import (
    LumaConfigurationError,
    LumaError,
    LumaOutputNotAvailableError,
    LumaRequestValidationError,
)
from airflow_provider_luma.models import Generation, GenerationState, is_generation_id
from airflow_provider_luma.operators._failures import raise_for_task
from airflow_provider_luma.storage import (
    conn_id_of,
    extension_for,
    is_local,
    object_uri,
    publish,
    read_json,
    sha256_of,
)

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.lineage import GenerationLineage, StoredOutput


def _record_path(image: ObjectStoragePath) -> ObjectStoragePath:
    return image.with_name(image.name + METADATA_SUFFIX)


IF_EXISTS_CHOICES: tuple[str, ...] = ("overwrite", "skip_if_identical", "fail")
FILE_NAME_FIELDS: frozenset[str] = frozenset({"generation_id", "index", "ext"})
DEFAULT_FILE_NAME = "{generation_id}-{index}{ext}"
#: Suffix of the metadata record written next to each image (``<image name>.json``).
METADATA_SUFFIX = ".json"
METADATA_FORMAT_VERSION = 1
_FORMAT_EXTENSIONS: dict[str, str] = {"png": ".png", "jpeg": ".jpg"}


def _parse_generation(value: Any) -> tuple[str, Mapping[str, Any] | None, str | None]:
    """The generation id, the described request and the submit's request id from the task's input."""
    if isinstance(value, Mapping):
        generation_id = value.get("generation_id")
        request = value.get("request")
        request_id = value.get("request_id")
    else:
        generation_id, request, request_id = value, None, None
    if not isinstance(generation_id, str) or not is_generation_id(generation_id.strip()):
        raise LumaRequestValidationError(
            "generation",
            "expected a generation id (UUID) or the result dict of LumaGenerateImageOperator "
            f"with a 'generation_id' key (got {type(value).__name__})",
        )
    return generation_id.strip(), request if isinstance(request, Mapping) else None, request_id


class LumaUploadOutputsOperator(BaseOperator):
    """
    Store the images of a completed Luma generation, with a metadata record next to each.

    :param generation: the result dict of ``LumaGenerateImageOperator`` (``generate.output``, mapped or
        not) or a bare generation id. With the dict, the request (prompt, parameters) goes into the
        metadata record; with an id, the record's ``request`` is null. Templated.
    :param destination: the folder to write to, as an ``ObjectStoragePath`` or a URL (``s3://bucket/luma``,
        ``file:///data/luma``, any scheme Airflow's object storage supports). Templated. Defaults to the
        ``[luma] output_path`` option (``AIRFLOW__LUMA__OUTPUT_PATH``).
    :param destination_conn_id: the connection for ``destination``. Defaults to ``[luma] output_conn_id``.
    :param file_name: the object name, a ``str.format`` pattern over ``{generation_id}``, ``{index}`` and
        ``{ext}`` (``.png`` or ``.jpg``, from the image's content type). May contain ``/``. Templated.
    :param if_exists: what to do when the object is already there: ``skip_if_identical`` (default: skip
        without downloading when the metadata record names the same generation and output and the object
        has the recorded size, which makes task retries free), ``overwrite``, or ``fail``.
    :param luma_conn_id: the Luma connection.
    """

    template_fields: Sequence[str] = (
        "generation",
        "destination",
        "destination_conn_id",
        "file_name",
        "luma_conn_id",
    )
    ui_color = "#c9e4ff"

    def __init__(
        self,
        *,
        generation: Any,
        destination: str | ObjectStoragePath | None = None,
        destination_conn_id: str | None = None,
        file_name: str = DEFAULT_FILE_NAME,
        if_exists: str = "skip_if_identical",
        luma_conn_id: str = "luma_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if if_exists not in IF_EXISTS_CHOICES:
            raise ValueError(f"if_exists: invalid value {if_exists!r}; valid: {', '.join(IF_EXISTS_CHOICES)}")
        self.generation = generation
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.file_name = file_name
        self.if_exists = if_exists
        self.luma_conn_id = luma_conn_id
        self._lineage: GenerationLineage | None = None

    def resolve_destination(self) -> ObjectStoragePath:
        """The destination folder: the task's own, or the deployment's ``[luma]`` defaults."""
        from airflow.sdk import ObjectStoragePath

        destination = self.destination or conf.get("luma", "output_path", fallback="")
        conn_id = self.destination_conn_id or conf.get("luma", "output_conn_id", fallback="") or None
        if not destination:
            raise LumaConfigurationError(
                f"Task {self.task_id} has no destination: pass destination= (and destination_conn_id=), "
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

    def _target(
        self, folder: ObjectStoragePath, generation_id: str, index: int, ext: str
    ) -> ObjectStoragePath:
        fields = {name for _, name, _, _ in string.Formatter().parse(self.file_name) if name is not None}
        if not fields <= FILE_NAME_FIELDS:
            raise LumaConfigurationError(
                f"file_name {self.file_name!r} uses unknown fields {sorted(fields - FILE_NAME_FIELDS)}; "
                f"valid: {', '.join(sorted(FILE_NAME_FIELDS))}"
            )
        return folder / self.file_name.format(generation_id=generation_id, index=index, ext=ext)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_luma.hooks.luma import LumaHook
        from airflow_provider_luma.lineage import GenerationLineage

        try:
            generation_id, request, submit_request_id = _parse_generation(self.generation)
            folder = self.resolve_destination()
            with LumaHook(luma_conn_id=self.luma_conn_id) as hook:
                generation = hook.get_generation(generation_id)
                _require_completed(generation)
                outputs = [
                    self._store_output(hook, generation, index, folder, request, submit_request_id, context)
                    for index in range(len(generation.output))
                ]
                self._lineage = GenerationLineage(
                    generation_id=generation.id,
                    model=generation.model,
                    type=generation.type,
                    created_at=generation.created_at,
                    request=request,
                    outputs=outputs,
                )
                self._emit_lineage(hook, context, self._lineage)
        except LumaError as error:
            raise_for_task(error)
        return {"generation_id": generation.id, "outputs": [output.manifest_entry() for output in outputs]}

    def _store_output(
        self,
        hook: LumaHook,
        generation: Generation,
        index: int,
        folder: ObjectStoragePath,
        request: Mapping[str, Any] | None,
        submit_request_id: str | None,
        context: Context,
    ) -> StoredOutput:
        from airflow_provider_luma.lineage import StoredOutput

        hinted = _FORMAT_EXTENSIONS.get(str((request or {}).get("output_format")))
        extensions = dict.fromkeys(ext for ext in (hinted, ".png", ".jpg") if ext)
        candidates = [self._target(folder, generation.id, index, ext) for ext in extensions]
        if self.if_exists == "skip_if_identical":
            existing = _identical_existing(candidates, generation.id, index)
            if existing is not None:
                self.log.info(
                    "Output %s of %s is already stored at %s: skipped", index, generation.id, existing.uri
                )
                return existing
        elif self.if_exists == "fail":
            for candidate in candidates:
                _fail_if_exists(candidate)

        with tempfile.TemporaryFile(prefix="luma-output-") as staging:
            downloaded = hook.download_output(generation.id, staging, index=index)
            staging.seek(0)
            target = self._target(folder, generation.id, index, extension_for(downloaded.content_type))
            if self.if_exists == "fail":
                _fail_if_exists(target)
            written = publish(staging, target)
        if written != downloaded.size:
            raise LumaError(
                f"Output {index} of {generation.id}: {written} bytes stored but {downloaded.size} downloaded"
            )
        stored = StoredOutput(
            index=index,
            uri=object_uri(target),
            metadata_uri=object_uri(_record_path(target)),
            sha256=downloaded.sha256,
            size=downloaded.size,
            content_type=downloaded.content_type,
        )
        record = _metadata_record(
            downloaded.generation,
            stored,
            request,
            submit_request_id or downloaded.generation.request_id,
            context,
        )
        publish(io.BytesIO(json.dumps(record, indent=2, sort_keys=True).encode()), _record_path(target))
        self.log.info(
            "Stored output %s of %s at %s (%s bytes, sha256 %s)",
            index,
            generation.id,
            stored.uri,
            stored.size,
            stored.sha256,
        )
        return stored

    def _emit_lineage(self, hook: LumaHook, context: Context, lineage: GenerationLineage) -> None:
        from airflow_provider_luma.lineage import emit_asset_events, record_hook_lineage

        emit_asset_events(context, self.outlets, lineage)
        record_hook_lineage(hook, lineage)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage: the generation and its source images in, the stored objects out, a run facet.

        ``None`` when nothing was stored or when the optional OpenLineage provider is not installed.
        """
        from airflow_provider_luma.lineage import openlineage_facets

        if self._lineage is None:
            return None
        try:
            return openlineage_facets(self._lineage)
        except ImportError:
            self.log.debug("OpenLineage is not installed; no lineage facets for %s", self.task_id)
            return None


def _require_completed(generation: Generation) -> None:
    """
    Refuse an upload with nothing to upload: retryable while the generation is still running.

    A failed generation will never change, so its error is not retryable (no Airflow retry is spent).
    """
    if generation.state is not GenerationState.COMPLETED:
        hint = "run the upload after the generate task or a LumaGenerationSensor"
        if generation.state is GenerationState.FAILED:
            hint = f"{generation.failure_reason or 'no reason given'}; there is nothing to upload"
        raise LumaOutputNotAvailableError(
            generation.id, generation.state.value, generation.failure_code, f"it is not completed ({hint})"
        )
    if not generation.output:
        raise LumaOutputNotAvailableError(
            generation.id, generation.state.value, None, "it is completed but lists no outputs"
        )


def _fail_if_exists(target: ObjectStoragePath) -> None:
    if target.fs.exists(target.path):
        raise AirflowFailException(f"{object_uri(target)} already exists and if_exists='fail'.")


def _identical_existing(
    candidates: Sequence[ObjectStoragePath], generation_id: str, index: int
) -> StoredOutput | None:
    """
    The stored output, if a complete earlier upload of the same generation output is there.

    The record is written last, so its presence means the image was complete when written; the
    size check catches an image replaced since. The checksum is verified only on local disk, where
    reading the file back is cheap.
    """
    from airflow_provider_luma.lineage import StoredOutput

    for image in candidates:
        record = read_json(_record_path(image))
        if not record or record.get("generation_id") != generation_id or record.get("index") != index:
            continue
        if not image.fs.exists(image.path) or image.fs.size(image.path) != record.get("size"):
            continue
        if is_local(image) and sha256_of(image) != record.get("sha256"):
            continue
        return StoredOutput(
            index=index,
            uri=object_uri(image),
            metadata_uri=object_uri(_record_path(image)),
            sha256=str(record.get("sha256")),
            size=int(record["size"]),
            content_type=str(record.get("content_type")),
            skipped=True,
        )
    return None


def _metadata_record(
    generation: Generation,
    stored: StoredOutput,
    request: Mapping[str, Any] | None,
    request_id: str | None,
    context: Context,
) -> dict[str, Any]:
    """The JSON written next to an image: what made it, how it was asked for, what was stored."""
    ti = context["ti"]
    return {
        "format_version": METADATA_FORMAT_VERSION,
        "generation_id": generation.id,
        "index": stored.index,
        "model": generation.model,
        "type": generation.type,
        "created_at": generation.created_at,
        "request_id": request_id,
        "request": dict(request) if request is not None else None,
        "uri": stored.uri,
        "sha256": stored.sha256,
        "size": stored.size,
        "content_type": stored.content_type,
        "written_at": datetime.now(timezone.utc).isoformat(),
        "airflow": {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
        },
    }
