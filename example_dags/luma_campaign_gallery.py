"""
Example: a gallery page of each campaign refresh, built when the refresh announces its batch.

Scheduled on the ``luma_marketing_refresh`` Asset (see ``luma_marketing_refresh.py``): each batch
its manifest task announces starts one run here. ``build_gallery`` reads the manifest the event
names and the metadata record of every image, and writes ``index.html`` beside the images: a
thumbnail of each with its prompt, model, aspect ratio, sha256, estimated cost and the task that
made it (linked into this Airflow's UI when ``[api] base_url`` is set). The page needs no server:
open it from disk, or serve the folder from the bucket. To build the page of an older batch again,
trigger the DAG with its manifest's URI as the ``manifest_uri`` param.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, Param

from airflow_provider_luma.operators.luma import LumaGalleryOperator

with DAG(
    dag_id="luma_campaign_gallery",
    schedule=[Asset("luma_marketing_refresh")],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"manifest_uri": Param("", type="string", description="empty: the triggering batch's")},
    tags=["example", "luma"],
    doc_md=__doc__,
):
    LumaGalleryOperator(
        task_id="build_gallery",
        manifest="{{ params.manifest_uri }}",
        title="Spring launch: the week's campaign images",
    )
