"""
A task whose first try dies right after the POST answered (as a worker crash would), for ``dag.test()``:
its second try must reattach to the same generation instead of paying for a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class SimulatedCrash(BaseException):
    """Not an ``Exception``: like a kill, nothing in the provider may catch and handle it."""


class _DiesOnceRecorded:
    """A task_state_store that raises right after the generation id is stored (try 1 only)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        self._store.set(key, value, **kwargs)
        if isinstance(value, dict) and value.get("generation_id"):
            raise SimulatedCrash(f"simulated worker crash after submitting {value['generation_id']}")


class DiesAfterSubmitOnFirstTry(LumaGenerateImageOperator):
    """Test-only: the first try raises just after the generation id was recorded."""

    def execute(self, context: Context) -> Any:
        if context["ti"].try_number == 1:
            context["task_state_store"] = _DiesOnceRecorded(context["task_state_store"])  # type: ignore[typeddict-unknown-key]
        return super().execute(context)


for _mode, _deferrable in (("deferrable", True), ("worker", False)):
    with DAG(
        dag_id=f"luma_generate_reattach_{_mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["luma", "test"],
    ):
        DiesAfterSubmitOnFirstTry(
            task_id="generate",
            prompt="a lighthouse at dusk",
            deferrable=_deferrable,
            retries=1,
            retry_delay=timedelta(0),
            initial_wait=0.1,
            poll_interval=0.05,
            timeout=60,
        )
