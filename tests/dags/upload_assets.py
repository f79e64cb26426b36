"""
DAG run by ``tests/operators/test_upload_dag.py`` through ``dag.test()``: uploads with Asset outlets.

The generations and the destination come from the run's conf, rendered as native objects so the
generate operator's result dicts reach the upload as dicts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetAlias, task

from airflow_provider_luma.operators.luma import LumaUploadOutputsOperator

IMAGES = Asset("luma_test_images")
OUTPUTS = AssetAlias("luma_test_outputs")
MAPPED_OUTPUTS = AssetAlias("luma_test_mapped_outputs")

with DAG(
    dag_id="luma_upload_assets",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
) as dag:

    @task
    def generations(**context: Any) -> list[Any]:
        return context["dag_run"].conf["generations"]

    LumaUploadOutputsOperator(
        task_id="upload",
        generation="{{ dag_run.conf['generation'] }}",
        destination="{{ dag_run.conf['destination'] }}",
        outlets=[IMAGES, OUTPUTS],
    )

    LumaUploadOutputsOperator.partial(
        task_id="upload_each",
        destination="{{ dag_run.conf['destination'] }}/mapped",
        outlets=[MAPPED_OUTPUTS],
    ).expand(generation=generations())
