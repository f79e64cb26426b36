"""
The task's submission record in ``task_state_store``: the one place that decides whether a try may POST.

The API has no idempotency key and no list, so once a POST has left, only its answer can name the
generation it created. The record is therefore written *ahead* of the POST, ``{request_id,
fingerprint, pending: true}``, and the answer replaces it: the generation id after a 201, ``pending:
false`` after an answer that proves nothing was queued. Whatever stops a try in between (an
``execution_timeout``, a SIGKILL, an OOM) leaves the record pending, and the next try refuses to
POST: the fate of that request is unknown, so it fails without spending retries and names the
request id to ask Luma about.

A failure the task reported as final (``AirflowFailException``: a moderated prompt, an exhausted
budget, a fate unknown) is recorded too, with the task instance's ``max_tries`` at that moment.
Airflow never retries such a failure by itself; a person's clear raises ``max_tries`` (to the try
number plus the task's retries), Airflow's own retries do not. So a later try that sees a larger
``max_tries`` was cleared, and may pay again, on purpose, instead of repeating the old failure
forever; one that does not (the failure was recorded but a kill or a timeout stopped the try before
Airflow heard it) is treated as if nothing had been reported. The report is dropped once a cleared
try has acted on it.

The record itself (its fields, JSON form and spend) is :mod:`._submission_record`'s.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_luma import _metrics
from airflow_provider_luma._compat import (
    AirflowException,
    AirflowFailException,
    AirflowTaskTimeout,
    never_expire,
)
from airflow_provider_luma._failures import final_task_failure
from airflow_provider_luma._submission_record import (
    MAX_REQUEST_ID_LENGTH,
    STATE_KEY,
    SubmissionRecord,
    request_id_for,
)
from airflow_provider_luma.exceptions import LumaError, LumaNotFoundError, LumaSubmissionUnknownError
from airflow_provider_luma.models import Generation, GenerationState
from airflow_provider_luma.spend import RESERVED, SpendEntry

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest
    from airflow_provider_luma.spend import RunBudget


class SubmissionLedger:
    """
    Reads and writes one task's :class:`SubmissionRecord` (per map index), and decides each try's way.

    :param store: the task's ``task_state_store`` accessor, or ``None`` below Airflow 3.3 (then nothing
        is remembered, and a retry pays again: the operator warns).
    :param log: the task's logger.
    :param max_tries: the running task instance's ``max_tries`` (``None`` when unknown: then no try
        counts as cleared, and a reported failure is repeated rather than paid for again).
    :param try_number: the running try (``None`` when unknown: then no try counts as the payer).
    :param publish: makes this task instance's spend visible to the run (the ``luma_spend`` XCom);
        called with :meth:`SubmissionRecord.spend` after every write.
    """

    def __init__(
        self,
        store: Any,
        log: Any,
        *,
        max_tries: int | None = None,
        try_number: int | None = None,
        publish: Callable[[list[SpendEntry]], None] | None = None,
    ) -> None:
        self.store = store
        self.log = log
        self.max_tries = max_tries
        self.try_number = try_number
        self._publish = publish
        self.record: SubmissionRecord | None = SubmissionRecord.from_json(
            store.get(STATE_KEY) if store is not None else None
        )

    def _store(self, record: SubmissionRecord) -> None:
        self.record = record
        if self.store is not None:
            self.store.set(STATE_KEY, record.to_json(), retention=never_expire())

    def _write(self, record: SubmissionRecord) -> None:
        self._store(record)
        self.publish()

    def publish(self) -> None:
        """
        Make this task instance's spend visible to the run's budget checks and spend report.

        A new try starts with its XComs cleared by Airflow, so it calls this before anything else.
        """
        self._publish_spend(self.record)

    def _publish_spend(self, record: SubmissionRecord | None) -> None:
        if self._publish is not None:
            self._publish(record.spend() if record is not None else [])

    @property
    def billed_this_try(self) -> bool:
        """Whether the generation this try reports was submitted, and paid for, by this try."""
        record = self.record
        return bool(
            record is not None
            and record.generation_id
            and record.submitted_try is not None
            and record.submitted_try == self.try_number
        )

    @property
    def abandoned(self) -> list[SpendEntry]:
        """The submissions this task instance made and gave up in earlier tries (paid for all the same)."""
        return self.record.abandoned_spend() if self.record is not None else []

    # ------------------------------------------------------------------------------ a new try

    def reusable_generation(
        self, hook: LumaHook, fingerprint: str, *, resubmit_on_retry: bool
    ) -> Generation | None:
        """
        The generation an earlier try started for this request, when it is worth keeping.

        ``None`` means this try may submit. Raises when it may not: the earlier POST's fate is
        unknown, or its generation failed for good (unless a person cleared the task after it was
        reported). A POST of unknown fate outranks everything else: a request whose rendering changed
        (a template on the time, a presigned source minted anew) or ``resubmit_on_retry`` would
        otherwise pay twice for what its author sees as one image.
        """
        record = self.record
        if record is None:
            return None
        cleared = self._cleared_after_report(record)
        if record.generation_id is None and record.pending:
            if not cleared:
                raise LumaSubmissionUnknownError(
                    record.request_id,
                    "an earlier try was stopped (a timeout, a kill or a crash) before the POST's answer "
                    "was recorded",
                )
            self.log.warning(
                "The task was cleared after reporting that request %s's fate is unknown: submitting "
                "anew, on purpose (the earlier request may have been billed too)",
                record.request_id,
            )
            return None
        if resubmit_on_retry:
            self.log.info(
                "resubmit_on_retry is set: submitting anew (the earlier submission, request id %s, "
                "generation %s, is abandoned)",
                record.request_id,
                record.generation_id,
            )
            return None
        if record.fingerprint != fingerprint:
            self.log.info(
                "The request changed since the earlier submission (request id %s, generation %s): "
                "submitting anew",
                record.request_id,
                record.generation_id,
            )
            return None
        if record.generation_id is None:
            return None  # The API refused it: nothing was queued.
        generation = self._reattach(hook, record.generation_id, cleared=cleared)
        if generation is not None and record.failure_reported:
            # A cleared try acted on the report, or a report Airflow never heard is now moot.
            self._write_quietly(replace(record, failure_reported=None, reported_max_tries=None))
        return generation

    def _cleared_after_report(self, record: SubmissionRecord) -> bool:
        """Whether this try comes from a person's clear after the task reported a final failure."""
        return (
            record.failure_reported is not None
            and record.reported_max_tries is not None
            and self.max_tries is not None
            and self.max_tries > record.reported_max_tries
        )

    def _reattach(self, hook: LumaHook, generation_id: str, *, cleared: bool) -> Generation | None:
        try:
            generation = hook.get_generation(generation_id)
        except LumaNotFoundError:
            self.log.warning("Generation %s from an earlier try is not found: submitting anew", generation_id)
            return None
        if generation.state is GenerationState.FAILED:
            failure = generation.failure_error()
            if failure.retryable:
                self.log.info(
                    "Generation %s from an earlier try failed with %s (retryable): submitting anew",
                    generation_id,
                    generation.failure_code,
                )
                return None
            if cleared:
                self.log.warning(
                    "The task was cleared after reporting that generation %s failed (%s): submitting "
                    "anew, on purpose",
                    generation_id,
                    generation.failure_code,
                )
                return None
            raise failure
        self.log.info(
            "Reattached to generation %s (state %s) from an earlier try: nothing submitted",
            generation.id,
            generation.summary()["state"],
        )
        _metrics.reused(generation.model)
        return generation

    # ------------------------------------------------------------------------------- the POST

    def submit(
        self,
        hook: LumaHook,
        request: GenerationRequest,
        fingerprint: str,
        request_id: str,
        *,
        budget: RunBudget | None = None,
        prepare: Callable[[GenerationRequest], GenerationRequest] | None = None,
    ) -> Generation:
        """
        POST ``request`` with the record written ahead of it and replaced by the answer.

        ``prepare`` makes the request ready to send once the budget admitted it and before the record
        is written (the operator uploads its input files there: a refused run uploads nothing). It
        must not change what the request costs or its fingerprint.

        With a ``budget``, the record ahead is first published as the run's reservation of the
        request's price, and the POST goes out only once the run's spend, this reservation included,
        fits under it (:class:`~airflow_provider_luma.spend.RunBudget`); a refusal withdraws the
        reservation and raises :class:`~airflow_provider_luma.exceptions.LumaRunBudgetExceededError`,
        with nothing stored and nothing sent.

        Raises :class:`LumaSubmissionUnknownError` when the answer is lost, including when the task's
        ``execution_timeout`` fires while the POST waits for it; the record then stays pending. An
        interruption while nothing was out (before the first attempt, or while waiting out a 429)
        clears the record's pending flag instead: nothing can have been queued.
        """
        # The connection (key, base URL) is read first: a missing one must not look like a POST.
        hook.get_conn()
        ahead = SubmissionRecord(
            request_id=request_id,
            fingerprint=fingerprint,
            pending=True,
            model=request.model,
            estimated_cost_usd=request.estimated_cost_usd(),
            type=request.type,
            submitted_try=self.try_number,
            reserved_at=time.time(),
            abandoned=self.record.carried_forward() if self.record is not None else (),
        )
        if budget is not None:
            self._admit(budget, ahead)
        if prepare is not None:
            try:
                request = prepare(request)
            except BaseException:
                if budget is not None:
                    self._publish_quietly(replace(ahead, pending=False))
                raise
        try:
            self._write(ahead)
        except Exception as error:
            # Nothing was sent: a retry is safe, and better than a POST no later try could find. The
            # store may have taken the record before the publish failed: it must not stay pending.
            self._write_quietly(replace(ahead, pending=False))
            raise AirflowException(
                f"The submission could not be recorded before sending it ({type(error).__name__}: "
                f"{error}); nothing was sent."
            ) from error
        try:
            generation = hook.create_generation(request, request_id=request_id)
        except LumaSubmissionUnknownError:
            raise
        except LumaError:
            # The API's answer (or a connection that never opened) proves nothing was queued.
            self._write_quietly(replace(ahead, pending=False))
            raise
        except BaseException as error:
            if not hook.submission_may_have_been_sent:
                self._write_quietly(replace(ahead, pending=False))
                raise
            if isinstance(error, AirflowTaskTimeout):
                raise LumaSubmissionUnknownError(
                    request_id, "the task's execution_timeout fired while the POST awaited its answer"
                ) from error
            # A kill or a bug: the record stays pending, so no later try submits blindly.
            self.log.error(
                "The POST with request id %s was interrupted by %s: its fate is unknown, and the next "
                "try will not submit again",
                request_id,
                type(error).__name__,
            )
            raise
        # Logged before it is stored: should the store fail, the id is still on record.
        self.log.info(
            "Submitted generation %s (request id %s, state %s, estimated cost %s)",
            generation.id,
            request_id,
            generation.state.value,
            _cost_text(ahead.estimated_cost_usd),
        )
        try:
            self._store(replace(ahead, generation_id=generation.id, pending=False))
        except Exception as error:
            raise AirflowFailException(
                f"Generation {generation.id} was submitted (and may be billed) but could not be "
                f"remembered for a retry ({type(error).__name__}: {error}); not retried automatically. "
                f"Wait for it with LumaGenerationSensor(generation_id={generation.id!r}). A clear of "
                f"this task will refuse to submit again (its record of request {request_id} is still "
                "pending); clear it once more to pay for a new generation."
            ) from error
        self._publish_quietly()
        # Last: nothing between the answer and the record of its id may fail.
        _metrics.submitted(request.model, request.type, request.estimated_cost_usd())
        return generation

    def _admit(self, budget: RunBudget, ahead: SubmissionRecord) -> None:
        """
        Hold the POST until the run's budget admits ``ahead``; on a refusal, take the reservation back.

        While it waits the reservation is published but not stored: a try killed meanwhile has sent
        nothing, and its next try must not take a pending record for a POST of unknown fate. (Its
        reservation stays visible to the run, counted, until that next try publishes again.)
        """
        mine = ahead.as_spend(RESERVED)
        # Before anything is published: a request no cap can admit reserves nothing, even briefly.
        budget.priced_cost(mine)
        withdrawn = replace(ahead, pending=False)
        try:
            self._publish_spend(ahead)
        except Exception as error:
            raise AirflowException(
                f"The submission's reservation could not be published ({type(error).__name__}: {error}); "
                "nothing was sent."
            ) from error
        try:
            budget.admit(
                mine,
                withdraw=lambda: self._publish_spend(withdrawn),
                reserve=lambda: self._publish_spend(ahead),
            )
        except BaseException:
            # Nothing was sent (the POST comes after): whatever stopped the wait, nothing is reserved.
            self._publish_quietly(withdrawn)
            raise

    def _publish_quietly(self, record: SubmissionRecord | None = None) -> None:
        """Publish after the store was written: a failure leaves a reservation of the same price up."""
        try:
            self._publish_spend(record or self.record)
        except Exception as error:
            self.log.warning(
                "Could not publish this task's Luma spend (%s: %s): the run sees it as still reserved",
                type(error).__name__,
                error,
            )

    def _write_quietly(self, record: SubmissionRecord) -> None:
        """Write a record that only relaxes what a later try may do: a failure leaves the stricter one."""
        try:
            self._write(record)
        except Exception as error:
            self.log.warning(
                "Could not update the submission record (%s: %s): the next try will act on the one before",
                type(error).__name__,
                error,
            )

    # ----------------------------------------------------------------------------- the outcome

    @property
    def request_id(self) -> str | None:
        """The request id of the submission this try is about (sent now or by an earlier try)."""
        return self.record.request_id if self.record is not None and self.record.request_id else None

    def final_failure(self, error: LumaError) -> AirflowFailException:
        """
        The task failure for an error no retry can fix, recorded so that a person's clear pays again.

        The failure is reported whatever the store does: a store that cannot be written now (or a
        timeout firing while it is) only means the cleared try repeats the refusal.
        """
        failure = final_task_failure(error)
        if self.record is not None and self.store is not None:
            reported = replace(
                self.record, failure_reported=type(error).__name__, reported_max_tries=self.max_tries
            )
            try:
                self._write(reported)
            except (Exception, AirflowTaskTimeout) as store_error:
                self.log.warning(
                    "Could not record the reported failure (%s: %s): a clear of this task will repeat it",
                    type(store_error).__name__,
                    store_error,
                )
        return failure


def _cost_text(cost_usd: float | None) -> str:
    """A list price for a log line; a request Luma publishes no price for says so, never 0."""
    return "unknown: Luma publishes no price for it" if cost_usd is None else f"{cost_usd:.4f} USD"


__all__ = ["MAX_REQUEST_ID_LENGTH", "STATE_KEY", "SubmissionLedger", "SubmissionRecord", "request_id_for"]
