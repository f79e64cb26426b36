"""
What differs between the Airflow (3.1.1 and newer) and Python versions this provider supports, in one place.

Airflow 3.2 moved the task-facing exceptions and ``conf`` into the Task SDK and deprecated the old
paths (importing them there logs a warning on every DAG parse), so the new path is tried first.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable

_T = TypeVar("_T")

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


async def within(awaitable: Awaitable[_T], seconds: float) -> _T:
    """
    Await ``awaitable`` for at most ``seconds``; ``TimeoutError`` when they run out.

    ``asyncio.wait_for`` before 3.12 loses a cancellation that arrives as the awaited call completes
    (CPython gh-86296): a trigger the triggerer cancelled would then poll on until its deadline.
    ``asyncio.timeout`` (3.11+) and, on 3.10, ``async_timeout`` (which aiohttp requires there) have
    no such race and no extra task per call.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    import async_timeout

    try:
        async with async_timeout.timeout(seconds):
            return await awaitable
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on 3.10
        raise TimeoutError from None


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "conf",
    "never_expire",
    "within",
]
