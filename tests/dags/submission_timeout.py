"""
A task whose ``execution_timeout`` fires while its POST waits for the answer, for ``dag.test()``.

The emulator is told to create the generation and answer only after the timeout: the request reached
Luma, so the try must end as "fate unknown" without a retry, and nothing may be submitted twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

with DAG(
    dag_id="luma_submission_timeout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    LumaGenerateImageOperator(
        task_id="generate",
        prompt="a lighthouse at dusk",
        deferrable=False,
        retries=2,
        retry_delay=timedelta(0),
        execution_timeout=timedelta(seconds=1),
    )
