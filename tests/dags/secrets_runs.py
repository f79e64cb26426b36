"""
DAG runs whose every trace ``tests/faults/test_secrets.py`` scans for the API key, presigned URLs and
base64 images: per waiting mode, generate then upload, an edit of a file in storage (sent as base64)
then upload, and a submission waited on by a sensor; and a DAG whose tasks fail in the three ways a
message could carry them (a sync API error, a failed generation, a refused key).

The storage file, the destination and the second connection come from the run's conf.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator
from airflow_provider_luma.sensors.luma import LumaGenerationSensor

FAST = {"initial_wait": 0.05, "poll_interval": 0.05, "timeout": 60}

for _mode, _deferrable in (("deferrable", True), ("worker", False)):
    with DAG(
        dag_id=f"luma_secrets_{_mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"subject": "a lighthouse"},
        tags=["luma", "test"],
    ):
        generate = LumaGenerateImageOperator(
            task_id="generate",
            prompt="{{ params.subject }} at dusk",
            aspect_ratio="16:9",
            deferrable=_deferrable,
            **FAST,
        )
        LumaUploadOutputsOperator(
            task_id="upload", generation=generate.output, destination="{{ dag_run.conf['destination'] }}"
        )
        edit = LumaGenerateImageOperator(
            task_id="edit",
            type="image_edit",
            prompt="make it night",
            source="{{ dag_run.conf['source'] }}",
            image_ref=["{{ dag_run.conf['source'] }}"],
            deferrable=_deferrable,
            **FAST,
        )
        LumaUploadOutputsOperator(
            task_id="upload_edit",
            generation=edit.output,
            destination="{{ dag_run.conf['destination'] }}/edits",
        )
        submit_only = LumaGenerateImageOperator(
            task_id="submit_only", prompt="a quiet harbour", wait_for_completion=False
        )
        LumaGenerationSensor(
            task_id="wait",
            generation_id=submit_only.output["generation_id"],
            deferrable=_deferrable,
            poke_interval=0.05,
            timeout=60,
        )

with DAG(
    dag_id="luma_secrets_failing",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    # In a fixed order, so each meets the fault the test scripted for it.
    refused = LumaGenerateImageOperator(task_id="payment_required", prompt="a red kite", **FAST)
    moderated = LumaGenerateImageOperator(
        task_id="moderated",
        type="image_edit",
        prompt="make it night",
        source="{{ dag_run.conf['source'] }}",
        deferrable=True,
        trigger_rule="all_done",
        **FAST,
    )
    revoked = LumaGenerateImageOperator(
        task_id="revoked_key",
        prompt="a blue kite",
        luma_conn_id="{{ dag_run.conf['revoked_conn_id'] }}",
        trigger_rule="all_done",
        **FAST,
    )
    refused >> moderated >> revoked
