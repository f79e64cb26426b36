"""
An edit whose inputs are written in the DAG in the API's own shapes: a base64 image and a presigned
``https://`` URL, for ``tests/faults/test_secrets.py`` (what the rendered template fields keep).
"""

from __future__ import annotations

import base64
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator
from airflow_provider_luma.testing.images import render

INLINE_IMAGE = base64.b64encode(render("an inline source", 48, 32, "png")).decode()
SIGNED_URL = (
    "https://bucket.s3.amazonaws.com/refs/palette.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260408%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=600"
    "&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

with DAG(
    dag_id="luma_secrets_inline_inputs",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["luma", "test"],
):
    LumaGenerateImageOperator(
        task_id="edit",
        type="image_edit",
        prompt="make it night",
        source={"data": INLINE_IMAGE, "media_type": "image/png"},
        image_ref=[SIGNED_URL],
        wait_for_completion=False,
    )
