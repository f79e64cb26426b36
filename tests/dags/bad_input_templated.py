"""
Values that are valid Jinja but render to an invalid request, for ``tests/faults/test_bad_input.py``.

Nothing here is known at parse, so the DAG imports cleanly; each task must fail when it runs, before
its first request, without spending its retries. The values come from the run's conf (directly, or
through params that the conf overrides).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_luma.operators.luma import LumaGenerateImageOperator

#: Retries that a validation error must not spend.
NO_RETRY_EXPECTED = {"retries": 2, "retry_delay": timedelta(0), "deferrable": False}

with DAG(
    dag_id="luma_bad_input_templated",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"prompt": "a fox in the snow", "style": "auto"},
    tags=["luma", "test"],
):
    LumaGenerateImageOperator(
        task_id="ratio_from_conf",
        prompt="a fox in the snow",
        aspect_ratio="{{ dag_run.conf['aspect_ratio'] }}",
        **NO_RETRY_EXPECTED,
    )
    LumaGenerateImageOperator(task_id="prompt_from_params", prompt="{{ params.prompt }}", **NO_RETRY_EXPECTED)
    LumaGenerateImageOperator(
        task_id="style_from_params",
        prompt="a fox in the snow",
        style="{{ params.style }}",
        aspect_ratio="16:9",
        **NO_RETRY_EXPECTED,
    )
    LumaGenerateImageOperator(
        task_id="source_from_conf",
        type="image_edit",
        prompt="make it night",
        source="{{ dag_run.conf['source'] }}",
        **NO_RETRY_EXPECTED,
    )
    # Literal values of a mapped task are validated only when it is expanded, at run time.
    LumaGenerateImageOperator.partial(
        task_id="mapped_format", prompt="a fox in the snow", **NO_RETRY_EXPECTED
    ).expand(output_format=["webp", "tiff"])
