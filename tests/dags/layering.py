"""
A layering job for ``dag.test()``: a storage image split into RGBA layers, every layer stored under
its label, and the run's spend (unpriced); the same job under a run's cost cap, which refuses it (Luma
publishes no price for it); and under a deployment's cap, a task that opts out with ``"none"``.

The storage folders come from ``LUMA_TEST_INPUTS`` and ``LUMA_TEST_OUTPUTS`` (``file://`` URLs).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import (
    LumaGenerateImageOperator,
    LumaRunSpendOperator,
    LumaUploadOutputsOperator,
)

INPUTS = os.environ.get("LUMA_TEST_INPUTS", "file:///nonexistent")
OUTPUTS = os.environ.get("LUMA_TEST_OUTPUTS", "file:///nonexistent")

with DAG(
    dag_id="luma_layering",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    split = LumaGenerateImageOperator(
        task_id="split",
        type="layering",
        source=f"{INPUTS}/poster.png",
        layering={"resolution": "1k"},
        deferrable=True,
        timeout=60,
    )
    store = LumaUploadOutputsOperator(
        task_id="store",
        generation=split.output,
        destination=OUTPUTS,
        file_name="{generation_id}/{layer}{ext}",
    )
    split >> store >> LumaRunSpendOperator(task_id="spend").as_teardown()

with DAG(
    dag_id="luma_layering_capped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    LumaGenerateImageOperator(
        task_id="split",
        type="layering",
        prompt="keep the lettering on its own layer",
        source=f"{INPUTS}/poster.png",
        max_run_cost_usd=1.0,
        timeout=60,
    )

with DAG(
    dag_id="luma_layering_opted_out",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    LumaGenerateImageOperator(
        task_id="split",
        type="layering",
        source=f"{INPUTS}/poster.png",
        max_run_cost_usd="none",
        timeout=60,
    )
