"""
Example: submit a generation without waiting, wait for it with a sensor, then store it.

- ``submit`` sends the request and returns as soon as Luma has queued it
  (``wait_for_completion=False``); its result carries the ``generation_id``.
- ``wait`` is a ``LumaGenerationSensor`` on that id, deferrable: it waits in the triggerer, with its
  own ``timeout`` and the usual sensor settings (``soft_fail``, ``retries``). A failed generation fails
  it with Luma's failure code.
- ``store`` writes the image and its metadata record to the deployment's storage
  (``AIRFLOW__LUMA__OUTPUT_PATH`` / ``AIRFLOW__LUMA__OUTPUT_CONN_ID``).

Why split submit and wait: the two halves can live apart. A DAG can submit a batch and let sensors
(or another DAG, given the id through XCom or an Asset) pick each one up, the wait can have its own
timeout, retries and pool, and a generation submitted outside Airflow (a script, the Luma console)
can be waited for and stored with the same two last tasks. When submit and wait belong together,
``LumaGenerateImageOperator(deferrable=True)`` alone does both.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator
from airflow_provider_luma.sensors.luma import LumaGenerationSensor

with DAG(
    dag_id="luma_submit_then_sense",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["luma", "example"],
    doc_md=__doc__,
):
    submit = LumaGenerateImageOperator(
        task_id="submit",
        prompt="a canvas tote bag hanging on a market stall, morning light, lifestyle photo",
        aspect_ratio="1:1",
        wait_for_completion=False,
    )
    wait = LumaGenerationSensor(
        task_id="wait",
        generation_id=submit.output["generation_id"],
        deferrable=True,
        timeout=timedelta(minutes=15),
    )
    # The submit's result dict, so the prompt and parameters reach the metadata record.
    store = LumaUploadOutputsOperator(task_id="store", generation=submit.output)
    submit >> wait >> store
