"""
The DAG of the end-to-end test: one deferred generation, then its image stored on local disk.

The test's services point ``luma_default`` at the emulator and ``[luma] output_path``
(``AIRFLOW__LUMA__OUTPUT_PATH``) at a temporary folder. The short waits keep the test fast; the long
timeout leaves the test, not the operator, in charge of deadlines.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator

with DAG(
    dag_id="e2e_luma_generate",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
    tags=["luma", "e2e"],
):
    generate = LumaGenerateImageOperator(
        task_id="generate",
        prompt="A lighthouse on a basalt cliff at dawn, e2e test",
        aspect_ratio="16:9",
        output_format="png",
        deferrable=True,
        initial_wait=0.2,
        poll_interval=0.5,
        timeout=600,
    )
    # generate.output makes upload depend on generate.
    LumaUploadOutputsOperator(task_id="upload", generation=generate.output)
