"""
Names that moved between the Airflow versions this provider supports (3.1.1 and newer), in one place.

Airflow 3.2 moved the task-facing exceptions and ``conf`` into the Task SDK and deprecated the old
paths (importing them there logs a warning on every DAG parse), so the new path is tried first.
"""

from __future__ import annotations

from datetime import timedelta

try:
    from airflow.sdk import conf
except ImportError:  # Airflow < 3.2
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
    )
except ImportError:  # Airflow < 3.2
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
    )


def never_expire() -> timedelta:
    """
    The ``task_state_store`` retention that never expires.

    Imported when needed (the execution-time context is not needed to parse a DAG); below Airflow 3.3
    there is no store to pass it to, and the SDK's own definition, ``timedelta.max``, stands in.
    """
    try:
        from airflow.sdk.execution_time.context import NEVER_EXPIRE
    except ImportError:  # Airflow < 3.3
        return timedelta.max
    return NEVER_EXPIRE


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "conf",
    "never_expire",
]
