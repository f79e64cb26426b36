"""
A mapped refresh whose every task uses the same brand reference image from storage, sent as an
uploaded file (``upload_inputs=True``), and an edit whose source is a file in storage: for ``dag.test()``.

The storage folder comes from ``LUMA_TEST_INPUTS`` (a ``file://`` URL the test fills).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

INPUTS = os.environ.get("LUMA_TEST_INPUTS", "file:///nonexistent")
PROMPTS = ["a red scarf", "a blue mug", "a green tote", "a white cap", "a black tee"]

with DAG(
    dag_id="luma_shared_reference",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    generate = LumaGenerateImageOperator.partial(
        task_id="generate",
        image_ref=[f"{INPUTS}/brand.png"],
        upload_inputs=True,
        # dag.test() drops a deferral's kwargs, where a deferred task keeps what it uploaded.
        deferrable=False,
        timeout=60,
    ).expand(prompt=PROMPTS)
    edit = LumaGenerateImageOperator(
        task_id="edit",
        prompt="put the logo on a billboard",
        type="image_edit",
        source=f"{INPUTS}/billboard.jpg",
        image_ref=[f"{INPUTS}/brand.png"],
        upload_inputs=True,
        deferrable=False,
        timeout=60,
    )
    generate >> edit

with DAG(
    dag_id="luma_shared_reference_capped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    # uni-1 with one reference is $0.0434: a $0.01 cap refuses it before anything is uploaded.
    LumaGenerateImageOperator(
        task_id="generate",
        prompt="a red scarf",
        image_ref=[f"{INPUTS}/brand.png"],
        upload_inputs=True,
        max_run_cost_usd=0.01,
        timeout=60,
    )
