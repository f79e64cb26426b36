"""
One error tree for everything the provider raises.

Every error says whether trying the same thing again could help (``retryable``), because three
different callers act on that answer: the hook's retry policy, the trigger's tolerance for
transient faults, and the operator, which fails a task without spending Airflow retries when a
retry cannot succeed. API errors carry the server's ``X-Request-Id`` so a user can quote it to
Luma's support; none of them carries the API key, a request body or a presigned URL.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


class LumaError(Exception):
    """Base class of every error raised by this provider."""

    #: Whether repeating the same call could succeed.
    retryable: bool = False


class LumaConfigurationError(LumaError):
    """The connection or the environment is incomplete (for example no API key anywhere)."""


class LumaRequestValidationError(LumaError, ValueError):
    """
    A request was refused locally, before any paid call.

    :param field: the request field at fault, as the API names it (``aspect_ratio``, ``image_ref[2]``).
    :param message: what is wrong, including the valid values where there is a fixed set.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class LumaAPIError(LumaError):
    """
    The API answered with an error status.

    :param status_code: the HTTP status.
    :param detail: the ``detail`` string of the error body (or a short description when there was none).
    :param request_id: the ``X-Request-Id`` the server answered with.
    """

    def __init__(self, status_code: int, detail: str, request_id: str | None) -> None:
        super().__init__(f"HTTP {status_code}: {detail} (request id {request_id or 'unknown'})")
        self.status_code = status_code
        self.detail = detail
        self.request_id = request_id


class LumaInvalidRequestError(LumaAPIError):
    """400 or 422: the API refused the parameters or the media. Fix the request."""


class LumaAuthenticationError(LumaAPIError):
    """401: the key is missing, malformed, unknown, revoked or expired."""


class LumaInsufficientFundsError(LumaAPIError):
    """402: not enough balance; nothing was queued and nothing was charged."""


class LumaPermissionDeniedError(LumaAPIError):
    """403: the API client is suspended or deactivated."""


class LumaNotFoundError(LumaAPIError):
    """404: no such generation for this account (or the id is not a UUID)."""


class LumaPayloadTooLargeError(LumaAPIError):
    """413: an input image is over the 50 MB limit."""


class LumaRateLimitError(LumaAPIError):
    """
    429: the RPM window or the concurrent-jobs cap is full. Nothing was queued.

    :param retry_after: seconds the server asked us to wait, when it said.
    """

    retryable = True

    def __init__(
        self, status_code: int, detail: str, request_id: str | None, retry_after: float | None
    ) -> None:
        super().__init__(status_code, detail, request_id)
        self.retry_after = retry_after


class LumaServerError(LumaAPIError):
    """5xx: a fault on Luma's side; worth another try after a pause."""

    retryable = True


class LumaUnexpectedResponseError(LumaAPIError):
    """
    The API answered with a status or body this provider does not understand.

    :param retryable: whether asking again may get an answer it understands (as when a gateway's page
        stood in for the API's answer).
    """

    def __init__(
        self, status_code: int, detail: str, request_id: str | None, *, retryable: bool = False
    ) -> None:
        super().__init__(status_code, detail, request_id)
        self.retryable = retryable


class LumaTransportError(LumaError):
    """
    The API (or the output storage) could not be reached, or stopped answering, and the retry budget is spent.

    :param message: what failed, with the attempts made.
    :param request_id: the ``X-Request-Id`` we sent, when the failed call was an API call.
    :param retryable: ``False`` for a fault that repeats identically (a request HTTP forbids sending,
        such as a header with a line break): another try would only fail the same way.
    """

    def __init__(self, message: str, *, request_id: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.retryable = retryable


class LumaOutputNotAvailableError(LumaError):
    """
    A generation has no output to download: it is not completed, or the index is out of range.

    :param generation_id: the generation's id.
    :param state: its state when asked.
    :param failure_code: its ``failure_code`` (``None`` unless failed).
    :param reason: what is missing.
    """

    def __init__(self, generation_id: str, state: str, failure_code: str | None, reason: str) -> None:
        super().__init__(
            f"Generation {generation_id} has no output to download: {reason} "
            f"(state {state}, failure code {failure_code or 'none'})"
        )
        self.generation_id = generation_id
        self.state = state
        self.failure_code = failure_code
        # A generation still queued or processing will have an output later.
        self.retryable = state in ("queued", "processing")


class LumaOutputDownloadError(LumaAPIError):
    """
    The storage behind a presigned output URL refused the download (after one refresh of an expired URL).

    :param status_code: the storage's HTTP status.
    :param detail: what happened (never the URL: it is a bearer secret).
    :param request_id: the storage's request id, when it sent one.
    """

    def __init__(self, status_code: int, detail: str, request_id: str | None) -> None:
        super().__init__(status_code, detail, request_id)
        self.retryable = status_code >= 500


class LumaFileUploadError(LumaAPIError):
    """
    The storage behind a file's presigned upload URL refused the bytes (the PUT of the Files flow).

    Retryable for a storage fault (5xx) and for a refused signature (403: the URL expired, as one
    does after a slow start): the file stays pending and unused, and a new try creates a new file
    with a fresh URL. Other refusals (a header or a size that is off) would repeat.
    """

    def __init__(self, status_code: int, detail: str, request_id: str | None) -> None:
        super().__init__(status_code, detail, request_id)
        self.retryable = status_code >= 500 or status_code == 403


class LumaFileUnusableError(LumaError):
    """
    An uploaded file cannot be referenced by a generation: its ingest failed, it was deleted or it
    expired, or it did not become ``ready`` in time.

    :param file_id: the file's id.
    :param state: its state when last read.
    :param reason: Luma's ``failure_reason``, or what went wrong.
    :param retryable: whether uploading again may succeed (a slow ingest; not a refused image).
    """

    def __init__(self, file_id: str, state: str, reason: str, *, retryable: bool) -> None:
        super().__init__(f"File {file_id} cannot be used (state {state}): {reason}")
        self.file_id = file_id
        self.state = state
        self.reason = reason
        self.retryable = retryable


class LumaIncompleteWriteError(LumaError):
    """
    The store holds another number of bytes than the object should have; nothing was published.

    Checked before the object gets its final name, so a short write never appears there. Retryable:
    a new try writes again.

    :param uri: the object's final URI.
    :param stored: the bytes the store holds.
    :param expected: the bytes written to it.
    """

    retryable = True

    def __init__(self, uri: str, stored: int, expected: int) -> None:
        super().__init__(f"{uri}: {stored} bytes stored but {expected} expected; not published")
        self.uri = uri


class LumaManifestError(LumaError):
    """
    A batch manifest cannot be written or read as it should: an upload result of the wrong shape, an
    image whose record is missing or describes other bytes, or a file that is no manifest.

    Not retryable: the stored objects or the task's input must change first.
    """


class LumaOutputConflictError(LumaError):
    """
    ``if_exists="fail"`` found something at an output's name that is not this output's finished upload.

    Not retryable: the object stays there until someone removes it.

    :param uri: the object's URI.
    """

    def __init__(self, uri: str) -> None:
        super().__init__(
            f"{uri} already exists and if_exists='fail' (it is not a finished upload of this generation "
            "output: its record is missing, names another one, or the sizes differ)."
        )
        self.uri = uri


class LumaSubmissionUnknownError(LumaError):
    """
    A POST was sent but its answer was lost (read timeout, connection dropped).

    What it creates may or may not exist. It is never resent automatically, because the API has no
    idempotency key: a second POST /generations could pay twice, and a second POST /files would leave
    a second file. A generation may be billed, so a lost generation request is final for the try's
    own retries (``retryable`` is false; the submission record decides what a later try does). A file
    costs nothing and expires, so a lost file creation may be tried again by a new task try.

    :param request_id: the ``X-Request-Id`` we sent, to ask Luma's support about the request.
    :param cause: what happened to the answer.
    :param creates: what the POST creates: ``generation`` or ``file``.
    """

    def __init__(self, request_id: str, cause: str, *, creates: str = "generation") -> None:
        if creates == "file":
            message = (
                f"The file creation (POST /files) was sent but its answer was lost ({cause}). A pending "
                f"file may exist (files are not billed, and an unfinished upload is never used); it was "
                f"not resent. Request id: {request_id}."
            )
        else:
            message = (
                f"The generation request was sent but its answer was lost ({cause}). The generation may "
                f"or may not exist and may be billed; it was not resubmitted. Request id: {request_id}."
            )
        super().__init__(message)
        self.request_id = request_id
        self.creates = creates
        self.retryable = creates == "file"


class LumaRunBudgetExceededError(LumaError):
    """
    This task's generation would take its DAG run past ``max_run_cost_usd``; nothing was sent.

    Not retryable: the run's spend only grows. Raise the cap (or clear fewer tasks) and clear the task.

    :param cap_usd: the run's cap.
    :param spent_usd: the estimated cost of what the run's Luma tasks submitted so far (all tries,
        abandoned and unknown-fate submissions included).
    :param submissions: how many submissions that is.
    :param task_label: the task instance that would pass the cap.
    :param cost_usd: the estimated cost of its generation.
    :param contended: the refusal came after waiting for concurrent submissions that did not resolve.
    """

    def __init__(
        self,
        *,
        cap_usd: float,
        spent_usd: float,
        submissions: int,
        task_label: str,
        cost_usd: float,
        contended: bool = False,
    ) -> None:
        waited = (
            " (after waiting for concurrent submissions of the run, or ones of unknown fate, to resolve)"
            if contended
            else ""
        )
        super().__init__(
            f"Run budget: max_run_cost_usd={cap_usd:.4f} USD would be passed by task {task_label}: the "
            f"run's Luma tasks have submitted {submissions} generation(s) estimated at {spent_usd:.4f} USD "
            f"and this one would add {cost_usd:.4f} USD{waited}. Nothing was sent; raise the cap and "
            "clear the task to submit it."
        )
        self.cap_usd = cap_usd
        self.spent_usd = spent_usd
        self.task_label = task_label
        self.cost_usd = cost_usd


class LumaRunBudgetUnpricedError(LumaRunBudgetExceededError):
    """
    The task's request has no published price, so a run under ``max_run_cost_usd`` cannot take it.

    A :class:`LumaRunBudgetExceededError` (caught and reported as one), not retryable: nothing was
    sent, and no later try would know the price either.
    ``cost_usd`` is NaN, the one float that says "unknown" and passes no comparison; so is
    ``spent_usd``, as the refusal comes before the run's spend is read.

    :param cap_usd: the run's cap.
    :param task_label: the task instance refused.
    :param what: what has no price (``type 'layering'``).
    """

    def __init__(self, *, cap_usd: float, task_label: str, what: str) -> None:
        # Not the parent's __init__: its sentence is about amounts, and here there is none to state.
        LumaError.__init__(
            self,
            f"Run budget: task {task_label} runs under max_run_cost_usd={cap_usd:.4f} USD, but Luma "
            f"publishes no price for {what}, so the cap cannot be kept. Nothing was sent; to run it, "
            "give this task max_run_cost_usd='none' (no cap for it, whatever the deployment's "
            "[luma] max_run_cost_usd).",
        )
        self.cap_usd = cap_usd
        self.spent_usd = math.nan
        self.task_label = task_label
        self.cost_usd = math.nan


class LumaGenerationFailedError(LumaError):
    """
    A generation ended in state ``failed``.

    :param generation_id: the generation's id.
    :param failure_code: the API's ``failure_code``
        (one of :class:`~airflow_provider_luma.models.FailureCode`).
    :param failure_reason: the API's human-readable ``failure_reason``.
    :param retryable: whether the same request may succeed when submitted again.
    """

    def __init__(
        self, generation_id: str, failure_code: str | None, failure_reason: str | None, *, retryable: bool
    ) -> None:
        super().__init__(
            f"Generation {generation_id} failed: {failure_code or 'unknown'}: "
            f"{failure_reason or 'no reason given'}"
        )
        self.generation_id = generation_id
        self.failure_code = failure_code
        self.failure_reason = failure_reason
        self.retryable = retryable


class LumaGenerationTimeoutError(LumaError):
    """
    The wait for a generation passed its deadline.

    The API has no cancel: the job may still finish and be billed. Its id is in the message so it
    can be fetched later (``LumaGenerationSensor`` or ``LumaHook.get_generation``).

    :param generation_id: the generation's id.
    :param last_state: the last state seen.
    """

    retryable = True

    def __init__(self, generation_id: str, last_state: str | None) -> None:
        super().__init__(
            f"Generation {generation_id} did not finish before the deadline (last state: "
            f"{last_state or 'unknown'}). The API has no cancel: it may still finish and be billed."
        )
        self.generation_id = generation_id
        self.last_state = last_state


class LumaWaitError(LumaError):
    """
    A wait ended in an ``error`` event, or in an event this provider does not know.

    :param retryable: whether a new task try may succeed.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


_ERRORS_BY_STATUS: dict[int, type[LumaAPIError]] = {
    400: LumaInvalidRequestError,
    401: LumaAuthenticationError,
    402: LumaInsufficientFundsError,
    403: LumaPermissionDeniedError,
    404: LumaNotFoundError,
    413: LumaPayloadTooLargeError,
    422: LumaInvalidRequestError,
}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (``httpx.Headers`` or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    return next((item for key, item in headers.items() if key.lower() == name), None)


def _seconds(value: float) -> float | None:
    return max(0.0, value) if math.isfinite(value) else None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """
    Seconds to wait before the next try, from ``Retry-After`` or else ``X-RateLimit-Reset``.

    ``Retry-After`` is integer seconds in this API (an HTTP date is accepted too, as RFC 9110
    allows); ``X-RateLimit-Reset`` is a Unix time. An absent or unreadable value gives ``None``
    (the caller's backoff decides).
    """
    value = _header(headers, "retry-after")
    if value is not None:
        try:
            return _seconds(float(value))
        except ValueError:
            pass
        try:
            return _seconds(parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    reset = _header(headers, "x-ratelimit-reset")
    if reset is not None:
        try:
            return _seconds(float(reset) - time.time())
        except ValueError:
            return None
    return None


def api_error_from_response(
    status_code: int, detail: str, request_id: str | None, headers: Mapping[str, str]
) -> LumaAPIError:
    """The one place that turns an HTTP error status into an exception."""
    if status_code == 429:
        return LumaRateLimitError(status_code, detail, request_id, parse_retry_after(headers))
    if status_code >= 500:
        return LumaServerError(status_code, detail, request_id)
    error_class = _ERRORS_BY_STATUS.get(status_code, LumaUnexpectedResponseError)
    return error_class(status_code, detail, request_id)
