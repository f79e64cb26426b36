"""
Example: generate a hero image with Luma's uni-1, then edit it, without paying twice on retries.

- ``hero`` submits a text-to-image request on the worker and waits in the triggerer (``deferrable``).
  A retry, a worker crash or a clear reattaches to the same generation (Airflow >= 3.3).
- ``night`` edits the hero's output: ``source`` takes the upstream generation id from XCom.
- ``variants`` fans out one generation per prompt with dynamic task mapping.

Set up a connection ``luma_default`` of type ``luma`` with the API key as its password.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

with DAG(
    dag_id="example_luma_generate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "subject": Param("a lighthouse on a cliff at dusk", type="string", minLength=1, maxLength=6000),
        "aspect_ratio": Param("16:9", enum=["1:1", "1:2", "1:3", "16:9", "2:1", "2:3", "3:1", "3:2", "9:16"]),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["example", "luma"],
    doc_md=__doc__,
):
    hero = LumaGenerateImageOperator(
        task_id="hero",
        prompt="{{ params.subject }}, cinematic light, wide shot",
        aspect_ratio="{{ params.aspect_ratio }}",
        output_format="png",
        deferrable=True,
    )

    night = LumaGenerateImageOperator(
        task_id="night",
        type="image_edit",
        prompt="Turn the scene into a clear night with the lighthouse beam on",
        source=hero.output["generation_id"],
        deferrable=True,
    )

    variants = LumaGenerateImageOperator.partial(
        task_id="variants", aspect_ratio="1:1", model="uni-1", deferrable=True
    ).expand(prompt=["a red fox in snow", "a blue whale breaching", "a green parrot on a branch"])

    hero >> night
