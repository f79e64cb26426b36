"""
The two operators of a generation's life: make the image, then keep it.

``LumaGenerateImageOperator`` submits on the worker, remembers the id, waits (in the triggerer or
the worker) and reports. A try never pays twice for the same request: the generation id is kept in
Airflow 3.3's ``task_state_store`` (per map index) the moment the POST answers, and the next try of
the task (a retry, a crash, a clear) reattaches to it. See ``docs/generate.md`` for the outcome table.

``LumaUploadOutputsOperator`` stores a completed generation's images: a GET for fresh presigned URLs,
the bytes streamed (and hashed) by the hook into a scratch file on the worker, published to the
destination in one step that either completes or leaves nothing, then the metadata record, written
last so that its presence means the image next to it is complete. See ``docs/upload.md``.
"""

from __future__ import annotations

import io
import json
import os
import string
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_provider_luma import polling
from airflow_provider_luma._compat import AirflowFailException, conf, never_expire
from airflow_provider_luma.exceptions import (
    LumaConfigurationError,
    LumaError,
    LumaNotFoundError,
    LumaOutputNotAvailableError,
    LumaRequestValidationError,
    LumaSubmissionUnknownError,
)
from airflow_provider_luma.models import (
    Generation,
    GenerationRequest,
    GenerationState,
    ImageRef,
    estimate_cost_usd,
    is_generation_id,
)
from airflow_provider_luma.storage import (
    conn_id_of,
    extension_for,
    is_local,
    is_storage_reference,
    object_uri,
    publish,
    read_json,
    read_storage_image,
    sha256_of,
)

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.lineage import GenerationLineage, StoredOutput

#: The task_state_store key holding ``{"generation_id", "fingerprint"}``; one key, so one write
#: records both (a crash between two writes would make the next try think the request changed).
#: Renaming it breaks the reattachment of tries already in flight.
STATE_KEY = "luma_generation"

#: Stands in for a storage reference while validating at DAG parse, where nothing is read.
_PARSE_TIME_STORAGE_PLACEHOLDER = "https://storage.placeholder.invalid/image"


def raise_for_task(error: LumaError) -> NoReturn:
    """
    Fail the task so that Airflow retries it only when a retry can help.

    A retryable error is raised as is (Airflow spends a retry, and the next try reattaches); any
    other error becomes an :class:`AirflowFailException` chained to it, so no retry is spent.
    """
    if error.retryable:
        raise error
    raise AirflowFailException(f"{error} (not retried: the same request cannot succeed)") from error


def _is_literal(value: Any) -> bool:
    """Whether ``value`` is known at DAG parse (no Jinja template, no XComArg or other lazy value)."""
    if value is None or isinstance(value, (bool, int, float, os.PathLike, ImageRef)):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, Mapping):
        return all(_is_literal(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_is_literal(item) for item in value)
    return False


def _result(summary: Mapping[str, Any], described_request: Mapping[str, Any]) -> dict[str, Any]:
    """The task's XCom: ids, state and cost, no URLs and no image bytes."""
    input_images = len(described_request.get("image_ref") or ()) + bool(described_request.get("source"))
    return {
        "generation_id": summary["generation_id"],
        "state": summary["state"],
        "model": summary["model"],
        "type": summary["type"],
        "request_id": summary.get("request_id"),
        "created_at": summary.get("created_at"),
        "output_count": summary.get("output_count", 0),
        "estimated_cost_usd": estimate_cost_usd(described_request["model"], input_images),
        "request": dict(described_request),
    }


class LumaGenerateImageOperator(BaseOperator):
    """
    Generate (``type="image"``) or edit (``type="image_edit"``) one image with Luma's uni-1.

    The request is validated at DAG parse when all its values are literals, else at the start of
    ``execute`` (a bad value fails the task without spending retries). The POST is made on the worker;
    the wait is deferred to the triggerer (``deferrable=True``) or done in the worker, under the same
    timing rules (:mod:`airflow_provider_luma.polling`). The task returns, and pushes as XCom, a small
    dict: ``generation_id``, ``state``, ``model``, ``type``, ``request_id``, ``created_at``,
    ``output_count``, ``estimated_cost_usd`` and ``request`` (the request without image bytes); it
    also pushes the key ``generation_id``.

    :param prompt: what to draw or how to edit, 1 to 6000 characters. Templated.
    :param type: ``image`` or ``image_edit``. Templated.
    :param model: ``uni-1`` or ``uni-1-max``. Templated.
    :param aspect_ratio: one of ``1:1, 1:2, 1:3, 16:9, 2:1, 2:3, 3:1, 3:2, 9:16``, or ``None`` to let
        the model choose (ignored by the API on edits). Templated.
    :param style: ``auto`` or ``manga`` (portrait ratios only). Templated.
    :param output_format: ``png`` or ``jpeg``. Templated.
    :param web_search: let the model search the web first (adds a few seconds).
    :param source: the image to edit (``image_edit`` only): an ``https://`` URL, the id of an earlier
        generation (for example ``generate.output["generation_id"]``), a mapping in the API's ImageRef
        shape, or a file in storage (an ``ObjectStoragePath`` or a URL such as ``s3://...`` or
        ``file://...``), which is read on the worker and sent as base64. Templated.
    :param image_ref: up to 9 reference images (8 with a source), each in any form ``source`` takes.
        Templated.
    :param user_id: your end user's opaque id, for Luma's abuse attribution. Templated.
    :param storage_conn_id: the Airflow connection used to read storage URLs given as strings.
    :param luma_conn_id: the Luma connection. Templated.
    :param wait_for_completion: wait for the generation to end; ``False`` returns right after the
        submission with state ``queued`` (wait later with ``LumaGenerationSensor``).
    :param deferrable: wait in the triggerer, freeing the worker slot. Defaults to the
        ``[operators] default_deferrable`` option.
    :param poll_interval: seconds between two status checks. Defaults to the ``[luma] poll_interval``
        option, else 2 s (Luma's advice).
    :param initial_wait: seconds between the submission and the first status check. Defaults to the
        ``[luma] initial_wait`` option, else 20 s (uni-1's p50 is about 30 s).
    :param timeout: seconds (or a timedelta) the whole wait may take. When it passes the task fails
        and may be retried (a retry waits on the same generation again); the API has no cancel,
        so the generation may still finish and be billed.
    :param resubmit_on_retry: submit a new generation on every try instead of reattaching to the
        one the previous try started (each submission is billed).
    """

    template_fields: Sequence[str] = (
        "prompt",
        "type",
        "model",
        "aspect_ratio",
        "style",
        "output_format",
        "source",
        "image_ref",
        "user_id",
        "luma_conn_id",
    )
    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        prompt: str,
        type: str = "image",
        model: str = "uni-1",
        aspect_ratio: str | None = None,
        style: str | None = None,
        output_format: str | None = None,
        web_search: bool = False,
        source: Any = None,
        image_ref: Any = None,
        user_id: str | None = None,
        storage_conn_id: str | None = None,
        luma_conn_id: str = "luma_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        initial_wait: float | None = None,
        timeout: float | timedelta = polling.DEFAULT_TIMEOUT,
        resubmit_on_retry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.type = type
        self.model = model
        self.aspect_ratio = aspect_ratio
        self.style = style
        self.output_format = output_format
        self.web_search = web_search
        self.source = source
        self.image_ref = image_ref
        self.user_id = user_id
        self.storage_conn_id = storage_conn_id
        self.luma_conn_id = luma_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = polling.configured_seconds("poll_interval", poll_interval)
        self.initial_wait = polling.configured_seconds("initial_wait", initial_wait)
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.resubmit_on_retry = resubmit_on_retry
        if _is_literal([getattr(self, name) for name in self.template_fields]):
            # Fails the DAG import, naming the field, before anything can be paid for; and when a
            # mapped task is expanded at run time, fails it without spending retries.
            try:
                self._build_request(read_storage=False)
            except LumaRequestValidationError as error:
                raise_for_task(error)

    def _reference(self, value: Any, field_name: str, *, read_storage: bool) -> Any:
        if is_storage_reference(value):
            if not read_storage:
                return _PARSE_TIME_STORAGE_PLACEHOLDER
            return read_storage_image(value, field_name, self.storage_conn_id)
        if isinstance(value, Mapping) and "generation_id" in value and "state" in value:
            # The whole result of an upstream LumaGenerateImageOperator: chain on its generation.
            return value["generation_id"]
        return value

    def _build_request(self, *, read_storage: bool) -> GenerationRequest:
        refs = self.image_ref
        if refs is not None and not isinstance(refs, (list, tuple)):
            refs = [refs]
        return GenerationRequest.build(
            prompt=self.prompt,
            type=self.type,
            model=self.model,
            aspect_ratio=self.aspect_ratio,
            style=self.style,
            output_format=self.output_format,
            web_search=self.web_search,
            user_id=self.user_id,
            source=None
            if self.source is None
            else self._reference(self.source, "source", read_storage=read_storage),
            image_ref=[
                self._reference(ref, f"image_ref[{index}]", read_storage=read_storage)
                for index, ref in enumerate(refs or ())
            ],
        )

    def _request(self) -> GenerationRequest:
        """The validated request with storage images read: held in a local, never on a templated field."""
        try:
            return self._build_request(read_storage=True)
        except LumaRequestValidationError as error:
            raise_for_task(error)

    def _hook(self) -> LumaHook:
        from airflow_provider_luma.hooks.luma import LumaHook

        return LumaHook(luma_conn_id=self.luma_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        request = self._request()
        store = context.get("task_state_store")
        if store is None:
            self.log.warning(
                "task_state_store is not available (Airflow < 3.3): a retry of this task cannot "
                "reattach to its generation and will submit, and pay for, a new one."
            )
        with self._hook() as hook:
            try:
                generation = self._reattach(hook, request, store)
                fresh = generation is None
                if generation is None:
                    generation = self._submit(hook, request, store)
            except LumaError as error:
                raise_for_task(error)
            context["ti"].xcom_push(key="generation_id", value=generation.id)
            if generation.state is GenerationState.COMPLETED or not self.wait_for_completion:
                return _result(generation.summary(), request.describe())
            plan = polling.PollPlan.starting_now(
                generation.id,
                timeout=self.timeout,
                # A reattached generation has been running for a while: no initial wait.
                initial_wait=self.initial_wait if fresh else self.poll_interval,
                poll_interval=self.poll_interval,
            )
            if self.deferrable:
                self._defer(plan, request)
            outcome = polling.wait_for_generation(hook.get_generation, plan)
        return self._finish(context, outcome.payload(), request.describe())

    def _reattach(self, hook: LumaHook, request: GenerationRequest, store: Any) -> Generation | None:
        """The generation an earlier try started for this same request, when it is worth keeping."""
        remembered = store.get(STATE_KEY) if store is not None else None
        if not isinstance(remembered, Mapping) or not remembered.get("generation_id"):
            return None
        previous_id = str(remembered["generation_id"])
        if self.resubmit_on_retry:
            self.log.info("resubmit_on_retry is set: submitting anew, not reattaching to %s", previous_id)
            return None
        if remembered.get("fingerprint") != request.fingerprint():
            self.log.info("The request changed since generation %s : submitting anew", previous_id)
            return None
        try:
            generation = hook.get_generation(previous_id)
        except LumaNotFoundError:
            self.log.warning("Generation %s from an earlier try is not found: submitting anew", previous_id)
            return None
        if generation.state is GenerationState.FAILED:
            failure = generation.failure_error()
            if not failure.retryable:
                raise failure
            self.log.info(
                "Generation %s from an earlier try failed with %s (retryable): submitting anew",
                previous_id,
                generation.failure_code,
            )
            return None
        self.log.info(
            "Reattached to generation %s (state %s) from an earlier try: nothing submitted",
            generation.id,
            generation.state.value,
        )
        return generation

    def _submit(self, hook: LumaHook, request: GenerationRequest, store: Any) -> Generation:
        try:
            generation = hook.create_generation(request)
        except LumaSubmissionUnknownError as error:
            raise AirflowFailException(
                f"{error} Airflow will not retry this task on its own. To check whether it was created, "
                "look at the usage page of platform.lumalabs.ai or ask Luma's support with the request id; "
                "clear the task to submit again."
            ) from error
        # Logged before it is stored: should the store fail, the id is still on record.
        self.log.info(
            "Submitted generation %s (state %s, estimated cost %.4f USD)",
            generation.id,
            generation.state.value,
            request.estimated_cost_usd(),
        )
        if store is not None:
            try:
                store.set(
                    STATE_KEY,
                    {"generation_id": generation.id, "fingerprint": request.fingerprint()},
                    retention=never_expire(),
                )
            except Exception as error:
                # A retry could not find this generation and would pay for another one.
                raise AirflowFailException(
                    f"Generation {generation.id} was submitted (and may be billed) but could not be "
                    f"remembered for a retry ({type(error).__name__}: {error}); not retried automatically. "
                    f"Wait for it with LumaGenerationSensor(generation_id={generation.id!r}), or clear the "
                    "task to submit again."
                ) from error
        return generation

    def _defer(self, plan: polling.PollPlan, request: GenerationRequest) -> NoReturn:
        from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

        self.defer(
            trigger=LumaGenerationTrigger(
                generation_id=plan.generation_id,
                deadline=plan.deadline,
                luma_conn_id=self.luma_conn_id,
                first_poll_at=plan.first_poll_at,
                poll_interval=plan.poll_interval,
            ),
            method_name="execute_complete",
            kwargs={"request": request.describe()},
            timeout=timedelta(seconds=plan.deadline - polling.now() + polling.DEFERRAL_TIMEOUT_MARGIN),
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """
        Resume after the trigger's event.

        ``request`` (the described request) comes from the deferral's kwargs; ``dag.test()`` drops
        those, so it is rebuilt from the rendered fields when absent.
        """
        described = request if request is not None else self._request().describe()
        return self._finish(context, event, described)

    def _finish(
        self, context: Context, event: Mapping[str, Any] | None, described_request: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            summary = polling.summary_or_raise(event)
        except LumaError as error:
            raise_for_task(error)
        self.log.info("Generation %s completed", summary["generation_id"])
        context["ti"].xcom_push(key="generation_id", value=summary["generation_id"])
        return _result(summary, described_request)


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
