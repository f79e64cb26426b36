"""
Example: refresh a campaign's product images every week and publish them to storage.

- ``generate`` fans out one uni-1 generation per product with dynamic task mapping, waiting in the
  triggerer; a retry reattaches to the same generation instead of paying again.
- ``upload`` maps over the generate results: each image is streamed to storage with a metadata record
  (prompt, parameters, checksum, the run that made it) next to it. A retry skips what is already
  stored. Each stored image becomes an Asset through the ``luma_marketing_images`` alias, so a
  publishing DAG can be scheduled on it.

Storage is configured once per deployment, not in the DAG:
``AIRFLOW__LUMA__OUTPUT_PATH=s3://marketing-assets/luma`` and ``AIRFLOW__LUMA__OUTPUT_CONN_ID=aws_default``.
Each run writes under its own date folder. The Luma connection ``luma_default`` (type ``luma``) holds
the API key as its password.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetAlias

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator

PRODUCTS = ["a ceramic coffee mug", "a canvas tote bag", "a pair of running shoes"]

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
        task_id="generate", aspect_ratio="16:9", output_format="png", deferrable=True
    ).expand(prompt=[f"{product} on a pastel background, spring sale banner" for product in PRODUCTS])

    # Jinja fills {{ ds }}; the single-brace fields are the operator's own, filled per output.
    LumaUploadOutputsOperator.partial(
        task_id="upload",
        file_name="{{ ds }}/{generation_id}-{index}{ext}",
        outlets=[AssetAlias("luma_marketing_images")],
    ).expand(generation=generate.output)
