"""How a provider error becomes a task failure: retried by Airflow only when a retry can help."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from airflow_provider_luma._compat import AirflowFailException

if TYPE_CHECKING:
    from airflow_provider_luma.exceptions import LumaError


def raise_for_task(error: LumaError) -> NoReturn:
    """
    Fail the task so that Airflow retries it only when a retry can help.

    A retryable error is raised as is (Airflow spends a retry, and the next try reattaches); any
    other error becomes an :class:`AirflowFailException` chained to it, so no retry is spent.
    """
    if error.retryable:
        raise error
    raise AirflowFailException(f"{error} (not retried: the same request cannot succeed)") from error
