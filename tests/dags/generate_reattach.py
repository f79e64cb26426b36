"""
A task whose first try dies right after the POST answered (as a worker crash would), for ``dag.test()``:
its second try must reattach to the same generation instead of paying for a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from tests.dags.crashes import DiesAfterSubmitOnFirstTry

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
