"""
A task whose first try dies right after the POST answered (as a worker crash would), for ``dag.test()``:
its second try must reattach to the same generation instead of paying for a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, get_current_context

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

if TYPE_CHECKING:
    from airflow_provider_luma.models import Generation


class DiesAfterSubmitOnFirstTry(LumaGenerateImageOperator):
    """Test-only: the first try raises just after the generation id was recorded."""

    def _submit(self, *args: Any, **kwargs: Any) -> Generation:
        generation = super()._submit(*args, **kwargs)
        if get_current_context()["ti"].try_number == 1:
            raise RuntimeError(f"simulated worker crash after submitting {generation.id}")
        return generation


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
