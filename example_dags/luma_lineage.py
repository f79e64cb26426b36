"""
Example: a small campaign refresh whose lineage OpenLineage records, from the prompt to the bucket.

- ``hero`` generates a campaign key visual from text.
- ``adapt`` maps one ``image_edit`` per channel over it: each edit names the hero's generation as its
  ``source``, so the lineage shows every channel image coming from the hero.
- ``store_hero`` and ``store_adapted`` upload every image with its metadata record. Their OpenLineage
  events have the generation (``luma`` namespace, ``generations/<id>``) and an edit's source
  generation as inputs, the stored object (``file``, ``s3://bucket``, …) as the output, and a
  ``luma_generation`` run facet (model, type, estimated cost, a sha256 of the prompt, never the
  prompt itself).

Turn OpenLineage on for the deployment (the ``apache-airflow-providers-openlineage`` package is the
provider's ``openlineage`` extra); the file transport writes one JSON event per line, to read with any
tool, for example ``jq 'select(.eventType == "COMPLETE") | [.job.name, .inputs, .outputs]'``::

    AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "/tmp/lineage.jsonl", "append": true}'
    AIRFLOW__OPENLINEAGE__NAMESPACE=marketing

In production point the transport at Marquez or DataHub instead (``"type": "http"``). Storage and the
Luma connection are the deployment's, as in ``luma_marketing_refresh``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator

CHANNEL_EDITS = [
    "recompose as a square social post, the product centred",
    "recompose as a tall phone story, the product in the lower third",
]

with DAG(
    dag_id="luma_lineage",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["example", "luma", "lineage"],
    doc_md=__doc__,
):
    hero = LumaGenerateImageOperator(
        task_id="hero",
        prompt="a mint-green running shoe on a pastel podium, spring campaign key visual",
        aspect_ratio="16:9",
        deferrable=True,
    )
    adapt = LumaGenerateImageOperator.partial(
        task_id="adapt", type="image_edit", source=hero.output, deferrable=True
    ).expand(prompt=CHANNEL_EDITS)
    LumaUploadOutputsOperator(task_id="store_hero", generation=hero.output)
    LumaUploadOutputsOperator.partial(task_id="store_adapted").expand(generation=adapt.output)
