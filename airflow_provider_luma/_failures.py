"""How a provider error becomes a task failure: retried by Airflow only when a retry can help."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from airflow_provider_luma._compat import AirflowFailException
from airflow_provider_luma.exceptions import LumaSubmissionUnknownError

if TYPE_CHECKING:
    from airflow_provider_luma.exceptions import LumaError

#: What to tell a user whose request's fate is unknown.
_FATE_UNKNOWN_REMEDY = (
    "Airflow will not retry this task on its own. To find out whether the generation was created (and "
    "billed), look at the usage page of platform.lumalabs.ai or ask Luma's support with the request id; "
    "clear the task to submit again."
)


def final_task_failure(error: LumaError) -> AirflowFailException:
    """
    The :class:`AirflowFailException` (no retry spent) for an error a retry cannot fix, saying why.

    A POST of unknown fate is final too, though the same request might succeed: sending it again
    could pay twice, so the message says how to find out and that a clear submits again.
    """
    if isinstance(error, LumaSubmissionUnknownError):
        return AirflowFailException(f"{error} {_FATE_UNKNOWN_REMEDY}")
    return AirflowFailException(f"{error} (not retried: the same request cannot succeed)")


def raise_for_task(error: LumaError) -> NoReturn:
    """
    Fail the task so that Airflow retries it only when a retry can help.

    A retryable error is raised as is (Airflow spends a retry, and the next try reattaches); any
    other error becomes :func:`final_task_failure`, chained to it.
    """
    if error.retryable:
        raise error
    raise final_task_failure(error) from error
