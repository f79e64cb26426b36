"""
Example: edit images with Luma's uni-1, both a fresh generation and a photo already in storage.

- ``generate`` makes a product shot from text.
- ``recolour`` edits it (``type="image_edit"``): ``source=generate.output`` chains the edit on the
  upstream generation by its id, so the image never travels through Airflow.
- ``stage`` edits a product photo that lives in storage into a seasonal campaign scene, with the brand
  logo as a reference image. Both are ``ObjectStoragePath`` inputs, and ``upload_inputs=True`` sends them
  through Luma's Files API as uploaded files: each is uploaded once per account (named by its sha256,
  found again by later tasks and runs) instead of being sent as base64 in every request.
- ``store_<task>`` writes every output and its metadata record to the deployment's storage
  (``AIRFLOW__LUMA__OUTPUT_PATH`` / ``AIRFLOW__LUMA__OUTPUT_CONN_ID``); the records name each input by
  its storage URI and sha256.

Where the inputs come from: the folder in the environment variable ``LUMA_EXAMPLE_ASSETS``
(for example ``s3://brand-assets/spring``, with ``LUMA_EXAMPLE_ASSETS_CONN_ID=aws_default``), holding
``product.png`` and ``brand_logo.png``. By default it is the ``assets/`` folder shipped beside this
file, so the DAG runs as is. The folder is read when the DAG file is parsed, and the files only on the
worker, when the task runs. The Luma connection ``luma_default`` (type ``luma``) holds the API key.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, ObjectStoragePath

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator

ASSETS = os.environ.get("LUMA_EXAMPLE_ASSETS") or (Path(__file__).resolve().parent / "assets").as_uri()
ASSETS_CONN_ID = os.environ.get("LUMA_EXAMPLE_ASSETS_CONN_ID") or None


def _asset(name: str) -> ObjectStoragePath:
    return ObjectStoragePath(f"{ASSETS.rstrip('/')}/{name}", conn_id=ASSETS_CONN_ID)


with DAG(
    dag_id="luma_image_edit",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["luma", "example"],
    doc_md=__doc__,
):
    generate = LumaGenerateImageOperator(
        task_id="generate",
        prompt="a white ceramic coffee mug on a wooden table, studio product photo",
        aspect_ratio="1:1",
        deferrable=True,
    )
    recolour = LumaGenerateImageOperator(
        task_id="recolour",
        type="image_edit",
        prompt="make the mug matte sage green, keep the table and the lighting",
        source=generate.output,
        deferrable=True,
    )
    stage = LumaGenerateImageOperator(
        task_id="stage",
        type="image_edit",
        prompt="place this product in a spring picnic scene and print the reference logo on it",
        source=_asset("product.png"),
        image_ref=[_asset("brand_logo.png")],
        upload_inputs=True,
        deferrable=True,
    )
    for image in (generate, recolour, stage):
        LumaUploadOutputsOperator(task_id=f"store_{image.task_id}", generation=image.output)
