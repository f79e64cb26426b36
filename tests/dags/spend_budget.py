"""
Runs under a spend cap, for ``dag.test()``: a mapped refresh that pays for what fits and is refused
the rest, and a task whose abandoned first submission counts against the cap of the task after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaRunSpendOperator
from tests.dags.crashes import DiesAfterSubmitOnFirstTry

#: uni-1 text to image is $0.0404: three fit under $0.13, a fourth would pass it.
MAPPED_CAP_USD = 0.13
PROMPTS = ["a red fox", "a blue whale", "a green parrot", "a white owl", "a black cat"]

with DAG(
    dag_id="luma_spend_mapped_cap",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    generate = LumaGenerateImageOperator.partial(
        task_id="generate",
        max_run_cost_usd=MAPPED_CAP_USD,
        deferrable=True,
        retries=2,
        retry_delay=timedelta(0),
        timeout=60,
    ).expand(prompt=PROMPTS)
    generate >> LumaRunSpendOperator(task_id="spend").as_teardown()


#: Two uni-1 generations ($0.0808) fit under $0.10; with a third (the abandoned one) they do not.
ABANDONED_CAP_USD = 0.10

with DAG(
    dag_id="luma_spend_abandoned",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    first = DiesAfterSubmitOnFirstTry(
        task_id="first",
        prompt="a lighthouse at dusk",
        resubmit_on_retry=True,
        retries=1,
        retry_delay=timedelta(0),
        timeout=60,
    )
    second = LumaGenerateImageOperator(
        task_id="second", prompt="a harbour at dawn", max_run_cost_usd=ABANDONED_CAP_USD, timeout=60
    )
    first >> second >> LumaRunSpendOperator(task_id="spend").as_teardown()
