"""
Example: the smallest useful Luma DAG. One text-to-image generation, stored with its metadata record.

- ``generate`` submits one uni-1 text-to-image request from the worker and waits for it in the
  triggerer (``deferrable=True``), so no worker slot is held while Luma renders. A retry reattaches to
  the generation an earlier try started instead of paying for a second one (Airflow >= 3.3).
- ``store`` streams the finished image to storage, with a JSON metadata record next to it (prompt,
  parameters, sha256, estimated cost, the dag/task/run that made it). A retry skips what is already
  stored.

Why no destination in the DAG: where images go is the deployment's choice, set once for every DAG,
``AIRFLOW__LUMA__OUTPUT_PATH=s3://marketing-assets/luma`` with ``AIRFLOW__LUMA__OUTPUT_CONN_ID=aws_default``
(or ``file:///data/luma`` on one machine). The same file then runs unchanged on a laptop and in
production. The Luma connection ``luma_default`` (type ``luma``) holds the API key as its password.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator

with DAG(
    dag_id="luma_quickstart",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["luma", "example"],
    doc_md=__doc__,
):
    generate = LumaGenerateImageOperator(
        task_id="generate",
        prompt="a ceramic coffee mug on a sunlit kitchen table, product photo, soft shadows",
        aspect_ratio="16:9",
        output_format="png",
        deferrable=True,
    )
    # The result dict (not only the id): the prompt and parameters reach the metadata record.
    LumaUploadOutputsOperator(task_id="store", generation=generate.output)
