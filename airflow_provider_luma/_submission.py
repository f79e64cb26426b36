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
budget, a fate unknown) is recorded too. Airflow never retries such a failure by itself, so a later
try can only come from a person clearing the task; that try may pay again, on purpose, instead of
repeating the old failure forever.

One key holds the whole record, so one write records it all (a crash between two writes would make
the next try misread the request). Renaming ``STATE_KEY`` breaks the reattachment of tries in flight.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_luma._compat import (
    AirflowException,
    AirflowFailException,
    AirflowTaskTimeout,
    never_expire,
)
from airflow_provider_luma.exceptions import LumaError, LumaNotFoundError, LumaSubmissionUnknownError
from airflow_provider_luma.models import Generation, GenerationState

if TYPE_CHECKING:
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest

STATE_KEY = "luma_generation"

#: Luma's support matches a charge by the request id; long enough to name the task, short enough for
#: any proxy's header limits.
MAX_REQUEST_ID_LENGTH = 128
_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]+")

#: What to tell a user whose request's fate is unknown.
_FATE_UNKNOWN_REMEDY = (
    "Airflow will not retry this task on its own. To find out whether the generation was created (and "
    "billed), look at the usage page of platform.lumalabs.ai or ask Luma's support with the request id; "
    "clear the task to submit again."
)


def request_id_for(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """
    The ``X-Request-Id`` of one try's POST: ``airflow-<dag_id>-<run_id>-<task_id>-<map_index>-<try>``.

    Characters a header or a log search would trip on become ``_``. An id over
    :data:`MAX_REQUEST_ID_LENGTH` keeps its start and its map index and try, with a digest of the
    whole in between, so two long ids still differ.
    """
    names = "-".join(_HEADER_UNSAFE.sub("_", part) for part in (dag_id, run_id, task_id))
    tail = f"{map_index}-{try_number}"
    full = f"airflow-{names}-{tail}"
    if len(full) <= MAX_REQUEST_ID_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    head = f"airflow-{names}"[: MAX_REQUEST_ID_LENGTH - len(digest) - len(tail) - 2]
    return f"{head}-{digest}-{tail}"


@dataclass(frozen=True)
class SubmissionRecord:
    """
    What one submission left in the store.

    :param request_id: the ``X-Request-Id`` its POST was sent with.
    :param fingerprint: the request's :meth:`~airflow_provider_luma.models.GenerationRequest.fingerprint`.
    :param generation_id: the generation the 201 named; ``None`` before the answer, or after a refusal.
    :param pending: written before the POST and still unanswered: its fate is unknown.
    :param failure_reported: the final failure the task reported after this submission, if any.
    """

    request_id: str
    fingerprint: str
    generation_id: str | None = None
    pending: bool = False
    failure_reported: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> SubmissionRecord | None:
        """Read a stored record; the first format (``{generation_id, fingerprint}``) reads too."""
        if not isinstance(value, dict) or not isinstance(value.get("fingerprint"), str):
            return None
        return cls(
            request_id=str(value.get("request_id") or ""),
            fingerprint=value["fingerprint"],
            generation_id=value.get("generation_id") or None,
            pending=bool(value.get("pending")),
            failure_reported=value.get("failure_reported") or None,
        )


class SubmissionLedger:
    """
    Reads and writes one task's :class:`SubmissionRecord` (per map index), and decides each try's way.

    :param store: the task's ``task_state_store`` accessor, or ``None`` below Airflow 3.3 (then nothing
        is remembered, and a retry pays again: the operator warns).
    :param log: the task's logger.
    """

    def __init__(self, store: Any, log: Any) -> None:
        self.store = store
        self.log = log
        self.record: SubmissionRecord | None = SubmissionRecord.from_json(
            store.get(STATE_KEY) if store is not None else None
        )

    def _write(self, record: SubmissionRecord) -> None:
        self.record = record
        if self.store is not None:
            self.store.set(STATE_KEY, asdict(record), retention=never_expire())

    # ------------------------------------------------------------------------------ a new try

    def reusable_generation(
        self, hook: LumaHook, fingerprint: str, *, resubmit_on_retry: bool
    ) -> Generation | None:
        """
        The generation an earlier try started for this request, when it is worth keeping.

        ``None`` means this try may submit. Raises when it may not: the earlier POST's fate is
        unknown, or its generation failed for good (unless the task was cleared after reporting it).
        """
        record = self.record
        if record is None:
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
            if not record.pending:
                return None  # The API refused it: nothing was queued.
            if record.failure_reported:
                self.log.warning(
                    "The task was cleared after reporting that request %s's fate is unknown: submitting "
                    "anew, on purpose (the earlier request may have been billed too)",
                    record.request_id,
                )
                return None
            raise LumaSubmissionUnknownError(
                record.request_id,
                "an earlier try was stopped (a timeout, a kill or a crash) before the POST's answer was "
                "recorded",
            )
        return self._reattach(hook, record, record.generation_id)

    def _reattach(self, hook: LumaHook, record: SubmissionRecord, generation_id: str) -> Generation | None:
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
            if record.failure_reported:
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
        return generation

    # ------------------------------------------------------------------------------- the POST

    def submit(
        self, hook: LumaHook, request: GenerationRequest, fingerprint: str, request_id: str
    ) -> Generation:
        """
        POST ``request`` with the record written ahead of it and replaced by the answer.

        Raises :class:`LumaSubmissionUnknownError` when the answer is lost, including when the task's
        ``execution_timeout`` fires while the POST waits for it; the record then stays pending.
        """
        ahead = SubmissionRecord(request_id=request_id, fingerprint=fingerprint, pending=True)
        try:
            self._write(ahead)
        except Exception as error:
            # Nothing was sent: a retry is safe, and better than a POST no later try could find.
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
            self._write(replace(ahead, pending=False))
            raise
        except BaseException as error:
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
            "Submitted generation %s (request id %s, state %s, estimated cost %.4f USD)",
            generation.id,
            request_id,
            generation.state.value,
            request.estimated_cost_usd(),
        )
        try:
            self._write(replace(ahead, generation_id=generation.id, pending=False))
        except Exception as error:
            raise AirflowFailException(
                f"Generation {generation.id} was submitted (and may be billed) but could not be "
                f"remembered for a retry ({type(error).__name__}: {error}); not retried automatically. "
                f"Wait for it with LumaGenerationSensor(generation_id={generation.id!r}), or clear the "
                "task to submit again."
            ) from error
        return generation

    # ----------------------------------------------------------------------------- the outcome

    @property
    def request_id(self) -> str | None:
        """The request id of the submission this try is about (sent now or by an earlier try)."""
        return self.record.request_id if self.record is not None and self.record.request_id else None

    def final_failure(self, error: LumaError) -> AirflowFailException:
        """
        The task failure for an error no retry can fix, recorded so that a person's clear pays again.

        The failure is reported whatever the store does: a store that cannot be written now only
        means the cleared try repeats the refusal.
        """
        if isinstance(error, LumaSubmissionUnknownError):
            failure = AirflowFailException(f"{error} {_FATE_UNKNOWN_REMEDY}")
        else:
            failure = AirflowFailException(f"{error} (not retried: the same request cannot succeed)")
        if self.record is not None and self.store is not None:
            try:
                self._write(replace(self.record, failure_reported=type(error).__name__))
            except Exception as store_error:
                self.log.warning(
                    "Could not record the reported failure (%s: %s): a clear of this task will repeat it",
                    type(store_error).__name__,
                    store_error,
                )
        return failure
