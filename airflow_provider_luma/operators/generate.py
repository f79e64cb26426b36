"""
``LumaGenerateImageOperator``: submit on the worker, remember the id, wait (in the triggerer or the
worker) and report.

A try never pays twice for the same request: the submission is recorded in Airflow 3.3's
``task_state_store`` (per map index) before the POST and its generation id the moment the POST
answers, and the next try of the task (a retry, a crash, a clear) reattaches to it
(:mod:`airflow_provider_luma._submission` decides). See ``docs/generate.md`` for the outcome table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_provider_luma import _metrics, polling
from airflow_provider_luma._compat import AirflowFailException, conf
from airflow_provider_luma._failures import raise_for_task
from airflow_provider_luma.exceptions import (
    LumaError,
    LumaGenerationFailedError,
    LumaRequestValidationError,
    LumaRunBudgetExceededError,
)
from airflow_provider_luma.links.luma import LumaImagesLink
from airflow_provider_luma.models import GenerationRequest, GenerationState, estimate_cost_of_described
from airflow_provider_luma.operators._inputs import StagedInputs, should_upload
from airflow_provider_luma.operators._rendering import RenderedReference, conceal, is_literal
from airflow_provider_luma.operators._task_context import (
    ledger_of,
    published_this_try,
    run_budget,
    run_cap,
    submission_request_id,
)
from airflow_provider_luma.storage import is_storage_reference, read_storage_image, storage_path

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from airflow_provider_luma._submission import SubmissionLedger
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.spend import (
        SpendEntry,
    )

#: Stands in for a storage reference while validating at DAG parse, where nothing is read.
_PARSE_TIME_STORAGE_PLACEHOLDER = "https://storage.placeholder.invalid/image"


def _result(
    summary: Mapping[str, Any],
    described_request: Mapping[str, Any],
    ledger: SubmissionLedger,
    billed_this_try: bool,
    request_id: str | None = None,
    uploaded_inputs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """
    The task's XCom: ids, state and cost, no URLs and no image bytes.

    ``request_id`` is the submission's (the POST's ``X-Request-Id``), which is what Luma's support can
    match to a charge; the summary's is only the last poll's. ``billed_this_try`` is false when this
    try reused a generation an earlier try paid for; ``abandoned_generations`` are those this task
    instance paid for in earlier tries and gave up (each still billed, or of unknown fate).
    """
    return {
        "generation_id": summary["generation_id"],
        "state": summary["state"],
        "model": summary["model"],
        "type": summary["type"],
        "request_id": request_id or ledger.request_id or summary.get("request_id"),
        "created_at": summary.get("created_at"),
        "output_count": summary.get("output_count", 0),
        "layers": list(summary.get("layers") or []),
        "estimated_cost_usd": estimate_cost_of_described(described_request),
        "billed_this_try": billed_this_try,
        "abandoned_generations": [_abandoned(entry) for entry in ledger.abandoned],
        "request": dict(described_request),
        "uploaded_inputs": [dict(item) for item in uploaded_inputs],
    }


def _abandoned(entry: SpendEntry) -> dict[str, Any]:
    return {
        "generation_id": entry.generation_id,
        "request_id": entry.request_id,
        "model": entry.model,
        "estimated_cost_usd": entry.estimated_cost_usd,
    }


class LumaGenerateImageOperator(BaseOperator):
    """
    Generate (``type="image"``) or edit (``type="image_edit"``) one image with Luma's uni-1, or split
    one into layers (``type="layering"``).

    The request is validated at DAG parse when all its values are literals, else at the start of
    ``execute`` (a bad value fails the task without spending retries). The POST is made on the worker;
    the wait is deferred to the triggerer (``deferrable=True``) or done in the worker, under the same
    timing rules (:mod:`airflow_provider_luma.polling`). The task returns, and pushes as XCom, a small
    dict: ``generation_id``, ``state``, ``model``, ``type``, ``request_id``, ``created_at``,
    ``output_count``, ``estimated_cost_usd``, ``billed_this_try``, ``abandoned_generations`` and
    ``request`` (the request without image bytes); it also pushes the keys ``generation_id`` and
    ``luma_spend`` (what this task instance submitted in all its tries, read by the run's budget
    checks and :class:`~airflow_provider_luma.operators.spend.LumaRunSpendOperator`).

    :param prompt: what to draw or how to edit, 1 to 6000 characters (optional for ``layering``, where
        it guides the split in at most 500). Templated.
    :param type: ``image``, ``image_edit`` or ``layering``. Templated.
    :param model: ``uni-1`` or ``uni-1-max``. Templated.
    :param aspect_ratio: one of ``1:1, 1:2, 1:3, 16:9, 2:1, 2:3, 3:1, 3:2, 9:16``, or ``None`` to let
        the model choose (ignored by the API on edits). Templated.
    :param style: ``auto`` or ``manga`` (portrait ratios only). Templated.
    :param output_format: ``png`` or ``jpeg``. Templated.
    :param web_search: let the model search the web first (adds a few seconds).
    :param source: the image to edit or split (``image_edit`` and ``layering``): an ``https://``
        URL, the id of an earlier generation (for example ``generate.output["generation_id"]``), a
        mapping in the API's ImageRef shape, or a file in storage (an ``ObjectStoragePath`` or a URL
        such as ``s3://...`` or ``file://...``), read on the worker and sent inline or as an uploaded
        file (``upload_inputs``). Templated.
    :param image_ref: up to 9 reference images (8 with a source), each in any form ``source`` takes.
        Templated.
    :param user_id: your end user's opaque id, for Luma's abuse attribution. Templated.
    :param layering: for ``type="layering"`` (split ``source`` into RGBA layers; uni-1 only, prompt
        optional and at most 500 characters): ``{"resolution": "1k" | "2k"}``, or ``None`` for the
        server's default. Luma publishes no price for layering: its ``estimated_cost_usd`` is
        ``None``, and a task under a ``max_run_cost_usd`` refuses it (give it ``"none"``). Templated.
    :param upload_inputs: how storage images (``source``, ``image_ref``) are sent: ``True`` as files
        uploaded through Luma's Files API and referenced by ``file_id``, each uploaded once per
        account and found again by its sha256 (a reference shared by 50 mapped tasks is uploaded
        once); ``False`` inline as base64 in every request; unset (the default) as files when 4 MB
        or more, else inline. URLs, generation ids and mappings are sent as given.
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
    :param max_run_cost_usd: the most, in USD at list prices, that the DAG run's Luma generate tasks
        may submit together (every task, try and map index, abandoned submissions included): a task
        whose generation would pass it fails without retries and sends nothing. Defaults to the
        ``[luma] max_run_cost_usd`` option; unset means no cap, and ``"none"`` no cap for this task
        whatever the option. Templated. See the README's cost
        section for the bound under concurrency.
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
        "layering",
        "luma_conn_id",
        "max_run_cost_usd",
    )
    ui_color = "#f0e4ff"
    operator_extra_links = (LumaImagesLink(),)

    def __init__(
        self,
        *,
        prompt: str | None = None,
        type: str = "image",
        model: str = "uni-1",
        aspect_ratio: str | None = None,
        style: str | None = None,
        output_format: str | None = None,
        web_search: bool = False,
        source: Any = None,
        image_ref: Any = None,
        user_id: str | None = None,
        layering: Mapping[str, str] | None = None,
        upload_inputs: bool | None = None,
        storage_conn_id: str | None = None,
        luma_conn_id: str = "luma_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        initial_wait: float | None = None,
        timeout: float | timedelta = polling.DEFAULT_TIMEOUT,
        resubmit_on_retry: bool = False,
        max_run_cost_usd: float | str | None = None,
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
        self.layering = layering
        self.upload_inputs = upload_inputs
        self.storage_conn_id = storage_conn_id
        self.luma_conn_id = luma_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = polling.configured_seconds("poll_interval", poll_interval)
        self.initial_wait = polling.configured_seconds("initial_wait", initial_wait)
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.resubmit_on_retry = resubmit_on_retry
        self.max_run_cost_usd = max_run_cost_usd
        # Fails the DAG import, naming the field, before anything can be paid for; and when a
        # mapped task is expanded at run time, fails it without spending retries.
        try:
            if is_literal(
                [getattr(self, name) for name in self.template_fields if name != "max_run_cost_usd"]
            ):
                self._build_request(staged=None)
            if is_literal(max_run_cost_usd):
                run_cap(max_run_cost_usd)
        except LumaRequestValidationError as error:
            raise_for_task(error)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render as any operator does, then keep image bytes and URL signatures out of what is stored."""
        super().render_template_fields(context, jinja_env)
        if self.source is not None:
            self.source = conceal(self.source, "source")
        if isinstance(self.image_ref, (list, tuple)):
            self.image_ref = [conceal(ref, f"image_ref[{i}]") for i, ref in enumerate(self.image_ref)]
        elif self.image_ref is not None:
            self.image_ref = conceal(self.image_ref, "image_ref[0]")

    def _reference(self, value: Any, field_name: str, *, staged: StagedInputs | None) -> Any:
        """A reference as the request takes it; storage images are read only with ``staged`` (at run time)."""
        if isinstance(value, RenderedReference):
            value = value.value
        if is_storage_reference(value):
            if staged is None:
                return _PARSE_TIME_STORAGE_PLACEHOLDER
            path = storage_path(value, self.storage_conn_id)
            if should_upload(path, self.upload_inputs):
                return staged.add(path, field_name)
            return read_storage_image(path, field_name)
        if isinstance(value, Mapping) and "generation_id" in value and "state" in value:
            # The whole result of an upstream LumaGenerateImageOperator: chain on its generation.
            return value["generation_id"]
        return value

    def _build_request(self, *, staged: StagedInputs | None) -> GenerationRequest:
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
            layering=self.layering,
            source=None if self.source is None else self._reference(self.source, "source", staged=staged),
            image_ref=[
                self._reference(ref, f"image_ref[{index}]", staged=staged)
                for index, ref in enumerate(refs or ())
            ],
        )

    def _request(self, staged: StagedInputs) -> GenerationRequest:
        """
        The validated request with storage images read: held in a local, never on a templated field.

        Images that go as files are staged (spooled and hashed), their references holding an id
        derived from their bytes until :meth:`StagedInputs.resolve` uploads them.
        """
        try:
            return self._build_request(staged=staged)
        except LumaRequestValidationError as error:
            raise_for_task(error)

    def _hook(self) -> LumaHook:
        from airflow_provider_luma.hooks.luma import LumaHook

        return LumaHook(luma_conn_id=self.luma_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        ledger = ledger_of(context, self.log)
        if ledger.record is not None:
            # Airflow cleared this task instance's XComs as the try started: the run must see what
            # its earlier tries spent before anything else (a bad input, say) can end the try.
            ledger.publish()
        with StagedInputs(self.log) as staged:
            return self._submit_and_wait(context, ledger, staged)

    def _submit_and_wait(
        self, context: Context, ledger: SubmissionLedger, staged: StagedInputs
    ) -> dict[str, Any]:
        request = self._request(staged)
        try:
            cap = run_cap(self.max_run_cost_usd)
        except LumaRequestValidationError as error:
            raise_for_task(error)
        # Once, before the POST: for a 40 MB source this digest takes a quarter of a second.
        fingerprint = staged.fingerprint(request)
        if ledger.store is None:
            self.log.warning(
                "task_state_store is not available (Airflow < 3.3): a retry of this task cannot "
                "reattach to its generation and will submit, and pay for, a new one."
            )
        with self._hook() as hook:
            try:
                generation = ledger.reusable_generation(
                    hook, fingerprint, resubmit_on_retry=self.resubmit_on_retry
                )
                fresh = generation is None
                if generation is None:
                    budget = None if cap is None else run_budget(context, cap, self.log)
                    generation = ledger.submit(
                        hook,
                        request,
                        fingerprint,
                        submission_request_id(context),
                        budget=budget,
                        # Only a new, admitted submission needs its input files: a reattaching try,
                        # or one the budget refuses, uploads nothing.
                        prepare=lambda admitted: staged.resolve(hook, admitted),
                    )
            except LumaError as error:
                self._fail(error, ledger)
            context["ti"].xcom_push(key="generation_id", value=generation.id)
            if generation.state is GenerationState.COMPLETED or not self.wait_for_completion:
                return _result(
                    generation.summary(),
                    staged.describe(request),
                    ledger,
                    ledger.billed_this_try,
                    uploaded_inputs=staged.resolved,
                )
            plan = polling.PollPlan.starting_now(
                generation.id,
                timeout=self.timeout,
                # A reattached generation has been running for a while: no initial wait.
                initial_wait=self.initial_wait if fresh else self.poll_interval,
                poll_interval=self.poll_interval,
            )
            if self.deferrable:
                self._defer(plan, staged.describe(request), ledger, staged.resolved)
            outcome = polling.wait_for_generation(hook.get_generation, plan)
        return self._finish(
            context,
            outcome.payload(),
            staged.describe(request),
            generation.id,
            ledger,
            uploaded_inputs=staged.resolved,
        )

    @staticmethod
    def _fail(error: LumaError, ledger: SubmissionLedger) -> NoReturn:
        """
        Fail the try: a retryable error is raised as is (Airflow retries, the next try reattaches);
        any other is final, and recorded as reported so that only a person's clear submits again.
        """
        if isinstance(error, LumaGenerationFailedError):
            _metrics.failed(error.failure_code or "unknown")
        elif isinstance(error, LumaRunBudgetExceededError):
            _metrics.failed("run_budget")
        if error.retryable:
            raise error
        raise ledger.final_failure(error) from error

    def _defer(
        self,
        plan: polling.PollPlan,
        described_request: dict[str, Any],
        ledger: SubmissionLedger,
        uploaded_inputs: list[dict[str, Any]],
    ) -> NoReturn:
        from airflow_provider_luma.triggers.luma import LumaGenerationTrigger

        kwargs: dict[str, Any] = {
            "request": described_request,
            "generation_id": plan.generation_id,
            "request_id": ledger.request_id,
        }
        if uploaded_inputs:
            kwargs["uploaded_inputs"] = uploaded_inputs
        self.defer(
            trigger=LumaGenerationTrigger(
                generation_id=plan.generation_id,
                deadline=plan.deadline,
                luma_conn_id=self.luma_conn_id,
                first_poll_at=plan.first_poll_at,
                poll_interval=plan.poll_interval,
            ),
            method_name="execute_complete",
            kwargs=kwargs,
            timeout=timedelta(seconds=plan.deadline - polling.now() + polling.DEFERRAL_TIMEOUT_MARGIN),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        generation_id: str | None = None,
        request_id: str | None = None,
        uploaded_inputs: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """
        Resume after the trigger's event.

        ``request``, ``generation_id`` (the one this task submitted, which the event must be about) and
        ``request_id`` come from the deferral's kwargs; ``dag.test()`` drops those, so they are then
        read from the submission record and the rendered fields.
        """
        ledger = ledger_of(context, self.log)
        record = ledger.record
        if request is None:
            request = self._describe_again()
        expected = generation_id or (record.generation_id if record is not None else None)
        return self._finish(
            context, event, request, expected, ledger, request_id, uploaded_inputs=uploaded_inputs or ()
        )

    def _describe_again(self) -> dict[str, Any]:
        """
        The request's description when the deferral's kwargs are gone, from the rendered fields.

        Its storage images are read again for their sha256; one that cannot be read any more (deleted
        since the POST) must not fail a task whose generation was paid for: it is described by its
        field only, with a warning.
        """
        try:
            with StagedInputs(self.log) as staged:
                return staged.describe(self._request(staged))
        except AirflowFailException as error:
            self.log.warning("The request's inputs cannot be read again to describe them: %s", error)
            return self._build_request(staged=None).describe()

    def _finish(
        self,
        context: Context,
        event: Mapping[str, Any] | None,
        described_request: Mapping[str, Any],
        expected_generation_id: str | None,
        ledger: SubmissionLedger,
        request_id: str | None = None,
        *,
        uploaded_inputs: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        try:
            summary = polling.summary_or_raise(event, expected_generation_id)
        except LumaError as error:
            self._fail(error, ledger)
        self.log.info("Generation %s completed", summary["generation_id"])
        context["ti"].xcom_push(key="generation_id", value=summary["generation_id"])
        billed = (
            ledger.billed_this_try
            if ledger.record is not None
            else published_this_try(context, summary["generation_id"])
        )
        return _result(summary, described_request, ledger, billed, request_id, uploaded_inputs)
