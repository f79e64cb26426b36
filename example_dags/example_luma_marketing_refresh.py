"""
Example: refresh a campaign's product images every week and publish them to storage.

- ``generate`` fans out one uni-1 generation per product with dynamic task mapping, waiting in the
  triggerer; a retry reattaches to the same generation instead of paying again. The run may spend at
  most ``MAX_RUN_COST_USD`` (list prices): a task whose generation would pass it fails without
  retries and sends nothing.
- ``upload`` maps over the generate results: each image is streamed to storage with a metadata record
  (prompt, parameters, checksum, the run that made it) next to it. A retry skips what is already
  stored. Each stored image becomes an Asset through the ``luma_marketing_images`` alias, so a
  publishing DAG can be scheduled on it.
- ``spend`` reports what the run's generate tasks spent (per task, per model, abandoned submissions
  included), whatever they did.

Storage is configured once per deployment, not in the DAG:
``AIRFLOW__LUMA__OUTPUT_PATH=s3://marketing-assets/luma`` and ``AIRFLOW__LUMA__OUTPUT_CONN_ID=aws_default``.
Each run writes under its own date folder. The Luma connection ``luma_default`` (type ``luma``) holds
the API key as its password.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetAlias

from airflow_provider_luma.operators.luma import (
    LumaGenerateImageOperator,
    LumaRunSpendOperator,
    LumaUploadOutputsOperator,
)

PRODUCTS = ["a ceramic coffee mug", "a canvas tote bag", "a pair of running shoes"]
#: Three uni-1 images cost 0.1212 USD at list price; the cap leaves room for one retry that resubmits.
MAX_RUN_COST_USD = 0.20

with DAG(
    dag_id="example_luma_marketing_refresh",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["example", "luma"],
    doc_md=__doc__,
):
    generate = LumaGenerateImageOperator.partial(
        task_id="generate",
        aspect_ratio="16:9",
        output_format="png",
        deferrable=True,
        max_run_cost_usd=MAX_RUN_COST_USD,
    ).expand(prompt=[f"{product} on a pastel background, spring sale banner" for product in PRODUCTS])

    # Jinja fills {{ ds }}; the single-brace fields are the operator's own, filled per output.
    upload = LumaUploadOutputsOperator.partial(
        task_id="upload",
        file_name="{{ ds }}/{generation_id}-{index}{ext}",
        outlets=[AssetAlias("luma_marketing_images")],
    ).expand(generation=generate.output)
    upload >> LumaRunSpendOperator(task_id="spend")
