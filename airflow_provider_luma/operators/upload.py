"""
``LumaUploadOutputsOperator``: store a completed generation's images (one, or one per layer).

The Airflow-facing flow: check where the objects may go, GET the generation for fresh presigned
URLs, skip what an earlier try finished (``if_exists``), stream the bytes (hashed by the hook) into
a scratch file on the worker, then publish the image and its metadata record in the order that
keeps them in agreement. Naming, records and the ``if_exists`` rules live in
:mod:`airflow_provider_luma.uploads`; see ``docs/upload.md``.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator

from airflow_provider_luma._failures import raise_for_task
from airflow_provider_luma.exceptions import (
    LumaError,
    LumaOutputNotAvailableError,
    LumaRequestValidationError,
)
from airflow_provider_luma.links.luma import LumaImagesLink
from airflow_provider_luma.models import (
    Generation,
    GenerationState,
    Layer,
    canonical_id,
    estimate_cost_of_described,
    is_generation_id,
)
from airflow_provider_luma.storage import configured_folder, extension_for, object_uri
from airflow_provider_luma.uploads import (
    DEFAULT_FILE_NAME,
    build_record,
    check_file_name,
    check_if_exists,
    contained_target,
    earlier_output,
    file_name_fields,
    is_jinja,
    object_name,
    publish_output,
    record_path,
    require_distinct_names,
    require_same_generation,
)

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.lineage import GenerationLineage, StoredOutput

_FORMAT_EXTENSIONS: dict[str, str] = {"png": ".png", "jpeg": ".jpg"}


class _Upstream(NamedTuple):
    """What the task's ``generation`` input tells: the id, and what is known of the request behind it."""

    generation_id: str
    request: Mapping[str, Any] | None
    request_id: str | None
    estimated_cost_usd: float | None


def _parse_generation(value: Any) -> _Upstream:
    """The generation id, the described request, the submit's request id and the cost, from the input."""
    if isinstance(value, Mapping):
        generation_id = value.get("generation_id")
        request = value.get("request")
        request_id = value.get("request_id")
        upstream_cost = value.get("estimated_cost_usd")
    else:
        generation_id, request, request_id, upstream_cost = value, None, None, None
    if not isinstance(generation_id, str) or not is_generation_id(generation_id.strip()):
        raise LumaRequestValidationError(
            "generation",
            "expected a generation id (UUID) or the result dict of LumaGenerateImageOperator "
            f"with a 'generation_id' key (got {type(value).__name__})",
        )
    request = request if isinstance(request, Mapping) else None
    return _Upstream(
        canonical_id(generation_id.strip()), request, request_id, _estimated_cost_usd(upstream_cost, request)
    )


def _estimated_cost_usd(upstream_cost: Any, request: Mapping[str, Any] | None) -> float | None:
    """
    The generation's estimated cost, decided once here for the record, the facet and the Asset extra.

    The upstream result's own figure comes first: the generate task priced the request it sent.
    Without one (a hand-made dict, or a result from before the figure existed), the described
    request is priced from the table. With a bare id, what was asked for is unknown, so the cost
    is ``None``: a guess would be worse than no figure in spend reports. A figure that is no finite
    number (a string, a bool, NaN, which JSON cannot carry) counts as none.
    """
    is_number = isinstance(upstream_cost, (int, float)) and not isinstance(upstream_cost, bool)
    if is_number and math.isfinite(upstream_cost):
        return float(upstream_cost)
    return None if request is None else estimate_cost_of_described(request)


class LumaUploadOutputsOperator(BaseOperator):
    """
    Store the images of a completed Luma generation, with a metadata record next to each: the one
    image of ``image`` and ``image_edit``, every layer of ``layering``.

    :param generation: the result dict of ``LumaGenerateImageOperator`` (``generate.output``, mapped or
        not) or a bare generation id. With the dict, the request (prompt, parameters) and the
        generation's estimated cost go into the metadata record and the lineage; with an id, the
        record's ``request`` and ``estimated_cost_usd`` are null. Templated.
    :param destination: the folder to write to, as an ``ObjectStoragePath`` or a URL (``s3://bucket/luma``,
        ``file:///data/luma``, any scheme Airflow's object storage supports). Templated. Defaults to the
        ``[luma] output_path`` option (``AIRFLOW__LUMA__OUTPUT_PATH``).
    :param destination_conn_id: the connection for ``destination``. Defaults to ``[luma] output_conn_id``.
    :param file_name: the object name under ``destination``, a ``str.format`` pattern over
        ``{generation_id}``, ``{index}`` (the output's position), ``{layer}`` (the index in two digits and a
        slug of the layer's label, ``02-background``; the index alone, ``00``, for an output that is no
        layer) and ``{ext}`` (``.png`` or ``.jpg``, from the image's content type). It may contain ``/``,
        but no ``..``, ``.`` or empty segment, no leading ``/`` and no backslash: the object always stays
        under ``destination``. Keep ``{generation_id}`` in it for a mapped upload, or the mapped tasks
        write the same object; a pattern that names two outputs of one generation alike (no ``{index}``
        or ``{layer}`` for a layering job) fails before anything is downloaded. Templated (checked again
        after rendering).
    :param if_exists: what to do when the object is already there: ``skip_if_identical`` (default: skip
        without downloading when the metadata record names the same generation and output and the object
        has the recorded size, which makes task retries free; rewrite otherwise), ``overwrite``, or
        ``fail`` (fail without retries, unless it is this generation output's own finished upload, which
        is skipped so that a retry after a success still succeeds).
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
    operator_extra_links = (LumaImagesLink(),)

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
        check_if_exists(if_exists)
        # A literal pattern fails the DAG import; one with Jinja is checked once rendered.
        if not (isinstance(file_name, str) and is_jinja(file_name)):
            check_file_name(file_name)
        self.generation = generation
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.file_name = file_name
        self.if_exists = if_exists
        self.luma_conn_id = luma_conn_id
        self._lineage: GenerationLineage | None = None

    def resolve_destination(self) -> ObjectStoragePath:
        """The destination folder: the task's own, or the deployment's ``[luma]`` defaults."""
        return configured_folder(self.destination, self.destination_conn_id, task_id=self.task_id)

    def _target(
        self, folder: ObjectStoragePath, generation_id: str, index: int, ext: str, layer: Layer | None
    ) -> ObjectStoragePath:
        return contained_target(folder, object_name(self.file_name, generation_id, index, ext, layer))

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_luma.hooks.luma import LumaHook
        from airflow_provider_luma.lineage import GenerationLineage

        try:
            check_file_name(self.file_name)
            self._warn_if_mapped_writers_share_a_name(context)
            upstream = _parse_generation(self.generation)
            folder = self.resolve_destination()
            with LumaHook(luma_conn_id=self.luma_conn_id) as hook:
                generation = hook.get_generation(upstream.generation_id)
                require_same_generation(upstream.generation_id, generation)
                _require_completed(generation)
                require_distinct_names(self.file_name, generation)
                outputs = [
                    self._store_output(hook, generation, index, folder, upstream, context)
                    for index in range(len(generation.output))
                ]
                self._lineage = GenerationLineage(
                    generation_id=generation.id,
                    model=generation.model,
                    type=generation.type,
                    created_at=generation.created_at,
                    request=upstream.request,
                    outputs=outputs,
                    estimated_cost_usd=upstream.estimated_cost_usd,
                )
                self._emit_lineage(hook, context, self._lineage)
        except LumaError as error:
            raise_for_task(error)
        return {"generation_id": generation.id, "outputs": [output.manifest_entry() for output in outputs]}

    def _warn_if_mapped_writers_share_a_name(self, context: Context) -> None:
        map_index = context["ti"].map_index
        if (
            map_index is not None
            and map_index >= 0
            and "generation_id" not in file_name_fields(self.file_name)
        ):
            self.log.warning(
                "file_name %r has no {generation_id}: the mapped tasks of %s can write the same object, "
                "and the last one replaces the others",
                self.file_name,
                self.task_id,
            )

    def _store_output(
        self,
        hook: LumaHook,
        generation: Generation,
        index: int,
        folder: ObjectStoragePath,
        upstream: _Upstream,
        context: Context,
    ) -> StoredOutput:
        from airflow_provider_luma.lineage import StoredOutput

        hinted = _FORMAT_EXTENSIONS.get(str((upstream.request or {}).get("output_format")))
        extensions = dict.fromkeys(ext for ext in (hinted, ".png", ".jpg") if ext)
        layer = generation.output[index].layer
        candidates = [self._target(folder, generation.id, index, ext, layer) for ext in extensions]
        earlier = earlier_output(candidates, generation.id, index, self.if_exists)
        if earlier is not None:
            return self._skipped(earlier, generation.id)
        with tempfile.TemporaryFile(prefix="luma-output-") as staging:
            downloaded = hook.download_output(generation.id, staging, index=index)
            require_same_generation(generation.id, downloaded.generation)
            # The image's real type may name an object the first look did not cover. Its layer is the
            # one the GET that gave these bytes described, so the name and record say what they are.
            layer = downloaded.generation.output[index].layer
            ext = extension_for(downloaded.content_type)
            target = self._target(folder, generation.id, index, ext, layer)
            earlier = earlier_output([target], generation.id, index, self.if_exists)
            if earlier is not None:
                return self._skipped(earlier, generation.id)
            stored = StoredOutput(
                index=index,
                uri=object_uri(target),
                metadata_uri=object_uri(record_path(target)),
                sha256=downloaded.sha256,
                size=downloaded.size,
                content_type=downloaded.content_type,
                layer=layer,
            )
            record = build_record(
                downloaded.generation,
                stored,
                upstream.request,
                upstream.request_id or downloaded.generation.request_id,
                context["ti"],
                estimated_cost_usd=upstream.estimated_cost_usd,
            )
            staging.seek(0)
            publish_output(staging, target, stored.size, record, exclusive=self.if_exists == "fail")
        self.log.info(
            "Stored output %s of %s at %s (%s bytes, sha256 %s)",
            index,
            generation.id,
            stored.uri,
            stored.size,
            stored.sha256,
        )
        return stored

    def _skipped(self, earlier: StoredOutput, generation_id: str) -> StoredOutput:
        self.log.info(
            "Output %s of %s is already stored at %s: skipped", earlier.index, generation_id, earlier.uri
        )
        return earlier

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
