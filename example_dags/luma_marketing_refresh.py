"""
Example: refresh a campaign's images every week, every product for every channel, as one batch.

- ``campaign`` reads ``campaigns/spring_launch.json`` (beside this file) when the run starts, not at
  parse time: products x channels (a 16:9 hero, a 1:1 social post, a 9:16 story), one request each.
  The run's ``max_images`` param takes the first few rows only (a trial run).
- ``generate`` maps one uni-1 generation over the rows. The waits run in the triggerer, and a retry
  reattaches to the generation an earlier try started instead of paying again. Two limits keep to
  the account's: the pool ``luma_api`` (create it with as many slots as the account has concurrent
  jobs, 10 by default, and ``--include-deferred``, so that a task waiting in the triggerer still
  holds its slot: ``airflow pools set luma_api 10 "Luma concurrent jobs" --include-deferred``),
  shared by every DAG that calls Luma, and ``max_active_tis_per_dag``, this DAG's share of it, so
  that a big refresh never starves the others. The run may spend at most ``MAX_RUN_COST_USD``.
- ``upload`` streams each image into the run's folder of the configured storage, with its metadata
  record (prompt, parameters, checksum, cost, the task that made it) beside it.
- ``publish_manifest`` writes the batch's manifest beside the images and announces it on ONE stable
  Asset, ``luma_marketing_refresh``: consumers (``luma_campaign_gallery``, a publishing DAG) are
  scheduled on it and woken once per batch, not once per image with a new Asset every run.
- ``spend`` reports what the run's generations cost (list prices), whatever happened to them.

Storage is configured once per deployment, not in the DAG:
``AIRFLOW__LUMA__OUTPUT_PATH=s3://marketing-assets/luma`` and ``AIRFLOW__LUMA__OUTPUT_CONN_ID=aws_default``.
The Luma connection ``luma_default`` (type ``luma``) holds the API key as its password.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_luma.operators.luma import (
    LumaGenerateImageOperator,
    LumaPublishManifestOperator,
    LumaRunSpendOperator,
    LumaUploadOutputsOperator,
)

CAMPAIGN_FILE = Path(__file__).parent / "campaigns" / "spring_launch.json"
#: The batch's Asset: one name for every run, so consumers can be scheduled on it.
CAMPAIGN_ASSET = Asset("luma_marketing_refresh")
#: One folder per run; ``run_after`` exists for manual runs too (they have no logical date).
RUN_FOLDER = "spring-launch/{{ dag_run.run_after | ts_nodash }}"
#: Nine uni-1 images cost 0.3636 USD at list price; the cap leaves room for a few resubmissions.
MAX_RUN_COST_USD = 0.50


@task
def campaign(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """One generation request per product and channel, from the campaign file."""
    spec = json.loads(CAMPAIGN_FILE.read_text())
    rows = [
        {
            "prompt": f"{product['subject']}, {channel['framing']}, {spec['style']}",
            "aspect_ratio": channel["aspect_ratio"],
        }
        for product in spec["products"]
        for channel in spec["channels"]
    ]
    limit = (params or {}).get("max_images")
    return rows[:limit] if limit else rows


with DAG(
    dag_id="luma_marketing_refresh",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={"max_images": Param(None, type=["null", "integer"], minimum=1)},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["example", "luma"],
    doc_md=__doc__,
):
    generate = LumaGenerateImageOperator.partial(
        task_id="generate",
        output_format="png",
        deferrable=True,
        pool="luma_api",
        max_active_tis_per_dag=4,
        max_run_cost_usd=MAX_RUN_COST_USD,
    ).expand_kwargs(campaign())

    # Jinja fills the run's folder; the single-brace fields are the operator's own, per output.
    upload = LumaUploadOutputsOperator.partial(
        task_id="upload", file_name=RUN_FOLDER + "/{generation_id}-{index}{ext}"
    ).expand(generation=generate.output)

    LumaPublishManifestOperator(
        task_id="publish_manifest",
        uploads=upload.output,
        file_name=RUN_FOLDER + "/manifest.json",
        outlets=[CAMPAIGN_ASSET],
    )
    upload >> LumaRunSpendOperator(task_id="spend")
