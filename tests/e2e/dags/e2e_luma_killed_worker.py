"""
The end-to-end test's crash DAG: first tries that die by SIGKILL, as an OOM kill or an eviction does.

Each task's first try kills its own task process at one moment of the submission: ``after_201`` right
after the POST answered and before the generation id is recorded (only the write-ahead record is
there), ``after_record`` right after the id is recorded. The supervisor sees the process die, the
scheduler retries the task, and the test checks what the second try did and what was paid for.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _KillingStore:
    """A task_state_store whose write of the generation id kills the process, before or after it."""

    def __init__(self, store: Any, moment: str) -> None:
        self._store = store
        self._moment = moment

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        recorded = isinstance(value, dict) and bool(value.get("generation_id"))
        if recorded and self._moment == "after_201":
            os.kill(os.getpid(), signal.SIGKILL)
        self._store.set(key, value, **kwargs)
        if recorded:
            os.kill(os.getpid(), signal.SIGKILL)


class KilledOnFirstTry(LumaGenerateImageOperator):
    """Test-only: try 1 is SIGKILLed at ``moment`` (``after_201`` or ``after_record``)."""

    def __init__(self, *, moment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.moment = moment

    def execute(self, context: Context) -> Any:
        if context["ti"].try_number == 1:
            context["task_state_store"] = _KillingStore(context["task_state_store"], self.moment)  # type: ignore[typeddict-unknown-key]
        return super().execute(context)


with DAG(
    dag_id="e2e_luma_killed_worker",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(0)},
    tags=["luma", "e2e"],
):
    for _moment in ("after_201", "after_record"):
        KilledOnFirstTry(
            task_id=f"killed_{_moment}",
            moment=_moment,
            prompt=f"A lighthouse on a basalt cliff at dawn, killed {_moment}",
            deferrable=False,
            initial_wait=0.2,
            poll_interval=0.2,
            timeout=120,
        )
